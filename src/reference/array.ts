/**
 * Float64 CPU arrays for the reference implementations that every GPU kernel is checked
 * against, plus the finite-difference gradient checker those references are checked with.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";

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
