/**
 * Float64 CPU arrays for the reference implementations that every GPU kernel is checked
 * against, plus the finite-difference gradient checker those references are checked with.
 *
 * @module
 */

import { Rng } from "../util/rng.ts";

/** A float64 array with a shape (row-major). */
export interface Arr {
  /** Elements. */
  data: Float64Array;
  /** Dimensions. */
  shape: number[];
}

/**
 * @param shape Dimensions.
 * @param data Optional elements (copied); zeros otherwise.
 * @returns A new array.
 */
export function arr(shape: readonly number[], data?: ArrayLike<number>): Arr {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new RangeError(`arr(): ${data.length} values for [${shape}]`);
    out.set(data);
  }
  return { data: out, shape: [...shape] };
}

/**
 * Uniform random values.
 *
 * @param shape Dimensions.
 * @param rng Generator.
 * @param lo Lower bound (default -1).
 * @param hi Upper bound (default 1).
 * @returns A new array.
 */
export function randArr(shape: readonly number[], rng: Rng, lo = -1, hi = 1): Arr {
  const a = arr(shape);
  for (let i = 0; i < a.data.length; i++) a.data[i] = rng.uniform(lo, hi);
  return a;
}

/**
 * Row-major strides of a shape.
 *
 * @param shape Dimensions.
 * @returns Element strides.
 */
export function stridesOf(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/**
 * Checks an analytic gradient against central finite differences of a float64 function.
 * For a random output weighting w, compares d<w, f(x)>/dx_i for every input element i
 * (or `maxChecks` random ones) with the analytic vector-Jacobian product.
 *
 * @param f Forward: inputs to output.
 * @param vjp Backward: inputs and output gradient to input gradients (null = not checked).
 * @param inputs Inputs.
 * @param options Step, tolerance, number of elements checked, seed.
 * @returns The largest error found, relative to `atol + rtol * |fd|`; throws above 1.
 */
export function checkGradFd(
  f: (xs: Arr[]) => Arr,
  vjp: (xs: Arr[], g: Arr) => (Arr | null)[],
  inputs: Arr[],
  options: { h?: number; atol?: number; rtol?: number; maxChecks?: number; seed?: number } = {},
): number {
  const { h = 1e-6, atol = 1e-7, rtol = 1e-5, maxChecks = 200, seed = 7 } = options;
  const rng = new Rng(seed);
  const y = f(inputs);
  const w = randArr(y.shape, rng);
  const grads = vjp(inputs, w);
  let worst = 0;
  inputs.forEach((x, k) => {
    const gk = grads[k];
    if (!gk) return;
    const n = x.data.length;
    const idx = n <= maxChecks ? [...Array(n).keys()] : [...Array(maxChecks)].map(() => rng.int(n));
    for (const i of idx) {
      const orig = x.data[i]!;
      x.data[i] = orig + h;
      const yp = f(inputs);
      x.data[i] = orig - h;
      const ym = f(inputs);
      x.data[i] = orig;
      let fd = 0;
      for (let j = 0; j < w.data.length; j++) fd += w.data[j]! * (yp.data[j]! - ym.data[j]!);
      fd /= 2 * h;
      const err = Math.abs(fd - gk.data[i]!) / (atol + rtol * Math.abs(fd));
      if (err > worst) worst = err;
      if (err > 1) {
        throw new Error(
          `Finite-difference check failed for input ${k} element ${i}: analytic ` +
            `${gk.data[i]}, finite difference ${fd}`,
        );
      }
    }
  });
  return worst;
}
