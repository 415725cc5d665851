/**
 * The device's two ceilings, measured in the same run as the kernels they judge: the FMA
 * rate (a kernel of independent register FMAs) and the memory bandwidth (a vec4 buffer
 * copy). A scalar (f32 per thread) copy is measured beside it: that is what elementwise
 * kernels that move one float per thread can reach.
 *
 * The copy is a reference, not a strict bound: on a CPU adapter every store first reads its
 * cache line (write-allocate), so a copy moves 3 bytes per 2 counted, and a kernel with more
 * reads per write (add: 2 reads, 1 write) can count a little above it.
 *
 * @module
 */

import { copy_bandwidth as copySrc, peak_fma as peakSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { keep } from "../autograd/scope.ts";
import { empty, fillInto } from "../ops/creation.ts";
import { type BenchRow, timeGpuMedian } from "./timing.ts";

/** Independent vec4 accumulators per thread of the FMA kernel (16 measured best on llvmpipe). */
const NACC = 16;
/** FMAs per accumulator per loop trip. */
const UNROLL = 4;

function peakKernel(): Kernel {
  const init: string[] = [], body: string[] = [];
  for (let i = 0; i < NACC; i++) init.push(`  var a${i} = vec4<f32>(f32(t) * ${i + 1}e-9);`);
  for (let u = 0; u < UNROLL; u++) {
    for (let i = 0; i < NACC; i++) body.push(`    a${i} = fma(a${i}, m, c);`);
  }
  return defineKernel({
    name: `peak_fma_${NACC}x${UNROLL}`,
    source: peakSrc,
    bindings: ["write"],
    params: ["threads:u32", "iters:u32", "m:f32", "c:f32"],
    defines: {
      INIT: init.join("\n"),
      BODY: body.join("\n"),
      SUM: [...Array(NACC).keys()].map((i) => `a${i}`).join(" + "),
    },
  });
}

function copyKernel(elem: "f32" | "vec4<f32>"): Kernel {
  return defineKernel({
    name: `copy_bandwidth_${elem === "f32" ? "f32" : "vec4"}`,
    source: copySrc,
    bindings: ["read", "write"],
    params: ["n:u32"],
    defines: { ELEM: elem },
  });
}

/** The ceilings and their rows. */
export interface Ceilings {
  /** Measured FMA rate, GFLOP/s (an FMA counts 2). */
  gflops: number;
  /** Measured copy bandwidth (bytes read + written), GB/s. */
  gbps: number;
  /** Table rows: peak FMA, vec4 copy, f32 copy. */
  rows: BenchRow[];
}

/**
 * Measures the FMA rate and the copy bandwidth of the current adapter.
 *
 * @param options Runs per measurement (the median is kept).
 * @returns The ceilings and their table rows.
 * @example
 * ```ts
 * const { gflops, gbps } = await measureCeilings();
 * console.log(`${gflops.toFixed(0)} GFLOP/s, ${gbps.toFixed(1)} GB/s`);
 * ```
 */
export async function measureCeilings(options: { runs?: number } = {}): Promise<Ceilings> {
  const rt = gpu();
  const runs = options.runs ?? 3;
  // Enough threads to fill a large GPU; on a CPU adapter a few per core-lane suffice.
  const threads = rt.info.isSoftware ? 64 * 512 : 64 * 16384;
  const iters = 512;
  const out = keep(empty([threads * 4]));
  const peak = peakKernel();
  const fmaMs = await timeGpuMedian(
    () => rt.dispatch(peak, [out], { threads, iters, m: 0.999, c: 0.001 }, grid(threads, 64)),
    { runs },
  );
  out.dispose();
  const flops = threads * iters * UNROLL * NACC * 4 * 2;
  const gflops = flops / fmaMs / 1e6;
  // 64 MiB each way: far past every cache, within one storage binding.
  const n = 16 << 20;
  const x = keep(empty([n])), y = keep(empty([n]));
  fillInto(x, 1);
  const copyMs = async (elem: "f32" | "vec4<f32>") => {
    const k = copyKernel(elem);
    const count = elem === "f32" ? n : n / 4;
    return await timeGpuMedian(
      () => rt.dispatch(k, [x, y], { n: count }, grid(count, 256)),
      { runs },
    );
  };
  const vecMs = await copyMs("vec4<f32>");
  const f32Ms = await copyMs("f32");
  x.dispose();
  y.dispose();
  const bytes = 2 * 4 * n;
  const gbps = bytes / vecMs / 1e6;
  return {
    gflops,
    gbps,
    rows: [
      {
        name: `ceiling: peak FMA (${threads} threads x ${NACC} vec4 chains)`,
        ms: fmaMs,
        rate: gflops,
        unit: "GFLOP/s",
        ceiling: 1,
      },
      {
        name: "ceiling: copy 64 MiB, vec4 per thread",
        ms: vecMs,
        rate: gbps,
        unit: "GB/s",
        ceiling: 1,
      },
      {
        name: "copy 64 MiB, f32 per thread",
        ms: f32Ms,
        rate: bytes / f32Ms / 1e6,
        unit: "GB/s",
        ceiling: vecMs / f32Ms,
        note: "what a one-float-per-thread elementwise kernel can reach",
      },
    ],
  };
}
