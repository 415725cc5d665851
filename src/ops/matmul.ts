/**
 * Matrix multiplication: batched, with transposes, fused epilogues (bias, then a residual add
 * or a GELU) and accumulation, for any sizes (tiles need not divide them). Four kernel
 * families, chosen per adapter and shape:
 *
 * - `texture` (CPU adapters such as llvmpipe): the `vec4` kernel reading both operands from
 *   rgba32float textures, which one pass per operand fills from any layout (a transpose, K
 *   padded to 4). llvmpipe fetches a texel for all SIMD lanes at once, where a storage load
 *   is a loop over the lanes with a branch each: measured with the packing included, 1.3-2.1x
 *   `vec4`'s speed at the model's shapes, with the same bits. Picked from M, N, K >= 256
 *   ({@linkcode TEXTURE_MIN_SIDE}); operands taller or wider than the device's largest
 *   texture run as `vec4`.
 * - `vec4`: a large register tile per thread, every load and store a vec4, no workgroup
 *   memory. llvmpipe executes a memory access lane by lane, so the
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
 * Every family generates its store from one epilogue description (`storeC`): the value is
 * the sum, plus the bias, plus `beta * C` (long K is summed in several dispatches that
 * accumulate), plus the residual, then the activation, which evaluates the elementwise op's
 * own WGSL snippet. The additions come in the order of the separate ops, so a fused residual
 * equals `add()` after the matmul bit for bit, and a fused GELU equals `gelu()` after it
 * wherever the adapter compiles the snippet alike in both kernels (llvmpipe does).
 *
 * @module
 */

import {
  matmul as matmulSrc,
  matmul_pack as matmulPackSrc,
  matmul_tiled as matmulTiledSrc,
  matmul_vec4 as matmulVec4Src,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { type Binding, gpu, type GpuTextureBinding } from "../gpu/runtime.ts";
import { isGradEnabled, record } from "../autograd/tape.ts";
import { DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { broadcastTo, sumTo, unaryBackward, type UnaryOp, unaryWgsl } from "./elementwise.ts";
import { cast } from "./cast.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";
import { runWeightSplit, weightSplit } from "./matmul_weight.ts";
import { releaseTextures, textureFits, toTexture } from "./texture.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** A is stored [..., K, M] and used transposed. */
  transA?: boolean | undefined;
  /** B is stored [..., N, K] and used transposed. */
  transB?: boolean | undefined;
  /** Bias [N] added to every row of the result. */
  bias?: Tensor | undefined;
  /**
   * A tensor of the result's shape added to it in the same pass (a residual connection:
   * `residual + a @ b + bias`, bit for bit what `add(residual, matmul(a, b))` gives). Not
   * with `activation`.
   */
  residual?: Tensor | undefined;
  /** An activation applied to `a @ b + bias` in the same pass (see {@linkcode matmul}). */
  activation?: MatmulActivation | undefined;
  /** The kernel family and tiles (default: the adapter's choice); the backward uses the same. */
  kernel?: MatmulKernel | undefined;
  /**
   * Storage of the result (default: f16 when `a` or `b` is an f16 activation, else f32). The
   * sum accumulates in f32 either way; the backward stores each gradient in its operand's
   * dtype (an f32 weight's gradient is f32, summed in f32 over f16 activations).
   */
  dtype?: FloatDType | undefined;
}

/**
 * A matmul's kernel choice, held by whoever runs the op (a model's precision, a benchmark,
 * a test): the family, or "auto" for the adapter's, and tile sizes over the defaults. A
 * family that cannot run a shape falls back (`vec4` needs N a multiple of 4: `scalar`;
 * `tiled-f16` needs shader-f16: `tiled`).
 */
export interface MatmulKernel {
  /** Kernel family (default "auto"). */
  variant?: MatmulVariant | "auto" | undefined;
  /** Tile sizes that differ from {@linkcode DEFAULT_TILES}. */
  tiles?: Partial<MatmulTiles> | undefined;
}

/** Activations a matmul can apply in its store: exact (erf) GELU or its tanh approximation. */
export type MatmulActivation = "gelu" | "gelu_tanh";

/** The elementwise op of each activation (the same snippet, forward and derivative). */
const ACTIVATION_OP: Record<MatmulActivation, UnaryOp> = { gelu: "gelu", gelu_tanh: "geluTanh" };

/** A matmul kernel family (see the module documentation). */
export type MatmulVariant = "scalar" | "vec4" | "texture" | "tiled" | "tiled-f16";

/** Every kernel family, for benchmarks and tests. */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  "scalar",
  "vec4",
  "texture",
  "tiled",
  "tiled-f16",
];

/** Tile sizes of the kernel families. */
export interface MatmulTiles {
  /** Rows x columns of C per thread of `scalar` (columns a multiple of 4). */
  scalar: { tm: number; tn: number };
  /** Rows x columns of C per thread of `vec4` (both multiples of 4). */
  vec4: { tm: number; tn: number };
  /** Block of C per workgroup and K step of `tiled` (bm, bn multiples of 16). */
  tiled: { bm: number; bn: number; bk: number };
}

/** The tiles used unless a {@linkcode MatmulKernel} changes them. */
export const DEFAULT_TILES: Readonly<MatmulTiles> = {
  scalar: { tm: 8, tn: 8 },
  vec4: { tm: 12, tn: 16 },
  tiled: { bm: 128, bn: 128, bk: 8 },
};

/**
 * The tiles of a kernel choice: the defaults with its changes, validated.
 *
 * @param t Changes to the default tiles.
 * @returns The tiles.
 */
export function matmulTiles(t: Partial<MatmulTiles> = {}): MatmulTiles {
  const next = { ...DEFAULT_TILES, ...t };
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
  return next;
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
 * The smallest M, N and K for which "auto" picks `texture` over `vec4` on CPU adapters (each
 * packed element is then read by at least this many FMAs). Measured on llvmpipe, each pair in
 * one run: the packing included, `texture` takes 1/1.5 of the time at the model's shapes
 * (729x3456x1152 in all three layouts of a Linear), 1/0.9-1/1.3 at the tiny config's
 * (widths 64-256, 3136 rows), where the tiny step as a whole gains nothing (paired median
 * 1.03x over 12 steps).
 */
export const TEXTURE_MIN_SIDE = 256;

/**
 * The kernel family a matmul of these sizes runs with on the current adapter.
 *
 * @param dims Sizes (N decides whether `vec4` and `texture` can run; batch, default 1, and
 *   sharedB, default true, whether the operands fit the device's largest texture).
 * @param wanted The family asked for (default "auto": on CPU adapters `texture` when M, N
 *   and K are all at least {@linkcode TEXTURE_MIN_SIDE}, `vec4` below; `tiled` else).
 * @returns The family.
 */
export function matmulVariant(
  dims: Pick<MatmulDims, "m" | "n" | "k"> & Partial<Pick<MatmulDims, "batch" | "sharedB">>,
  wanted: MatmulVariant | "auto" = "auto",
): MatmulVariant {
  if (wanted !== "auto" && !MATMUL_VARIANTS.includes(wanted)) {
    throw new RangeError(`Unknown matmul variant "${wanted}"`);
  }
  const info = gpu().info;
  const cpu = Math.min(dims.m, dims.n, dims.k) >= TEXTURE_MIN_SIDE ? "texture" : "vec4";
  const v = wanted === "auto" ? (info.isSoftware ? cpu : "tiled") : wanted;
  // The vec4 and texture kernels store C as vec4 rows.
  if ((v === "vec4" || v === "texture") && dims.n % 4 !== 0) return "scalar";
  if (v === "texture" && !operandsFitTextures(dims)) return "vec4";
  if (v === "tiled-f16" && !info.hasF16) return "tiled";
  return v;
}

/** Whether both operands of a `texture` matmul fit the device's largest texture. */
function operandsFitTextures(
  dims: Pick<MatmulDims, "m" | "n" | "k"> & Partial<Pick<MatmulDims, "batch" | "sharedB">>,
): boolean {
  const batch = dims.batch ?? 1;
  const batchB = dims.sharedB ?? true ? 1 : batch;
  return textureFits(batch * dims.m, dims.k) && textureFits(batchB * dims.n, dims.k);
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

/**
 * Storage types of a matmul's bindings (f16 activations, issue 14): the operands A and B,
 * the result C, the residual R and the saved pre-activation Z (laid out as C). The bias is
 * an f32 parameter. Loads widen to f32, every sum accumulates in f32, stores round to the
 * binding's type; each kernel family takes them as per-binding defines (`{{TA}}`, `{{TB}}`,
 * `{{TC}}` in its source, R and Z in the generated epilogue).
 */
interface MatmulTypes {
  a: FloatDType;
  b: FloatDType;
  c: FloatDType;
  r: FloatDType;
}

/** All-f32 bindings: the f32 path, whose kernels keep their names and text. */
const F32_TYPES: MatmulTypes = { a: "f32", b: "f32", c: "f32", r: "f32" };

/** Kernel-name suffix of the binding types (empty for all-f32). */
function typesTag(t: MatmulTypes): string {
  const all = [t.a, t.b, t.c, t.r];
  return all.includes("f16") ? `_${all.map((d) => (d === "f16" ? "h" : "s")).join("")}` : "";
}

/** The per-binding type defines of a kernel (`ENABLE` included). */
function typeDefines(t: MatmulTypes) {
  return { TA: t.a, TB: t.b, TC: t.c, ENABLE: enableF16(t.a, t.b, t.c, t.r) };
}

/** What one dispatch's store adds to the sum (long K: the first dispatch adds the bias, the
 * last one the residual and the activation). */
interface Epilogue {
  /** Storage types of the bindings. */
  types: MatmulTypes;
  /** Add bias[col]. */
  bias: boolean;
  /** Add R[idx] (after `beta * C`). */
  residual: boolean;
  /** Store act(v) instead of v. */
  act: MatmulActivation | null;
  /** Also store v, the activation's input, to Z (for the backward). */
  saveZ: boolean;
}

/** Kernel cache key and name suffix of an epilogue. */
function epilogueTag(e: Epilogue): string {
  return `${e.bias ? "_bias" : ""}${e.residual ? "_res" : ""}${e.act ? `_${e.act}` : ""}${
    e.saveZ ? "_z" : ""
  }${typesTag(e.types)}`;
}

/**
 * The defines of an epilogue (bindings after C, the activation function, the binding of
 * params) and the storage bindings of its kernel, with the binding types. `vec`: C, R and Z
 * are arrays of vec4s.
 */
function epilogueDefines(e: Epilogue, vec: boolean) {
  const elem = (t: FloatDType) => (vec ? `vec4<${t}>` : t);
  const bindings: ("read" | "write")[] = ["read", "read", "read", "write"];
  const decls: string[] = [];
  if (e.residual) {
    decls.push(
      `@group(0) @binding(${bindings.length}) var<storage, read> R: array<${elem(e.types.r)}>;`,
    );
    bindings.push("read");
  }
  if (e.saveZ) {
    decls.push(
      `@group(0) @binding(${bindings.length}) var<storage, read_write> Z: array<${
        elem(e.types.c)
      }>;`,
    );
    bindings.push("write");
  }
  if (e.act) {
    decls.push(unaryWgsl(ACTIVATION_OP[e.act], "act"));
    if (vec) {
      decls.push(
        "fn act4(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(act(v.x), act(v.y), act(v.z), " +
          "act(v.w)); }",
      );
    }
  }
  return {
    bindings,
    defines: {
      EPILOGUE: decls.join("\n"),
      PARAMS_BINDING: bindings.length,
      ...typeDefines(e.types),
    },
  };
}

/**
 * The store of one element (or vec4) of C: `v = acc + bias; v += beta * C; v += R; Z = v;
 * C = act(v)`, each step where the epilogue has it. The order of the additions is that of
 * the separate ops (matmul with bias, then the residual add), so the results are equal.
 * Loads of C and R widen to f32 and stores round to the binding's type (conversions that
 * vanish when it is f32).
 */
function storeC(
  e: Epilogue,
  at: { acc: string; bias: string; idx: string; vec: boolean },
): string {
  const f = at.vec ? "vec4<f32>" : "f32";
  const to = (t: FloatDType) => (at.vec ? `vec4<${t}>` : t);
  const { c } = e.types;
  let s = `var v = ${at.acc}${e.bias ? ` + bias[${at.bias}]` : ""}; ` +
    `if (params.beta != 0.0) { v = v + params.beta * ${f}(C[${at.idx}]); }`;
  if (e.residual) s += ` v = v + ${f}(R[${at.idx}]);`;
  if (e.saveZ) s += ` Z[${at.idx}] = ${to(c)}(v);`;
  return `${s} C[${at.idx}] = ${to(c)}(${e.act ? (at.vec ? "act4(v)" : "act(v)") : "v"});`;
}

/** The scalar-load register-tiled kernel (any shape). */
function scalarKernel(tm: number, tn: number, transA: boolean, transB: boolean, e: Epilogue) {
  const tag = epilogueTag(e);
  return kernels.get(`scalar:${tm}x${tn}:${transA}:${transB}:${tag}`, () => {
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
        const acc = `acc${i}_${j >> 2}[${j & 3}]`;
        store.push(
          `    if (${col} < params.N) { ${storeC(e, { acc, bias: col, idx, vec: false })} }`,
        );
      }
      store.push("  }");
    }
    const epi = epilogueDefines(e, false);
    return defineKernel({
      name: `matmul_${tm}x${tn}${transA ? "_tA" : ""}${transB ? "_tB" : ""}${tag}`,
      source: matmulSrc,
      bindings: epi.bindings,
      params: PARAMS,
      defines: {
        ...epi.defines,
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
function vec4Kernel(tm: number, tn: number, e: Epilogue, texture: boolean) {
  const tag = epilogueTag(e);
  const family = texture ? "texture" : "vec4";
  return kernels.get(`${family}:${tm}x${tn}:${tag}`, () => {
    const tn4 = tn / 4;
    const setup: string[] = [];
    const body = ["let kq = k / 4u;"];
    if (texture) {
      // Texture rows: A's batch entries stacked; B's too unless shared (sb = 0).
      setup.push("let aRow = bi * M;", "let bRow = select(bi * N, 0u, params.sb == 0u);");
      for (let i = 0; i < tm; i++) setup.push(`let ra${i} = aRow + min(row0 + ${i}u, M - 1u);`);
      for (let j = 0; j < tn; j++) setup.push(`let cb${j} = bRow + min(col0 + ${j}u, N - 1u);`);
      for (let i = 0; i < tm; i++) body.push(`let a${i} = textureLoad(A, vec2u(kq, ra${i}), 0);`);
      for (let j = 0; j < tn; j++) body.push(`let b${j} = textureLoad(B, vec2u(kq, cb${j}), 0);`);
    } else {
      for (let i = 0; i < tm; i++) {
        setup.push(`let ra${i} = (aBase + min(row0 + ${i}u, M - 1u) * K) / 4u;`);
      }
      for (let j = 0; j < tn; j++) {
        setup.push(`let cb${j} = (bBase + min(col0 + ${j}u, N - 1u) * K) / 4u;`);
      }
      for (let i = 0; i < tm; i++) body.push(`let a${i} = vec4<f32>(A[ra${i} + kq]);`);
      for (let j = 0; j < tn; j++) body.push(`let b${j} = vec4<f32>(B[cb${j} + kq]);`);
    }
    for (let i = 0; i < tm; i++) {
      for (let j = 0; j < tn4; j++) setup.push(`var acc${i}_${j} = vec4<f32>(0.0);`);
    }
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
        const at = { acc: `acc${i}_${j}`, bias: `(${col}) / 4u`, idx, vec: true };
        store.push(`    if (${col} < N) { ${storeC(e, at)} }`);
      }
      store.push("  }");
    }
    const epi = epilogueDefines(e, true);
    const operands = texture ? ["var A: texture_2d<f32>;", "var B: texture_2d<f32>;"] : [
      `var<storage, read> A: array<vec4<${e.types.a}>>;`,
      `var<storage, read> B: array<vec4<${e.types.b}>>;`,
    ];
    return defineKernel({
      name: `matmul_${family}_${tm}x${tn}${tag}`,
      source: matmulVec4Src,
      bindings: texture ? ["texture", "texture", ...epi.bindings.slice(2)] : epi.bindings,
      params: PARAMS,
      defines: {
        ...epi.defines,
        OPERANDS: operands.map((d, i) => `@group(0) @binding(${i}) ${d}`).join("\n"),
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
function packKernel(trans: boolean, dtype: FloatDType) {
  const tag = `${trans ? "_transposed" : ""}${dtype === "f16" ? "_f16" : ""}`;
  return kernels.get(`pack${tag}`, () =>
    defineKernel({
      name: `matmul_pack${tag}`,
      source: matmulPackSrc,
      bindings: ["read", "write"],
      params: ["R:u32", "K:u32", "kp:u32", "batch:u32", "stride:u32"],
      defines: { TRANS: String(trans), T: dtype, ENABLE: enableF16(dtype) },
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
  const dtype = t.dtype as FloatDType;
  const out = empty([batch, rows, kp], dtype);
  const threads = batch * Math.ceil(rows / 4) * (kp / 4);
  gpu().dispatch(
    packKernel(trans, dtype),
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
  e: Epilogue,
) {
  const { bm, bn, bk } = t;
  const tag = epilogueTag(e);
  const key = `tiled:${bm}x${bn}x${bk}:${f16}:${transA}:${transB}:${tag}`;
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
        // a_at / b_at return the tile type: f16 storage enters f16 tiles unconverted.
        const els = [0, 1, 2, 3].map((e) => at("kt + kk", `4u * q + ${e}u`));
        load.push(`      ${tile}[kk * ${q4}u + q] = vec4<${sdt}>(${els.join(", ")});`);
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
        for (let c = 0; c < 4; c++) {
          const col = `n0 + ${g * bn / 2 + c}u + tx * 4u`;
          const at = {
            acc: `acc${r}_${g}[${c}]`,
            bias: "col",
            idx: "cBase + row * params.N + col",
          };
          store.push(
            `      { let col = ${col}; if (col < params.N) { ${
              storeC(e, { ...at, vec: false })
            } } }`,
          );
        }
      }
      store.push(`    }`, `  }`);
    }
    const epi = epilogueDefines(e, false);
    return defineKernel({
      name: `matmul_tiled${f16 ? "_f16" : ""}_${bm}x${bn}x${bk}${transA ? "_tA" : ""}${
        transB ? "_tB" : ""
      }${tag}`,
      source: matmulTiledSrc,
      bindings: epi.bindings,
      params: PARAMS,
      defines: {
        ...epi.defines,
        ENABLE: enableF16(sdt, e.types.a, e.types.b, e.types.c, e.types.r),
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

/** Options of {@linkcode matmulInto}. */
export interface MatmulIntoOptions {
  /** A is stored [batch, K, M] and used transposed. */
  transA?: boolean | undefined;
  /** B is stored [batchB, N, K] and used transposed. */
  transB?: boolean | undefined;
  /** Bias [N]. */
  bias?: Tensor | undefined;
  /** Scale of the previous contents of `out` added to the result (default 0: overwrite). */
  beta?: number | undefined;
  /** Residual [batch, M, N] added last. */
  residual?: Tensor | undefined;
  /** Activation applied last. */
  activation?: MatmulActivation | undefined;
  /** Receives the activation's input [batch, M, N] (with `activation`). */
  preActivation?: Tensor | undefined;
  /** The kernel family and tiles (default: the adapter's choice). */
  kernel?: MatmulKernel | undefined;
}

/**
 * Records the raw kernel (no autograd): `out = act(op(a) @ op(b) (+ bias) (+ beta * out)
 * (+ residual))`, with the family {@linkcode matmulVariant} picks (for `vec4`, after packing
 * the operands that are not stored along K; the packed copies are freed once recorded). A K
 * too long for the adapter's loop limit is summed by several dispatches: the first adds the
 * bias, the later ones accumulate into `out`, and the last adds the residual and applies the
 * activation, so every epilogue sees the whole sum. Operands or results larger than the
 * device's storage binding limit are split into parts that fit (batch entries, then rows of A
 * and C, then ranges of K for a transposed A), planned before anything is dispatched; a part
 * whose start is not aligned for a binding goes through a copy. Batch and row splits give the
 * same bits as one dispatch. A weight (a shared B, or a weight gradient's result) past the
 * limit is split along its rows first (`matmul_weight.ts`).
 *
 * @param a Left operand, stored [batch, M, K] (or [batch, K, M] with transA).
 * @param b Right operand, stored [batchB, K, N] (or [batchB, N, K]); batchB 1 = shared.
 * @param out Result [batch, M, N].
 * @param dims Sizes.
 * @param opts Transposes, bias, beta and the epilogue.
 * @throws {RangeError} When a split cannot fit (one row too long), before any dispatch.
 */
export function matmulInto(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: MatmulDims,
  opts: MatmulIntoOptions = {},
): void {
  if (dims.batch * dims.m * dims.n === 0) return;
  const weight = weightSplit(dims, opts, gpu().info.maxBindingBytes);
  if (weight) {
    runWeightSplit(weight, { a, b, out }, dims, opts, matmulInto);
    return;
  }
  const ts = [a, b, out, opts.residual, opts.preActivation];
  const leaves = planMatmul(dims, opts, ts.some((t) => t?.dtype === "f16") ? 2 : 4);
  if (leaves.length === 1 && leaves[0]!.whole) {
    matmulDispatch(a, b, out, dims, opts);
    return;
  }
  for (const leaf of leaves) runLeaf(leaf, { a, b, out }, opts);
}

/** One part of a matmul split to fit the binding limit: element offsets into the operands. */
interface Leaf {
  /** Whether this is the whole matmul (nothing split). */
  whole: boolean;
  /** Sizes of the part. */
  dims: MatmulDims;
  /** First element of the part in A, B and C (R and Z are laid out as C). */
  a0: number;
  b0: number;
  c0: number;
  /** Whether the part adds the bias (the first K range). */
  bias: boolean;
  /** beta of the part (the first K range: the caller's; later ones accumulate: 1). */
  beta: number;
  /** Whether the part applies the residual / activation / pre-activation (the last K range). */
  last: boolean;
}

/**
 * Floats a matmul operand of `rows` rows of K binds (the vec4 family packs K to a multiple
 * of 4). A linear layer's weight [N, K] is bound whole: with
 * {@linkcode matmulBindingFloats} it is the matmul's smallest unit the preflight checks.
 *
 * @param rows Rows.
 * @param k Elements per row.
 * @returns Floats.
 */
export function matmulOperandFloats(rows: number, k: number): number {
  return rows * Math.ceil(k / 4) * 4;
}

/**
 * Floats one matmul binding may hold under a binding limit (whole 16-byte vectors).
 *
 * @param maxBindingBytes The device's storage binding limit.
 * @returns Floats.
 */
export function matmulBindingFloats(maxBindingBytes: number): number {
  return Math.floor(maxBindingBytes / 16) * 4;
}

/**
 * Splits a matmul whose bindings pass the device's storage binding limit into parts that fit:
 * along the batch, then along rows of A and C (B shared; A not transposed), then along K
 * (A transposed and B not: both stored with K outermost). Row and batch splits leave every
 * sum as it was, so the parts equal the whole bit for bit; a K split sums K in ranges that
 * accumulate in C (as the loop-limit ranges do). Plans everything before any dispatch.
 *
 * @param dims Sizes.
 * @param opts Transposes and epilogue.
 * @param elemBytes The smallest element size among the bindings (2 with f16 ones): window
 *   starts are aligned in elements of that size.
 * @returns The parts, in order.
 * @throws {RangeError} When one row (or one K step) cannot fit, naming the shape and limit.
 */
function planMatmul(dims: MatmulDims, opts: MatmulIntoOptions, elemBytes: number): Leaf[] {
  const info = gpu().info;
  const limit = info.maxBindingBytes;
  // Elements a binding may hold (bindings are checked rounded up to 16 bytes; counted as
  // 4-byte elements, which f16 bindings hold with room to spare).
  const cap = matmulBindingFloats(limit);
  const align = Math.max(1, info.bindingOffsetAlignment / elemBytes);
  const transA = !!opts.transA, transB = !!opts.transB;
  const kp = (k: number) => Math.ceil(k / 4) * 4; // the vec4 family's packed copies
  const fits = (d: MatmulDims) =>
    matmulOperandFloats(d.m, d.k) * d.batch <= cap &&
    matmulOperandFloats(d.n, d.k) * (d.sharedB ? 1 : d.batch) <= cap &&
    d.m * d.n * d.batch <= cap;
  const fail = (why: string): never => {
    const { batch, m, n, k } = dims;
    throw new RangeError(
      `matmul: cannot split [${batch} x ${m} x ${k}]${transA ? "^T" : ""} @ [${k} x ${n}]${
        transB ? "^T" : ""
      } to fit the device's storage binding limit of ${limit} bytes: ${why}`,
    );
  };
  if (opts.bias && opts.bias.size > cap) fail(`the bias [${opts.bias.size}] alone passes it`);
  // A block count: the most that fits (`per` elements each), rounded down to a multiple of the
  // count that keeps block starts aligned (`elems` elements each) when that leaves one.
  const block = (most: number, elems: number[]) => {
    let g = 1;
    for (const e of elems) g = Math.max(g, align / gcd(align, e));
    return most >= g ? Math.floor(most / g) * g : most;
  };
  const out: Leaf[] = [];
  const walk = (
    d: MatmulDims,
    at: { a0: number; b0: number; c0: number },
    e: { bias: boolean; beta: number; last: boolean },
    whole: boolean,
  ) => {
    if (fits(d)) {
      out.push({ whole, dims: d, ...at, ...e });
      return;
    }
    const { batch, m, n, k, sharedB } = d;
    if (batch > 1) {
      const most = Math.min(
        Math.floor(cap / (m * kp(k))),
        sharedB ? Infinity : Math.floor(cap / (n * kp(k))),
        Math.floor(cap / (m * n)),
      );
      const nb = Math.max(1, block(most, [m * k, ...(sharedB ? [] : [k * n]), m * n]));
      for (let i = 0; i < batch; i += nb) {
        const cnt = Math.min(nb, batch - i);
        walk(
          { ...d, batch: cnt },
          {
            a0: at.a0 + i * m * k,
            b0: at.b0 + (sharedB ? 0 : i * k * n),
            c0: at.c0 + i * m * n,
          },
          e,
          false,
        );
      }
      return;
    }
    const bFits = matmulOperandFloats(n, k) <= cap;
    if (!transA && bFits) {
      // Rows of A and C are contiguous: blocks of rows against the whole B.
      const most = Math.min(Math.floor(cap / kp(k)), Math.floor(cap / n));
      if (most < 1) fail(`one row of ${k} + ${n} floats does not fit`);
      const mb = block(most, [k, n]);
      for (let r = 0; r < m; r += mb) {
        walk(
          { ...d, m: Math.min(mb, m - r) },
          {
            a0: at.a0 + r * k,
            b0: at.b0,
            c0: at.c0 + r * n,
          },
          e,
          false,
        );
      }
      return;
    }
    if (transA && !transB && m * n <= cap) {
      // A [K, M] and B [K, N]: ranges of K are contiguous in both; they accumulate in C.
      const most = Math.floor(Math.min(Math.floor(cap / m), Math.floor(cap / n)) / 4) * 4;
      if (most < 4) fail(`four rows of K (${m} + ${n} floats each) do not fit`);
      const kb = block(most, [m, n]);
      for (let k0 = 0; k0 < k; k0 += kb) {
        const first = k0 === 0, final = k0 + kb >= k;
        walk({ ...d, k: Math.min(kb, k - k0) }, {
          a0: at.a0 + k0 * m,
          b0: at.b0 + k0 * n,
          c0: at.c0,
        }, {
          bias: e.bias && first,
          beta: first ? e.beta : 1,
          last: e.last && final,
        }, false);
      }
      return;
    }
    fail(
      transA
        ? "the result, or an operand stored with K innermost, would need a strided split"
        : "the right operand alone passes it",
    );
  };
  walk(dims, { a0: 0, b0: 0, c0: 0 }, { bias: true, beta: opts.beta ?? 0, last: true }, true);
  return out;
}

/** Greatest common divisor. */
function gcd(x: number, y: number): number {
  while (y) [x, y] = [y, x % y];
  return x;
}

/**
 * Runs one part of a split matmul: windows of the operands where their starts are aligned,
 * copies where not (an output copy is written back after the part).
 */
function runLeaf(
  leaf: Leaf,
  t: { a: Tensor; b: Tensor; out: Tensor },
  opts: MatmulIntoOptions,
): void {
  const rt = gpu();
  const { batch, m, n, k, sharedB } = leaf.dims;
  const temps: Tensor[] = [];
  const outputs: { v: Tensor; src: Tensor; off: number; bytes: number }[] = [];
  const view = (src: Tensor, start: number, count: number, output: boolean, load: boolean) => {
    if (start === 0 && count === src.size) return src;
    const eb = DTYPE_BYTES[src.dtype];
    const off = src.byteOffset + start * eb;
    let v: Tensor;
    if (off % rt.info.bindingOffsetAlignment === 0) v = src.window(start, [count]);
    else {
      if (off % 4 !== 0 || (count * eb) % 4 !== 0) {
        throw new RangeError(
          `matmul: a part of ${src.describe()} at element ${start} (${count} elements) is ` +
            "not whole 4-byte words, which a split past the binding limit copies",
        );
      }
      v = empty([count], src.dtype);
      const range = { buffer: src.buffer, byteOffset: off, byteLength: count * eb };
      if (load) rt.copy(range, v);
      if (output) outputs.push({ v, src, off, bytes: count * eb });
    }
    temps.push(v);
    return v;
  };
  const cn = batch * m * n;
  const a = view(t.a, leaf.a0, batch * m * k, false, true);
  const b = view(t.b, leaf.b0, (sharedB ? 1 : batch) * k * n, false, true);
  const beta = leaf.beta;
  const out = view(t.out, leaf.c0, cn, true, beta !== 0);
  const residual = leaf.last && opts.residual
    ? view(opts.residual, leaf.c0, cn, false, true)
    : undefined;
  const preActivation = leaf.last && opts.preActivation
    ? view(opts.preActivation, leaf.c0, cn, true, false)
    : undefined;
  matmulDispatch(a, b, out, leaf.dims, {
    transA: opts.transA,
    transB: opts.transB,
    kernel: opts.kernel,
    bias: leaf.bias ? opts.bias : undefined,
    beta,
    residual,
    activation: leaf.last ? opts.activation : undefined,
    preActivation,
  });
  for (const o of outputs) {
    rt.copy(o.v, { buffer: o.src.buffer, byteOffset: o.off, byteLength: o.bytes });
  }
  for (const v of temps) v.dispose();
}

/** The kernels of one matmul whose bindings fit (see {@linkcode matmulInto}). */
function matmulDispatch(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: MatmulDims,
  opts: MatmulIntoOptions,
): void {
  const { batch, m, n, k, sharedB } = dims;
  const rt = gpu();
  const variant = matmulVariant(dims, opts.kernel?.variant);
  const tiles = matmulTiles(opts.kernel?.tiles);
  let A = a, B = b, K = k, transA = !!opts.transA, transB = !!opts.transB;
  const temps: Tensor[] = [];
  const textures: GpuTextureBinding[] = [];
  if (variant === "texture") {
    // Both operands go into textures, as rows along K (packed: transposes, K padded to 4).
    textures.push(
      toTexture(a, { rows: m, k, batch, trans: transA }),
      toTexture(b, { rows: n, k, batch: sharedB ? 1 : batch, trans: !transB }),
    );
    K = Math.ceil(k / 4) * 4;
  }
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
  let make: (e: Epilogue) => Kernel;
  if (variant === "vec4" || variant === "texture") {
    const { tm, tn } = tiles.vec4;
    step = 4 * limit;
    workgroups = grid(batch * Math.ceil(m / tm) * Math.ceil(n / tn), 64);
    make = (e) => vec4Kernel(tm, tn, e, variant === "texture");
  } else if (variant === "scalar") {
    const { tm, tn } = tiles.scalar;
    step = limit;
    workgroups = grid(batch * Math.ceil(m / tm) * Math.ceil(n / tn), 64);
    make = (e) => scalarKernel(tm, tn, transA, transB, e);
  } else {
    const t = tiles.tiled;
    step = t.bk * limit;
    workgroups = grid(batch * Math.ceil(m / t.bm) * Math.ceil(n / t.bn), 1);
    make = (e) => tiledKernel(t, variant === "tiled-f16", transA, transB, e);
  }
  step = Math.min(K, step) || 1;
  const { residual, activation, preActivation } = opts;
  const operands: Binding[] = textures.length > 0 ? textures : [A, B];
  // Texels are f32 whatever the operands' storage.
  const types: MatmulTypes = {
    a: textures.length > 0 ? "f32" : A.dtype as FloatDType,
    b: textures.length > 0 ? "f32" : B.dtype as FloatDType,
    c: out.dtype as FloatDType,
    r: (residual?.dtype ?? "f32") as FloatDType,
  };
  for (let k0 = 0; k0 < Math.max(K, 1); k0 += step) {
    const bias = k0 === 0 ? opts.bias : undefined;
    const last = k0 + step >= K;
    const e: Epilogue = {
      types: typesTag(types) === "" ? F32_TYPES : types,
      bias: !!bias,
      residual: last && !!residual,
      act: last ? activation ?? null : null,
      saveZ: last && !!preActivation,
    };
    const extra = [...(e.residual ? [residual!] : []), ...(e.saveZ ? [preActivation!] : [])];
    rt.dispatch(
      make(e),
      [...operands, bias ?? A, out, ...extra],
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
  releaseTextures(textures);
}

/**
 * Matrix product with batching, transposes, and epilogues fused into its store: a bias, then
 * either a residual add or an activation.
 *
 * `a` is [...batch, M, K] ([...batch, K, M] with transA); `b` is [K, N] (shared by every
 * batch entry) or [...batch, K, N] ([..., N, K] with transB). The result is [...batch, M, N].
 *
 * The result equals the separate ops bit for bit: `residual` gives `add(residual, matmul(a,
 * b, { bias }))` and its gradient is the output's; `activation` gives `gelu(matmul(a, b,
 * { bias }))` (or `geluTanh`) on adapters that compile the shared WGSL snippet alike in both
 * kernels (llvmpipe does; tests check it). When the tape records (an input requires a
 * gradient and recording is on), the activation's input is stored as well, in the same
 * pass, for the backward (the GELU derivative, then the matmul's gradients); without
 * recording only the result is written. A K too long for one dispatch (llvmpipe's loop
 * limit) is accumulated over several, and the epilogue is applied by the last one.
 *
 * @param a Left operand.
 * @param b Right operand.
 * @param opts Transposes, bias, residual or activation.
 * @returns The product.
 * @example
 * ```ts
 * const y = matmul(x, w, { transB: true, bias: b }); // Linear: x @ w^T + b
 * const h = matmul(x, w1, { transB: true, bias: b1, activation: "gelu" }); // MLP fc1
 * const out = matmul(h, w2, { transB: true, bias: b2, residual: x }); // x + fc2(h)
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  a.assertAlive();
  b.assertAlive();
  const { transA = false, transB = false, bias, residual, activation, kernel } = opts;
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
  const outShape = [...batchShape, m, n];
  if (residual) {
    residual.assertAlive();
    if (
      residual.shape.length !== outShape.length || residual.shape.some((d, i) => d !== outShape[i])
    ) {
      throw new RangeError(
        `matmul() residual must have the result's shape ${fmtShape(outShape)} ` +
          `(${fmtShape(a.shape)}${transA ? "^T" : ""} @ ${fmtShape(b.shape)}${
            transB ? "^T" : ""
          }), got ${fmtShape(residual.shape)}`,
      );
    }
  }
  if (activation !== undefined && !Object.hasOwn(ACTIVATION_OP, activation)) {
    throw new RangeError(
      `Unknown matmul() activation "${activation}": expected "gelu" or "gelu_tanh"`,
    );
  }
  if (activation && residual) {
    throw new RangeError(
      `Cannot fuse both activation "${activation}" and a residual into one matmul(): the ` +
        "epilogue applies one of them (apply the other as a separate op)",
    );
  }
  const extra = [...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  for (const t of [a, b, ...(residual ? [residual] : [])]) {
    if (t.dtype !== "f32" && t.dtype !== "f16") {
      throw new TypeError(`matmul() takes f32 or f16 tensors, got ${t.describe()}`);
    }
  }
  if (bias && bias.dtype !== "f32") {
    throw new TypeError(`matmul() takes an f32 bias (a parameter), got ${bias.describe()}`);
  }
  const inputs = [a, b, ...extra];
  const dtype: FloatDType = opts.dtype ??
    (a.dtype === "f16" || b.dtype === "f16" ? "f16" : "f32");
  const out = empty(outShape, dtype, "matmul()'s output");
  // The activation's input, kept for the backward when the op is recorded (record's rule).
  const z = activation && isGradEnabled() && inputs.some((t) => t.requiresGrad)
    ? empty(outShape, dtype, "matmul()'s pre-activation")
    : undefined;
  if (z) z.name = "matmul.preActivation";
  // A shared right operand with an untransposed left one is one big matmul over all rows.
  const flat = sharedB && !transA;
  matmulInto(a, b, out, {
    batch: flat ? 1 : batch,
    m: flat ? batch * m : m,
    n,
    k: ka,
    sharedB,
  }, { transA, transB, bias, residual, activation, preActivation: z, kernel });
  record("matmul", inputs, [out], ([g]) => {
    // The gradient of the product: through the activation's derivative when there is one.
    const dC = z ? unaryBackward(ACTIVATION_OP[activation!], { x: z, y: out, dy: g! }) : g!;
    let dA: Tensor | null = null, dB: Tensor | null = null, dBias: Tensor | null = null;
    // Each gradient in its operand's storage: an f32 weight's sums over f16 activations
    // accumulate in f32 and store f32.
    const da = a.dtype as FloatDType, db = b.dtype as FloatDType;
    if (a.requiresGrad) {
      if (!transA) dA = matmul(dC, b, { transB: !transB, kernel, dtype: da });
      else {
        // dA = op(B) @ dC^T per batch entry; a shared b is broadcast first.
        const bb = sharedB && a.rank > 2 ? broadcastTo(b, [...batchShape, b0, b1]) : b;
        dA = matmul(bb, dC, { transA: transB, transB: true, kernel, dtype: da });
      }
    }
    if (b.requiresGrad) {
      if (sharedB && !transA) {
        const a2 = a.view([batch * m, ka]);
        const g2 = dC.view([batch * m, n]);
        dB = transB
          ? matmul(g2, a2, { transA: true, kernel, dtype: db })
          : matmul(a2, g2, { transA: true, kernel, dtype: db });
      } else {
        const full = transB
          ? matmul(dC, a, { transA: true, transB: transA, kernel, dtype: db })
          : matmul(a, dC, { transA: !transA, kernel, dtype: db });
        dB = sumTo(full, b.shape);
      }
    }
    if (bias?.requiresGrad) {
      // The f32 bias gradient: dC summed over every row, in f32.
      dBias = sumTo(dC, bias.shape, "f32");
    }
    // The backward runs once: the saved pre-activation is not needed again.
    z?.dispose();
    const grads = [dA, dB];
    if (bias) grads.push(dBias);
    if (residual) {
      const dR = residual.dtype === g!.dtype ? g! : cast(g!, residual.dtype as FloatDType);
      grads.push(residual.requiresGrad ? dR : null);
    }
    return grads;
  });
  return out;
}
