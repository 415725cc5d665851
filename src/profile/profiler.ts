/**
 * The profiler: records one step of work (a training step, an encode, a bench item) as the
 * runtime sees it, and times every kernel.
 *
 * While recording it is the runtime's observer ({@linkcode RuntimeObserver}): every dispatch
 * is noted with its kernel, shapes and cost, and, when the device was created with
 * `timestamp-query`, runs in a compute pass of its own that writes its start and end on the
 * GPU's clock. Without timestamps each distinct dispatch (kernel, parameters, workgroups,
 * binding sizes) is timed afterwards in isolation on zero-filled buffers of the same sizes
 * (`isolated.ts`). Host time is split from the runtime's counters: time blocked in
 * `queue.submit`, time waiting in readbacks and syncs, the data phases the caller marks, and
 * the rest (JavaScript: building ops and encoding).
 *
 * @module
 */

import type { DispatchRecord, Runtime, RuntimeCounters, RuntimeObserver } from "../gpu/runtime.ts";
import type { Kernel } from "../gpu/kernel.ts";
import { dispatchCost } from "./cost.ts";
import { timeIsolated } from "./isolated.ts";

/** One dispatch of a profiled step. */
export interface DispatchSample {
  /** Kernel name (its family: variants that differ only in defines share it). */
  name: string;
  /** Floating-point operations, where the kernel's cost is known (matmuls, attention). */
  flops: number | null;
  /** Bytes of the storage windows it binds (each counted once: read or written). */
  bytes: number;
  /** When it was recorded, host milliseconds since the profile started. */
  hostMs: number;
  /** Start on the GPU track, milliseconds (GPU clock from its first kernel, or isolated). */
  gpuStartMs: number;
  /** Its GPU time, milliseconds. */
  gpuMs: number;
}

/** A host phase the caller marked (data wait, recording, readback). */
export interface HostPhase {
  /** What it is. */
  name: string;
  /** Start, milliseconds since the profile started. */
  startMs: number;
  /** Duration, milliseconds. */
  ms: number;
  /** "data": waiting for input data; "work": anything else (split by the counters). */
  kind: "data" | "work";
}

/** Counts of the runtime's work during the step. */
export interface StepCounts {
  /** Dispatches recorded. */
  dispatches: number;
  /** Command buffers submitted. */
  submits: number;
  /** Waits for the GPU (readbacks and syncs). */
  syncs: number;
  /** Bind groups created. */
  bindGroups: number;
  /** Uniform-buffer writes of dispatch parameters. */
  uniformWrites: number;
  /** Bytes of dispatch parameters written. */
  uniformBytes: number;
  /** Pipelines compiled during the step (0 after warm-up). */
  pipelineCompiles: number;
  /** Bytes uploaded host -> device. */
  uploadBytes: number;
  /** Bytes read back device -> host. */
  readBytes: number;
}

/** Where the host's time went, milliseconds (they add up to the step's wall time). */
export interface HostSplit {
  /** JavaScript: building ops, recording and encoding (the rest). */
  jsMs: number;
  /** Blocked in `queue.submit` (a CPU adapter blocks while the previous submit runs). */
  submitMs: number;
  /** Waiting for the GPU in readbacks and syncs. */
  waitMs: number;
  /** Waiting for input data (phases marked "data"). */
  dataMs: number;
}

/** The record of one profiled step. */
export interface StepProfile {
  /** What was profiled. */
  label: string;
  /** The adapter. */
  adapter: string;
  /** How kernels were timed: GPU timestamps, or each distinct dispatch in isolation. */
  source: "timestamps" | "isolated";
  /** Wall time of the step, milliseconds. */
  wallMs: number;
  /** Work counts. */
  counts: StepCounts;
  /** Host time split. */
  host: HostSplit;
  /** Host phases in order. */
  phases: HostPhase[];
  /** Every dispatch in order, with its GPU time. */
  dispatches: DispatchSample[];
}

/** Queries per query set (the WebGPU maximum): two per dispatch. */
const QUERIES = 4096;

interface Noted {
  kernel: Kernel;
  params: Record<string, number>;
  workgroups: [number, number, number];
  sizes: (number | readonly [number, number])[];
  sample: DispatchSample;
}

/**
 * How kernels are timed: "auto" uses GPU timestamps where the device has trustworthy ones
 * (`DeviceInfo.trustTimestamps`) and times each distinct dispatch in isolation elsewhere;
 * "timestamps" and "isolated" force one (a test of either path).
 */
export type ProfileTiming = "auto" | "timestamps" | "isolated";

/**
 * Records one step. Use {@linkcode Profiler.start}, run the step (marking phases), then
 * {@linkcode Profiler.stop}; or {@linkcode profileStep} for both.
 */
export class Profiler implements RuntimeObserver {
  readonly #rt: Runtime;
  readonly #timestamps: boolean;
  #sets: GPUQuerySet[] = [];
  #used = 0;
  #noted: Noted[] = [];
  #phases: HostPhase[] = [];
  #t0 = 0;
  #before: RuntimeCounters | null = null;

  /**
   * A profiler of a runtime.
   *
   * @param rt The runtime.
   * @param timing How kernels are timed (default "auto": GPU timestamps when the device has
   *   `timestamp-query` and they measure its kernels, in isolation otherwise).
   * @throws {Error} For "timestamps" on a device without `timestamp-query`.
   */
  constructor(rt: Runtime, timing: ProfileTiming = "auto") {
    this.#rt = rt;
    if (timing === "timestamps" && !rt.info.hasTimestamps) {
      throw new Error("Profiling with GPU timestamps needs a device with timestamp-query");
    }
    this.#timestamps = timing === "timestamps" || (timing === "auto" && rt.info.trustTimestamps);
  }

  /** Starts recording: work recorded from now on belongs to the step. */
  start(): void {
    if (this.#before) throw new Error("Cannot start the profiler: it is already recording");
    this.#rt.observe(this);
    this.#before = { ...this.#rt.counters };
    this.#t0 = performance.now();
  }

  /**
   * Runs a synchronous host phase and notes its time.
   *
   * @param name What it is.
   * @param fn The work.
   * @returns What `fn` returns.
   */
  phase<T>(name: string, fn: () => T): T {
    const t = performance.now();
    try {
      return fn();
    } finally {
      this.#note(name, t, "work");
    }
  }

  /**
   * Runs an asynchronous host phase and notes its time.
   *
   * @param name What it is.
   * @param fn The work.
   * @param kind "data" for waiting on input data (counted apart in the host split).
   * @returns What `fn` resolves to.
   */
  async phaseAsync<T>(
    name: string,
    fn: () => Promise<T>,
    kind: "data" | "work" = "work",
  ): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.#note(name, t, kind);
    }
  }

  /**
   * Runtime hook: notes a dispatch and hands it its timestamp writes.
   *
   * @param d The dispatch.
   * @returns Timestamp writes when the device has timestamps.
   */
  dispatch(d: DispatchRecord): GPUComputePassTimestampWrites | undefined {
    const cost = dispatchCost(d);
    const [x, y = 1, z = 1] = d.workgroups;
    this.#noted.push({
      kernel: d.kernel,
      params: { ...d.params },
      workgroups: [x, y, z],
      sizes: d.bindings.map((b) =>
        "texture" in b
          ? [b.texture.width, b.texture.height] as const
          : Math.ceil(Math.max(b.byteLength, 4) / 16) * 16
      ),
      sample: {
        name: d.kernel.spec.name,
        flops: cost.flops,
        bytes: cost.bytes,
        hostMs: performance.now() - this.#t0,
        gpuStartMs: 0,
        gpuMs: 0,
      },
    });
    if (!this.#timestamps) return undefined;
    if (this.#used + 2 > this.#sets.length * QUERIES) {
      this.#sets.push(
        this.#rt.device.createQuerySet({ type: "timestamp", count: QUERIES, label: "profile" }),
      );
    }
    const i = this.#used % QUERIES;
    this.#used += 2;
    return {
      querySet: this.#sets[this.#sets.length - 1]!,
      beginningOfPassWriteIndex: i,
      endOfPassWriteIndex: i + 1,
    };
  }

  /**
   * Ends the step: waits for its work, reads the timestamps (or times the dispatches in
   * isolation) and returns the record.
   *
   * @param label What was profiled.
   * @returns The step's profile.
   */
  async stop(label: string): Promise<StepProfile> {
    const before = this.#before;
    if (!before) throw new Error("Cannot stop the profiler: it is not recording");
    this.#rt.observe(null);
    await this.#rt.sync();
    const wallMs = performance.now() - this.#t0;
    const c = this.#rt.counters;
    const d = (k: keyof RuntimeCounters) => c[k] - before[k];
    const counts: StepCounts = {
      dispatches: d("dispatches"),
      submits: d("submits"),
      syncs: d("syncs"),
      bindGroups: d("bindGroups"),
      uniformWrites: d("uniformWrites"),
      uniformBytes: d("uniformBytes"),
      pipelineCompiles: d("pipelineCompiles"),
      uploadBytes: d("uploadBytes"),
      readBytes: d("readBytes"),
    };
    const dataMs = this.#phases.filter((p) => p.kind === "data").reduce((s, p) => s + p.ms, 0);
    const host: HostSplit = {
      submitMs: d("submitMs"),
      waitMs: d("waitMs"),
      dataMs,
      jsMs: 0,
    };
    host.jsMs = Math.max(0, wallMs - host.submitMs - host.waitMs - dataMs);
    this.#before = null;
    if (this.#timestamps) await this.#readTimestamps();
    else await this.#timeIsolated();
    for (const s of this.#sets) s.destroy();
    return {
      label,
      adapter: this.#rt.info.description,
      source: this.#timestamps ? "timestamps" : "isolated",
      wallMs,
      counts,
      host,
      phases: this.#phases,
      dispatches: this.#noted.map((n) => n.sample),
    };
  }

  #note(name: string, t: number, kind: "data" | "work"): void {
    const end = performance.now();
    this.#phases.push({ name, startMs: t - this.#t0, ms: end - t, kind });
  }

  async #readTimestamps(): Promise<void> {
    const rt = this.#rt;
    const n = this.#used;
    if (n === 0) return;
    const enc = rt.device.createCommandEncoder({ label: "profile" });
    const buffers = this.#sets.map((set, i) => {
      const count = Math.min(QUERIES, n - i * QUERIES);
      const buf = rt.device.createBuffer({
        size: count * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        label: "profile",
      });
      enc.resolveQuerySet(set, 0, count, buf, 0);
      return buf;
    });
    rt.device.queue.submit([enc.finish()]);
    const bytes = await rt.read(
      buffers.map((buffer) => ({ buffer, byteOffset: 0, byteLength: buffer.size })),
    );
    for (const b of buffers) b.destroy();
    const ticks = bytes.flatMap((b) => [...new BigUint64Array(b)]);
    let first = ticks[0]!;
    for (let i = 0; i < ticks.length; i += 2) if (ticks[i]! < first) first = ticks[i]!;
    this.#noted.forEach((nt, j) => {
      const begin = ticks[2 * j]!, end = ticks[2 * j + 1]!;
      nt.sample.gpuStartMs = Number(begin - first) / 1e6;
      nt.sample.gpuMs = end > begin ? Number(end - begin) / 1e6 : 0;
    });
  }

  async #timeIsolated(): Promise<void> {
    const times = await timeIsolated(this.#rt, this.#noted);
    let at = 0;
    this.#noted.forEach((nt, j) => {
      nt.sample.gpuStartMs = at;
      nt.sample.gpuMs = times[j]!;
      at += times[j]!;
    });
  }
}

/**
 * Profiles one step: starts a profiler, runs the step, stops.
 *
 * @param rt The runtime.
 * @param label What is profiled.
 * @param step Records the step (it may mark phases on the profiler it is given).
 * @param timing How kernels are timed (default "auto", see {@linkcode ProfileTiming}).
 * @returns The profile.
 * @example
 * ```ts
 * const rt = await initGpu({ timestamps: true });
 * const p = await profileStep(rt, "fill", (pr) => pr.phase("record", () => fillInto(x, 1)));
 * console.log(p.counts.dispatches);
 * ```
 */
export async function profileStep(
  rt: Runtime,
  label: string,
  step: (profiler: Profiler) => void | Promise<void>,
  timing: ProfileTiming = "auto",
): Promise<StepProfile> {
  const p = new Profiler(rt, timing);
  p.start();
  try {
    await step(p);
  } catch (e) {
    rt.observe(null);
    throw e;
  }
  return await p.stop(label);
}
