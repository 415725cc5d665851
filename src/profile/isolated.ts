/**
 * Kernel times without GPU timestamps: each distinct dispatch of a step (same kernel,
 * parameters, workgroups and binding sizes) is replayed on its own on zero-filled buffers
 * (and textures) of the same sizes, repeated until the host clock resolves it, and its time
 * per call kept.
 * Zero inputs can shorten data-dependent kernels (top-k, gathers); the figure is an estimate
 * of the kernel's cost at these shapes, not of this step's exact run.
 *
 * @module
 */

import type { Runtime } from "../gpu/runtime.ts";
import type { Kernel } from "../gpu/kernel.ts";
import { TEXEL_BYTES, TEXTURE_USAGE } from "../gpu/buffer_pool.ts";

/** A dispatch to replay: kernel, parameters, workgroups, binding sizes in bytes. */
export interface ReplayDispatch {
  /** The kernel. */
  kernel: Kernel;
  /** Its parameters. */
  params: Record<string, number>;
  /** Workgroup counts. */
  workgroups: [number, number, number];
  /** Byte size of each buffer binding, or a texture binding's [width, height] in texels. */
  sizes: (number | readonly [number, number])[];
}

/** Host time each measurement aims at, so that one sync's cost is small beside it. */
const TARGET_MS = 30;
/** Most repetitions of one dispatch per measurement. */
const MAX_REPS = 200;

/**
 * Times each distinct dispatch in isolation.
 *
 * @param rt The runtime (no observer attached).
 * @param dispatches The step's dispatches in order.
 * @returns Milliseconds per call of each dispatch, in the same order.
 */
export async function timeIsolated(
  rt: Runtime,
  dispatches: readonly ReplayDispatch[],
): Promise<number[]> {
  const overhead = await syncOverhead(rt);
  const bySignature = new Map<string, number>();
  const out: number[] = [];
  for (const d of dispatches) {
    const sig = signature(d);
    let ms = bySignature.get(sig);
    if (ms === undefined) {
      ms = await timeOne(rt, d, overhead);
      bySignature.set(sig, ms);
    }
    out.push(ms);
  }
  return out;
}

/** The key under which two dispatches cost the same. */
function signature(d: ReplayDispatch): string {
  const p = d.kernel.paramNames.map((n) => d.params[n]).join(",");
  return `${d.kernel.key}|${p}|${d.workgroups.join("x")}|${
    d.sizes.map((s) => typeof s === "number" ? s : s.join("x")).join(",")
  }`;
}

/** Milliseconds of an empty sync (the fixed cost subtracted from every measurement). */
async function syncOverhead(rt: Runtime): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await rt.sync();
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[1]!;
}

async function timeOne(rt: Runtime, d: ReplayDispatch, overhead: number): Promise<number> {
  const resources = d.sizes.map((size) =>
    typeof size === "number"
      ? rt.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        label: "profile replay",
      })
      : rt.device.createTexture({
        size: [...size],
        format: "rgba32float",
        usage: TEXTURE_USAGE,
        label: "profile replay",
      })
  );
  const bindings = resources.map((r) =>
    r instanceof GPUBuffer
      ? { buffer: r, byteOffset: 0, byteLength: r.size }
      : { texture: r, byteLength: r.width * r.height * TEXEL_BYTES }
  );
  const run = async (reps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) rt.dispatch(d.kernel, bindings, d.params, d.workgroups);
    await rt.sync();
    return performance.now() - t0;
  };
  try {
    await run(1); // warm: the pipeline is cached, the buffers touched
    const once = Math.max(await run(1) - overhead, 1e-3);
    const reps = Math.min(MAX_REPS, Math.max(1, Math.ceil(TARGET_MS / once)));
    if (reps === 1) return once;
    return Math.max(await run(reps) - overhead, 0) / reps;
  } finally {
    await rt.sync();
    for (const r of resources) r.destroy();
  }
}
