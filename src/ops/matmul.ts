/**
 * Matrix multiplication: batched, with transposes, a bias epilogue and accumulation, for any
 * sizes (tiles need not divide them). Three kernel families, chosen per adapter and shape:
 *
 * - `vec4` (CPU adapters such as llvmpipe): a large register tile per thread, every load and
 *   store a vec4, no workgroup memory. llvmpipe executes a memory access lane by lane, so the
 *   cost of a load hardly depends on its width: the kernel reads both operands along K four
 *   floats at a time (A as [M, K], B as [N, K], the layout of a Linear's forward) and does as
 *   many FMAs per load as registers allow. Operands stored otherwise (the backward's dY @ W
 *   and dY^T @ X, or K not a multiple of 4) are first packed into that layout by one cheap
 *   pass: walking K down the rows of a row-major matrix was measured 1.5x slower than
 *   packing plus the along-K kernel. Needs N % 4 == 0 (vec4 rows of C).
 * - `scalar`: the same register tiling with scalar loads; any shape (the fallback of `vec4`).
 * - `tiled` / `tiled-f16` (real GPUs): workgroup-memory tiles with 8 x 8 register blocking
 *   per thread; `tiled-f16` stores the tiles as f16 (shader-f16) and accumulates in f32.
 *
 * @module
 */

import matmulSrc from "../../wgsl/matmul.wgsl" with { type: "text" };
import matmulVec4Src from "../../wgsl/matmul_vec4.wgsl" with { type: "text" };
import matmulTiledSrc from "../../wgsl/matmul_tiled.wgsl" with { type: "text" };
import matmulPackSrc from "../../wgsl/matmul_pack.wgsl" with { type: "text" };
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
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

/** A matmul kernel family (see the module documentation). */
export type MatmulVariant = "scalar" | "vec4" | "tiled" | "tiled-f16";

/** Every kernel family, for benchmarks and tests. */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ["scalar", "vec4", "tiled", "tiled-f16"];

/** Tile sizes of the kernel families. */
export interface MatmulTiles {
  /** Rows x columns of C per thread of `scalar` (columns a multiple of 4). */
  scalar: { tm: number; tn: number };
  /** Rows x columns of C per thread of `vec4` (both multiples of 4). */
  vec4: { tm: number; tn: number };
  /** Block of C per workgroup and K step of `tiled` (bm, bn multiples of 16). */
  tiled: { bm: number; bn: number; bk: number };
}

/** The tiles used unless {@linkcode setMatmulTiles} chose others. */
export const DEFAULT_TILES: Readonly<MatmulTiles> = {
  scalar: { tm: 8, tn: 8 },
  vec4: { tm: 12, tn: 16 },
  tiled: { bm: 128, bn: 128, bk: 8 },
};

let tiles: MatmulTiles = structuredClone(DEFAULT_TILES);
let forced: MatmulVariant | null = null;

/**
 * Chooses the kernel family for every later matmul (benchmarks and tests compare them);
 * "auto" restores the per-adapter choice. A family that cannot run a shape (`vec4` needs N
 * a multiple of 4; `tiled-f16` needs shader-f16) falls back (to `scalar`; to `tiled`).
 *
 * @param variant The family, or "auto".
 */
export function setMatmulVariant(variant: MatmulVariant | "auto"): void {
  if (variant !== "auto" && !MATMUL_VARIANTS.includes(variant)) {
    throw new RangeError(`Unknown matmul variant "${variant}"`);
  }
  forced = variant === "auto" ? null : variant;
}

/**
 * Changes tile sizes (benchmarks tune them per adapter).
 *
 * @param t The tiles to change.
 */
export function setMatmulTiles(t: Partial<MatmulTiles>): void {
  const next = { ...tiles, ...t };
  const { scalar, vec4, tiled } = next;
  if (scalar.tn % 4 !== 0 || scalar.tm < 1 || scalar.tn < 4) {
    throw new RangeError(`Bad scalar matmul tile ${scalar.tm}x${scalar.tn}`);
  }
  if (vec4.tm % 4 !== 0 || vec4.tn % 4 !== 0 || vec4.tm < 4 || vec4.tn < 4) {
    throw new RangeError(`Bad vec4 matmul tile ${vec4.tm}x${vec4.tn}: both multiples of 4`);
  }
  const wg = (tiled.bm / 8) * (tiled.bn / 8);
  if (
    tiled.bm % 16 !== 0 || tiled.bn % 16 !== 0 || tiled.bk < 1 || wg > 256 ||
    (tiled.bm * tiled.bk / 4) % wg !== 0 || (tiled.bn * tiled.bk / 4) % wg !== 0
  ) {
    throw new RangeError(
      `Bad tiled matmul block ${tiled.bm}x${tiled.bn}x${tiled.bk}: bm, bn multiples of 16, ` +
        "at most 256 threads, and each tile a whole number of vec4s per thread",
    );
  }
  tiles = next;
}

/** Sizes of one matmul dispatch series. */
export interface MatmulDims {
  /** Batch entries. */
  batch: number;
  /** Rows of C. */
  m: number;
  /** Columns of C. */
  n: number;
  /** Inner size. */
  k: number;
  /** Whether B is shared by every batch entry (batch stride 0). */
  sharedB: boolean;
}

/**
 * The kernel family a matmul of these sizes runs with on the current adapter.
 *
 * @param dims Sizes (N decides whether `vec4` can run).
 * @returns The family.
 */
export function matmulVariant(dims: Pick<MatmulDims, "m" | "n" | "k">): MatmulVariant {
  const info = gpu().info;
  const wanted = forced ?? (info.isSoftware ? "vec4" : "tiled");
  // The vec4 kernel stores C as vec4 rows.
  if (wanted === "vec4" && dims.n % 4 !== 0) return "scalar";
  if (wanted === "tiled-f16" && !info.hasF16) return "tiled";
  return wanted;
}

const kernels = new KernelCache();

const PARAMS = [
  "M:u32",
  "N:u32",
  "K:u32",
  "batch:u32",
  "sa:u32",
  "sb:u32",
  "beta:f32",
  "k0:u32",
  "k1:u32",
];
const BINDINGS = ["read", "read", "read", "write"] as const;

/** The scalar-load register-tiled kernel (any shape). */
function scalarKernel(tm: number, tn: number, transA: boolean, transB: boolean, hasBias: boolean) {
  return kernels.get(`scalar:${tm}x${tn}:${transA}:${transB}:${hasBias}`, () => {
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
      for (let j = 0; j < tn4; j++) {
        inner.push(`    acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
      }
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
    return defineKernel({
      name: `matmul_${tm}x${tn}${transA ? "_tA" : ""}${transB ? "_tB" : ""}${
        hasBias ? "_bias" : ""
      }`,
      source: matmulSrc,
      bindings: BINDINGS,
      params: PARAMS,
      defines: {
        TM: tm,
        TN: tn,
        TRANS_A: String(transA),
        TRANS_B: String(transB),
        SETUP: setup.join("\n"),
        INNER: inner.join("\n"),
        STORE: store.join("\n"),
      },
    });
  });
}

/**
 * The vec4 register-tiled kernel, on operands stored along K (A [M, K], B [N, K], K a
 * multiple of 4; {@linkcode packed} makes them so): `a{i}` = row i, k..k+3 and `b{j}` =
 * column j, k..k+3; each K step of 4 is 4 * tm * tn/4 vec4 FMAs.
 */
function vec4Kernel(tm: number, tn: number, hasBias: boolean) {
  return kernels.get(`vec4:${tm}x${tn}:${hasBias}`, () => {
    const tn4 = tn / 4;
    const setup: string[] = [];
    for (let i = 0; i < tm; i++) {
      setup.push(`let ra${i} = (aBase + min(row0 + ${i}u, M - 1u) * K) / 4u;`);
    }
    for (let j = 0; j < tn; j++) {
      setup.push(`let cb${j} = (bBase + min(col0 + ${j}u, N - 1u) * K) / 4u;`);
    }
    for (let i = 0; i < tm; i++) {
      for (let j = 0; j < tn4; j++) setup.push(`var acc${i}_${j} = vec4<f32>(0.0);`);
    }
    const body = ["let kq = k / 4u;"];
    for (let i = 0; i < tm; i++) body.push(`let a${i} = A[ra${i} + kq];`);
    for (let j = 0; j < tn; j++) body.push(`let b${j} = B[cb${j} + kq];`);
    for (let kk = 0; kk < 4; kk++) {
      for (let i = 0; i < tm; i++) {
        for (let j = 0; j < tn4; j++) {
          const bv = [0, 1, 2, 3].map((e) => `b${4 * j + e}[${kk}]`).join(", ");
          body.push(`acc${i}_${j} = fma(vec4<f32>(a${i}[${kk}]), vec4<f32>(${bv}), acc${i}_${j});`);
        }
      }
    }
    const store: string[] = [];
    for (let i = 0; i < tm; i++) {
      store.push(`  if (row0 + ${i}u < M) {`);
      for (let j = 0; j < tn4; j++) {
        const col = `col0 + ${4 * j}u`;
        const idx = `(cBase + (row0 + ${i}u) * N + ${col}) / 4u`;
        const biasTerm = hasBias ? ` + bias[(${col}) / 4u]` : "";
        store.push(
          `    if (${col} < N) { var v = acc${i}_${j}${biasTerm}; ` +
            `if (params.beta != 0.0) { v = v + params.beta * C[${idx}]; } C[${idx}] = v; }`,
        );
      }
      store.push("  }");
    }
    return defineKernel({
      name: `matmul_vec4_${tm}x${tn}${hasBias ? "_bias" : ""}`,
      source: matmulVec4Src,
      bindings: BINDINGS,
      params: PARAMS,
      defines: {
        TM: tm,
        TN: tn,
        SETUP: setup.map((l) => "  " + l).join("\n"),
        MAIN: body.map((l) => "    " + l).join("\n"),
        STORE: store.join("\n"),
      },
    });
  });
}

/** The operand packing kernel of the vec4 family (see wgsl/matmul_pack.wgsl). */
function packKernel(trans: boolean) {
  return kernels.get(`pack:${trans}`, () =>
    defineKernel({
      name: `matmul_pack${trans ? "_transposed" : ""}`,
      source: matmulPackSrc,
      bindings: ["read", "write"],
      params: ["R:u32", "K:u32", "kp:u32", "batch:u32", "stride:u32"],
      defines: { TRANS: String(trans) },
    }));
}

/**
 * An operand as rows of Kp floats along K (Kp = K rounded up to 4): the tensor itself when
 * it is stored so already, else a packed copy (the caller disposes it).
 */
function packed(
  t: Tensor,
  dims: { rows: number; k: number; batch: number; trans: boolean },
): { t: Tensor; temp: boolean } {
  const { rows, k, batch, trans } = dims;
  if (!trans && k % 4 === 0) return { t, temp: false };
  const kp = Math.ceil(k / 4) * 4;
  const out = empty([batch, rows, kp]);
  const threads = batch * Math.ceil(rows / 4) * (kp / 4);
  gpu().dispatch(
    packKernel(trans),
    [t, out],
    { R: rows, K: k, kp, batch, stride: rows * k },
    grid(threads, 64),
  );
  return { t: out, temp: true };
}

/** The workgroup-tiled kernel (see wgsl/matmul_tiled.wgsl for the thread layout). */
function tiledKernel(
  t: MatmulTiles["tiled"],
  f16: boolean,
  transA: boolean,
  transB: boolean,
  hasBias: boolean,
) {
  const { bm, bn, bk } = t;
  const key = `tiled:${bm}x${bn}x${bk}:${f16}:${transA}:${transB}:${hasBias}`;
  return kernels.get(key, () => {
    const tx = bn / 8, wg = (bm / 8) * tx;
    const sdt = f16 ? "f16" : "f32";
    const bm4 = bm / 4, bn4 = bn / 4;
    const load: string[] = [];
    // Tile element groups (kk, q) of 4 consecutive rows / columns; the thread index runs
    // fastest along the operand's contiguous axis, so neighbouring threads read neighbours.
    const stage = (
      tile: "As" | "Bs",
      groups: number,
      q4: number,
      alongK: boolean,
      at: (kk: string, x: string) => string,
    ) => {
      for (let r = 0; r < groups / wg; r++) {
        const g = `(tid + ${r * wg}u)`;
        const kk = alongK ? `${g} % ${bk}u` : `${g} / ${q4}u`;
        const q = alongK ? `${g} / ${bk}u` : `${g} % ${q4}u`;
        load.push(`    {`, `      let kk = ${kk};`, `      let q = ${q};`);
        const els = [0, 1, 2, 3].map((e) => at("kt + kk", `4u * q + ${e}u`));
        load.push(`      ${tile}[kk * ${q4}u + q] = vec4<${sdt}>(vec4<f32>(${els.join(", ")}));`);
        load.push(`    }`);
      }
    };
    stage("As", bm * bk / 4, bm4, !transA, (k, x) => `a_at(aBase, m0 + ${x}, ${k})`);
    stage("Bs", bn * bk / 4, bn4, transB, (k, x) => `b_at(bBase, ${k}, n0 + ${x})`);
    const zero: string[] = [];
    for (let r = 0; r < 8; r++) {
      for (let g = 0; g < 2; g++) zero.push(`  var acc${r}_${g} = vec4<f32>(0.0);`);
    }
    const compute: string[] = [];
    for (let kk = 0; kk < bk; kk++) {
      compute.push(`    {`);
      compute.push(`      let a0 = vec4<f32>(As[${kk * bm4}u + ty]);`);
      compute.push(`      let a1 = vec4<f32>(As[${kk * bm4 + bm / 8}u + ty]);`);
      compute.push(`      let b0 = vec4<f32>(Bs[${kk * bn4}u + tx]);`);
      compute.push(`      let b1 = vec4<f32>(Bs[${kk * bn4 + bn / 8}u + tx]);`);
      for (let r = 0; r < 8; r++) {
        const a = `vec4<f32>(a${r >> 2}[${r & 3}])`;
        compute.push(`      acc${r}_0 = fma(${a}, b0, acc${r}_0);`);
        compute.push(`      acc${r}_1 = fma(${a}, b1, acc${r}_1);`);
      }
      compute.push(`    }`);
    }
    const store: string[] = [];
    for (let r = 0; r < 8; r++) {
      const row = `m0 + ${r < 4 ? `ty * 4u + ${r}u` : `${bm / 2 + r - 4}u + ty * 4u`}`;
      store.push(`  {`, `    let row = ${row};`, `    if (row < params.M) {`);
      for (let g = 0; g < 2; g++) {
        for (let e = 0; e < 4; e++) {
          const col = `n0 + ${g * bn / 2 + e}u + tx * 4u`;
          const idx = `cBase + row * params.N + col`;
          const biasTerm = hasBias ? " + bias[col]" : "";
          store.push(
            `      { let col = ${col}; if (col < params.N) { var v = acc${r}_${g}[${e}]${biasTerm}; ` +
              `if (params.beta != 0.0) { v = v + params.beta * C[${idx}]; } C[${idx}] = v; } }`,
          );
        }
      }
      store.push(`    }`, `  }`);
    }
    return defineKernel({
      name: `matmul_tiled${f16 ? "_f16" : ""}_${bm}x${bn}x${bk}${transA ? "_tA" : ""}${
        transB ? "_tB" : ""
      }${hasBias ? "_bias" : ""}`,
      source: matmulTiledSrc,
      bindings: BINDINGS,
      params: PARAMS,
      defines: {
        ENABLE: f16 ? "enable f16;" : "",
        SDT: sdt,
        AS_LEN: bm4 * bk,
        BS_LEN: bn4 * bk,
        WG: wg,
        BM: bm,
        BN: bn,
        BK: bk,
        TX: tx,
        TRANS_A: String(transA),
        TRANS_B: String(transB),
        ZERO: zero.join("\n"),
        LOAD_TILES: load.join("\n"),
        COMPUTE: compute.join("\n"),
        STORE: store.join("\n"),
      },
    });
  });
}

/**
 * Records the raw kernel (no autograd): `out = op(a) @ op(b) (+ bias) (+ beta * out)`, with
 * the family {@linkcode matmulVariant} picks (for `vec4`, after packing the operands that are
 * not stored along K; the packed copies are freed once recorded).
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
  dims: MatmulDims,
  opts: { transA?: boolean; transB?: boolean; bias?: Tensor | undefined; beta?: number } = {},
): void {
  const { batch, m, n, k, sharedB } = dims;
  if (batch * m * n === 0) return;
  const rt = gpu();
  const variant = matmulVariant(dims);
  let A = a, B = b, K = k, transA = !!opts.transA, transB = !!opts.transB;
  const temps: Tensor[] = [];
  if (variant === "vec4") {
    // The vec4 kernel reads both operands along K: pack those stored otherwise.
    const pa = packed(a, { rows: m, k, batch, trans: transA });
    const pb = packed(b, { rows: n, k, batch: sharedB ? 1 : batch, trans: !transB });
    for (const p of [pa, pb]) if (p.temp) temps.push(p.t);
    A = pa.t;
    B = pb.t;
    K = Math.ceil(k / 4) * 4;
    transA = false;
    transB = true;
  }
  const limit = Math.floor(rt.info.maxLoopTrips / 2);
  // K is summed in ranges short enough for the adapter's loop limit, accumulating (beta 1).
  let step: number, workgroups: [number, number];
  let make: (hasBias: boolean) => Kernel;
  if (variant === "vec4") {
    const { tm, tn } = tiles.vec4;
    step = 4 * limit;
    workgroups = grid(batch * Math.ceil(m / tm) * Math.ceil(n / tn), 64);
    make = (hasBias) => vec4Kernel(tm, tn, hasBias);
  } else if (variant === "scalar") {
    const { tm, tn } = tiles.scalar;
    step = limit;
    workgroups = grid(batch * Math.ceil(m / tm) * Math.ceil(n / tn), 64);
    make = (hasBias) => scalarKernel(tm, tn, transA, transB, hasBias);
  } else {
    const t = tiles.tiled;
    step = t.bk * limit;
    workgroups = grid(batch * Math.ceil(m / t.bm) * Math.ceil(n / t.bn), 1);
    make = (hasBias) => tiledKernel(t, variant === "tiled-f16", transA, transB, hasBias);
  }
  step = Math.min(K, step) || 1;
  for (let k0 = 0; k0 < Math.max(K, 1); k0 += step) {
    const bias = k0 === 0 ? opts.bias : undefined;
    rt.dispatch(
      make(!!bias),
      [A, B, bias ?? A, out],
      {
        M: m,
        N: n,
        K,
        batch,
        sa: m * K,
        sb: sharedB ? 0 : K * n,
        beta: k0 === 0 ? opts.beta ?? 0 : 1,
        k0,
        k1: Math.min(K, k0 + step),
      },
      workgroups,
    );
  }
  for (const t of temps) t.dispose();
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
