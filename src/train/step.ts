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

import { keep, tidy, tidyAsync } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";
import { add, clamp } from "../ops/elementwise.ts";
import { full } from "../ops/creation.ts";
import { concat } from "../ops/layout.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import type { Ps3Clip, TrainOptions, TrainOutput } from "../model/ps3_clip.ts";
import {
  type AccumContext,
  type GlobalContext,
  type LossWeights,
  ps3Loss,
  type Ps3Losses,
  type Ps3LossTargets,
} from "../loss/ps3_loss.ts";
import type { Communicator } from "../dist/communicator.ts";
import { gatherFeatures } from "../dist/features.ts";
import type { AdamW } from "../optim/adamw.ts";
import { uploadBatch } from "../eval/batch.ts";
import { groupRanges } from "./groups.ts";
import type { TrainConfigInput } from "./config.ts";

/**
 * The model's training switches as a run's `train` section sets them.
 *
 * @param t The section.
 * @returns The switches.
 */
export function trainOptions(t: TrainConfigInput): TrainOptions {
  return {
    selectWithGt: t.select_w_gt,
    poolGtOnly: t.pool_gt_token_only,
    useGlobalCaption: t.use_global_caption,
    checkpoint: t.grad_checkpointing,
  };
}

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
  /** Samples per group the forward runs in, so that every tensor fits the device's largest
   * buffer (`planGroups` in `./groups.ts`; default: a micro-batch in one group). */
  groupSize?: number | undefined;
}

/** Samples [start, end) of a batch. */
type Range = { start: number; end: number };

/**
 * The training forward of samples [start, end) of a host batch, uploaded and run in sample
 * groups of `options.groupSize` (see `./groups.ts`), and the targets of its loss.
 *
 * @param model The model.
 * @param batch The host batch.
 * @param range The samples.
 * @param options The switches and the group size.
 * @returns The whole range's outputs (groups concatenated) and loss targets.
 */
export function groupedForward(
  model: Ps3Clip,
  batch: Batch,
  range: Range,
  options: Pick<ForwardBackwardOptions, "train" | "groupSize">,
): { out: TrainOutput; targets: Ps3LossTargets } {
  const groups = groupRanges(range, options.groupSize ?? range.end - range.start)
    .map((r) => uploadBatch(batch, r));
  return {
    out: model.forwardTrainGroups(groups, options.train),
    targets: {
      gtMaps: groups.length === 1 ? groups[0]!.gtMaps : groups.map((g) => g.gtMaps),
      isGlobalHost: Uint8Array.from(batch.isGlobal.subarray(range.start, range.end)),
    },
  };
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
  const { micro, weights } = options;
  const scale = options.lossScale ?? 1;
  const seed = (t: Tensor) => backward(t, scale === 1 ? undefined : full([], scale));
  const n = batch.keys.length;
  if (micro === 1) {
    return tidy(() => {
      const { out, targets } = groupedForward(model, batch, { start: 0, end: n }, options);
      const loss = ps3Loss(out, targets, { weights });
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
        const { out } = groupedForward(model, batch, r, options);
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
        const { out, targets } = groupedForward(model, batch, r, options);
        const loss = ps3Loss(out, targets, { weights, accum: ctx });
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

/** The micro-batch ranges of a batch of n samples. */
function microRanges(n: number, micro: number): { start: number; end: number }[] {
  const size = n / micro;
  return [...Array(micro).keys()].map((j) => ({ start: j * size, end: (j + 1) * size }));
}

/**
 * Records the forward and backward of this rank's part of a data-parallel global batch:
 * the features of every rank are gathered (without gradient), and the loss terms are this
 * rank's shares of the global batch's loss (see `ps3Loss`), so that the gradients summed
 * over the ranks, and the loss terms summed over the ranks, are those of one process with
 * the whole global batch. Without accumulation the exchange happens between this
 * micro-batch's forward and backward; with it, a no-gradient pass over every micro-batch
 * gives the features first (open_clip's scheme).
 *
 * @param model The model (its gradients must be zero on entry).
 * @param batch This rank's host batch.
 * @param options Switches, micro-batches, loss scale.
 * @param comm The ranks.
 * @returns This rank's shares of the loss terms (sum them over the ranks for the batch's).
 */
export async function forwardBackwardGlobal(
  model: Ps3Clip,
  batch: Batch,
  options: ForwardBackwardOptions,
  comm: Communicator,
): Promise<StepScalars> {
  const { micro, weights } = options;
  const scale = options.lossScale ?? 1;
  const seed = (t: Tensor) => backward(t, scale === 1 ? undefined : full([], scale));
  const n = batch.keys.length;
  const counts = new Float64Array([[...batch.isGlobal].filter((g) => !g).length]);
  await comm.allreduceSum64(counts);
  const localCount = counts[0]!;
  const ranges = microRanges(n, micro);
  if (micro === 1) {
    return await tidyAsync(async () => {
      const { out, targets } = groupedForward(model, batch, { start: 0, end: n }, options);
      const [images, texts] = await gatherFeatures([out.imageFeatures, out.textFeatures], comm);
      const global: GlobalContext = {
        imageFeatures: images!,
        textFeatures: texts!,
        offset: comm.rank * n,
        localCount,
      };
      const loss = ps3Loss(out, targets, { weights, global });
      seed(loss.total);
      return loss;
    });
  }
  const cached = tidy(() =>
    noGrad(() =>
      ranges.map((r) => {
        const { out } = groupedForward(model, batch, r, options);
        return [keep(out.imageFeatures), keep(out.textFeatures)];
      })
    )
  );
  const mine = tidy(() => [0, 1].map((k) => concat(cached.map((c) => c[k]!), 0)));
  for (const t of cached.flat()) t.dispose();
  const [images, texts] = await gatherFeatures(mine, comm);
  for (const t of mine) t.dispose();
  const sums = tidy(() => {
    const parts = ranges.map((r) =>
      tidy(() => {
        const { out, targets } = groupedForward(model, batch, r, options);
        const global: GlobalContext = {
          imageFeatures: images!,
          textFeatures: texts!,
          offset: comm.rank * n + r.start,
          localCount,
        };
        const loss = ps3Loss(out, targets, { weights, global });
        seed(loss.total);
        return loss;
      })
    );
    return noGrad(() => {
      const total = (k: keyof Ps3Losses) => parts.map((p) => p[k]).reduce((a, b) => add(a, b));
      return {
        total: total("total"),
        contrastive: total("contrastive"),
        priorBox: total("priorBox"),
        posteriorBox: total("posteriorBox"),
      };
    });
  });
  images!.dispose();
  texts!.dispose();
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
