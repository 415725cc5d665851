/**
 * Float64 reference of `src/optim/adamw.ts` (torch.optim.AdamW with clip_grad_norm_).
 *
 * @module
 */

/** One parameter's state for the reference. */
export interface AdamWRefParam {
  /** Values (updated in place). */
  p: Float64Array;
  /** First moment. */
  m: Float64Array;
  /** Second moment. */
  v: Float64Array;
  /** Learning rate. */
  lr: number;
  /** Weight decay. */
  wd: number;
}

/**
 * One AdamW step over several parameters with global-norm clipping.
 *
 * @param params Parameter states (updated in place).
 * @param grads Gradients, one per parameter.
 * @param step The step number (1-based).
 * @param o Betas, eps, clip norm (0 = none).
 * @returns The global gradient norm before clipping.
 */
export function adamwStepRef(
  params: AdamWRefParam[],
  grads: Float64Array[],
  step: number,
  o: { beta1: number; beta2: number; eps: number; clipNorm: number },
): number {
  let sq = 0;
  for (const g of grads) for (const x of g) sq += x * x;
  const norm = Math.sqrt(sq);
  const clip = o.clipNorm > 0 ? Math.min(1, o.clipNorm / (norm + 1e-6)) : 1;
  if (!Number.isFinite(norm)) return norm;
  const bc1 = 1 - o.beta1 ** step, bc2 = 1 - o.beta2 ** step;
  params.forEach((s, k) => {
    const g = grads[k]!;
    for (let i = 0; i < s.p.length; i++) {
      const gi = g[i]! * clip;
      s.p[i] = s.p[i]! * (1 - s.lr * s.wd);
      s.m[i] = o.beta1 * s.m[i]! + (1 - o.beta1) * gi;
      s.v[i] = o.beta2 * s.v[i]! + (1 - o.beta2) * gi * gi;
      s.p[i] = s.p[i]! - (s.lr / bc1) * s.m[i]! / (Math.sqrt(s.v[i]!) / Math.sqrt(bc2) + o.eps);
    }
  });
  return norm;
}
