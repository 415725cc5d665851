/**
 * A profiled step as a table (kernels by family, sorted by time, with % of the step and of
 * the device's ceilings), as JSON, and written to a folder with its Chrome trace.
 *
 * @module
 */

import { join } from "node:path";
import type { StepProfile } from "./profiler.ts";
import { chromeTrace } from "./trace.ts";

/** The device's ceilings the rates are judged against (`src/bench/ceiling.ts` measures them). */
export interface ProfileCeilings {
  /** FMA rate, GFLOP/s. */
  gflops: number;
  /** Copy bandwidth, GB/s. */
  gbps: number;
}

/** One kernel family's line of the table. */
export interface KernelRow {
  /** Kernel name. */
  name: string;
  /** Dispatches. */
  calls: number;
  /** GPU milliseconds, all calls. */
  ms: number;
  /** Percent of the step's wall time. */
  pctStep: number;
  /** Achieved GFLOP/s, when the flops are known. */
  gflops: number | null;
  /** Achieved GB/s of the bound windows (when the flops are not known). */
  gbps: number | null;
  /** Percent of the FMA ceiling (with flops) or of the copy ceiling (without). */
  pctCeiling: number | null;
}

/**
 * The kernel table of a profile: one row per kernel name, sorted by time.
 *
 * @param p The profile.
 * @param ceilings The device's ceilings, when measured.
 * @returns Rows, longest first.
 */
export function kernelRows(p: StepProfile, ceilings?: ProfileCeilings | null): KernelRow[] {
  const by = new Map<string, { calls: number; ms: number; flops: number | null; bytes: number }>();
  for (const d of p.dispatches) {
    const r = by.get(d.name) ?? { calls: 0, ms: 0, flops: 0, bytes: 0 };
    r.calls++;
    r.ms += d.gpuMs;
    r.flops = d.flops === null || r.flops === null ? null : r.flops + d.flops;
    r.bytes += d.bytes;
    by.set(d.name, r);
  }
  const rows: KernelRow[] = [];
  for (const [name, r] of by) {
    const gflops = r.flops !== null && r.ms > 0 ? r.flops / r.ms / 1e6 : null;
    const gbps = r.flops === null && r.ms > 0 ? r.bytes / r.ms / 1e6 : null;
    const pctCeiling = !ceilings
      ? null
      : gflops !== null
      ? 100 * gflops / ceilings.gflops
      : gbps !== null
      ? 100 * gbps / ceilings.gbps
      : null;
    rows.push({
      name,
      calls: r.calls,
      ms: r.ms,
      pctStep: 100 * r.ms / p.wallMs,
      gflops,
      gbps,
      pctCeiling,
    });
  }
  return rows.sort((a, b) => b.ms - a.ms);
}

/**
 * The sum of the kernels' GPU time.
 *
 * @param p The profile.
 * @returns Milliseconds.
 */
export function kernelTotalMs(p: StepProfile): number {
  return p.dispatches.reduce((s, d) => s + d.gpuMs, 0);
}

const fix = (x: number | null, d = 1) => (x === null ? "" : x.toFixed(d));

/**
 * The profile as text: the step's figures, the host split and the kernel table.
 *
 * @param p The profile.
 * @param ceilings The device's ceilings, when measured.
 * @param top Most kernel rows shown (the rest are summed in one line).
 * @returns Text lines.
 */
export function formatProfile(
  p: StepProfile,
  ceilings?: ProfileCeilings | null,
  top = 40,
): string {
  const c = p.counts, h = p.host;
  const kms = kernelTotalMs(p);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  const lines = [
    `profile: ${p.label} on ${p.adapter}`,
    `step ${p.wallMs.toFixed(1)} ms wall; kernels ${kms.toFixed(1)} ms (${
      (100 * kms / p.wallMs).toFixed(1)
    }% of the step, ${p.source === "timestamps" ? "GPU timestamps" : "each timed in isolation"})`,
    `dispatches ${c.dispatches}, submits ${c.submits}, syncs ${c.syncs}, bind groups ${c.bindGroups}, ` +
    `uniform writes ${c.uniformWrites} (${
      mib(c.uniformBytes)
    }), pipelines compiled ${c.pipelineCompiles}`,
    `host->device ${mib(c.uploadBytes)}, device->host ${mib(c.readBytes)}`,
    `host: JS ${h.jsMs.toFixed(1)} ms, blocked in submit ${h.submitMs.toFixed(1)} ms, ` +
    `GPU waits (readbacks, syncs) ${h.waitMs.toFixed(1)} ms, data ${h.dataMs.toFixed(1)} ms`,
  ];
  if (ceilings) {
    lines.push(
      `ceilings: ${ceilings.gflops.toFixed(1)} GFLOP/s FMA, ${ceilings.gbps.toFixed(2)} GB/s copy`,
    );
  }
  const rows = kernelRows(p, ceilings);
  const w = Math.max(6, ...rows.slice(0, top).map((r) => r.name.length));
  lines.push(
    "",
    `${"kernel".padEnd(w)}  ${"calls".padStart(6)}  ${"ms".padStart(9)}  ${
      "% step".padStart(6)
    }  ` +
      `${"GFLOP/s".padStart(8)}  ${"GB/s".padStart(7)}  ${"% ceil".padStart(6)}`,
  );
  for (const r of rows.slice(0, top)) {
    lines.push(
      `${r.name.padEnd(w)}  ${String(r.calls).padStart(6)}  ${r.ms.toFixed(2).padStart(9)}  ` +
        `${r.pctStep.toFixed(1).padStart(6)}  ${fix(r.gflops).padStart(8)}  ` +
        `${fix(r.gbps, 2).padStart(7)}  ${fix(r.pctCeiling).padStart(6)}`,
    );
  }
  const rest = rows.slice(top);
  if (rest.length > 0) {
    const ms = rest.reduce((s, r) => s + r.ms, 0);
    const calls = rest.reduce((s, r) => s + r.calls, 0);
    lines.push(
      `${`(${rest.length} more kernels)`.padEnd(w)}  ${String(calls).padStart(6)}  ` +
        `${ms.toFixed(2).padStart(9)}  ${(100 * ms / p.wallMs).toFixed(1).padStart(6)}`,
    );
  }
  lines.push(
    `${"total".padEnd(w)}  ${String(c.dispatches).padStart(6)}  ${kms.toFixed(2).padStart(9)}  ` +
      `${(100 * kms / p.wallMs).toFixed(1).padStart(6)}`,
  );
  return lines.join("\n");
}

/**
 * The profile as a JSON value: the step's figures and the kernel table.
 *
 * @param p The profile.
 * @param ceilings The device's ceilings, when measured.
 * @returns A JSON-serialisable object.
 */
export function profileJson(p: StepProfile, ceilings?: ProfileCeilings | null) {
  return {
    label: p.label,
    adapter: p.adapter,
    source: p.source,
    wallMs: p.wallMs,
    kernelMs: kernelTotalMs(p),
    counts: p.counts,
    host: p.host,
    ceilings: ceilings ?? null,
    phases: p.phases,
    kernels: kernelRows(p, ceilings),
  };
}

/**
 * Writes `profile.txt`, `profile.json` and `trace.json` (Chrome trace) into a folder.
 *
 * @param dir The folder (created when missing).
 * @param p The profile.
 * @param ceilings The device's ceilings, when measured.
 * @returns The paths written.
 */
export async function writeProfile(
  dir: string,
  p: StepProfile,
  ceilings?: ProfileCeilings | null,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const files = [join(dir, "profile.txt"), join(dir, "profile.json"), join(dir, "trace.json")];
  await Deno.writeTextFile(files[0]!, formatProfile(p, ceilings, Infinity) + "\n");
  await Deno.writeTextFile(files[1]!, JSON.stringify(profileJson(p, ceilings), null, 2) + "\n");
  await Deno.writeTextFile(files[2]!, JSON.stringify(chromeTrace(p)) + "\n");
  return files;
}
