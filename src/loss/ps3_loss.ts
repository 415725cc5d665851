/**
 * PS3's training objective from the model's outputs: the SigLIP loss over image and text
 * features plus the prior and posterior box-supervision losses of the selection, weighted
 * as the reference script weights them (`SigLipLossPS3`).
 *
 * Over an accumulated batch (see `src/train/step.ts`), the SigLIP loss of each micro-batch
 * covers the whole batch: its own live features among the other micro-batches' cached ones;
 * the box losses are means over the whole batch's local captions.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { add, affine } from "../ops/elementwise.ts";
import { detach } from "../ops/creation.ts";
import { concat } from "../ops/layout.ts";
import { boxLoss, boxTargets } from "./box.ts";
import { siglipLoss } from "./siglip.ts";

/** What the loss reads of the model's training forward. */
export interface Ps3LossInput {
  /** Normalised image features [B, E]. */
  imageFeatures: Tensor;
  /** Normalised text features [B, E]. */
  textFeatures: Tensor;
  /** Log temperature (scalar). */
  logitScale: Tensor;
  /** Logit bias (scalar). */
  logitBias: Tensor;
  /** Bottom-up selection probabilities per high-res scale [B, gh * gw]. */
  priorProbs: readonly Tensor[];
  /** Top-down selection probabilities per high-res scale, or null (the prior is used). */
  posteriorProbs: readonly Tensor[] | null;
  /** Feature grids of the high-res scales. */
  highresGrids: readonly (readonly [number, number])[];
}

/** The supervision of a batch. */
export interface Ps3LossTargets {
  /** Box maps [B, H, W] (1 inside a chosen box). */
  gtMaps: Tensor;
  /** Global-caption flags per sample on the host (global captions have no box loss). */
  isGlobalHost: ArrayLike<number>;
}

/** Weights of the box losses (the SigLIP loss has weight 1). */
export interface LossWeights {
  /** Weight of the prior box loss. */
  prior: number;
  /** Weight of the posterior box loss. */
  posterior: number;
}

/**
 * One micro-batch's view of an accumulated batch: every micro-batch's features from a
 * no-gradient pass, and the batch-wide count of local captions.
 */
export interface AccumContext {
  /** This micro-batch's position. */
  index: number;
  /** Normalised image features of every micro-batch (no gradient). */
  imageFeatures: readonly Tensor[];
  /** Normalised text features of every micro-batch (no gradient). */
  textFeatures: readonly Tensor[];
  /** Samples with local captions in the whole accumulated batch. */
  localCount: number;
}

/** The loss terms (scalars). */
export interface Ps3Losses {
  /** Weighted total. */
  total: Tensor;
  /** SigLIP loss. */
  contrastive: Tensor;
  /** Weighted prior box loss. */
  priorBox: Tensor;
  /** Weighted posterior box loss. */
  posteriorBox: Tensor;
}

/**
 * The same value with its gradient scaled: `x * s + detach(x) * (1 - s)`.
 *
 * @param x Input.
 * @param s Gradient scale.
 * @returns x, passing s times the gradient.
 */
function scaleGrad(x: Tensor, s: number): Tensor {
  return add(affine(x, s), affine(detach(x), 1 - s));
}

/**
 * The SigLIP term: over this batch, or over the whole accumulated batch.
 *
 * @param out The model's features, logit scale and bias.
 * @param accum The accumulated batch's context, if any.
 * @returns The scalar loss.
 */
function contrastiveTerm(out: Ps3LossInput, accum: AccumContext | undefined): Tensor {
  if (!accum) {
    return siglipLoss(out.imageFeatures, out.textFeatures, out.logitScale, out.logitBias);
  }
  // This micro-batch's live features in its rows, the other micro-batches' cached
  // (no-gradient) features around them. open_clip counts the logit scale and bias once per
  // micro-batch; their gradient is divided by the number of micro-batches.
  const all = (cached: readonly Tensor[], live: Tensor) =>
    concat(cached.map((t, j) => (j === accum.index ? live : t)), 0);
  const n = accum.imageFeatures.length;
  return siglipLoss(
    all(accum.imageFeatures, out.imageFeatures),
    all(accum.textFeatures, out.textFeatures),
    scaleGrad(out.logitScale, 1 / n),
    scaleGrad(out.logitBias, 1 / n),
  );
}

/**
 * PS3's loss terms of one (micro-)batch.
 *
 * @param out The model's training outputs.
 * @param targets Box maps and global-caption flags.
 * @param options Box-loss weights, and the accumulated batch's context.
 * @returns Total, SigLIP, and weighted prior / posterior box losses.
 * @example
 * ```ts
 * const out = model.forwardTrain(batch, opts);
 * const loss = ps3Loss(out, batch, { weights: { prior: 1, posterior: 1 } });
 * backward(loss.total);
 * ```
 */
export function ps3Loss(
  out: Ps3LossInput,
  targets: Ps3LossTargets,
  options: { weights: LossWeights; accum?: AccumContext | undefined },
): Ps3Losses {
  const contrastive = contrastiveTerm(out, options.accum);
  const boxTarget = boxTargets(targets.gtMaps, out.highresGrids);
  const box = (probs: readonly Tensor[]) =>
    boxLoss(probs, boxTarget, {
      isGlobal: targets.isGlobalHost,
      localTotal: options.accum?.localCount,
    });
  const priorBox = affine(box(out.priorProbs), options.weights.prior);
  const posteriorBox = affine(box(out.posteriorProbs ?? out.priorProbs), options.weights.posterior);
  const total = add(add(contrastive, priorBox), posteriorBox);
  return { total, contrastive, priorBox, posteriorBox };
}
