/**
 * The `tiled` attention kernel family (real GPUs, FlashAttention-2 style): a workgroup owns a
 * block of query rows (key rows in dK/dV) of one (batch, head), one per thread; per step its
 * threads stage a tile of the other side's rows in workgroup memory, and every staged row
 * serves the whole block. The forward rescales its running sums once per tile.
 *
 * @module
 */

import {
  attention_tiled_backward_dkv as tiledDkvSrc,
  attention_tiled_backward_dq as tiledDqSrc,
  attention_tiled_forward as tiledForwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { indented, type Row, RowCode, SOURCE_PARAMS, storageSuffix } from "./attention_common.ts";
import type { FloatDType } from "./storage_type.ts";

/** The workgroup tiles: f32 rows whatever the storage type (staging widens them). */
const TILES = ["Ks", "Vs", "Qs", "Gs"];

const kernels = new KernelCache();

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
    ...pairs.map(([dst, buf]) => `  ${dst}[e] = ${r.widen(buf, `${buf}[src]`, r.vec)};`),
    `}`,
  ];
}

/**
 * Loop trips of one staging by {@linkcode stageRows}.
 *
 * @param r The head rows' code.
 * @param wg Threads staging.
 * @param t Rows staged.
 * @returns Trips per thread.
 */
export function stageTrips(r: RowCode, wg: number, t: number): number {
  return Math.ceil((t * r.du) / wg);
}

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
  return {
    ENABLE: r.enable,
    ROW: r.rowType,
    WROW: r.wideRowType,
    DU: r.du,
    WG: wg,
    T: t,
    TILE_LEN: t * r.du,
  };
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

/**
 * The forward: online softmax over staged tiles of keys, saving each row's logsumexp.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param wg Rows per workgroup (one per thread).
 * @param t Rows staged per tile.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function tiledForwardKernel(
  d: number,
  hasMask: boolean,
  wg: number,
  t: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`tfwd:${d}:${hasMask}:${wg}:${t}:${storage}`, () => {
    const r = new RowCode(d, storage, TILES);
    const sizes = { wg, t };
    return defineKernel({
      name: `attention_tiled_forward_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}${
        storageSuffix(storage)
      }`,
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

/**
 * dQ of one key source over staged tiles, accumulated over sources.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param wg Rows per workgroup (one per thread).
 * @param t Rows staged per tile.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function tiledDqKernel(
  d: number,
  hasMask: boolean,
  wg: number,
  t: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`tdq:${d}:${hasMask}:${wg}:${t}:${storage}`, () => {
    const r = new RowCode(d, storage, TILES);
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
      name: `attention_tiled_backward_dq_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}${
        storageSuffix(storage)
      }`,
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

/**
 * dK and dV of one key source over staged tiles of query rows.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param wg Rows per workgroup (one per thread).
 * @param t Rows staged per tile.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function tiledDkvKernel(
  d: number,
  hasMask: boolean,
  wg: number,
  t: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`tdkv:${d}:${hasMask}:${wg}:${t}:${storage}`, () => {
    const r = new RowCode(d, storage, TILES);
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
      name: `attention_tiled_backward_dkv_d${d}_${wg}x${t}${hasMask ? "_mask" : ""}${
        storageSuffix(storage)
      }`,
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
