/**
 * Multi-head scaled dot-product attention as one fused op, with keys and values optionally
 * prefixed by a cache (PS3's high-res pass attends to [cached low-res k, v ; own k, v]) and an
 * optional key mask (PS3's MAP pool over selected tokens).
 *
 * No B x H x Nq x Nk score matrix is ever stored. The forward runs an online softmax over the
 * keys, saving each row's logsumexp; the backward follows FlashAttention: per-row statistics
 * (logsumexp, delta = rowsum(dO * O)), then dQ per query row and dK/dV per key row, both
 * recomputing the probabilities from the logsumexp. The cache is read in place (key index
 * j < Nc reads it) and receives its own gradients; the dQ and dK/dV kernels are dispatched
 * once per key source (cache, own keys), so every kernel binds at most 8 storage buffers
 * (WebGPU's guaranteed minimum).
 *
 * Two kernel families, chosen per adapter ({@linkcode setAttentionVariant}):
 *
 * - `rows` (CPU adapters such as llvmpipe): a thread per group of R query rows (key rows in
 *   dK/dV) walks every key (query) row from memory, without workgroup memory (slow on a CPU).
 *   On CPU adapters R = 4, so every key / value row loaded serves four query rows (llvmpipe
 *   runs memory accesses lane by lane, so loads dominate); R = 1 keeps the most threads in
 *   flight ({@linkcode setAttentionRows}).
 * - `tiled` (real GPUs, FlashAttention-2 style): a workgroup owns a block of query rows (key
 *   rows in dK/dV) of one (batch, head), one per thread; per step its threads stage a tile of
 *   the other side's rows in workgroup memory, and every staged row serves the whole block.
 *   The forward rescales its running sums once per tile ({@linkcode setAttentionTiles}).
 *
 * Kernels are generated per head dim D: the loops over D are unrolled in vec4 registers
 * (plus a scalar tail when D % 4 != 0), since llvmpipe sums loop trips over all loops of an
 * invocation; only the loops over rows, tiles and a tile's rows remain.
 *
 * @module
 */

import forwardSrc from "../../wgsl/attention_forward.wgsl" with { type: "text" };
import prepSrc from "../../wgsl/attention_backward_prep.wgsl" with { type: "text" };
import dqSrc from "../../wgsl/attention_backward_dq.wgsl" with { type: "text" };
import dkvSrc from "../../wgsl/attention_backward_dkv.wgsl" with { type: "text" };
import tiledForwardSrc from "../../wgsl/attention_tiled_forward.wgsl" with { type: "text" };
import tiledDqSrc from "../../wgsl/attention_tiled_backward_dq.wgsl" with { type: "text" };
import tiledDkvSrc from "../../wgsl/attention_tiled_backward_dkv.wgsl" with { type: "text" };
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { isGradEnabled, record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Number of heads H; the last dim of q, k and v is H*D. */
  heads: number;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number | undefined;
  /**
   * Cached keys and values [B, Nc, H*D], attended before the own keys; they receive
   * gradients like k and v.
   */
  cache?: { k: Tensor; v: Tensor } | undefined;
  /**
   * Key mask [B, Nc+Nk] f32 over [cache keys ; own keys]: 0 = masked, anything else =
   * attend. A query row whose keys are all masked outputs zeros (and passes no gradient).
   */
  keyMask?: Tensor | undefined;
}

const WG = 64;

/** A head row in WGSL: register names (`name0..` vec4, `name_0..` tail) or [buffer, base]. */
type Row = string | readonly [buf: string, base: string];

/** WGSL text for head rows of D floats, held as vec4 chunks plus a scalar tail. */
class RowCode {
  /** Whether the row buffers are arrays of vec4 (D % 4 == 0). */
  readonly vec: boolean;
  /** Number of vec4 chunks. */
  readonly nv: number;
  /** Number of scalar tail elements. */
  readonly tail: number;
  /** Array elements per head row. */
  readonly du: number;

  constructor(d: number) {
    this.vec = d % 4 === 0;
    this.nv = Math.floor(d / 4);
    this.tail = d % 4;
    this.du = this.vec ? d / 4 : d;
  }

  /** The array element type of row buffers. */
  get rowType(): string {
    return this.vec ? "vec4<f32>" : "f32";
  }

  /** Chunk c of a row, as a vec4 expression. */
  chunk(row: Row, c: number): string {
    if (typeof row === "string") return `${row}${c}`;
    const [buf, base] = row;
    if (this.vec) return `${buf}[${base} + ${c}u]`;
    const els = [0, 1, 2, 3].map((e) => `${buf}[${base} + ${4 * c + e}u]`);
    return `vec4<f32>(${els.join(", ")})`;
  }

  /** Tail element e of a row, as an f32 expression. */
  tailAt(row: Row, e: number): string {
    if (typeof row === "string") return `${row}_${e}`;
    const [buf, base] = row;
    return `${buf}[${base} + ${4 * this.nv + e}u]`;
  }

  /** Lines declaring registers `name` that hold a row read from memory. */
  load(name: string, row: Row): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`let ${name}${c} = ${this.chunk(row, c)};`);
    for (let e = 0; e < this.tail; e++) out.push(`let ${name}_${e} = ${this.tailAt(row, e)};`);
    return out;
  }

  /** Lines declaring registers `name` initialised to zero. */
  zero(name: string): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`var ${name}${c} = vec4<f32>(0.0);`);
    for (let e = 0; e < this.tail; e++) out.push(`var ${name}_${e} = 0.0;`);
    return out;
  }

  /** The dot product of two rows, as an f32 expression. */
  dot(a: Row, b: Row): string {
    const terms: string[] = [];
    for (let c = 0; c < this.nv; c++) terms.push(`dot(${this.chunk(a, c)}, ${this.chunk(b, c)})`);
    for (let e = 0; e < this.tail; e++) terms.push(`${this.tailAt(a, e)} * ${this.tailAt(b, e)}`);
    return terms.join(" + ");
  }

  /** Lines `regs = regs * factor`. */
  scale(name: string, factor: string): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`${name}${c} = ${name}${c} * ${factor};`);
    for (let e = 0; e < this.tail; e++) out.push(`${name}_${e} = ${name}_${e} * ${factor};`);
    return out;
  }

  /** Lines `acc = w * x + acc (* keep)` for registers `acc`, a scalar `w` and a row `x`. */
  axpy(acc: string, w: string, x: Row, keep?: string): string[] {
    const k = keep === undefined ? "" : ` * ${keep}`;
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) {
      out.push(`${acc}${c} = fma(vec4<f32>(${w}), ${this.chunk(x, c)}, ${acc}${c}${k});`);
    }
    for (let e = 0; e < this.tail; e++) {
      out.push(`${acc}_${e} = fma(${w}, ${this.tailAt(x, e)}, ${acc}_${e}${k});`);
    }
    return out;
  }

  /** Lines storing regs (times `factor`) into a row in memory, or adding them there. */
  store(name: string, [buf, base]: readonly [string, string], factor = "", add = false) {
    const out: string[] = [];
    const f = factor === "" ? "" : ` * ${factor}`;
    const put = (at: string, v: string) => out.push(`${at} = ${add ? `${at} + ` : ""}${v}${f};`);
    for (let c = 0; c < this.nv; c++) {
      if (this.vec) put(`${buf}[${base} + ${c}u]`, `${name}${c}`);
      else {
        for (let e = 0; e < 4; e++) {
          put(`${buf}[${base} + ${4 * c + e}u]`, `${name}${c}[${e}]`);
        }
      }
    }
    for (let e = 0; e < this.tail; e++) {
      put(this.tailAt([buf, base], e), `${name}_${e}`);
    }
    return out;
  }
}

/** Joins generated lines, indented by `level` steps of two spaces. */
function indented(lines: readonly string[], level: number): string {
  return lines.map((s) => "  ".repeat(level) + s).join("\n");
}

const kernels = new KernelCache();

/** Query (or key) rows per thread: several on CPU adapters, one on GPUs. */
let rowsChoice: number | null = null;

/**
 * Chooses how many query rows (key rows in the dK/dV kernel) one thread handles, for
 * benchmarks and tests; "auto" restores the per-adapter choice (4 on CPU adapters, 1 else).
 *
 * @param rows Rows per thread (1 to 8), or "auto".
 */
export function setAttentionRows(rows: number | "auto"): void {
  if (rows !== "auto" && (!Number.isInteger(rows) || rows < 1 || rows > 8)) {
    throw new RangeError(`Attention rows per thread must be 1 to 8, got ${rows}`);
  }
  rowsChoice = rows === "auto" ? null : rows;
}

/**
 * The rows per thread the attention kernels use on the current adapter.
 *
 * @returns Rows per thread.
 */
export function attentionRows(): number {
  return rowsChoice ?? (gpu().info.isSoftware ? 4 : 1);
}

/** An attention kernel family (see the module documentation). */
export type AttentionVariant = "rows" | "tiled";

/** Every kernel family, for benchmarks and tests. */
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ["rows", "tiled"];

/** Block and tile sizes of the `tiled` family. */
export interface AttentionTiles {
  /**
   * Rows one workgroup owns, one per thread: query rows in the forward and dQ kernels, key
   * rows in the dK/dV kernel (1 to 256).
   */
  block: number;
  /**
   * Rows of the other side staged in workgroup memory per step (key and value rows; query
   * and dO rows in dK/dV), or "auto": as many as fit the adapter's workgroup memory, at most
   * 32.
   */
  tile: number | "auto";
}

/** The tiles used unless {@linkcode setAttentionTiles} chose others. */
export const DEFAULT_ATTENTION_TILES: Readonly<AttentionTiles> = { block: 64, tile: "auto" };

let variantChoice: AttentionVariant | null = null;
let attnTiles: AttentionTiles = { ...DEFAULT_ATTENTION_TILES };

/**
 * Chooses the kernel family for every later attention (benchmarks and tests compare them);
 * "auto" restores the per-adapter choice: `rows` on CPU adapters (where workgroup memory is
 * slow), `tiled` on GPUs. `tiled` falls back to `rows` for a head dim whose tile does not fit
 * the adapter's workgroup memory.
 *
 * @param variant The family, or "auto".
 */
export function setAttentionVariant(variant: AttentionVariant | "auto"): void {
  if (variant !== "auto" && !ATTENTION_VARIANTS.includes(variant)) {
    throw new RangeError(`Unknown attention variant "${variant}"`);
  }
  variantChoice = variant === "auto" ? null : variant;
}

/**
 * Changes the block and tile sizes of the `tiled` family (tests use small ones to cover
 * partial and multiple tiles).
 *
 * @param t The sizes to change.
 */
export function setAttentionTiles(t: Partial<AttentionTiles>): void {
  const next = { ...attnTiles, ...t };
  if (!Number.isInteger(next.block) || next.block < 1 || next.block > 256) {
    throw new RangeError(`Attention block must be 1 to 256 rows, got ${next.block}`);
  }
  if (next.tile !== "auto" && (!Number.isInteger(next.tile) || next.tile < 1)) {
    throw new RangeError(`Attention tile must be a positive number of rows, got ${next.tile}`);
  }
  attnTiles = next;
}

/** Bytes of workgroup memory per staged row of head dim d: two rows and a mask or stats. */
const stagedRowBytes = (d: number) => 8 * d + 8;

/** Rows staged per step for head dim d on this adapter; 0 when the chosen tile does not fit. */
function tileRows(d: number): number {
  // A little slack for the alignment of the three workgroup arrays.
  const fit = Math.floor(
    (gpu().device.limits.maxComputeWorkgroupStorageSize - 64) /
      stagedRowBytes(d),
  );
  if (attnTiles.tile === "auto") return Math.min(32, fit);
  return attnTiles.tile <= fit ? attnTiles.tile : 0;
}

/**
 * The kernel family attention with head dim `d` runs with on the current adapter.
 *
 * @param d Head dim (decides whether a `tiled` tile fits workgroup memory).
 * @returns The family.
 */
export function attentionVariant(d: number): AttentionVariant {
  const wanted = variantChoice ?? (gpu().info.isSoftware ? "rows" : "tiled");
  if (wanted === "tiled" && tileRows(d) < 1) return "rows";
  return wanted;
}

const range = (n: number) => [...Array(n).keys()];

/**
 * The online-softmax step of the forward for one key: the key row loaded once, every query
 * row's score and rescale, then the value row loaded once and accumulated.
 */
function forwardStep(r: RowCode, rows: number, kBuf: string, vBuf: string): string[] {
  const out = [...r.load("kx", [kBuf, "kb"])];
  for (const i of range(rows)) {
    out.push(
      `let s${i} = params.scale * (${r.dot(`q${i}x`, "kx")});`,
      `if (s${i} > m${i}) {`,
      `  let corr = exp(m${i} - s${i});`,
      `  l${i} = l${i} * corr;`,
      ...r.scale(`a${i}x`, "corr").map((l) => "  " + l),
      `  m${i} = s${i};`,
      `}`,
      `let p${i} = exp(s${i} - m${i});`,
      `l${i} = l${i} + p${i};`,
    );
  }
  out.push(...r.load("vx", [vBuf, "kb"]));
  for (const i of range(rows)) out.push(...r.axpy(`a${i}x`, `p${i}`, "vx"));
  return out;
}

function forwardKernel(d: number, hasMask: boolean, rows: number): Kernel {
  return kernels.get(`fwd:${d}:${hasMask}:${rows}`, () => {
    const r = new RowCode(d);
    const setup: string[] = [];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let qb${i} = (b * params.nq + min(i0 + ${i}u, params.nq - 1u)) * rs + h * ${r.du}u;`,
        ...r.load(`q${i}x`, ["Q", `qb${i}`]),
        ...r.zero(`a${i}x`),
        `var m${i} = -3.0e38;`,
        `var l${i} = 0.0;`,
      );
      store.push(
        `if (i0 + ${i}u < params.nq) {`,
        `  let inv = select(0.0, 1.0 / l${i}, l${i} > 0.0);`,
        ...r.store(`a${i}x`, ["O", `qb${i}`], "inv").map((l) => "  " + l),
        `  lse[bh * params.nq + i0 + ${i}u] = select(0.0, m${i} + log(l${i}), l${i} > 0.0);`,
        `}`,
      );
    }
    return defineKernel({
      name: `attention_forward_d${d}_r${rows}${hasMask ? "_mask" : ""}`,
      source: forwardSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: ["threads:u32", "nq:u32", "heads:u32", "nc:u32", "nk:u32", "scale:f32"],
      defines: {
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP_C: indented(forwardStep(r, rows, "KC", "VC"), 2),
        STEP: indented(forwardStep(r, rows, "K", "V"), 2),
        STORE: indented(store, 1),
      },
    });
  });
}

function prepKernel(d: number): Kernel {
  return kernels.get(`prep:${d}`, () => {
    const r = new RowCode(d);
    return defineKernel({
      name: `attention_backward_prep_d${d}`,
      source: prepSrc,
      bindings: ["read", "read", "read", "write"],
      params: ["rows:u32", "nq:u32", "heads:u32"],
      defines: { ROW: r.rowType, DU: r.du, DELTA: r.dot(["O", "qb"], ["dO", "qb"]) },
    });
  });
}

const SOURCE_PARAMS = [
  "threads:u32",
  "nq:u32",
  "heads:u32",
  "nkeys:u32",
  "maskOff:u32",
  "maskStride:u32",
  "scale:f32",
];

function dqKernel(d: number, hasMask: boolean, rows: number): Kernel {
  return kernels.get(`dq:${d}:${hasMask}:${rows}`, () => {
    const r = new RowCode(d);
    const setup: string[] = [];
    const step = [...r.load("kx", ["KS", "kb"]), ...r.load("vx", ["VS", "kb"])];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let row${i} = min(i0 + ${i}u, params.nq - 1u);`,
        `let qb${i} = (b * params.nq + row${i}) * rs + h * ${r.du}u;`,
        `let st${i} = stats[bh * params.nq + row${i}];`,
        ...r.load(`q${i}x`, ["Q", `qb${i}`]),
        ...r.load(`g${i}x`, ["dO", `qb${i}`]),
        ...r.zero(`a${i}x`),
      );
      step.push(
        `let p${i} = exp(params.scale * (${r.dot(`q${i}x`, "kx")}) - st${i}.x);`,
        `let ds${i} = p${i} * ((${r.dot(`g${i}x`, "vx")}) - st${i}.y);`,
        ...r.axpy(`a${i}x`, `ds${i}`, "kx"),
      );
      store.push(
        `if (i0 + ${i}u < params.nq) {`,
        "  if (params.accumulate != 0u) {",
        ...r.store(`a${i}x`, ["dQ", `qb${i}`], "params.scale", true).map((l) => "    " + l),
        "  } else {",
        ...r.store(`a${i}x`, ["dQ", `qb${i}`], "params.scale").map((l) => "    " + l),
        "  }",
        "}",
      );
    }
    return defineKernel({
      name: `attention_backward_dq_d${d}_r${rows}${hasMask ? "_mask" : ""}`,
      source: dqSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write"],
      params: [...SOURCE_PARAMS, "accumulate:u32"],
      defines: {
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP: indented(step, 2),
        STORE: indented(store, 1),
      },
    });
  });
}

function dkvKernel(d: number, hasMask: boolean, rows: number): Kernel {
  return kernels.get(`dkv:${d}:${hasMask}:${rows}`, () => {
    const r = new RowCode(d);
    const setup: string[] = [];
    const step = [...r.load("qx", ["Q", "qb"]), ...r.load("gx", ["dO", "qb"])];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let row${i} = min(j0 + ${i}u, params.nkeys - 1u);`,
        `let kb${i} = (b * params.nkeys + row${i}) * rs + h * ${r.du}u;`,
        // Whether the key is attended (else its p, so its gradients, vanish; a select, since
        // exp() of a masked key's score may overflow and 0 * inf would be NaN).
        `let keep${i} = attends(b, row${i});`,
        ...r.load(`k${i}x`, ["KS", `kb${i}`]),
        ...r.load(`v${i}x`, ["VS", `kb${i}`]),
        ...r.zero(`dk${i}x`),
        ...r.zero(`dv${i}x`),
      );
      step.push(
        `let p${i} = select(0.0, exp(params.scale * (${r.dot(`k${i}x`, "qx")}) - st.x), keep${i});`,
        `let ds${i} = p${i} * ((${r.dot(`v${i}x`, "gx")}) - st.y);`,
        ...r.axpy(`dk${i}x`, `ds${i}`, "qx"),
        ...r.axpy(`dv${i}x`, `p${i}`, "gx"),
      );
      store.push(
        `if (j0 + ${i}u < params.nkeys) {`,
        ...r.store(`dk${i}x`, ["dK", `kb${i}`], "params.scale").map((l) => "  " + l),
        ...r.store(`dv${i}x`, ["dV", `kb${i}`]).map((l) => "  " + l),
        "}",
      );
    }
    return defineKernel({
      name: `attention_backward_dkv_d${d}_r${rows}${hasMask ? "_mask" : ""}`,
      source: dkvSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: SOURCE_PARAMS,
      defines: {
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP: indented(step, 2),
        STORE: indented(store, 1),
      },
    });
  });
}

/**
 * Lines staging `t` rows of head data into workgroup arrays, spread over `wg` threads: a loop
 * of ceil(t*DU/wg) trips in which element e of the tile is element e % DU of staged row
 * e / DU, read from global row `rowOf(kk)` (an expression clamped to the source) of each
 * (dst, src) pair.
 */
function stageRows(
  r: RowCode,
  sizes: { wg: number; t: number },
  pairs: readonly (readonly [dst: string, src: string])[],
  rowOf: (kk: string) => string,
): string[] {
  const { wg, t } = sizes;
  return [
    `for (var e = tid; e < ${t * r.du}u; e += ${wg}u) {`,
    `  let src = ${rowOf(`e / ${r.du}u`)} * rs + h * ${r.du}u + e % ${r.du}u;`,
    ...pairs.map(([dst, src]) => `  ${dst}[e] = ${src}[src];`),
    `}`,
  ];
}

/** Loop trips of one staging by {@linkcode stageRows}. */
const stageTrips = (d: number, wg: number, t: number) => Math.ceil((t * new RowCode(d).du) / wg);

/** Unrolled lines setting one per-row entry of a tile (`put(kk)` for kk < t) over wg threads. */
function stageEntries(sizes: { wg: number; t: number }, put: (kk: string) => string): string[] {
  const { wg, t } = sizes;
  const out: string[] = [];
  for (let k = 0; k * wg < t; k++) {
    const full = (k + 1) * wg <= t;
    out.push(`{`, `  let kk = tid + ${k * wg}u;`, `  ${full ? "" : `if (kk < ${t}u) `}{`);
    out.push(`    ${put("kk")}`, `  }`, `}`);
  }
  return out;
}

/**
 * Lines staging a tile of T key and value rows of one source (KS/VS of n rows, mask columns
 * from `maskAt(j)`) into Ks, Vs and Ms, for the forward and dQ kernels.
 */
function stageKeys(
  r: RowCode,
  sizes: { wg: number; t: number },
  src: { k: string; v: string; n: string; maskAt: (j: string) => string },
): string[] {
  return [
    ...stageRows(
      r,
      sizes,
      [["Ks", src.k], ["Vs", src.v]],
      (kk) => `(b * ${src.n} + min(j0 + ${kk}, ${src.n} - 1u))`,
    ),
    ...stageEntries(
      sizes,
      (kk) =>
        `Ms[${kk}] = select(0.0, 1.0, (j0 + ${kk} < ${src.n}) & attends(b, ${
          src.maskAt(`min(j0 + ${kk}, ${src.n} - 1u)`)
        }));`,
    ),
  ];
}

function tiledDefines(r: RowCode, wg: number, t: number) {
  return { ROW: r.rowType, DU: r.du, WG: wg, T: t, TILE_LEN: t * r.du };
}

/**
 * The FlashAttention-2 step of the tiled forward over one staged tile: every key's score and
 * the tile's maximum, one rescale of the running sums, then the weighted value rows. The
 * loops over the tile's T keys stay loops (unrolling them made llvmpipe's compiler take
 * minutes on these barrier-split kernels).
 */
function tiledForwardStep(r: RowCode, t: number): string[] {
  return [
    `var sc: array<f32, ${t}>;`,
    `var mt = -3.0e38;`,
    `for (var kk = 0u; kk < ${t}u; kk++) {`,
    `  let kb = kk * ${r.du}u;`,
    `  sc[kk] = select(-3.0e38, params.scale * (${r.dot("qx", ["Ks", "kb"])}), Ms[kk] != 0.0);`,
    `  mt = max(mt, sc[kk]);`,
    `}`,
    `let mn = max(m, mt);`,
    `let corr = exp(m - mn);`,
    `l = l * corr;`,
    ...r.scale("ax", "corr"),
    `for (var kk = 0u; kk < ${t}u; kk++) {`,
    `  let p = select(0.0, exp(sc[kk] - mn), Ms[kk] != 0.0);`,
    `  l = l + p;`,
    ...r.axpy("ax", "p", ["Vs", `kk * ${r.du}u`]).map((l) => "  " + l),
    `}`,
    `m = mn;`,
  ];
}

function tiledForwardKernel(d: number, hasMask: boolean, wg: number, t: number): Kernel {
  return kernels.get(`tfwd:${d}:${hasMask}:${wg}:${t}`, () => {
    const r = new RowCode(d);
    const sizes = { wg, t };
    return defineKernel({
      name: `attention_tiled_forward_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}`,
      source: tiledForwardSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: ["groups:u32", "nq:u32", "heads:u32", "nc:u32", "nk:u32", "scale:f32"],
      defines: {
        ...tiledDefines(r, wg, t),
        HAS_MASK: String(hasMask),
        SETUP: indented([...r.load("qx", ["Q", "qb"]), ...r.zero("ax")], 1),
        LOAD_C: indented(
          stageKeys(r, sizes, { k: "KC", v: "VC", n: "params.nc", maskAt: (j) => j }),
          2,
        ),
        LOAD: indented(
          stageKeys(r, sizes, {
            k: "K",
            v: "V",
            n: "params.nk",
            maskAt: (j) => `params.nc + ${j}`,
          }),
          2,
        ),
        STEP: indented(tiledForwardStep(r, t), 2),
        STORE: indented(r.store("ax", ["O", "qb"], "inv"), 2),
      },
    });
  });
}

const TILED_SOURCE_PARAMS = ["groups:u32", ...SOURCE_PARAMS.slice(1)];

function tiledDqKernel(d: number, hasMask: boolean, wg: number, t: number): Kernel {
  return kernels.get(`tdq:${d}:${hasMask}:${wg}:${t}`, () => {
    const r = new RowCode(d);
    const sizes = { wg, t };
    const k: Row = ["Ks", "kb"], v: Row = ["Vs", "kb"];
    const step = [
      `for (var kk = 0u; kk < ${t}u; kk++) {`,
      `  let kb = kk * ${r.du}u;`,
      `  let p = select(0.0, exp(params.scale * (${r.dot("qx", k)}) - st.x), Ms[kk] != 0.0);`,
      `  let ds = p * ((${r.dot("gx", v)}) - st.y);`,
      ...r.axpy("ax", "ds", k).map((l) => "  " + l),
      `}`,
    ];
    return defineKernel({
      name: `attention_tiled_backward_dq_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}`,
      source: tiledDqSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write"],
      params: [...TILED_SOURCE_PARAMS, "accumulate:u32"],
      defines: {
        ...tiledDefines(r, wg, t),
        HAS_MASK: String(hasMask),
        SETUP: indented([
          ...r.load("qx", ["Q", "qb"]),
          ...r.load("gx", ["dO", "qb"]),
          ...r.zero("ax"),
        ], 1),
        LOAD: indented(
          stageKeys(r, sizes, { k: "KS", v: "VS", n: "params.nkeys", maskAt: (j) => j }),
          2,
        ),
        STEP: indented(step, 2),
        STORE: indented([
          "if (params.accumulate != 0u) {",
          ...r.store("ax", ["dQ", "qb"], "params.scale", true).map((l) => "  " + l),
          "} else {",
          ...r.store("ax", ["dQ", "qb"], "params.scale").map((l) => "  " + l),
          "}",
        ], 2),
      },
    });
  });
}

function tiledDkvKernel(d: number, hasMask: boolean, wg: number, t: number): Kernel {
  return kernels.get(`tdkv:${d}:${hasMask}:${wg}:${t}`, () => {
    const r = new RowCode(d);
    const sizes = { wg, t };
    const q: Row = ["Qs", "qb"], g: Row = ["Gs", "qb"];
    const step = [
      `for (var qq = 0u; qq < ${t}u; qq++) {`,
      `  let qb = qq * ${r.du}u;`,
      `  let p = select(0.0, exp(params.scale * (${r.dot("kx", q)}) - Ss[qq].x), ` +
      `keep && i0 + qq < params.nq);`,
      `  let ds = p * ((${r.dot("vx", g)}) - Ss[qq].y);`,
      ...r.axpy("dkx", "ds", q).map((l) => "  " + l),
      ...r.axpy("dvx", "p", g).map((l) => "  " + l),
      `}`,
    ];
    const queryRow = (qq: string) => `min(i0 + ${qq}, params.nq - 1u)`;
    return defineKernel({
      name: `attention_tiled_backward_dkv_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}`,
      source: tiledDkvSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: TILED_SOURCE_PARAMS,
      defines: {
        ...tiledDefines(r, wg, t),
        HAS_MASK: String(hasMask),
        SETUP: indented([
          ...r.load("kx", ["KS", "kb"]),
          ...r.load("vx", ["VS", "kb"]),
          ...r.zero("dkx"),
          ...r.zero("dvx"),
        ], 1),
        LOAD: indented([
          ...stageRows(
            r,
            sizes,
            [["Qs", "Q"], ["Gs", "dO"]],
            (qq) => `(b * params.nq + ${queryRow(qq)})`,
          ),
          ...stageEntries(sizes, (qq) => `Ss[${qq}] = stats[bh * params.nq + ${queryRow(qq)}];`),
        ], 2),
        STEP: indented(step, 2),
        STORE: indented([
          ...r.store("dkx", ["dK", "kb"], "params.scale"),
          ...r.store("dvx", ["dV", "kb"]),
        ], 2),
      },
    });
  });
}

/** Checks one [B, N, H*D] operand and returns N. */
function tokens(name: string, t: Tensor, batch: number, width: number): number {
  t.assertAlive();
  if (t.dtype !== "f32") {
    throw new TypeError(`attention() takes f32 tensors, got ${name} ${t.describe()}`);
  }
  if (t.rank !== 3 || t.shape[0] !== batch || t.shape[2] !== width) {
    throw new RangeError(
      `attention() needs ${name} of shape [${batch}, N, ${width}], got ${fmtShape(t.shape)}`,
    );
  }
  return t.shape[1]!;
}

/**
 * Multi-head scaled dot-product attention over [cached keys ; own keys], optionally masked:
 * `out[b, i, h] = sum_j softmax_j(scale * q[b, i, h] . key[b, j, h]) value[b, j, h]` with
 * key = [cache.k ; k] and value = [cache.v ; v] along the token axis. Tensors are
 * token-major with the heads side by side in a row (the plain reshape of a Linear output):
 * head h uses columns h*D .. h*D+D-1, as PyTorch's `.reshape(B, N, H, D)`.
 *
 * Gradients flow to q, k, v and both cache tensors. A query row whose keys are all masked
 * outputs zeros and passes no gradient (PyTorch's SDPA would give NaN; PS3 never relies on
 * it: its MAP pool unmasks every token of a sample whose mask is empty).
 *
 * @param q Queries [B, Nq, H*D].
 * @param k Own keys [B, Nk, H*D] (Nk may be 0 when a cache is given).
 * @param v Own values [B, Nk, H*D].
 * @param opts Heads, scale (default 1/sqrt(D)), cache {k, v} [B, Nc, H*D] and key mask
 *   [B, Nc+Nk].
 * @returns The attention output [B, Nq, H*D] (before the output projection).
 * @example
 * ```ts
 * // PS3 high-res block: own queries attend to the low-res cache and their own keys.
 * const y = attention(q, k, v, { heads: 16, cache: { k: lowK, v: lowV } });
 * // MAP pool: one latent query over the tokens of a selected region.
 * const pooled = attention(latentQ, k, v, { heads: 16, keyMask: regionMask });
 * ```
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const { heads, cache, keyMask } = opts;
  q.assertAlive();
  if (q.rank !== 3) {
    throw new RangeError(`attention() needs q of shape [B, Nq, H*D], got ${fmtShape(q.shape)}`);
  }
  const [batch, nq, width] = q.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0 || width === 0) {
    throw new RangeError(
      `attention() cannot split width ${width} of q ${fmtShape(q.shape)} into ${heads} heads`,
    );
  }
  const d = width / heads;
  tokens("q", q, batch, width);
  const nk = tokens("k", k, batch, width);
  if (tokens("v", v, batch, width) !== nk) {
    throw new RangeError(
      `attention() needs k and v of one shape, got ${fmtShape(k.shape)} and ${fmtShape(v.shape)}`,
    );
  }
  const nc = cache ? tokens("cache.k", cache.k, batch, width) : 0;
  if (cache && tokens("cache.v", cache.v, batch, width) !== nc) {
    throw new RangeError(
      `attention() needs cache.k and cache.v of one shape, got ${fmtShape(cache.k.shape)} ` +
        `and ${fmtShape(cache.v.shape)}`,
    );
  }
  const nt = nc + nk;
  if (nt === 0) throw new RangeError("attention() needs at least one key (Nc + Nk = 0)");
  if (keyMask) {
    keyMask.assertAlive();
    if (keyMask.dtype !== "f32") {
      throw new TypeError(`attention() takes an f32 keyMask, got ${keyMask.describe()}`);
    }
    if (keyMask.rank !== 2 || keyMask.shape[0] !== batch || keyMask.shape[1] !== nt) {
      throw new RangeError(
        `attention() needs keyMask of shape [${batch}, ${nt}] (batch, Nc + Nk), got ` +
          `${fmtShape(keyMask.shape)}`,
      );
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new RangeError(`attention() scale ${scale} is not finite`);

  const rt = gpu();
  const hasMask = keyMask !== undefined;
  const rows = batch * heads * nq;
  // The family and its sizes are chosen once, for the forward and the backward.
  const tiled = attentionVariant(d) === "tiled";
  const r = attentionRows(), wg = attnTiles.block, tt = tiled ? tileRows(d) : 0;
  // Work units over n rows per (batch, head): threads of R rows (`rows`), or workgroups of
  // WG rows (`tiled`); with the name of their count among the kernel's params, and the grid.
  const units = (n: number) => batch * heads * Math.ceil(n / (tiled ? wg : r));
  const unitParam = tiled ? "groups" : "threads";
  const gridOf = (n: number) => (tiled ? grid(n, 1) : grid(n, WG));
  // Loop trips of a kernel that walks n rows: single rows (`rows`), or tiles of T rows, each
  // staged, then walked `passes` times (`tiled`: the forward's scores, then its values).
  // llvmpipe counts a loop's final, failing test as a trip too (measured: a loop of N trips
  // costs N + 1 unless the compiler unrolled it).
  const stage = tiled ? stageTrips(d, wg, tt) : 0;
  const trips = (n: number, passes = 1) =>
    tiled ? 1 + Math.ceil(n / tt) * (1 + (stage + 1) + passes * (tt + 1)) : n + 1;
  const out = empty([batch, nq, width]);
  const lse = empty([batch, heads, nq]);
  const fwd = tiled ? tiledForwardKernel(d, hasMask, wg, tt) : forwardKernel(d, hasMask, r);
  rt.assertLoopTrips(fwd.spec.name, trips(nc, 2) + trips(nk, 2));
  rt.dispatch(
    fwd,
    [q, k, v, cache?.k ?? k, cache?.v ?? v, keyMask ?? q, out, lse],
    { [unitParam]: units(nq), nq, heads, nc, nk, scale },
    gridOf(units(nq)),
  );

  const inputs = [q, k, v, ...(cache ? [cache.k, cache.v] : []), ...(keyMask ? [keyMask] : [])];
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) {
    lse.dispose();
    return out;
  }
  record("attention", inputs, [out], ([g]) => {
    const dO = g!;
    const stats = empty([batch, heads, nq, 2]);
    rt.dispatch(prepKernel(d), [out, lse, dO, stats], { rows, nq, heads }, grid(rows, WG));
    // The key sources in key order: j < Nc reads the cache, the rest the own keys.
    const sources = [
      ...(cache ? [{ k: cache.k, v: cache.v, n: nc, off: 0 }] : []),
      { k, v, n: nk, off: nc },
    ];
    const mask = keyMask ?? q;
    let dq: Tensor | null = null;
    if (q.requiresGrad) {
      const dqOut = empty(q.shape);
      const kern = tiled ? tiledDqKernel(d, hasMask, wg, tt) : dqKernel(d, hasMask, r);
      let accumulate = 0;
      for (const s of sources) {
        if (s.n === 0) continue;
        rt.assertLoopTrips(kern.spec.name, trips(s.n));
        rt.dispatch(
          kern,
          [q, s.k, s.v, mask, stats, dO, dqOut],
          {
            [unitParam]: units(nq),
            nq,
            heads,
            nkeys: s.n,
            maskOff: s.off,
            maskStride: nt,
            scale,
            accumulate,
          },
          gridOf(units(nq)),
        );
        accumulate = 1;
      }
      dq = dqOut;
    }
    const kvGrads = sources.map((s): [Tensor | null, Tensor | null] => {
      if (!s.k.requiresGrad && !s.v.requiresGrad) return [null, null];
      const dk = empty(s.k.shape), dv = empty(s.v.shape);
      if (s.n > 0) {
        const kern = tiled ? tiledDkvKernel(d, hasMask, wg, tt) : dkvKernel(d, hasMask, r);
        rt.assertLoopTrips(kern.spec.name, trips(nq));
        rt.dispatch(
          kern,
          [q, s.k, s.v, mask, stats, dO, dk, dv],
          {
            [unitParam]: units(s.n),
            nq,
            heads,
            nkeys: s.n,
            maskOff: s.off,
            maskStride: nt,
            scale,
          },
          gridOf(units(s.n)),
        );
      }
      return [dk, dv];
    });
    // Gradients in input order: q, k, v, then the cache's k and v, then none for the mask.
    const [dk, dv] = kvGrads[kvGrads.length - 1]!;
    const cacheGrads = cache ? kvGrads[0]! : [];
    return [dq, dk, dv, ...cacheGrads, ...(keyMask ? [null] : [])];
  });
  return out;
}
