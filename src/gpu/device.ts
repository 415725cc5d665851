/**
 * Acquires the one WebGPU device a process uses and describes it.
 *
 * One device is shared per process (and per test file): on Deno a destroyed device frees
 * its memory only when garbage-collected, so creating many devices leaks. The adapter may be
 * any vendor's; on a machine without a GPU it is Mesa's llvmpipe (software), preferably
 * through its Vulkan driver (lavapipe), which this module selects when it is installed and
 * the user has not chosen a backend with `DENO_WEBGPU_BACKEND`.
 *
 * @module
 */

/** What the runtime knows about the device it runs on. */
export interface DeviceInfo {
  /** Adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor string or id reported by the adapter. */
  vendor: string;
  /** The wgpu backend in use, as chosen by `DENO_WEBGPU_BACKEND` (or "default"). */
  backend: string;
  /** True for a CPU (software) adapter such as llvmpipe. */
  isSoftware: boolean;
  /** Whether the device was created with `shader-f16`. */
  hasF16: boolean;
  /** Whether the device was created with `timestamp-query` (asked for by profiling runs). */
  hasTimestamps: boolean;
  /**
   * Whether GPU timestamps measure the kernels between them: false on lavapipe (llvmpipe's
   * Vulkan), where once any dispatch has sampled a texture, the timestamps around later
   * storage-only dispatches come out ~0 (measured on Mesa 22.3: 0.1 ms around a dispatch of
   * 331 ms wall; `tests/tools/lavapipe_timestamps.ts`). The profiler then times kernels in
   * isolation.
   */
  trustTimestamps: boolean;
  /** Largest storage buffer binding in bytes (lowered by `AcquireOptions.maxBindingBytes`). */
  maxBindingBytes: number;
  /** Largest buffer in bytes (lowered by `AcquireOptions.maxBufferBytes`). */
  maxBufferBytes: number;
  /** Storage buffer binding offsets must be multiples of this. */
  bindingOffsetAlignment: number;
  /** Largest number of workgroups per dispatch dimension. */
  maxWorkgroupsPerDimension: number;
  /** Largest side of a 2D texture in texels (bounds the `texture` matmul's operands). */
  maxTextureSide: number;
  /**
   * Most loop iterations one invocation may make, summed over all its loops (nested loops'
   * re-entries included). Mesa's llvmpipe silently breaks out of loops once its per-invocation
   * loop counter passes 65535 (measured: two sequential loops of 40000 trips run 65534 in
   * all), so kernels split longer work across threads or dispatches. Unbounded on real GPUs.
   */
  maxLoopTrips: number;
}

/** Options for {@linkcode acquireDevice}. */
export interface AcquireOptions {
  /** Request `shader-f16` when the adapter has it (default true). */
  f16?: boolean;
  /**
   * Request `timestamp-query` when the adapter has it (default false): profiling runs ask
   * for it to time every kernel on the GPU's clock; other runs leave it off.
   */
  timestamps?: boolean;
  /** Prefer a high-performance adapter (default true). */
  highPerformance?: boolean;
  /**
   * Pretend the adapter's storage bindings are at most this many bytes (a multiple of 4, at
   * least 4096): every limit check and windowing uses the lower figure, so tests exercise the
   * paths past the limit at small sizes. Without it, the environment variable
   * `PS3_MAX_BINDING_BYTES` (read when the device is created) sets it; the adapter's own limit
   * wins when smaller.
   */
  maxBindingBytes?: number;
  /**
   * Pretend the adapter's buffers are at most this many bytes (or `PS3_MAX_BUFFER_BYTES`);
   * same rules as `maxBindingBytes`. Tensors are one buffer each: a tensor above the figure
   * is refused by `empty()` with its shape and bytes, and training splits its micro-batch
   * into sample groups whose tensors fit (`src/train/groups.ts`).
   */
  maxBufferBytes?: number;
}

/**
 * A lowered limit from an option or an environment variable, validated.
 *
 * @param value The option's value, if given.
 * @param env The environment variable read when the option is absent.
 * @returns The limit, or Infinity when none is asked for.
 */
function loweredLimit(value: number | undefined, env: string): number {
  let v = value;
  let from = `option ${env === "PS3_MAX_BINDING_BYTES" ? "maxBindingBytes" : "maxBufferBytes"}`;
  if (v === undefined) {
    const text = Deno.env.get(env);
    if (text === undefined || text === "") return Infinity;
    v = Number(text);
    from = `${env}="${text}"`;
  }
  if (!Number.isInteger(v) || v < 4096 || v % 4 !== 0) {
    throw new RangeError(
      `Cannot lower the device limit to ${from}: expected a whole number of bytes, a ` +
        "multiple of 4, at least 4096",
    );
  }
  return v;
}

let current: Promise<{ device: GPUDevice; info: DeviceInfo }> | null = null;

const VULKAN_ICDS = [
  "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
  "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json",
  "/usr/share/vulkan/icd.d/lvp_icd.json",
];

function chooseBackend(): string {
  const chosen = Deno.env.get("DENO_WEBGPU_BACKEND");
  if (chosen) return chosen;
  // Mesa's GL path crashes at process exit in some runs; its Vulkan driver does not and has
  // shader-f16. Prefer it when installed; a real GPU driver is found either way.
  for (const path of VULKAN_ICDS) {
    try {
      Deno.statSync(path);
      Deno.env.set("DENO_WEBGPU_BACKEND", "vulkan");
      return "vulkan";
    } catch {
      // not installed here
    }
  }
  return "default";
}

async function create(options: AcquireOptions): Promise<{ device: GPUDevice; info: DeviceInfo }> {
  const bindingCap = loweredLimit(options.maxBindingBytes, "PS3_MAX_BINDING_BYTES");
  const bufferCap = loweredLimit(options.maxBufferBytes, "PS3_MAX_BUFFER_BYTES");
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new Error("Cannot acquire a GPU device: this runtime has no WebGPU (navigator.gpu)");
  }
  const backend = chooseBackend();
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.highPerformance === false ? "low-power" : "high-performance",
  });
  if (!adapter) {
    throw new Error(
      `Cannot acquire a GPU device: no WebGPU adapter was found (backend "${backend}"). ` +
        "On a machine without a GPU install Mesa's software driver: " +
        "apt-get install mesa-vulkan-drivers libvulkan1",
    );
  }
  const features: GPUFeatureName[] = [];
  const wantF16 = options.f16 !== false && adapter.features.has("shader-f16");
  if (wantF16) features.push("shader-f16");
  if (options.timestamps === true && adapter.features.has("timestamp-query")) {
    features.push("timestamp-query");
  }
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    label: "ps3",
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxTextureDimension2D: l.maxTextureDimension2D,
    },
  });
  const ai = adapter.info;
  const description = ai.description || ai.device || "unknown adapter";
  const lavapipe = /llvmpipe|lavapipe/i.test(description);
  const info: DeviceInfo = {
    description,
    vendor: ai.vendor,
    backend,
    isSoftware: ai.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/i.test(description),
    hasF16: wantF16,
    hasTimestamps: features.includes("timestamp-query"),
    trustTimestamps: features.includes("timestamp-query") && !lavapipe,
    maxBindingBytes: Math.min(device.limits.maxStorageBufferBindingSize, bindingCap),
    maxBufferBytes: Math.min(device.limits.maxBufferSize, bufferCap),
    bindingOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
    maxWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    maxTextureSide: device.limits.maxTextureDimension2D,
    maxLoopTrips: lavapipe ? 65535 : Infinity,
  };
  return { device, info };
}

/**
 * Returns the process-wide device, creating it on first use.
 *
 * @param options Feature preferences and lowered limits; only honoured by the first call.
 * @returns The device and its description.
 * @example
 * ```ts
 * const { info } = await acquireDevice();
 * console.log(info.description);
 * ```
 */
export function acquireDevice(
  options: AcquireOptions = {},
): Promise<{ device: GPUDevice; info: DeviceInfo }> {
  if (!current) {
    current = create(options);
    current.catch(() => current = null);
  }
  return current;
}
