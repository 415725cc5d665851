/**
 * Float64 references of the reductions in `src/ops/reduce.ts`.
 *
 * @module
 */

import { type Arr, arr, stridesOf } from "./array.ts";

/**
 * Reduces over axes.
 *
 * @param x Input.
 * @param axes Sorted distinct axes.
 * @param mode "sum", "mean" or "max".
 * @returns The reduction with reduced axes removed.
 */
export function reduceRef(x: Arr, axes: readonly number[], mode: "sum" | "mean" | "max"): Arr {
  const outShape = x.shape.filter((_, i) => !axes.includes(i));
  const out = arr(outShape);
  const keptStrides = stridesOf(outShape);
  if (mode === "max") out.data.fill(-Infinity);
  const count = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const c = new Array(x.shape.length).fill(0);
  for (let i = 0; i < x.data.length; i++) {
    let o = 0, k = 0;
    for (let d = 0; d < x.shape.length; d++) {
      if (!axes.includes(d)) o += c[d] * keptStrides[k++]!;
    }
    const v = x.data[i]!;
    out.data[o] = mode === "max" ? Math.max(out.data[o]!, v) : out.data[o]! + v;
    for (let d = x.shape.length - 1; d >= 0; d--) {
      if (++c[d] < x.shape[d]!) break;
      c[d] = 0;
    }
  }
  if (mode === "mean") { for (let i = 0; i < out.data.length; i++) out.data[i]! /= count; }
  return out;
}
