/**
 * Float64 references of the normalisation ops in `src/ops/norm.ts`. Like the kernels, they
 * see the input as `[O, C, I]` around the normalised axis: element (o, c, i) at
 * `o*C*I + c*I + i`.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/** Sizes before (O), of (C) and after (I) one axis of a shape. */
export interface RefLayout {
  /** O. */
  outer: number;
  /** C. */
  size: number;
  /** I. */
  inner: number;
}

/**
 * Splits a shape around one axis.
 *
 * @param shape Dimensions.
 * @param axis The axis; negative counts from the end.
 * @returns O, C and I.
 */
export function refLayout(shape: readonly number[], axis: number): RefLayout {
  const k = axis < 0 ? axis + shape.length : axis;
  const prod = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
  return { outer: prod(shape.slice(0, k)), size: shape[k]!, inner: prod(shape.slice(k + 1)) };
}

/**
 * Calls `fn` with the element indices of every row (o, i) of x seen as `[O, C, I]`.
 *
 * @param layout O, C and I.
 * @param fn Receives the C indices of one row.
 */
export function forEachRow(layout: RefLayout, fn: (idx: number[]) => void): void {
  const { outer, size, inner } = layout;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const idx: number[] = [];
      for (let c = 0; c < size; c++) idx.push(o * size * inner + c * inner + i);
      fn(idx);
    }
  }
}

function layerNormLayout(
  x: Arr,
  weight: Arr | null,
  bias: Arr | null,
  eps: number,
  layout: RefLayout,
): Arr {
  const y = arr(x.shape);
  const C = layout.size;
  forEachRow(layout, (idx) => {
    let s = 0;
    for (const e of idx) s += x.data[e]!;
    const mean = s / C;
    let v = 0;
    for (const e of idx) v += (x.data[e]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / C + eps);
    idx.forEach((e, c) => {
      y.data[e] = (x.data[e]! - mean) * rstd * (weight ? weight.data[c]! : 1) +
        (bias ? bias.data[c]! : 0);
    });
  });
  return y;
}

/**
 * LayerNorm over the last axis (biased variance, `rstd = 1 / sqrt(var + eps)`).
 *
 * @param x Input `[..., C]`.
 * @param weight Scale `[C]` or null.
 * @param bias Shift `[C]` or null.
 * @param options eps (default 1e-5).
 * @returns The normalised array.
 */
export function layerNormRef(
  x: Arr,
  weight: Arr | null,
  bias: Arr | null,
  options: { eps?: number } = {},
): Arr {
  return layerNormLayout(x, weight, bias, options.eps ?? 1e-5, refLayout(x.shape, -1));
}

/**
 * Channel LayerNorm of an NCHW array (timm LayerNorm2d).
 *
 * @param x Input `[B, C, H, W]`.
 * @param weight Scale `[C]` or null.
 * @param bias Shift `[C]` or null.
 * @param options eps (default 1e-6).
 * @returns The normalised array.
 */
export function layerNormChannelsRef(
  x: Arr,
  weight: Arr | null,
  bias: Arr | null,
  options: { eps?: number } = {},
): Arr {
  return layerNormLayout(x, weight, bias, options.eps ?? 1e-6, refLayout(x.shape, 1));
}

/**
 * L2 normalisation along an axis: `x / max(||x||_2, eps)`.
 *
 * @param x Input.
 * @param options eps (default 1e-12) and axis (default -1).
 * @returns The normalised array.
 */
export function normalizeRef(x: Arr, options: { eps?: number; axis?: number } = {}): Arr {
  const { eps = 1e-12, axis = -1 } = options;
  const y = arr(x.shape);
  forEachRow(refLayout(x.shape, axis), (idx) => {
    let s = 0;
    for (const e of idx) s += x.data[e]! ** 2;
    const d = Math.max(Math.sqrt(s), eps);
    for (const e of idx) y.data[e] = x.data[e]! / d;
  });
  return y;
}
