/**
 * Matrix multiplication: batched, with transposes, a bias epilogue and accumulation, for any
 * sizes (tiles need not divide them). Tile sizes are a variant chosen per adapter.
 *
 * @module
 */

import matmulSrc from "../../wgsl/matmul.wgsl" with { type: "text" };
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { broadcastTo } from "./elementwise.ts";
import { sum, sumTo } from "./reduce.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** A is stored [..., K, M] and used transposed. */
  transA?: boolean | undefined;
  /** B is stored [..., N, K] and used transposed. */
  transB?: boolean | undefined;
  /** Bias [N] added to every row of the result. */
  bias?: Tensor | undefined;
}

/** A register-blocking variant: rows and columns (a multiple of 4) per thread. */
export interface MatmulTile {
  /** Rows of C per thread. */
  tm: number;
  /** Columns of C per thread (multiple of 4). */
  tn: number;
}

/** The tile used unless {@linkcode setMatmulTile} chose another. */
export const DEFAULT_TILE: MatmulTile = { tm: 8, tn: 8 };
let tile: MatmulTile = DEFAULT_TILE;

/**
 * Chooses the register tile of the matmul kernel (benchmarks compare variants).
 *
 * @param t The tile.
 */
export function setMatmulTile(t: MatmulTile): void {
  if (t.tn % 4 !== 0 || t.tm < 1 || t.tn < 4) {
    throw new RangeError(`Bad matmul tile ${t.tm}x${t.tn}`);
  }
  tile = t;
}

const kernels = new Map<string, Kernel>();

function gen(tm: number, tn: number, transA: boolean, transB: boolean, hasBias: boolean): Kernel {
  const key = `${tm}x${tn}:${transA}:${transB}:${hasBias}`;
  let k = kernels.get(key);
  if (k) return k;
  const tn4 = tn / 4;
  const setup: string[] = [];
  const inner: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < tm; i++) setup.push(`  let r${i} = min(row0 + ${i}u, lastR);`);
  for (let j = 0; j < tn; j++) setup.push(`  let c${j} = min(col0 + ${j}u, lastC);`);
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn4; j++) setup.push(`  var acc${i}_${j} = vec4<f32>(0.0);`);
  }
  for (let j = 0; j < tn4; j++) {
    const c = [0, 1, 2, 3].map((e) => `b_at(bBase, k, c${4 * j + e})`).join(", ");
    inner.push(`    let b${j} = vec4<f32>(${c});`);
  }
  for (let i = 0; i < tm; i++) {
    inner.push(`    let a${i} = vec4<f32>(a_at(aBase, r${i}, k));`);
    for (let j = 0; j < tn4; j++) inner.push(`    acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
  }
  for (let i = 0; i < tm; i++) {
    store.push(`  if (row0 + ${i}u < params.M) {`);
    for (let j = 0; j < tn; j++) {
      const col = `col0 + ${j}u`;
      const idx = `cBase + (row0 + ${i}u) * params.N + ${col}`;
      const biasTerm = hasBias ? ` + bias[${col}]` : "";
      store.push(
        `    if (${col} < params.N) { var v = acc${i}_${j >> 2}[${j & 3}]${biasTerm}; ` +
          `if (params.beta != 0.0) { v = v + params.beta * C[${idx}]; } C[${idx}] = v; }`,
      );
    }
    store.push("  }");
  }
  k = defineKernel({
    name: `matmul_${tm}x${tn}${transA ? "_tA" : ""}${transB ? "_tB" : ""}${hasBias ? "_bias" : ""}`,
    source: matmulSrc,
    bindings: ["read", "read", "read", "write"],
    params: [
      "M:u32",
      "N:u32",
      "K:u32",
      "batch:u32",
      "sa:u32",
      "sb:u32",
      "beta:f32",
      "k0:u32",
      "k1:u32",
    ],
    defines: {
      TM: tm,
      TN: tn,
      TRANS_A: transA ? "true" : "false",
      TRANS_B: transB ? "true" : "false",
      SETUP: setup.join("\n"),
      INNER: inner.join("\n"),
      STORE: store.join("\n"),
    },
  });
  kernels.set(key, k);
  return k;
}

/**
 * Records the raw kernel (no autograd): `out = op(a) @ op(b) (+ bias) (+ beta * out)`.
 *
 * @param a Left operand, stored [batch, M, K] (or [batch, K, M] with transA).
 * @param b Right operand, stored [batchB, K, N] (or [batchB, N, K]); batchB 1 = shared.
 * @param out Result [batch, M, N].
 * @param dims Sizes.
 * @param opts Transposes, bias and beta.
 */
export function matmulInto(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: { batch: number; m: number; n: number; k: number; sharedB: boolean },
  opts: { transA?: boolean; transB?: boolean; bias?: Tensor | undefined; beta?: number } = {},
): void {
  const { batch, m, n, k, sharedB } = dims;
  if (batch * m * n === 0) return;
  const rt = gpu();
  const threads = batch * Math.ceil(m / tile.tm) * Math.ceil(n / tile.tn);
  // K is summed in ranges short enough for the adapter's loop limit, accumulating (beta 1).
  const step = Math.min(k, Math.floor(rt.info.maxLoopTrips / 2)) || 1;
  for (let k0 = 0; k0 < Math.max(k, 1); k0 += step) {
    const bias = k0 === 0 ? opts.bias : undefined;
    const kern = gen(tile.tm, tile.tn, !!opts.transA, !!opts.transB, !!bias);
    rt.dispatch(
      kern,
      [a, b, bias ?? a, out],
      {
        M: m,
        N: n,
        K: k,
        batch,
        sa: m * k,
        sb: sharedB ? 0 : k * n,
        beta: k0 === 0 ? opts.beta ?? 0 : 1,
        k0,
        k1: Math.min(k, k0 + step),
      },
      grid(threads, 64),
    );
  }
}

/**
 * Matrix product with batching, transposes and an optional bias.
 *
 * `a` is [...batch, M, K] ([...batch, K, M] with transA); `b` is [K, N] (shared by every
 * batch entry) or [...batch, K, N] ([..., N, K] with transB). The result is [...batch, M, N].
 *
 * @param a Left operand.
 * @param b Right operand.
 * @param opts Transposes and bias.
 * @returns The product.
 * @example
 * ```ts
 * const y = matmul(x, w, { transB: true, bias: b }); // Linear: x @ w^T + b
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  a.assertAlive();
  b.assertAlive();
  const { transA = false, transB = false, bias } = opts;
  if (a.rank < 2 || b.rank < 2) {
    throw new RangeError(
      `matmul() needs rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((p, d) => p * d, 1);
  const sharedB = b.rank === 2;
  if (!sharedB && (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batchShape[i]))) {
    throw new RangeError(
      `matmul() batch dims differ: ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const m = transA ? a1 : a0, ka = transA ? a0 : a1;
  const kb = transB ? b1 : b0, n = transB ? b0 : b1;
  if (ka !== kb) {
    throw new RangeError(
      `matmul() inner dims differ: ${fmtShape(a.shape)}${transA ? "^T" : ""} @ ` +
        `${fmtShape(b.shape)}${transB ? "^T" : ""}`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n)) {
    throw new RangeError(`matmul() bias must be [${n}], got ${fmtShape(bias.shape)}`);
  }
  for (const t of [a, b, ...(bias ? [bias] : [])]) {
    if (t.dtype !== "f32") throw new TypeError(`matmul() takes f32 tensors, got ${t.describe()}`);
  }
  const out = empty([...batchShape, m, n]);
  // A shared right operand with an untransposed left one is one big matmul over all rows.
  const flat = sharedB && !transA;
  matmulInto(a, b, out, {
    batch: flat ? 1 : batch,
    m: flat ? batch * m : m,
    n,
    k: ka,
    sharedB,
  }, { transA, transB, bias });
  const inputs = bias ? [a, b, bias] : [a, b];
  record("matmul", inputs, [out], ([g]) => {
    const dC = g!;
    let dA: Tensor | null = null, dB: Tensor | null = null, dBias: Tensor | null = null;
    if (a.requiresGrad) {
      if (!transA) dA = matmul(dC, b, { transB: !transB });
      else {
        // dA = op(B) @ dC^T per batch entry; a shared b is broadcast first.
        const bb = sharedB && a.rank > 2 ? broadcastTo(b, [...batchShape, b0, b1]) : b;
        dA = matmul(bb, dC, { transA: transB, transB: true });
      }
    }
    if (b.requiresGrad) {
      if (sharedB && !transA) {
        const a2 = a.view([batch * m, ka]);
        const g2 = dC.view([batch * m, n]);
        dB = transB ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
      } else {
        const full = transB
          ? matmul(dC, a, { transA: true, transB: transA })
          : matmul(a, dC, { transA: !transA });
        dB = sumTo(full, b.shape);
      }
    }
    if (bias?.requiresGrad) {
      dBias = sum(dC, [...Array(dC.rank - 1).keys()]);
    }
    return bias ? [dA, dB, dBias] : [dA, dB];
  });
  return out;
}
