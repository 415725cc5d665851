/**
 * AdamW over a {@linkcode ParamTable}: PyTorch's update rule, per-group learning rates and
 * weight decay, optional global-norm gradient clipping computed on the GPU (no readback),
 * and a skipped step when the gradients are not finite.
 *
 * @module
 */

import { adamw as adamwSrc, grad_clip_factor as clipSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { keep } from "../autograd/scope.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty } from "../ops/creation.ts";
import { sumSquares } from "../ops/reduce.ts";
import { concat } from "../ops/layout.ts";
import type { ParamTable } from "../params/param_table.ts";

const adamwKernel = defineKernel({
  name: "adamw",
  source: adamwSrc,
  bindings: ["write", "read", "write", "write", "read"],
  params: ["n:u32", "lr:f32", "b1:f32", "b2:f32", "eps:f32", "wd:f32", "bc1:f32", "bc2:f32"],
});

const clipKernel = defineKernel({
  name: "grad_clip_factor",
  source: clipSrc,
  bindings: ["read", "write"],
  params: ["count:u32", "max_norm:f32", "has_loss:u32", "inv_scale:f32"],
});

/** AdamW hyper-parameters. */
export interface AdamWOptions {
  /** Adam beta1 (reference 0.9). */
  beta1: number;
  /** Adam beta2 (reference 0.95). */
  beta2: number;
  /** Adam epsilon (PyTorch default 1e-8). */
  eps: number;
  /** Decoupled weight decay of the decay group (reference 3e-4). */
  weightDecay: number;
  /** Global gradient-norm bound; 0 = no clipping. */
  clipNorm: number;
}

/** AdamW state and update for one parameter table. */
export class AdamW {
  /** Hyper-parameters. */
  readonly options: AdamWOptions;
  /** Steps taken (for the bias corrections); saved in checkpoints. */
  step = 0;
  readonly #table: ParamTable;
  /** [clip factor, gradient norm] of the last step, on the GPU. */
  readonly stats: Tensor;

  /**
   * Creates the optimizer and allocates the table's moment buffers.
   *
   * @param table The parameters.
   * @param options Hyper-parameters.
   */
  constructor(table: ParamTable, options: AdamWOptions) {
    this.#table = table;
    this.options = options;
    table.moments();
    this.stats = keep(empty([2]));
  }

  /**
   * One update with the gradients currently in the table (recorded, not awaited).
   *
   * @param lr Learning rate per group for this step.
   * @param loss The step's loss (scalar): when it is not finite the update is skipped too.
   * @param options `gradScale`: the loss scale the gradients carry (mixed precision); they
   *   are divided by it before clipping and the update (default 1).
   * @returns The [clip factor, gradient norm] tensor of this step (read it when logging).
   */
  update(
    lr: { base: number; selection: number },
    loss?: Tensor,
    options: { gradScale?: number | undefined } = {},
  ): Tensor {
    const rt = gpu();
    const t = this.#table;
    const { m, v } = t.moments();
    // Global gradient norm: one sum of squares per buffer, combined on the GPU.
    const partials = t.grads.map((g) => sumSquares(g));
    const views = (loss ? [...partials, loss] : partials).map((x) => x.alias([1]));
    const sq = concat(views, 0);
    for (const x of [...views, ...partials]) x.dispose();
    rt.dispatch(clipKernel, [sq, this.stats], {
      count: t.grads.length,
      max_norm: this.options.clipNorm,
      has_loss: loss ? 1 : 0,
      inv_scale: 1 / (options.gradScale ?? 1),
    }, [1]);
    sq.dispose();
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const bc1 = 1 - beta1 ** this.step, bc2 = 1 - beta2 ** this.step;
    const maxElems = Math.floor(rt.info.maxBindingBytes / 4 / 64) * 64;
    for (const r of t.ranges) {
      for (let s = r.start; s < r.end; s += maxElems) {
        const n = Math.min(maxElems, r.end - s);
        const views = [t.values, t.grads, m, v].map((b) => b[r.chunk]!.window(s, [n]));
        rt.dispatch(adamwKernel, [views[0]!, views[1]!, views[2]!, views[3]!, this.stats], {
          n,
          lr: lr[r.lrGroup],
          b1: beta1,
          b2: beta2,
          eps,
          wd: r.decay ? weightDecay : 0,
          bc1,
          bc2,
        }, grid(n, 256));
        for (const w of views) w.dispose();
      }
    }
    return this.stats;
  }
}
