/**
 * Exact conversions between float32 and the two 16-bit float formats stored in checkpoints:
 * IEEE half precision (f16: 1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (bf16: the top
 * 16 bits of an f32). Narrowing rounds to nearest, ties to even, as PyTorch does; widening is
 * exact. Values are handled as raw bit patterns (`Uint16Array`), so NaN payloads survive the
 * widening direction and nothing depends on engine support for `Float16Array`.
 *
 * NaN on narrowing follows PyTorch: f16 keeps the sign and becomes the quiet NaN `0x7e00`,
 * bf16 becomes `0x7fc0` whatever the sign (`c10::BFloat16` round_to_nearest_even).
 *
 * @module
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** f32 bit pattern -> f16 bit pattern, round to nearest even (after numpy's halffloat.c). */
function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = f & 0x7f800000;
  let man = f & 0x007fffff;
  // Exponent >= 2^16: overflow to infinity, or infinity / NaN already.
  if (exp >= 0x47800000) {
    if (exp === 0x7f800000 && man !== 0) return sign | 0x7e00;
    return sign | 0x7c00;
  }
  // Exponent <= 2^-15: the result is subnormal or zero.
  if (exp <= 0x38000000) {
    // Below 2^-25 (half the smallest subnormal): rounds to zero; exactly 2^-25 is a tie to 0.
    if (exp < 0x33000000) return sign;
    const e = exp >>> 23;
    man += 0x00800000;
    // Shift so the f16 subnormal's lsb lands on bit 13; bits shifted out (at most 11) are
    // checked in the original pattern so a ".1000..." tie is only taken when it is exact.
    man >>>= 113 - e;
    if ((man & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) man += 0x1000;
    // A carry into bit 23 makes the smallest normal, which is the right answer.
    return sign + (man >>> 13);
  }
  const hExp = (exp - 0x38000000) >>> 13;
  // Round half to even: add half an ulp unless it is a tie with an even lsb.
  if ((man & 0x3fff) !== 0x1000) man += 0x1000;
  // The carry may run into the exponent, up to infinity (0x7c00), which is correct.
  return sign + hExp + (man >>> 13);
}

let f16Table: Uint32Array | undefined;

/** The 65536 f16 bit patterns widened to f32 bit patterns (built on first use, 256 KiB). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const asF32 = new Float32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) {
      // Zero or subnormal: man * 2^-24 is exact in f32.
      asF32[h] = man * 5.960464477539063e-8;
      table[h] = table[h]! | sign;
    } else if (exp === 31) {
      table[h] = (sign | 0x7f800000 | (man << 13)) >>> 0;
    } else {
      table[h] = (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
    }
  }
  f16Table = table;
  return table;
}

/**
 * Rounds a number to float32 and then to the nearest f16 (ties to even).
 *
 * @param x The value (rounded to float32 first, as a float32 tensor would hold it).
 * @returns The f16 bit pattern (0..65535).
 * @example
 * ```ts
 * f32ToF16Bits(1); // 0x3c00
 * f32ToF16Bits(65520); // 0x7c00 (Infinity: halfway past the largest f16, ties to even)
 * ```
 */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]!);
}

/**
 * Widens an f16 bit pattern to its exact value.
 *
 * @param h The f16 bit pattern (0..65535).
 * @returns The value (exactly representable in float32).
 * @example
 * ```ts
 * f16BitsToF32(0x3555); // 0.333251953125
 * ```
 */
export function f16BitsToF32(h: number): number {
  scratchU32[0] = f16ToF32Table()[h & 0xffff]!;
  return scratchF32[0]!;
}

/**
 * Rounds a number to float32 and then to the nearest bf16 (ties to even, NaN -> 0x7fc0).
 *
 * @param x The value (rounded to float32 first).
 * @returns The bf16 bit pattern (0..65535).
 * @example
 * ```ts
 * f32ToBf16Bits(1); // 0x3f80
 * ```
 */
export function f32ToBf16Bits(x: number): number {
  // Writing a NaN into a Float32Array yields the quiet NaN 0x7fc00000, which rounds to 0x7fc0.
  scratchF32[0] = x;
  const f = scratchU32[0]!;
  return (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
}

/**
 * Widens a bf16 bit pattern to its exact value.
 *
 * @param b The bf16 bit pattern (0..65535).
 * @returns The value (exactly representable in float32).
 * @example
 * ```ts
 * bf16BitsToF32(0x3f80); // 1
 * ```
 */
export function bf16BitsToF32(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
}

/** Throws unless a caller-supplied output array has the source's length. */
function checkOut(n: number, out: { length: number } | undefined): void {
  if (out !== undefined && out.length !== n) {
    throw new RangeError(`Cannot convert ${n} values: the output array holds ${out.length}`);
  }
}

/**
 * Converts float32 values to f16 bit patterns (round to nearest, ties to even).
 *
 * @param src The values.
 * @param out Optional output of the same length (to reuse a buffer).
 * @returns The f16 bit patterns.
 * @example
 * ```ts
 * f32ToF16(new Float32Array([1, -2])); // Uint16Array [0x3c00, 0xc000]
 * ```
 */
export function f32ToF16(
  src: Float32Array,
  out?: Uint16Array<ArrayBuffer>,
): Uint16Array<ArrayBuffer> {
  checkOut(src.length, out);
  const dst = out ?? new Uint16Array(src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]!);
  return dst;
}

/**
 * Widens f16 bit patterns to float32 (exact).
 *
 * @param src The f16 bit patterns.
 * @param out Optional output of the same length.
 * @returns The values.
 * @example
 * ```ts
 * f16ToF32(new Uint16Array([0x3c00, 0x7c00])); // Float32Array [1, Infinity]
 * ```
 */
export function f16ToF32(
  src: Uint16Array,
  out?: Float32Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  checkOut(src.length, out);
  const dst = out ?? new Float32Array(src.length);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  const table = f16ToF32Table();
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]!]!;
  return dst;
}

/**
 * Converts float32 values to bf16 bit patterns (round to nearest, ties to even, as PyTorch).
 *
 * @param src The values.
 * @param out Optional output of the same length.
 * @returns The bf16 bit patterns.
 * @example
 * ```ts
 * f32ToBf16(new Float32Array([1, 3.140625])); // Uint16Array [0x3f80, 0x4049]
 * ```
 */
export function f32ToBf16(
  src: Float32Array,
  out?: Uint16Array<ArrayBuffer>,
): Uint16Array<ArrayBuffer> {
  checkOut(src.length, out);
  const dst = out ?? new Uint16Array(src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const f = bits[i]!;
    // NaN: exponent all ones and a non-zero mantissa.
    dst[i] = (f & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
  }
  return dst;
}

/**
 * Widens bf16 bit patterns to float32 (exact).
 *
 * @param src The bf16 bit patterns.
 * @param out Optional output of the same length.
 * @returns The values.
 * @example
 * ```ts
 * bf16ToF32(new Uint16Array([0x3f80])); // Float32Array [1]
 * ```
 */
export function bf16ToF32(
  src: Uint16Array,
  out?: Float32Array<ArrayBuffer>,
): Float32Array<ArrayBuffer> {
  checkOut(src.length, out);
  const dst = out ?? new Float32Array(src.length);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}
