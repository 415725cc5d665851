/**
 * Softmax along an axis, numerically stable (the row maximum is subtracted before `exp`),
 * with its hand-written backward `dx = y * (g - sum(g * y))`. Takes f32 or f16 activations
 * (issue 14): y, the incoming gradient and dx are stored like x, the arithmetic is f32.
 *
 * @module
 */

import {
  softmax_backward as backwardSrc,
  softmax_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { axisLayout, outerBlocks } from "./norm.ts";
import { enableF16, type FloatDType, floatDType } from "./storage_type.ts";

/** Options of {@linkcode softmax}. */
export interface SoftmaxOptions {
  /** The axis normalised (default -1, the last). */
  axis?: number | undefined;
}

const kernels = new KernelCache();

/** The forward or backward kernel for activations stored as `dt`. */
function softmaxKernel(pass: "forward" | "backward", dt: FloatDType): Kernel {
  return kernels.get(`${pass}:${dt}`, () =>
    defineKernel({
      name: `softmax_${pass}`,
      source: pass === "forward" ? forwardSrc : backwardSrc,
      bindings: pass === "forward" ? ["read", "write"] : ["read", "read", "write"],
      params: ["rows:u32", "C:u32", "I:u32"],
      defines: { T: dt, ENABLE: enableF16(dt) },
    }));
}

/**
 * Softmax along an axis (`F.softmax(x, dim=axis)`): `exp(x - max) / sum(exp(x - max))`.
 *
 * @param x Input (f32 or f16).
 * @param options The axis.
 * @returns Probabilities shaped and stored like x, summing to 1 along the axis.
 * @example
 * ```ts
 * const attn = softmax(scores); // over the last axis of [B, H, N, N]
 * ```
 */
export function softmax(x: Tensor, options: SoftmaxOptions = {}): Tensor {
  x.assertAlive();
  const dt = floatDType(x.dtype, "softmax()");
  const layout = axisLayout(x.shape, options.axis ?? -1);
  const { size: C, inner } = layout;
  const rt = gpu();
  const y = empty(x.shape, dt);
  // Past the storage binding limit, blocks of whole slices along the axis (rows are
  // independent: each value equals one dispatch's).
  const blocks = x.size > 0 ? outerBlocks("softmax", x, layout, 1) : [];
  const run = (kernel: Kernel, full: Tensor[]) => {
    for (const b of blocks) {
      const views = b.views(full, []);
      const dims = { rows: b.count * inner, C, I: inner };
      rt.dispatch(kernel, views, dims, grid(dims.rows, 64));
      b.dispose();
    }
  };
  if (x.size > 0) {
    rt.assertLoopTrips("softmax_forward", 3 * C);
    run(softmaxKernel("forward", dt), [x, y]);
  }
  record("softmax", [x], [y], ([g]) => {
    if (g!.dtype !== dt) {
      throw new TypeError(`softmax() backward takes a ${dt} gradient, got ${g!.describe()}`);
    }
    const dx = empty(x.shape, dt);
    if (x.size > 0) {
      rt.assertLoopTrips("softmax_backward", 2 * C);
      run(softmaxKernel("backward", dt), [y, g!, dx]);
    }
    return [dx];
  });
  return y;
}
