/**
 * PS3's box supervision of the selection: for every high-res scale, binary cross-entropy
 * between the selection probabilities and the box map area-resized to that scale's grid
 * (> 0), averaged over the elements of the samples with local captions, then over scales
 * (the reference's SigLipLossPS3).
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { noGrad } from "../autograd/tape.ts";
import { add, affine, bce, mul, unary } from "../ops/elementwise.ts";
import { tensor } from "../ops/creation.ts";
import { mean, sum } from "../ops/reduce.ts";
import { resizeArea } from "../ops/resize.ts";

/**
 * Box-supervision targets per high-res scale: area-resized box map > 0.
 *
 * @param gtMaps Box maps [B, H, W].
 * @param grids Feature grids of the high-res scales.
 * @returns [B, gh * gw] of 0/1 per scale.
 */
export function boxTargets(
  gtMaps: Tensor,
  grids: readonly (readonly [number, number])[],
): Tensor[] {
  const [b, h, w] = gtMaps.shape as [number, number, number];
  return noGrad(() =>
    grids.map(([gh, gw]) =>
      unary("greaterThan", resizeArea(gtMaps.view([b, h, w, 1]), [gh, gw]).view([b, gh * gw]), 0)
    )
  );
}

/**
 * The box-supervision loss of one set of probabilities (prior or posterior).
 *
 * @param probs Probabilities per high-res scale [B, N_i].
 * @param targets Targets per scale (from {@linkcode boxTargets}).
 * @param options `isGlobal`: host flags per sample (1 = global caption, excluded);
 *   `localTotal`: samples with local captions the mean is over (default this batch's; a
 *   micro-batch of an accumulated batch passes the whole batch's count).
 * @returns The scalar loss; with no local sample, `0 * mean(probs[0])` like the reference
 *   (a zero that keeps the graph connected).
 */
export function boxLoss(
  probs: readonly Tensor[],
  targets: readonly Tensor[],
  options: { isGlobal: ArrayLike<boolean | number>; localTotal?: number | undefined },
): Tensor {
  const b = probs[0]!.shape[0]!;
  const local = Float32Array.from({ length: b }, (_, i) => (options.isGlobal[i] ? 0 : 1));
  const nLocal = options.localTotal ?? local.reduce((a, v) => a + v, 0);
  if (nLocal === 0 || local.every((v) => v === 0)) return affine(mean(probs[0]!), 0);
  const weights = tensor(local, [b, 1]);
  const perScale = probs.map((p, i) => {
    const n = p.shape[1]!;
    return affine(sum(mul(bce(p, targets[i]!), weights)), 1 / (nLocal * n * probs.length));
  });
  return perScale.reduce((acc, t) => add(acc, t));
}
