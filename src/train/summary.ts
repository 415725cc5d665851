/**
 * What a finished (or stopped) run reports: `summary.json` and the closing log lines.
 *
 * @module
 */

import { fmtBytes } from "../gpu/buffer_pool.ts";
import type { EvalMetrics } from "./evaluate.ts";
import type { StepRecord } from "./progress.ts";
import type { StopSignal } from "./signals.ts";

/** What a finished (or stopped) run reports. */
export interface TrainSummary {
  /** Steps done in total. */
  steps: number;
  /** Steps done by this process. */
  stepsThisRun: number;
  /** Wall time of this process's steps, seconds. */
  seconds: number;
  /** Samples per second over this process's steps. */
  samplesPerSecond: number;
  /** Peak pooled GPU memory of activations, bytes. */
  peakActivationBytes: number;
  /** GPU memory of parameters, gradients and moments, bytes. */
  stateBytes: number;
  /** Seconds the steps of this run waited for their batches (data loading not hidden). */
  dataWaitSeconds: number;
  /** The memory estimate printed before the first step, bytes. */
  estimatedBytes: number;
  /**
   * GPU kernels dispatched by this process (more under a lowered binding limit, where ops
   * split), and the storage binding limit they ran under, bytes.
   */
  dispatches?: { count: number; maxBindingBytes: number } | undefined;
  /** Samples skipped by reason (each sample once, however often it was met). */
  skipped: Record<string, number>;
  /** Samples skipped by shard, then reason. */
  skippedByShard?: Record<string, Record<string, number>> | undefined;
  /** The last step's record. */
  last: StepRecord | null;
  /** Held-out metrics at the end, if evaluated. */
  eval: EvalMetrics | null;
  /** Held-out metrics before the first step, with `log.eval_at_start`. */
  evalAtStart: EvalMetrics | null;
  /** Why the run stopped. */
  stopped: "done" | "nan" | "signal";
  /** The stop signal received, when `stopped` is "signal". */
  signal?: StopSignal | undefined;
  /** Updates skipped because float16 gradients overflowed (mixed precision). */
  skippedUpdates: number;
  /** The last checkpoint written. */
  checkpoint: string | null;
}

/**
 * The closing lines of a run: time, throughput, data wait, memory, skipped samples, final
 * loss and checkpoint.
 *
 * @param s The summary.
 * @param estimate The memory estimate printed before the first step, bytes.
 * @returns The lines.
 */
export function describeSummary(s: TrainSummary, estimate: number): string {
  const skipped = Object.entries(s.skipped).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  return [
    `run ${
      s.stopped === "done" ? "finished" : `stopped (${s.stopped})`
    }: ${s.stepsThisRun} steps in ` +
    `${s.seconds.toFixed(1)} s (${(s.seconds / Math.max(s.stepsThisRun, 1)).toFixed(2)} s/step, ` +
    `${s.samplesPerSecond.toFixed(1)} samples/s)`,
    `waiting for data: ${s.dataWaitSeconds.toFixed(1)} s (${
      (100 * s.dataWaitSeconds / Math.max(s.seconds, 1e-9)).toFixed(1)
    }% of the run)`,
    `peak device memory ${fmtBytes(s.peakActivationBytes + s.stateBytes)} (activations ` +
    `${fmtBytes(s.peakActivationBytes)}, parameters/gradients/moments ${
      fmtBytes(s.stateBytes)
    }; estimated ` +
    `${fmtBytes(estimate)})`,
    `skipped samples: ${skipped}`,
    ...(s.last ? [`final loss ${s.last.loss.toFixed(4)} at step ${s.last.step}`] : []),
    ...(s.checkpoint ? [`checkpoint: ${s.checkpoint}`] : []),
  ].join("\n");
}
