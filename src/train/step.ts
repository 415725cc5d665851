/**
 * One optimizer step: forward, losses, backward (over micro-batches when accumulating),
 * the AdamW update at the scheduled learning rate, and the clamp of logit_scale to
 * [0, ln 100]. Everything is recorded on the GPU; the caller reads the returned scalars.
 *
 * Gradient accumulation follows open_clip's scheme for contrastive losses: a no-gradient
 * pass caches every micro-batch's image and text features, then each micro-batch runs with
 * gradients and computes the SigLIP loss over the whole batch (its own live features among
 * the cached ones), so the summed gradient equals the full batch's. The box losses are
 * per-sample means over the whole batch's local captions, and the gradient of logit_scale /
 * logit_bias is divided by the number of micro-batches (open_clip counts it once per
 * micro-batch). The reference refuses accumulation for PS3 altogether.
 *
 * @module
 */

import { keep, tidy } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";
import { add, clamp } from "../ops/elementwise.ts";
import { full } from "../ops/creation.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import type { Ps3Clip, TrainOptions } from "../model/ps3_clip.ts";
import { type AccumContext, type LossWeights, ps3Loss } from "../loss/ps3_loss.ts";
import type { AdamW } from "../optim/adamw.ts";
import { uploadBatch } from "./batch.ts";

/** The step's scalars on the GPU (the caller reads and disposes them). */
export interface StepScalars {
  /** Total loss. */
  total: Tensor;
  /** SigLIP loss. */
  contrastive: Tensor;
  /** Weighted prior box loss. */
  priorBox: Tensor;
  /** Weighted posterior box loss. */
  posteriorBox: Tensor;
}

/** Options of {@linkcode forwardBackward}. */
export interface ForwardBackwardOptions {
  /** Training switches. */
  train: TrainOptions;
  /** Box-loss weights. */
  weights: LossWeights;
  /** Micro-batches (1 = no accumulation). */
  micro: number;
  /** Loss scale of mixed precision: gradients are those of `scale * loss` (default 1). */
  lossScale?: number | undefined;
}

/**
 * Records the forward and backward of one batch, accumulating gradients into the table.
 *
 * @param model The model (its gradients must be zero on entry).
 * @param batch The host batch.
 * @param options Switches, micro-batches, loss scale.
 * @returns The loss scalars (unscaled; summed over micro-batches for the box terms).
 */
export function forwardBackward(
  model: Ps3Clip,
  batch: Batch,
  options: ForwardBackwardOptions,
): StepScalars {
  const { train: opts, micro, weights } = options;
  const scale = options.lossScale ?? 1;
  const seed = (t: Tensor) => backward(t, scale === 1 ? undefined : full([], scale));
  const n = batch.keys.length;
  if (micro === 1) {
    return tidy(() => {
      const tb = uploadBatch(batch);
      const loss = ps3Loss(model.forwardTrain(tb, opts), tb, { weights });
      seed(loss.total);
      return loss;
    });
  }
  const size = n / micro;
  const ranges = [...Array(micro).keys()].map((j) => ({ start: j * size, end: (j + 1) * size }));
  const localCount = [...batch.isGlobal].filter((g) => !g).length;
  const cached = ranges.map((r) =>
    tidy(() =>
      noGrad(() => {
        const out = model.forwardTrain(uploadBatch(batch, r), opts);
        return { image: keep(out.imageFeatures), text: keep(out.textFeatures) };
      })
    )
  );
  const images = cached.map((c) => c.image), texts = cached.map((c) => c.text);
  const sums = tidy(() => {
    const parts = ranges.map((r, j) => {
      const ctx: AccumContext = {
        index: j,
        imageFeatures: images,
        textFeatures: texts,
        localCount,
      };
      return tidy(() => {
        const tb = uploadBatch(batch, r);
        const loss = ps3Loss(model.forwardTrain(tb, opts), tb, { weights, accum: ctx });
        seed(loss.total);
        return {
          contrastive: loss.contrastive,
          priorBox: loss.priorBox,
          posteriorBox: loss.posteriorBox,
        };
      });
    });
    return noGrad(() => {
      // The SigLIP term is the whole batch's in every micro-batch: it counts once.
      const contrastive = parts[parts.length - 1]!.contrastive;
      const priorBox = parts.map((p) => p.priorBox).reduce((a, b) => add(a, b));
      const posteriorBox = parts.map((p) => p.posteriorBox).reduce((a, b) => add(a, b));
      return {
        total: add(add(contrastive, priorBox), posteriorBox),
        contrastive,
        priorBox,
        posteriorBox,
      };
    });
  });
  for (const t of [...images, ...texts]) t.dispose();
  return sums;
}

/**
 * Applies the AdamW update and clamps logit_scale to [0, ln 100] (the reference does this
 * after every step). The update is skipped on the GPU when the loss or a gradient is not
 * finite.
 *
 * @param model The model.
 * @param opt The optimizer.
 * @param step Learning rates, the step's total loss, and the loss scale its gradients carry.
 * @returns The optimizer's [clip factor, gradient norm] tensor.
 */
export function optimizerStep(
  model: Ps3Clip,
  opt: AdamW,
  step: { lr: { base: number; selection: number }; loss: Tensor; lossScale?: number | undefined },
): Tensor {
  const stats = opt.update(step.lr, step.loss, { gradScale: step.lossScale });
  noGrad(() =>
    tidy(() => {
      const s = model.logitScale.value;
      const c = clamp(s.alias(s.shape), 0, Math.log(100));
      gpu().copy(c, s, 4);
    })
  );
  return stats;
}
