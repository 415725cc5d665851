/**
 * Softmax along an axis, numerically stable (the row maximum is subtracted before `exp`),
 * with its hand-written backward `dx = y * (g - sum(g * y))`.
 *
 * @module
 */

import {
  softmax_backward as backwardSrc,
  softmax_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { axisLayout, outerBlocks } from "./norm.ts";

/** Options of {@linkcode softmax}. */
export interface SoftmaxOptions {
  /** The axis normalised (default -1, the last). */
  axis?: number | undefined;
}

const forwardKernel = defineKernel({
  name: "softmax_forward",
  source: forwardSrc,
  bindings: ["read", "write"],
  params: ["rows:u32", "C:u32", "I:u32"],
});

const backwardKernel = defineKernel({
  name: "softmax_backward",
  source: backwardSrc,
  bindings: ["read", "read", "write"],
  params: ["rows:u32", "C:u32", "I:u32"],
});

/**
 * Softmax along an axis (`F.softmax(x, dim=axis)`): `exp(x - max) / sum(exp(x - max))`.
 *
 * @param x Input (f32).
 * @param options The axis.
 * @returns Probabilities shaped like x, summing to 1 along the axis.
 * @example
 * ```ts
 * const attn = softmax(scores); // over the last axis of [B, H, N, N]
 * ```
 */
export function softmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  x.assertAlive();
  if (x.dtype !== "f32") throw new TypeError(`softmax() takes f32 tensors, got ${x.describe()}`);
  const layout = axisLayout(x.shape, options.axis ?? -1);
  const { size: C, inner } = layout;
  const rt = gpu();
  const y = empty(x.shape);
  // Past the storage binding limit, blocks of whole slices along the axis (rows are
  // independent: each value equals one dispatch's).
  const blocks = x.size > 0 ? outerBlocks("softmax", x, layout, 1) : [];
  const run = (kernel: typeof forwardKernel, full: Tensor[]) => {
    for (const b of blocks) {
      const views = b.views(full, []);
      const dims = { rows: b.count * inner, C, I: inner };
      rt.dispatch(kernel, views, dims, grid(dims.rows, 64));
      b.dispose();
    }
  };
  if (x.size > 0) {
    rt.assertLoopTrips("softmax_forward", 3 * C);
    run(forwardKernel, [x, y]);
  }
  record("softmax", [x], [y], ([g]) => {
    const dx = empty(x.shape);
    if (x.size > 0) {
      rt.assertLoopTrips("softmax_backward", 2 * C);
      run(backwardKernel, [y, g!, dx]);
    }
    return [dx];
  });
  return y;
}
