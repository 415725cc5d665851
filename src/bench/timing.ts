/**
 * Timing GPU work from the host: record an op many times, wait once, divide. Each wait
 * costs a fixed ~11 ms on llvmpipe, so repetitions are chosen to make it negligible.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { tidy } from "../autograd/scope.ts";

/** One benchmark result row. */
export interface BenchRow {
  /** Op and shape. */
  name: string;
  /** Milliseconds per call. */
  ms: number;
  /** Achieved rate, e.g. GFLOP/s or GB/s. */
  rate?: number | undefined;
  /** Unit of `rate`. */
  unit?: string | undefined;
  /** Free-form comparison, e.g. "12.3x plain JS". */
  note?: string | undefined;
}

/**
 * Times a recorded GPU operation.
 *
 * @param fn Records the work once (its tensors are freed after each call).
 * @param options Minimum total time to measure and maximum repetitions.
 * @returns Milliseconds per call.
 */
export async function timeGpu(
  fn: () => void,
  options: { minMs?: number; maxReps?: number } = {},
): Promise<number> {
  const { minMs = 300, maxReps = 200 } = options;
  const rt = gpu();
  tidy(fn); // warm-up: pipelines compiled, buffers pooled
  await rt.sync();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) tidy(fn);
    await rt.sync();
    const dt = performance.now() - t0;
    if (dt >= minMs || reps >= maxReps) return dt / reps;
    reps = Math.min(maxReps, Math.max(reps * 2, Math.ceil(reps * minMs / Math.max(dt, 1))));
  }
}

/**
 * Times a host (JS) function.
 *
 * @param fn The work.
 * @param minMs Minimum total time to measure.
 * @returns Milliseconds per call.
 */
export function timeHost(fn: () => void, minMs = 300): number {
  fn();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const dt = performance.now() - t0;
    if (dt >= minMs) return dt / reps;
    reps *= 2;
  }
}

/**
 * Formats rows as an aligned table.
 *
 * @param rows Results.
 * @returns Text lines.
 */
export function formatTable(rows: readonly BenchRow[]): string {
  const w = Math.max(...rows.map((r) => r.name.length), 4);
  const lines = [`${"op".padEnd(w)}  ${"ms".padStart(10)}  ${"rate".padStart(14)}  note`];
  for (const r of rows) {
    const rate = r.rate === undefined ? "" : `${r.rate.toFixed(2)} ${r.unit ?? ""}`;
    lines.push(
      `${r.name.padEnd(w)}  ${r.ms.toFixed(3).padStart(10)}  ${rate.padStart(14)}  ${r.note ?? ""}`,
    );
  }
  return lines.join("\n");
}
