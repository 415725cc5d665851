/**
 * Shape ops that move no data: reshape (a view) with its gradient.
 *
 * @module
 */

import { record } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";

/**
 * The same elements with another shape (a view; no copy).
 *
 * @param x Input.
 * @param shape New dimensions; one may be -1.
 * @returns The view.
 * @example
 * ```ts
 * const tokens = reshape(x, [-1, 64]);
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const y = x.alias(shape);
  record("reshape", [x], [y], ([g]) => [g!.view(x.shape)]);
  return y;
}
