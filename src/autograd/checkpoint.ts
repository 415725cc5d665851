/**
 * Activation recomputation (gradient checkpointing): run a block without keeping its
 * intermediate activations, and recompute them during the backward pass.
 *
 * The block's forward runs with recording off and its temporaries freed at once; only its
 * inputs and outputs stay. At backward time the block runs again with recording on, on
 * detached copies of its inputs, and its local graph is walked with the outputs' gradients;
 * parameters used inside receive their gradients directly, the inputs' gradients flow on.
 * The block must be deterministic (PS3 has no dropout).
 *
 * @module
 */

import { backward, noGrad, record, withGrad } from "./tape.ts";
import { tidy } from "./scope.ts";
import type { Tensor } from "./tensor.ts";

/**
 * Runs `fn(...inputs)` so that its activations are recomputed in the backward pass.
 *
 * @param fn The block: deterministic, returning one or more tensors.
 * @param inputs The block's tensor inputs (parameters are reached through the closure).
 * @returns The block's outputs.
 * @example
 * ```ts
 * const [h, k, v] = checkpoint((x) => block.forward(x), [x]);
 * ```
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor[], inputs: readonly Tensor[]): Tensor[] {
  const outputs = noGrad(() => tidy(() => fn(...inputs)));
  record("checkpoint", inputs, outputs, (grads) =>
    withGrad(() => {
      const xs = inputs.map((x) => {
        const d = x.alias(x.shape);
        d.requiresGrad = x.requiresGrad;
        return d;
      });
      const again = fn(...xs);
      const roots: Tensor[] = [];
      const rootGrads: Tensor[] = [];
      again.forEach((y, i) => {
        const g = grads[i];
        if (g && y.requiresGrad) {
          roots.push(y);
          rootGrads.push(g);
        }
      });
      if (roots.length > 0) backward(roots, rootGrads);
      return xs.map((x) => x.grad);
    }), true);
  return outputs;
}
