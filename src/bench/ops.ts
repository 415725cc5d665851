/**
 * Kernel benchmarks on the shapes of the real model: time and GFLOP/s or GB/s per op, with
 * the matmul compared in the same run against a plain JavaScript matmul.
 *
 * @module
 */

import { type BenchRow, timeGpu, timeHost } from "./timing.ts";
import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { keep } from "../autograd/scope.ts";
import { randn } from "../ops/creation.ts";
import { gelu } from "../ops/elementwise.ts";
import { matmul } from "../ops/matmul.ts";
import { sum } from "../ops/reduce.ts";
import { Rng } from "../util/rng.ts";

/** Options of {@linkcode benchOps}. */
export interface OpsBenchOptions {
  /** Use small shapes (for a quick run or a slow adapter). */
  quick?: boolean | undefined;
}

function persistent(shape: number[], seed: number): Tensor {
  return keep(randn(shape, seed));
}

/** A plain JS matmul (i-k-j loop order, Float32Array), the baseline of the ratio. */
function jsMatmul(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  m: number,
  n: number,
  k: number,
) {
  c.fill(0);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      const row = p * n;
      const out = i * n;
      for (let j = 0; j < n; j++) c[out + j]! += av * b[row + j]!;
    }
  }
}

/**
 * Runs the kernel benchmarks.
 *
 * @param options Shape preset.
 * @returns Result rows.
 */
export async function benchOps(options: OpsBenchOptions = {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const quick = options.quick ?? false;
  // Matmuls of the real model (SO400M: C 1152, MLP 4304; 729 low-res tokens, 2560 selected).
  const shapes: [string, number, number, number, boolean][] = quick
    ? [["square 256", 256, 256, 256, false], ["qkv 729x1152x3456 /4", 183, 864, 288, true]]
    : [
      ["square 1024", 1024, 1024, 1024, false],
      ["low-res qkv 729x3456x1152", 729, 3456, 1152, true],
      ["low-res mlp fc1 729x4304x1152", 729, 4304, 1152, true],
      ["high-res mlp fc2 2560x1152x4304", 2560, 1152, 4304, true],
    ];
  for (const [label, m, n, k, transB] of shapes) {
    const a = persistent([m, k], 1), b = persistent(transB ? [n, k] : [k, n], 2);
    const ms = await timeGpu(() => void matmul(a, b, { transB }));
    const flops = 2 * m * n * k;
    let note = "";
    if (m * n * k <= 1024 ** 3) {
      const rng = new Rng(3);
      const ha = new Float32Array(m * k).map(() => rng.uniform(-1, 1));
      const hb = new Float32Array(k * n).map(() => rng.uniform(-1, 1));
      const hc = new Float32Array(m * n);
      const jsMs = timeHost(() => jsMatmul(ha, hb, hc, m, n, k), 500);
      note = `plain JS ${(flops / jsMs / 1e6).toFixed(2)} GFLOP/s, ratio ${
        (jsMs / ms).toFixed(1)
      }x`;
    }
    rows.push({ name: `matmul ${label}`, ms, rate: flops / ms / 1e6, unit: "GFLOP/s", note });
    a.dispose();
    b.dispose();
  }
  // Memory-bound ops: bytes read + written.
  const n = quick ? 1 << 18 : 729 * 4304 * 4;
  const x = persistent([n], 4);
  const geluMs = await timeGpu(() => void gelu(x));
  rows.push({ name: `gelu [${n}]`, ms: geluMs, rate: 8 * n / geluMs / 1e6, unit: "GB/s" });
  const sumMs = await timeGpu(() => void sum(x));
  rows.push({ name: `sum [${n}]`, ms: sumMs, rate: 4 * n / sumMs / 1e6, unit: "GB/s" });
  x.dispose();
  await gpu().sync();
  return rows;
}
