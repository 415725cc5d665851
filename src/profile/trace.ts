/**
 * A profiled step in the Chrome trace format (`chrome://tracing`, Perfetto): complete ("X")
 * events in microseconds, one track for the GPU's kernels and one for the host's phases, in
 * one process. The GPU track's clock is the GPU's (or, for kernels timed in isolation, their
 * times laid end to end); its origin is placed at the host time the first kernel was
 * recorded, so the tracks line up only approximately.
 *
 * @module
 */

import type { StepProfile } from "./profiler.ts";

/** One trace event. */
export interface TraceEvent {
  /** Name shown on the slice. */
  name: string;
  /** Category: "kernel" or "host". */
  cat: string;
  /** Phase: "X" (complete event) or "M" (metadata). */
  ph: "X" | "M";
  /** Start, microseconds. */
  ts: number;
  /** Duration, microseconds ("X" events). */
  dur?: number;
  /** Process id. */
  pid: number;
  /** Track (thread) id: 1 GPU kernels, 2 host phases. */
  tid: number;
  /** Extra values shown with the slice. */
  args?: Record<string, unknown>;
}

/** Track of the GPU kernels. */
export const GPU_TRACK = 1;
/** Track of the host phases. */
export const HOST_TRACK = 2;

/**
 * The Chrome trace of a profile.
 *
 * @param p The profile.
 * @returns `{ traceEvents, displayTimeUnit }`, ready for `JSON.stringify`.
 * @example
 * ```ts
 * await Deno.writeTextFile("trace.json", JSON.stringify(chromeTrace(profile)));
 * ```
 */
export function chromeTrace(p: StepProfile): { traceEvents: TraceEvent[]; displayTimeUnit: "ms" } {
  const meta = (tid: number, name: string): TraceEvent => ({
    name: "thread_name",
    cat: "__metadata",
    ph: "M",
    ts: 0,
    pid: 1,
    tid,
    args: { name },
  });
  const events: TraceEvent[] = [
    {
      name: "process_name",
      cat: "__metadata",
      ph: "M",
      ts: 0,
      pid: 1,
      tid: 0,
      args: { name: p.label },
    },
    meta(GPU_TRACK, `GPU kernels (${p.source})`),
    meta(HOST_TRACK, "host"),
  ];
  const origin = p.dispatches[0]?.hostMs ?? 0;
  for (const d of p.dispatches) {
    events.push({
      name: d.name,
      cat: "kernel",
      ph: "X",
      ts: 1000 * (origin + d.gpuStartMs),
      dur: 1000 * d.gpuMs,
      pid: 1,
      tid: GPU_TRACK,
      args: { flops: d.flops, bytes: d.bytes, recordedAtMs: d.hostMs },
    });
  }
  for (const h of p.phases) {
    events.push({
      name: h.name,
      cat: "host",
      ph: "X",
      ts: 1000 * h.startMs,
      dur: 1000 * h.ms,
      pid: 1,
      tid: HOST_TRACK,
      args: { kind: h.kind },
    });
  }
  return { traceEvents: events, displayTimeUnit: "ms" };
}
