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
import { add, affine, sub } from "../ops/elementwise.ts";
import { detach } from "../ops/creation.ts";
import { concat, slice } from "../ops/layout.ts";
import { boxLoss, boxTargets } from "./box.ts";
import { noGrad } from "../autograd/tape.ts";
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
  /** Box maps [B, H, W] (1 inside a chosen box), or those of the batch's consecutive sample
   * groups (see `src/train/groups.ts`; their targets are concatenated). */
  gtMaps: Tensor | readonly Tensor[];
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

/**
 * A (micro-)batch's place in a data-parallel global batch: every sample's features, gathered
 * from every rank without gradient, in global order (rank-major, then micro-batches).
 */
export interface GlobalContext {
  /** Normalised image features of the global batch [G, E] (no gradient). */
  imageFeatures: Tensor;
  /** Normalised text features of the global batch [G, E] (no gradient). */
  textFeatures: Tensor;
  /** Row of this (micro-)batch's first sample in the global batch. */
  offset: number;
  /** Samples with local captions in the global batch. */
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

/** Rows [start, end) of a tensor, or nothing when the range is empty. */
function rows(x: Tensor, start: number, end: number): Tensor[] {
  return end > start ? [slice(x, { axis: 0, start, end })] : [];
}

/**
 * This (micro-)batch's share of the global batch's SigLIP loss, so that the shares of every
 * rank (and micro-batch) add up to the loss of the whole global batch, and so do their
 * gradients:
 * - its value: its images against every text of the global batch (its own texts live),
 *   divided by the global batch size — the reference's per-rank loss (its images against
 *   its own and every other rank's texts), scaled to a sum;
 * - its gradient also carries the terms of every other image against its own texts, which
 *   the reference sends back to the text's owner after its neighbour exchange; here every
 *   rank has every image feature, so each rank computes them for its own texts. Those terms
 *   enter as `B - detach(B)` (value 0) with the logit scale and bias detached, since the
 *   image's owner already counts their value and their scale and bias gradients.
 */
function globalContrastive(out: Ps3LossInput, g: GlobalContext): Tensor {
  const b = out.imageFeatures.shape[0]!, total = g.imageFeatures.shape[0]!;
  const { offset } = g;
  const texts = concat([
    ...rows(g.textFeatures, 0, offset),
    out.textFeatures,
    ...rows(g.textFeatures, offset + b, total),
  ], 0);
  const own = siglipLoss(out.imageFeatures, texts, out.logitScale, out.logitBias, {
    positiveOffset: offset,
  });
  const value = affine(own, b / total);
  if (total === b) return value;
  const others = concat([
    ...rows(g.imageFeatures, 0, offset),
    ...rows(g.imageFeatures, offset + b, total),
  ], 0);
  const theirs = affine(
    siglipLoss(others, out.textFeatures, detach(out.logitScale), detach(out.logitBias), {
      negativeOnly: true,
    }),
    (total - b) / total,
  );
  return add(value, sub(theirs, detach(theirs)));
}

/**
 * Box targets of a batch (`boxTargets`), or of its consecutive sample groups concatenated
 * scale by scale.
 *
 * @param gtMaps Box maps [B, H, W], or one per group.
 * @param grids Feature grids of the high-res scales.
 * @returns [B, gh * gw] of 0/1 per scale.
 */
export function batchBoxTargets(
  gtMaps: Tensor | readonly Tensor[],
  grids: readonly (readonly [number, number])[],
): Tensor[] {
  if (!Array.isArray(gtMaps)) return boxTargets(gtMaps as Tensor, grids);
  const parts = (gtMaps as readonly Tensor[]).map((g) => boxTargets(g, grids));
  if (parts.length === 1) return parts[0]!;
  return grids.map((_, i) => noGrad(() => concat(parts.map((p) => p[i]!), 0)));
}

/**
 * PS3's loss terms of one (micro-)batch.
 *
 * @param out The model's training outputs.
 * @param targets Box maps and global-caption flags.
 * @param options Box-loss weights, and the accumulated batch's context (one process) or
 *   the global batch's (data-parallel: the terms are this (micro-)batch's shares of the
 *   global batch's loss, which add up over ranks and micro-batches).
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
  options: {
    weights: LossWeights;
    accum?: AccumContext | undefined;
    global?: GlobalContext | undefined;
  },
): Ps3Losses {
  const contrastive = options.global
    ? globalContrastive(out, options.global)
    : contrastiveTerm(out, options.accum);
  const boxTarget = batchBoxTargets(targets.gtMaps, out.highresGrids);
  const box = (probs: readonly Tensor[]) =>
    boxLoss(probs, boxTarget, {
      isGlobal: targets.isGlobalHost,
      localTotal: options.global?.localCount ?? options.accum?.localCount,
    });
  const priorBox = affine(box(out.priorProbs), options.weights.prior);
  const posteriorBox = affine(box(out.posteriorProbs ?? out.priorProbs), options.weights.posterior);
  const total = add(add(contrastive, priorBox), posteriorBox);
  return { total, contrastive, priorBox, posteriorBox };
}
