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
import { axisLayout } from "./norm.ts";

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
  const { outer, size: C, inner } = axisLayout(x.shape, options.axis ?? -1);
  const dims = { rows: outer * inner, C, I: inner };
  const rt = gpu();
  const y = empty(x.shape);
  if (x.size > 0) {
    rt.assertLoopTrips("softmax_forward", 3 * C);
    rt.dispatch(forwardKernel, [x, y], dims, grid(dims.rows, 64));
  }
  record("softmax", [x], [y], ([g]) => {
    const dx = empty(x.shape);
    if (x.size > 0) {
      rt.assertLoopTrips("softmax_backward", 2 * C);
      rt.dispatch(backwardKernel, [y, g!, dx], dims, grid(dims.rows, 64));
    }
    return [dx];
  });
  return y;
}
