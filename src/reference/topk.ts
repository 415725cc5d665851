/**
 * Reference of `src/ops/topk.ts`: per row, the indices of the k largest scores in ascending
 * index order, by sorting (NaN lowest, -0 equal to +0, ties to the lower index).
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/**
 * Top-k indices per row.
 *
 * @param scores Scores [B, N].
 * @param k How many per row (0 <= k <= N).
 * @returns Indices [B, k] (as numbers), ascending in each row.
 */
export function topkIndicesRef(scores: Arr, k: number): Arr {
  const [batch, n] = scores.shape as [number, number];
  const out = arr([batch, k]);
  for (let b = 0; b < batch; b++) {
    const row = scores.data.subarray(b * n, (b + 1) * n);
    const order = [...Array(n).keys()].sort((i, j) => {
      const x = row[i]!, y = row[j]!;
      if (Number.isNaN(x) || Number.isNaN(y)) {
        return Number.isNaN(x) === Number.isNaN(y) ? i - j : Number.isNaN(x) ? 1 : -1;
      }
      return x === y ? i - j : y - x;
    });
    const chosen = order.slice(0, k).sort((i, j) => i - j);
    out.data.set(chosen, b * k);
  }
  return out;
}
