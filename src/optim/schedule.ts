/**
 * Learning-rate schedules of open_clip (`scheduler.py`): linear warmup
 * `lr * (step + 1) / warmup`, then cosine `0.5 * (1 + cos(pi * e / es)) * lr` or constant.
 *
 * @module
 */

/**
 * The learning rate at an optimizer step.
 *
 * @param step Step index (0-based).
 * @param o Peak rate, warmup steps, total steps, kind.
 * @returns The rate.
 * @example
 * ```ts
 * learningRate(0, { lr: 1e-3, warmup: 10, total: 100, kind: "cosine" }); // 1e-4
 * ```
 */
export function learningRate(
  step: number,
  o: { lr: number; warmup: number; total: number; kind: "cosine" | "const" },
): number {
  if (step < o.warmup) return o.lr * (step + 1) / o.warmup;
  if (o.kind === "const") return o.lr;
  const e = step - o.warmup, es = o.total - o.warmup;
  return 0.5 * (1 + Math.cos(Math.PI * e / es)) * o.lr;
}
