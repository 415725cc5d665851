/**
 * The `uniform` attention kernel family (CPU adapters such as llvmpipe): a workgroup owns one
 * (batch, head) and a block of query rows, R per thread (16 by default), and walks the keys
 * in chunks of C. llvmpipe runs a workgroup's threads as SIMD lanes and executes every
 * storage load lane by lane (Mesa's per-lane load loop, also when every lane reads the same
 * address), so what a kernel pays for is loads per FMA: here each key and value element a
 * thread loads serves its R query rows (the `rows` family: at most 8). The running max and
 * sums are rescaled once per chunk of C keys, with no per-key branch. The name says that the
 * key loop, its key-mask tests and its key and value addresses depend on the workgroup and
 * the loop counter only (uniform over the lanes: no divergent control flow); measured at
 * PS3-1.5K's shapes, that made no difference of its own next to deriving (batch, head) per
 * thread — the rows per thread did (8: 1.6x the `rows` kernel, 12: 2.0x, 16: 2.3x).
 *
 * The `texture` family is this kernel reading keys and values from textures (`texture.ts`):
 * llvmpipe fetches a texel for all lanes at once, where a storage load is the per-lane loop;
 * measured 2.1x at the high-res shape (Nq 2560, 729 + 2560 keys, 16 heads of 72), the same
 * bits.
 *
 * @module
 */

import { attention_uniform_forward as forwardSrc } from "../../wgsl/sources.ts";
import { defineKernel, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { indented, range, RowCode, storageSuffix } from "./attention_common.ts";
import type { FloatDType } from "./storage_type.ts";

const kernels = new KernelCache();

/** Threads per workgroup and rows per thread and keys per chunk of a `uniform` kernel. */
export interface UniformShape {
  /** Threads per workgroup. */
  wg: number;
  /** Query (key) rows per thread. */
  rows: number;
  /** Keys (queries) per chunk. */
  chunk: number;
}

/**
 * One chunk of C keys of the forward: C key rows loaded (uniform), C scores per row, the
 * row's running max and sum updated and its accumulators rescaled once, then C value rows
 * accumulated. Keys past the source's end (the last chunk) and masked keys get p = 0.
 */
function forwardChunk(
  r: RowCode,
  s: UniformShape,
  src: { k: string; v: string; n: string; off: string },
  texture: boolean,
): string[] {
  const out: string[] = [];
  const cs = range(s.chunk), rs = range(s.rows);
  // Key row c of the chunk into registers `name`: from storage, or texels (x = h * DU + q).
  const load = (name: string, buf: string, c: number) =>
    texture
      ? range(r.du).map((q) =>
        `let ${name}${q} = textureLoad(${buf}, vec2u(h * ${r.du}u + ${q}u, kr${c}), 0);`
      )
      : r.load(name, [buf, `kb${c}`]);
  for (const c of cs) {
    out.push(
      `let jc${c} = min(j0 + ${c}u, ${src.n} - 1u);`,
      texture
        ? `let kr${c} = b * ${src.n} + jc${c};`
        : `let kb${c} = (b * ${src.n} + jc${c}) * rs + h * ${r.du}u;`,
      `let keep${c} = j0 + ${c}u < ${src.n} && attends(b, ${src.off}jc${c});`,
      ...load(`k${c}x`, src.k, c),
    );
  }
  for (const i of rs) {
    for (const c of cs) {
      out.push(
        `let s${i}_${c} = select(-3.0e38, params.scale * (${
          r.dot(`q${i}x`, `k${c}x`)
        }), keep${c});`,
      );
    }
    const mx = cs.map((c) => `s${i}_${c}`).reduce((a, b) => `max(${a}, ${b})`);
    out.push(
      `let mn${i} = max(m${i}, ${mx});`,
      `let corr${i} = exp(m${i} - mn${i});`,
      ...cs.map((c) => `let p${i}_${c} = select(0.0, exp(s${i}_${c} - mn${i}), keep${c});`),
      `l${i} = l${i} * corr${i} + ${cs.map((c) => `p${i}_${c}`).join(" + ")};`,
      `m${i} = mn${i};`,
    );
  }
  for (const c of cs) out.push(...load(`v${c}x`, src.v, c));
  for (const i of rs) {
    for (const [n, c] of cs.entries()) {
      out.push(...r.axpy(`a${i}x`, `p${i}_${c}`, `v${c}x`, n === 0 ? `corr${i}` : undefined));
    }
  }
  return out;
}

/**
 * The forward of the `uniform` family: online softmax over chunks of keys, saving each row's
 * logsumexp.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param shape Threads per workgroup, rows per thread, keys per chunk.
 * @param storage Storage type of the head rows (default f32).
 * @param texture Whether keys and values are read from textures (family `texture`; needs
 *   D % 4 == 0).
 * @returns The kernel.
 */
export function uniformForwardKernel(
  d: number,
  hasMask: boolean,
  shape: UniformShape,
  storage: FloatDType = "f32",
  texture = false,
): Kernel {
  const { wg, rows, chunk } = shape;
  const key = `fwd:${d}:${hasMask}:${wg}:${rows}:${chunk}:${storage}:${texture}`;
  return kernels.get(key, () => {
    const r = new RowCode(d, storage);
    const setup: string[] = [];
    const store: string[] = [];
    for (const i of range(rows)) {
      const row = `i0 + ${i * wg}u`;
      setup.push(
        `let qb${i} = (b * params.nq + min(${row}, params.nq - 1u)) * rs + h * ${r.du}u;`,
        ...r.load(`q${i}x`, ["Q", `qb${i}`]),
        ...r.zero(`a${i}x`),
        `var m${i} = -3.0e38;`,
        `var l${i} = 0.0;`,
      );
      store.push(
        `if (${row} < params.nq) {`,
        `  let inv = select(0.0, 1.0 / l${i}, l${i} > 0.0);`,
        ...r.store(`a${i}x`, ["O", `qb${i}`], "inv").map((l) => "  " + l),
        `  lse[bh * params.nq + ${row}] = select(0.0, m${i} + log(l${i}), l${i} > 0.0);`,
        `}`,
      );
    }
    if (texture && !r.vec) throw new RangeError(`Texture attention needs D % 4 == 0, got ${d}`);
    const cache = { k: "KC", v: "VC", n: "params.nc", off: "" };
    const own = { k: "K", v: "V", n: "params.nk", off: "params.nc + " };
    const kv = ["K", "V", "KC", "VC"].map((name, i) =>
      `@group(0) @binding(${i + 1}) ${
        texture
          ? `var ${name}: texture_2d<f32>;`
          : `var<storage, read> ${name}: array<${r.rowType}>;`
      }`
    );
    const operand = texture ? "texture" as const : "read" as const;
    return defineKernel({
      name: `attention_${texture ? "texture" : "uniform"}_forward_d${d}_w${wg}r${rows}c${chunk}${
        hasMask ? "_mask" : ""
      }${storageSuffix(storage)}`,
      source: forwardSrc,
      bindings: ["read", operand, operand, operand, operand, "read", "write", "write"],
      params: ["groups:u32", "nq:u32", "heads:u32", "nc:u32", "nk:u32", "scale:f32"],
      defines: {
        ENABLE: r.enable,
        ROW: r.rowType,
        DU: r.du,
        WG: wg,
        R: rows,
        C: chunk,
        HAS_MASK: String(hasMask),
        KV: kv.join("\n"),
        SETUP: indented(setup, 1),
        CHUNK_C: indented(forwardChunk(r, shape, cache, texture), 2),
        CHUNK: indented(forwardChunk(r, shape, own, texture), 2),
        STORE: indented(store, 1),
      },
    });
  });
}
