/**
 * Float64 reference of the softmax in `src/ops/softmax.ts`.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";
import { forEachRow, refLayout } from "./norm.ts";

/**
 * Softmax along an axis, with the row maximum subtracted.
 *
 * @param x Input.
 * @param options axis (default -1).
 * @returns Probabilities shaped like x.
 */
export function softmaxRef(x: Arr, options: { axis?: number } = {}): Arr {
  const y = arr(x.shape);
  forEachRow(refLayout(x.shape, options.axis ?? -1), (idx) => {
    let m = -Infinity;
    for (const e of idx) m = Math.max(m, x.data[e]!);
    let s = 0;
    for (const e of idx) s += Math.exp(x.data[e]! - m);
    for (const e of idx) y.data[e] = Math.exp(x.data[e]! - m) / s;
  });
  return y;
}
