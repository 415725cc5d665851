/**
 * Timing GPU work from the host: record an op many times, wait once, divide. Each wait
 * costs a fixed ~11 ms on llvmpipe, so repetitions are chosen to make it negligible. On a
 * shared machine other processes slow single measurements down, so tables report the median
 * of several.
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
  /** Fraction of the device ceiling measured in the same run (FMA rate or copy bandwidth). */
  ceiling?: number | undefined;
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
 * Times GPU work several times and returns the median (noise from other processes only ever
 * adds time, and the median of a few runs is steadier than one long run).
 *
 * @param fn Records the work once.
 * @param options Runs, and per-run minimum time and maximum repetitions.
 * @returns Median milliseconds per call.
 */
export async function timeGpuMedian(
  fn: () => void,
  options: { runs?: number; minMs?: number; maxReps?: number } = {},
): Promise<number> {
  const { runs = 3, ...per } = options;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await timeGpu(fn, per));
  return median(times);
}

/**
 * The median of a list of numbers.
 *
 * @param xs Values (not empty).
 * @returns Their median.
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("Cannot take the median of no values");
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
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

/** Formats a row's rate and ceiling fraction. */
function rateText(r: BenchRow): [string, string] {
  const rate = r.rate === undefined ? "" : `${r.rate.toFixed(2)} ${r.unit ?? ""}`;
  const ceil = r.ceiling === undefined ? "" : `${(100 * r.ceiling).toFixed(1)}%`;
  return [rate, ceil];
}

/**
 * Formats rows as an aligned text table.
 *
 * @param rows Results.
 * @returns Text lines.
 */
export function formatTable(rows: readonly BenchRow[]): string {
  const w = Math.max(...rows.map((r) => r.name.length), 4);
  const lines = [
    `${"op".padEnd(w)}  ${"ms".padStart(10)}  ${"rate".padStart(15)}  ${"ceil".padStart(6)}  note`,
  ];
  for (const r of rows) {
    const [rate, ceil] = rateText(r);
    lines.push(
      `${r.name.padEnd(w)}  ${r.ms.toFixed(3).padStart(10)}  ${rate.padStart(15)}  ` +
        `${ceil.padStart(6)}  ${r.note ?? ""}`,
    );
  }
  return lines.join("\n");
}

/**
 * Formats rows as a Markdown table.
 *
 * @param rows Results.
 * @returns Markdown lines.
 */
export function formatMarkdown(rows: readonly BenchRow[]): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  const lines = ["| op | ms | rate | % of ceiling | note |", "| --- | ---: | ---: | ---: | --- |"];
  for (const r of rows) {
    const [rate, ceil] = rateText(r);
    lines.push(
      `| ${esc(r.name)} | ${r.ms.toFixed(3)} | ${rate} | ${ceil} | ${esc(r.note ?? "")} |`,
    );
  }
  return lines.join("\n");
}
