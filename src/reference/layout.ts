/**
 * Float64 references of the data-movement ops in `src/ops/layout.ts`.
 *
 * @module
 */

import { type Arr, arr, stridesOf } from "./array.ts";

/**
 * Visits every coordinate of a shape in row-major order.
 *
 * @param shape Dimensions.
 * @param fn Called with the coordinate (reused array) and the row-major index.
 */
function forEachIndex(shape: readonly number[], fn: (c: readonly number[], i: number) => void) {
  const n = shape.reduce((p, d) => p * d, 1);
  const c = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(c, i);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++c[d]! < shape[d]!) break;
      c[d] = 0;
    }
  }
}

/**
 * Joins arrays along an axis.
 *
 * @param xs Inputs, equal except along `axis`.
 * @param axis Non-negative axis.
 * @returns The concatenation.
 */
export function concatRef(xs: readonly Arr[], axis: number): Arr {
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((p, x) => p + x.shape[axis]!, 0);
  const out = arr(shape);
  const os = stridesOf(shape);
  let at = 0;
  for (const x of xs) {
    forEachIndex(x.shape, (c, i) => {
      let o = at * os[axis]!;
      for (let d = 0; d < c.length; d++) o += c[d]! * os[d]!;
      out.data[o] = x.data[i]!;
    });
    at += x.shape[axis]!;
  }
  return out;
}

/**
 * The elements `start <= i < end` along one axis.
 *
 * @param x Input.
 * @param range Non-negative axis and range.
 * @returns The slice.
 */
export function sliceRef(x: Arr, range: { axis: number; start: number; end: number }): Arr {
  const shape = [...x.shape];
  shape[range.axis] = range.end - range.start;
  const out = arr(shape);
  const xs = stridesOf(x.shape);
  forEachIndex(shape, (c, i) => {
    let o = range.start * xs[range.axis]!;
    for (let d = 0; d < c.length; d++) o += c[d]! * xs[d]!;
    out.data[i] = x.data[o]!;
  });
  return out;
}

/**
 * Reorders dims: output dim i is input dim `perm[i]`.
 *
 * @param x Input.
 * @param perm Permutation of the input dims (non-negative).
 * @returns The permuted array.
 */
export function permuteRef(x: Arr, perm: readonly number[]): Arr {
  const shape = perm.map((d) => x.shape[d]!);
  const out = arr(shape);
  const xs = stridesOf(x.shape);
  forEachIndex(shape, (c, i) => {
    let o = 0;
    for (let d = 0; d < c.length; d++) o += c[d]! * xs[perm[d]!]!;
    out.data[i] = x.data[o]!;
  });
  return out;
}
