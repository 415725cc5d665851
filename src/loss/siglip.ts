/**
 * The SigLIP loss (Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
 * arXiv 2303.15343), as open_clip's SigLipLoss computes it on one process:
 * `logits = exp(t) * I T^T + b`, labels +1 on the diagonal and -1 elsewhere,
 * `loss = -sum(log sigmoid(labels * logits)) / B`.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { add, affine, exp, logSigmoid, mul } from "../ops/elementwise.ts";
import { tensor } from "../ops/creation.ts";
import { matmul } from "../ops/matmul.ts";
import { sum } from "../ops/reduce.ts";

/**
 * The pairwise SigLIP logits.
 *
 * @param image Normalised image features [B, E].
 * @param text Normalised text features [Bt, E].
 * @param logitScale Log of the temperature (a scalar parameter).
 * @param logitBias The bias (a scalar parameter).
 * @returns [B, Bt].
 */
export function siglipLogits(
  image: Tensor,
  text: Tensor,
  logitScale: Tensor,
  logitBias: Tensor,
): Tensor {
  return add(mul(matmul(image, text, { transB: true }), exp(logitScale)), logitBias);
}

/**
 * The SigLIP loss of a batch whose i-th image matches its i-th caption.
 *
 * @param image Normalised image features [B, E].
 * @param text Normalised text features [B, E].
 * @param logitScale Log temperature (scalar).
 * @param logitBias Bias (scalar).
 * @param options `negativeOnly` for pairs from another micro-batch or rank (all labels -1);
 *   `positiveOffset`: image i matches text i + offset (this rank's rows among every rank's
 *   texts; default 0).
 * @returns The scalar loss.
 * @example
 * ```ts
 * const loss = siglipLoss(normalize(img), normalize(txt), logitScale, logitBias);
 * ```
 */
export function siglipLoss(
  image: Tensor,
  text: Tensor,
  logitScale: Tensor,
  logitBias: Tensor,
  options: { negativeOnly?: boolean | undefined; positiveOffset?: number | undefined } = {},
): Tensor {
  const b = image.shape[0]!, bt = text.shape[0]!;
  const off = options.positiveOffset ?? 0;
  const labels = new Float32Array(b * bt).fill(-1);
  if (!options.negativeOnly) {
    for (let i = 0; i < Math.min(b, bt - off); i++) labels[i * bt + i + off] = 1;
  }
  const logits = siglipLogits(image, text, logitScale, logitBias);
  const terms = logSigmoid(mul(tensor(labels, [b, bt]), logits));
  return affine(sum(terms), -1 / b);
}
