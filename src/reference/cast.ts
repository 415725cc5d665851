/**
 * Host reference of `src/ops/cast.ts`: rounding float64 values to IEEE half precision.
 *
 * @module
 */

/**
 * Rounds a value to the nearest float16 (ties to even), as the GPU's f32 -> f16 store does:
 * subnormals below 2^-14, infinity from 65520 up (the f16 rounding of the range's edge), NaN
 * stays NaN, the sign of zero is kept.
 *
 * @param x The value (a float32 value when it models a GPU conversion).
 * @returns The nearest float16 value, as a number.
 * @example
 * ```ts
 * roundF16(1 + 2 ** -11); // 1 (tie to even)
 * ```
 */
export function roundF16(x: number): number {
  if (Number.isNaN(x) || x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  // The spacing of f16 values around a: 2^(e - 10) for normals, 2^-24 for subnormals.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = 2 ** (e - 10);
  const q = a / ulp; // exact: a power-of-two scale
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  const v = r * ulp;
  return x < 0 ? -v : v;
}

/**
 * Rounds every value of an array to float16 (a copy).
 *
 * @param a Values.
 * @returns The rounded values.
 */
export function roundF16Array(a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = roundF16(a[i]!);
  return out;
}
