/**
 * The GPU runtime: pipelines compiled once, many dispatches per command encoder, parameters
 * in a uniform ring, bind groups reused while their windows recur (a training step binds the
 * same pooled buffers every step), uploads ordered with the recorded work, readback as the
 * only async step. An observer (the profiler, `src/profile/`) may watch the dispatches and
 * give each its own timestamped compute pass.
 *
 * Everything that records work is synchronous, so a whole forward and backward pass is
 * recorded without awaiting; only {@linkcode Runtime.read} waits for the GPU. Uploads go
 * through staging buffers copied inside the command stream, so a buffer released and reused
 * later in the same stream is never overwritten before earlier work has read it.
 *
 * @module
 */

import { acquireDevice, type AcquireOptions, type DeviceInfo } from "./device.ts";
import { BufferPool, fmtBytes, type PoolStats } from "./buffer_pool.ts";
import type { Kernel } from "./kernel.ts";

/** A window of a GPU buffer bound to one kernel binding. */
export interface GpuBinding {
  /** The buffer. */
  readonly buffer: GPUBuffer;
  /** Byte offset of the window (a multiple of the device's binding alignment). */
  readonly byteOffset: number;
  /** Byte length of the window's data. */
  readonly byteLength: number;
}

/**
 * A texture bound to a kernel's `texture` or `texture-write` binding (a pooled rgba32float
 * texture, see {@linkcode BufferPool.acquireTexture}); `byteLength` counts its texels.
 */
export interface GpuTextureBinding {
  /** The texture. */
  readonly texture: GPUTexture;
  /** Bytes of its texels. */
  readonly byteLength: number;
}

/** What a kernel binding receives: a buffer window, or a texture. */
export type Binding = GpuBinding | GpuTextureBinding;

/** Counters of work recorded and synchronisations made. */
export interface RuntimeCounters {
  /** Dispatches recorded. */
  dispatches: number;
  /** Command buffers submitted. */
  submits: number;
  /** Waits for the GPU (readbacks and explicit syncs). */
  syncs: number;
  /** Bytes uploaded to the GPU. */
  uploadBytes: number;
  /** Bytes read back from the GPU. */
  readBytes: number;
  /** Bind groups created. */
  bindGroups: number;
  /** `writeBuffer` calls that carry dispatch parameters (one per used uniform chunk per submit). */
  uniformWrites: number;
  /** Bytes of dispatch parameters written. */
  uniformBytes: number;
  /** Pipelines compiled (cache misses). */
  pipelineCompiles: number;
  /** Milliseconds spent inside `queue.submit` (on a CPU adapter it blocks while the previous
   * submission still runs). */
  submitMs: number;
  /** Milliseconds spent waiting for the GPU in readbacks and syncs. */
  waitMs: number;
}

/** What an observer sees of one dispatch (its arguments, before it is recorded). */
export interface DispatchRecord {
  /** The kernel. */
  readonly kernel: Kernel;
  /** Buffer windows (and textures) in binding order. */
  readonly bindings: readonly Binding[];
  /** Uniform parameter values. */
  readonly params: Readonly<Record<string, number>>;
  /** Workgroup counts. */
  readonly workgroups: readonly [number, number?, number?];
}

/**
 * Watches the work a runtime records (a profiler). Attached with
 * {@linkcode Runtime.observe}; while attached, a dispatch for which it returns timestamp
 * writes runs in a compute pass of its own that writes them.
 */
export interface RuntimeObserver {
  /**
   * Called for every dispatch before it is recorded.
   *
   * @param record The dispatch.
   * @returns Timestamp writes for the dispatch's own pass, or undefined to share a pass.
   */
  dispatch(record: DispatchRecord): GPUComputePassTimestampWrites | undefined;
}

interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

interface UniformChunk {
  gpu: GPUBuffer;
  cpu: ArrayBuffer;
  u32: Uint32Array;
  i32: Int32Array;
  f32: Float32Array;
  used: number;
}

const UNIFORM_CHUNK_BYTES = 64 * 1024;
const UNIFORM_SLOT_MAX = 256;
const AUTO_FLUSH_DISPATCHES = 256;
/** Bind groups kept for reuse; the cache starts over when it holds more. */
const BIND_GROUP_CACHE_MAX = 8192;
const MAX_STAGED_BYTES = 128 * 2 ** 20;

/** The process-wide GPU runtime. Obtain it with {@linkcode initGpu} or {@linkcode gpu}. */
export class Runtime {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** What the device is. */
  readonly info: DeviceInfo;
  /** The buffer pool tensors draw on. */
  readonly pool: BufferPool;
  /** Work counters, for tests and benchmarks. */
  readonly counters: RuntimeCounters = {
    dispatches: 0,
    submits: 0,
    syncs: 0,
    uploadBytes: 0,
    readBytes: 0,
    bindGroups: 0,
    uniformWrites: 0,
    uniformBytes: 0,
    pipelineCompiles: 0,
    submitMs: 0,
    waitMs: 0,
  };

  readonly #pipelines = new Map<string, Compiled>();
  readonly #uniforms: UniformChunk[] = [];
  readonly #slot: number;
  #chunk = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #stagedBytes = 0;
  #destroyAfterSubmit: GPUBuffer[] = [];
  #errors: string[] = [];
  #lost: string | null = null;
  #observer: RuntimeObserver | null = null;
  /** Bind groups by kernel, windows and uniform chunk: a step binds the same pooled buffers
   * every time, and creating a bind group costs more than the rest of a dispatch. */
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  readonly #resourceIds = new WeakMap<GPUBuffer | GPUTexture, number>();
  #nextResourceId = 0;

  /**
   * Wraps a device and starts watching its errors; use {@linkcode initGpu} rather than calling
   * this directly.
   *
   * @param device The device.
   * @param info Its description.
   */
  constructor(device: GPUDevice, info: DeviceInfo) {
    this.device = device;
    this.info = info;
    this.pool = new BufferPool(device, info.maxBufferBytes);
    this.#slot = Math.max(UNIFORM_SLOT_MAX, device.limits.minUniformBufferOffsetAlignment);
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      if (this.#errors.length < 16) this.#errors.push(err.message);
    });
    device.lost.then((l) => {
      this.#lost = l.message || l.reason || "unknown reason";
    });
  }

  /**
   * Attaches an observer (a profiler) to the work recorded from now on, or detaches it.
   * Recorded but unsubmitted work is submitted first, so the observer sees whole submits.
   *
   * @param observer The observer, or null to detach.
   */
  observe(observer: RuntimeObserver | null): void {
    this.flush();
    this.#observer = observer;
  }

  /**
   * Records one dispatch.
   *
   * @param kernel The kernel.
   * @param bindings Buffer windows (textures for texture bindings) in the kernel's binding
   *   order.
   * @param params Uniform parameter values by name (all of the kernel's parameters).
   * @param workgroups Workgroup counts [x, y, z].
   */
  dispatch(
    kernel: Kernel,
    bindings: readonly Binding[],
    params: Readonly<Record<string, number>>,
    workgroups: readonly [number, number?, number?],
  ): void {
    this.#checkAlive();
    const spec = kernel.spec;
    if (bindings.length !== spec.bindings.length) {
      throw new RangeError(
        `Kernel "${spec.name}" takes ${spec.bindings.length} bindings, got ${bindings.length}`,
      );
    }
    const { pipeline, layout } = this.#compile(kernel);
    const sizes: number[] = [];
    let key = kernel.key;
    for (let i = 0; i < bindings.length; i++) {
      const b = bindings[i]!;
      const isTexture = spec.bindings[i] === "texture" || spec.bindings[i] === "texture-write";
      if (isTexture !== "texture" in b) {
        throw new TypeError(
          `Kernel "${spec.name}": binding ${i} takes a ${isTexture ? "texture" : "buffer"}`,
        );
      }
      if ("texture" in b) {
        sizes.push(0);
        key += `|t${this.#resourceId(b.texture)}`;
        continue;
      }
      const size = Math.min(
        Math.ceil(Math.max(b.byteLength, 4) / 16) * 16,
        b.buffer.size - b.byteOffset,
      );
      if (size > this.info.maxBindingBytes) {
        throw new RangeError(
          `Kernel "${spec.name}": binding ${i} spans ${fmtBytes(size)}, more than the ` +
            `device's storage binding limit of ${fmtBytes(this.info.maxBindingBytes)}`,
        );
      }
      if (b.byteOffset % this.info.bindingOffsetAlignment !== 0) {
        throw new RangeError(
          `Kernel "${spec.name}": binding ${i} starts at byte ${b.byteOffset}, not a multiple ` +
            `of ${this.info.bindingOffsetAlignment}`,
        );
      }
      sizes.push(size);
      key += `|${this.#resourceId(b.buffer)}:${b.byteOffset}:${size}`;
    }
    const offsets: number[] = [];
    let chunk: UniformChunk | null = null;
    if (kernel.paramNames.length > 0) {
      const slot = this.#writeParams(kernel, params);
      chunk = slot.chunk;
      offsets.push(slot.offset);
      key += `|u${this.#resourceId(chunk.gpu)}`;
    }
    const group = this.#bindGroups.get(key) ??
      this.#createBindGroup(key, { layout, label: spec.name }, bindings, sizes, chunk);
    const timestampWrites = this.#observer?.dispatch({ kernel, bindings, params, workgroups });
    if (timestampWrites) this.#endPass();
    const pass = timestampWrites
      ? this.#commandEncoder().beginComputePass({ timestampWrites })
      : this.#computePass();
    if (timestampWrites) this.#pass = pass;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group, offsets);
    const [x, y = 1, z = 1] = workgroups;
    const max = this.info.maxWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new RangeError(
        `Kernel "${spec.name}": dispatch [${x}, ${y}, ${z}] exceeds ${max} workgroups per dimension`,
      );
    }
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    if (timestampWrites) this.#endPass();
    this.counters.dispatches++;
    if (++this.#pending >= AUTO_FLUSH_DISPATCHES) this.flush();
  }

  /**
   * Records a buffer-to-buffer copy, ordered with the dispatches around it.
   *
   * @param src Source window.
   * @param dst Destination window.
   * @param bytes Bytes to copy (a multiple of 4).
   */
  copy(src: GpuBinding, dst: GpuBinding, bytes = src.byteLength): void {
    this.#checkAlive();
    if (bytes === 0) return;
    if (bytes % 4 !== 0) throw new RangeError(`Cannot copy ${bytes} bytes: not a multiple of 4`);
    this.#endPass();
    this.#commandEncoder().copyBufferToBuffer(
      src.buffer,
      src.byteOffset,
      dst.buffer,
      dst.byteOffset,
      bytes,
    );
    this.#pending++;
  }

  /**
   * Records an upload of host data into a window, ordered with the recorded work.
   *
   * @param dst Destination window.
   * @param data Bytes to write (padded to a multiple of 4 when needed).
   */
  upload(dst: GpuBinding, data: ArrayBufferView): void {
    this.#checkAlive();
    const n = data.byteLength;
    if (n === 0) return;
    const padded = Math.ceil(n / 4) * 4;
    const staging = this.device.createBuffer({
      size: padded,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
      label: "upload",
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, n),
    );
    staging.unmap();
    this.#endPass();
    this.#commandEncoder().copyBufferToBuffer(staging, 0, dst.buffer, dst.byteOffset, padded);
    this.#destroyAfterSubmit.push(staging);
    this.counters.uploadBytes += n;
    this.#pending++;
    // Staging memory is freed at the next submit: bound it when uploading a whole model.
    this.#stagedBytes += padded;
    if (this.#stagedBytes >= MAX_STAGED_BYTES) this.flush();
  }

  /** Submits the recorded work without waiting for it. */
  flush(): void {
    this.#checkAlive();
    this.#endPass();
    for (const c of this.#uniforms) {
      if (c.used > 0) {
        this.device.queue.writeBuffer(c.gpu, 0, c.cpu, 0, c.used);
        this.counters.uniformWrites++;
        this.counters.uniformBytes += c.used;
        c.used = 0;
      }
    }
    this.#chunk = 0;
    if (this.#encoder) {
      const commands = this.#encoder.finish();
      const t0 = performance.now();
      this.device.queue.submit([commands]);
      this.counters.submitMs += performance.now() - t0;
      this.#encoder = null;
      this.counters.submits++;
    }
    for (const b of this.#destroyAfterSubmit) b.destroy();
    this.#destroyAfterSubmit = [];
    this.#pending = 0;
    this.#stagedBytes = 0;
  }

  /**
   * Returns the pool's free buffers to the device, in the middle of recording too: the work
   * recorded so far is submitted first (a buffer destroyed under an unsubmitted command would
   * invalidate it; submitted work still runs on it).
   */
  trimPool(): void {
    this.flush();
    this.pool.trim();
  }

  /**
   * Reads windows back to the host after all recorded work has run: one wait for all.
   *
   * @param windows The windows to read.
   * @returns Their bytes, in order.
   */
  async read(windows: readonly GpuBinding[]): Promise<ArrayBuffer[]> {
    this.#checkAlive();
    const stagings: { buf: GPUBuffer; n: number }[] = [];
    this.#endPass();
    const enc = this.#commandEncoder();
    for (const w of windows) {
      const n = Math.ceil(w.byteLength / 4) * 4;
      const buf = this.device.createBuffer({
        size: Math.max(n, 4),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "readback",
      });
      if (n > 0) enc.copyBufferToBuffer(w.buffer, w.byteOffset, buf, 0, n);
      stagings.push({ buf, n });
    }
    this.flush();
    this.counters.syncs++;
    const out: ArrayBuffer[] = [];
    const t0 = performance.now();
    try {
      await Promise.all(stagings.map((s) => s.buf.mapAsync(GPUMapMode.READ)));
      this.counters.waitMs += performance.now() - t0;
      for (let i = 0; i < stagings.length; i++) {
        const s = stagings[i]!;
        out.push(s.buf.getMappedRange().slice(0, windows[i]!.byteLength));
        s.buf.unmap();
        this.counters.readBytes += windows[i]!.byteLength;
      }
    } finally {
      for (const s of stagings) s.buf.destroy();
    }
    this.#throwErrors();
    return out;
  }

  /** Waits until every submitted piece of work has run, then reports any GPU error. */
  async sync(): Promise<void> {
    this.flush();
    this.counters.syncs++;
    const t0 = performance.now();
    await this.device.queue.onSubmittedWorkDone();
    this.counters.waitMs += performance.now() - t0;
    this.#throwErrors();
  }

  /**
   * Throws when a dispatch would make more loop iterations per invocation than the adapter
   * runs (see {@linkcode DeviceInfo.maxLoopTrips}); kernels call it with their worst case.
   *
   * @param kernel Kernel name, for the message.
   * @param trips Loop iterations one invocation makes, summed over its loops.
   */
  assertLoopTrips(kernel: string, trips: number): void {
    if (trips > this.info.maxLoopTrips) {
      throw new RangeError(
        `Kernel "${kernel}" needs ${trips} loop iterations per invocation; this adapter ` +
          `(${this.info.description}) stops loops after ${this.info.maxLoopTrips}`,
      );
    }
  }

  /**
   * Reports GPU memory use.
   *
   * @returns The buffer pool's byte counters.
   */
  memory(): PoolStats {
    return this.pool.stats();
  }

  #resourceId(resource: GPUBuffer | GPUTexture): number {
    let id = this.#resourceIds.get(resource);
    if (id === undefined) {
      id = this.#nextResourceId++;
      this.#resourceIds.set(resource, id);
    }
    return id;
  }

  #createBindGroup(
    key: string,
    base: { layout: GPUBindGroupLayout; label: string },
    bindings: readonly Binding[],
    sizes: readonly number[],
    chunk: UniformChunk | null,
  ): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = bindings.map((b, i) => ({
      binding: i,
      resource: "texture" in b
        ? b.texture.createView()
        : { buffer: b.buffer, offset: b.byteOffset, size: sizes[i]! },
    }));
    if (chunk) {
      entries.push({
        binding: bindings.length,
        resource: { buffer: chunk.gpu, offset: 0, size: this.#slot },
      });
    }
    const group = this.device.createBindGroup({ ...base, entries });
    this.counters.bindGroups++;
    if (this.#bindGroups.size >= BIND_GROUP_CACHE_MAX) this.#bindGroups.clear();
    this.#bindGroups.set(key, group);
    return group;
  }

  #checkAlive(): void {
    if (this.#lost !== null) {
      throw new Error(`The GPU device was lost (${this.#lost}); restart the process`);
    }
  }

  #throwErrors(): void {
    this.#checkAlive();
    if (this.#errors.length > 0) {
      const errs = this.#errors;
      this.#errors = [];
      throw new Error(`GPU validation failed:\n${errs.join("\n")}`);
    }
  }

  #commandEncoder(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder({ label: "ps3" });
    return this.#encoder;
  }

  #computePass(): GPUComputePassEncoder {
    if (!this.#pass) this.#pass = this.#commandEncoder().beginComputePass();
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #writeParams(
    kernel: Kernel,
    params: Readonly<Record<string, number>>,
  ): { chunk: UniformChunk; offset: number } {
    let chunk = this.#uniforms[this.#chunk];
    if (chunk && chunk.used + this.#slot > UNIFORM_CHUNK_BYTES) {
      chunk = this.#uniforms[++this.#chunk];
    }
    if (!chunk) {
      const cpu = new ArrayBuffer(UNIFORM_CHUNK_BYTES);
      chunk = {
        gpu: this.device.createBuffer({
          size: UNIFORM_CHUNK_BYTES,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          label: "params",
        }),
        cpu,
        u32: new Uint32Array(cpu),
        i32: new Int32Array(cpu),
        f32: new Float32Array(cpu),
        used: 0,
      };
      this.#uniforms.push(chunk);
      this.#chunk = this.#uniforms.length - 1;
    }
    const offset = chunk.used;
    const base = offset / 4;
    const names = kernel.paramNames;
    if (names.length * 4 > this.#slot) {
      throw new RangeError(`Kernel "${kernel.spec.name}" has more than ${this.#slot / 4} params`);
    }
    for (let i = 0; i < names.length; i++) {
      const v = params[names[i]!];
      if (v === undefined || !Number.isFinite(v)) {
        throw new TypeError(
          `Kernel "${kernel.spec.name}": parameter "${names[i]}" is ${v}, expected a finite number`,
        );
      }
      const t = kernel.paramTypes[i];
      if (t === "f32") chunk.f32[base + i] = v;
      else if (t === "i32") chunk.i32[base + i] = v;
      else chunk.u32[base + i] = v;
    }
    chunk.used += this.#slot;
    return { chunk, offset };
  }

  #compile(kernel: Kernel): Compiled {
    const hit = this.#pipelines.get(kernel.key);
    if (hit) return hit;
    const spec = kernel.spec;
    const entries: GPUBindGroupLayoutEntry[] = spec.bindings.map((access, i) => ({
      binding: i,
      visibility: GPUShaderStage.COMPUTE,
      ...(access === "texture"
        ? { texture: { sampleType: "unfilterable-float" as const } }
        : access === "texture-write"
        ? { storageTexture: { access: "write-only" as const, format: "rgba32float" as const } }
        : {
          buffer: { type: access === "read" ? "read-only-storage" as const : "storage" as const },
        }),
    }));
    if (kernel.paramNames.length > 0) {
      entries.push({
        binding: spec.bindings.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", hasDynamicOffset: true },
      });
    }
    const layout = this.device.createBindGroupLayout({ entries, label: spec.name });
    const needsF16 = /\benable\s+f16\s*;/.test(kernel.code);
    if (needsF16 && !this.info.hasF16) {
      throw new Error(`Kernel "${spec.name}" needs shader-f16, which this adapter lacks`);
    }
    const module = this.device.createShaderModule({ code: kernel.code, label: spec.name });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label: spec.name }),
      compute: { module, entryPoint: spec.entry ?? "main" },
    });
    const compiled = { pipeline, layout };
    this.#pipelines.set(kernel.key, compiled);
    this.counters.pipelineCompiles++;
    return compiled;
  }
}

let runtime: Runtime | null = null;

/**
 * Creates (once) and returns the process-wide runtime.
 *
 * @param options Device preferences, honoured by the first call only.
 * @returns The runtime.
 * @example
 * ```ts
 * const rt = await initGpu();
 * console.log(rt.info.description);
 * ```
 */
export async function initGpu(options: AcquireOptions = {}): Promise<Runtime> {
  if (runtime) return runtime;
  const { device, info } = await acquireDevice(options);
  runtime ??= new Runtime(device, info);
  return runtime;
}

/**
 * Returns the runtime created by {@linkcode initGpu}; recording work is synchronous, so ops
 * take the runtime from here.
 *
 * @returns The runtime.
 * @throws {Error} When {@linkcode initGpu} has not completed.
 */
export function gpu(): Runtime {
  if (!runtime) throw new Error("The GPU runtime is not initialised: await initGpu() first");
  return runtime;
}
