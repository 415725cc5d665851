/**
 * Per-scale sizes of PS3 and the selection budget (host-side arithmetic, exactly the
 * reference's `image_size_scale_i`, `feature_size_scale_i` and the spill-over rule).
 *
 * @module
 */

/** Height and width. */
export type Size = [number, number];

/**
 * Image size of scale `i` for an input of h x w: scale 0 is square s0 x s0; higher scales
 * keep the aspect ratio with the short side rounded down to whole patches.
 *
 * @param scales PS3 scales (s0 first).
 * @param patch Patch size.
 * @param input Input [h, w].
 * @param i Scale index.
 * @returns [height, width] in pixels.
 */
export function imageSize(scales: readonly number[], patch: number, input: Size, i: number): Size {
  const s0 = scales[0]!;
  if (i === 0) return [s0, s0];
  const [h, w] = input;
  const zoom = Math.floor(scales[i]! / s0);
  // Python: int(s0 / h * w) // p  (float division, truncation, floor division)
  const shortSide = (long: number, short: number) =>
    Math.max(Math.floor(Math.trunc(s0 / long * short) / patch), 1) * patch * zoom;
  return h >= w ? [s0 * zoom, shortSide(h, w)] : [shortSide(w, h), s0 * zoom];
}

/**
 * Feature-grid size of scale `i` (image size / patch, at least 1).
 *
 * @param scales PS3 scales.
 * @param patch Patch size.
 * @param input Input [h, w].
 * @param i Scale index.
 * @returns [rows, cols] of patches.
 */
export function featureSize(
  scales: readonly number[],
  patch: number,
  input: Size,
  i: number,
): Size {
  const [h, w] = imageSize(scales, patch, input, i);
  return [Math.max(Math.floor(h / patch), 1), Math.max(Math.floor(w / patch), 1)];
}

/**
 * Tokens taken from each high-res scale: the per-scale budgets, where a scale with fewer
 * candidate patches than its budget takes them all and passes the rest to the next scale
 * (the reference's spill-over; the last scale keeps what it cannot place).
 *
 * @param budgets Budget per high-res scale.
 * @param candidates Candidate patches per high-res scale.
 * @returns Tokens selected per high-res scale.
 */
export function selectCounts(budgets: readonly number[], candidates: readonly number[]): number[] {
  const out = [...budgets];
  for (let i = 0; i < out.length; i++) {
    if (candidates[i]! < out[i]!) {
      if (i < out.length - 1) out[i + 1]! += out[i]! - candidates[i]!;
      out[i] = candidates[i]!;
    }
  }
  return out;
}

/**
 * Budgets for a run that asks for `n` tokens instead of the full budget (the reference's
 * `num_select_token`): proportional, the remainder on the last scale.
 *
 * @param budgets Full per-scale budgets.
 * @param n Tokens wanted (at most the total budget).
 * @returns Budgets summing to n.
 */
export function scaleBudgets(budgets: readonly number[], n: number): number[] {
  const total = budgets.reduce((a, b) => a + b, 0);
  if (n > total) throw new RangeError(`Cannot select ${n} tokens: the budget is ${total}`);
  const out = budgets.map((b) => Math.floor(b * n / total));
  out[out.length - 1]! += n - out.reduce((a, b) => a + b, 0);
  return out;
}
