/**
 * Multi-head scaled dot-product attention as one fused op, with keys and values optionally
 * prefixed by a cache (PS3's high-res pass attends to [cached low-res k, v ; own k, v]) and an
 * optional key mask (PS3's MAP pool over selected tokens).
 *
 * No B x H x Nq x Nk score matrix is ever stored. The forward is one thread per (batch,
 * head, query row) with an online softmax over the keys, saving the row's logsumexp; the
 * backward follows FlashAttention: per-row statistics (logsumexp, delta = rowsum(dO * O)),
 * then dQ with a thread per query row and dK/dV with a thread per key row, both recomputing
 * the probabilities from the logsumexp. The cache is read in place (key index j < Nc reads it)
 * and receives its own gradients; the dQ and dK/dV kernels are dispatched once per key source
 * (cache, own keys), so every kernel binds at most 8 storage buffers (WebGPU's guaranteed
 * minimum).
 *
 * Kernels are generated per head dim D: the loops over D are unrolled in vec4 registers
 * (plus a scalar tail when D % 4 != 0), since llvmpipe sums loop trips over all loops of an
 * invocation; only the loops over keys (or queries) remain. These are the thread-per-row
 * variants; a workgroup-tiled variant for real GPUs would be another generator behind the
 * same bindings and parameters.
 *
 * @module
 */

import forwardSrc from "../../wgsl/attention_forward.wgsl" with { type: "text" };
import prepSrc from "../../wgsl/attention_backward_prep.wgsl" with { type: "text" };
import dqSrc from "../../wgsl/attention_backward_dq.wgsl" with { type: "text" };
import dkvSrc from "../../wgsl/attention_backward_dkv.wgsl" with { type: "text" };
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
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

const kernelCache = new Map<string, Kernel>();

function cached(key: string, make: () => Kernel): Kernel {
  let k = kernelCache.get(key);
  if (!k) {
    k = make();
    kernelCache.set(key, k);
  }
  return k;
}

function forwardKernel(d: number, hasMask: boolean): Kernel {
  return cached(`fwd:${d}:${hasMask}`, () => {
    const r = new RowCode(d);
    return defineKernel({
      name: `attention_forward_d${d}${hasMask ? "_mask" : ""}`,
      source: forwardSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: ["rows:u32", "nq:u32", "heads:u32", "nc:u32", "nk:u32", "scale:f32"],
      defines: {
        ROW: r.rowType,
        DU: r.du,
        HAS_MASK: String(hasMask),
        LOAD_Q: indented(r.load("q", ["Q", "qb"]), 1),
        ZERO_ACC: indented(r.zero("a"), 1),
        DOT_Q_KC: r.dot("q", ["KC", "kb"]),
        DOT_Q_K: r.dot("q", ["K", "kb"]),
        RESCALE: indented(r.scale("a", "corr"), 3),
        ACC_VC: indented(r.axpy("a", "p", ["VC", "kb"]), 2),
        ACC_V: indented(r.axpy("a", "p", ["V", "kb"]), 2),
        STORE_O: indented(r.store("a", ["O", "qb"], "inv"), 1),
      },
    });
  });
}

function prepKernel(d: number): Kernel {
  return cached(`prep:${d}`, () => {
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
  "rows:u32",
  "nq:u32",
  "heads:u32",
  "nkeys:u32",
  "maskOff:u32",
  "maskStride:u32",
  "scale:f32",
];

function dqKernel(d: number, hasMask: boolean): Kernel {
  return cached(`dq:${d}:${hasMask}`, () => {
    const r = new RowCode(d);
    return defineKernel({
      name: `attention_backward_dq_d${d}${hasMask ? "_mask" : ""}`,
      source: dqSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write"],
      params: [...SOURCE_PARAMS, "accumulate:u32"],
      defines: {
        ROW: r.rowType,
        DU: r.du,
        HAS_MASK: String(hasMask),
        LOAD_Q: indented(r.load("q", ["Q", "qb"]), 1),
        LOAD_DO: indented(r.load("g", ["dO", "qb"]), 1),
        ZERO_DQ: indented(r.zero("a"), 1),
        DOT_Q_K: r.dot("q", ["KS", "kb"]),
        DOT_DO_V: r.dot("g", ["VS", "kb"]),
        ACC_DQ: indented(r.axpy("a", "ds", ["KS", "kb"]), 2),
        STORE_DQ: [
          "  if (params.accumulate != 0u) {",
          indented(r.store("a", ["dQ", "qb"], "params.scale", true), 2),
          "  } else {",
          indented(r.store("a", ["dQ", "qb"], "params.scale"), 2),
          "  }",
        ].join("\n"),
      },
    });
  });
}

function dkvKernel(d: number, hasMask: boolean): Kernel {
  return cached(`dkv:${d}:${hasMask}`, () => {
    const r = new RowCode(d);
    return defineKernel({
      name: `attention_backward_dkv_d${d}${hasMask ? "_mask" : ""}`,
      source: dkvSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: SOURCE_PARAMS,
      defines: {
        ROW: r.rowType,
        DU: r.du,
        HAS_MASK: String(hasMask),
        LOAD_K: indented(r.load("k", ["KS", "kb"]), 1),
        LOAD_V: indented(r.load("v", ["VS", "kb"]), 1),
        ZERO_DKV: indented([...r.zero("dk"), ...r.zero("dv")], 1),
        LOAD_QI: indented(r.load("q", ["Q", "qb"]), 2),
        LOAD_DOI: indented(r.load("g", ["dO", "qb"]), 2),
        DOT_K_Q: r.dot("k", "q"),
        DOT_V_DO: r.dot("v", "g"),
        ACC_DKV: indented([...r.axpy("dk", "ds", "q"), ...r.axpy("dv", "p", "g")], 2),
        STORE_DKV: indented([
          ...r.store("dk", ["dK", "kb"], "params.scale"),
          ...r.store("dv", ["dV", "kb"]),
        ], 1),
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
  const out = empty([batch, nq, width]);
  const lse = empty([batch, heads, nq]);
  const fwd = forwardKernel(d, hasMask);
  rt.assertLoopTrips(fwd.spec.name, nt);
  rt.dispatch(
    fwd,
    [q, k, v, cache?.k ?? k, cache?.v ?? v, keyMask ?? q, out, lse],
    { rows, nq, heads, nc, nk, scale },
    grid(rows, WG),
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
      const kern = dqKernel(d, hasMask);
      let accumulate = 0;
      for (const s of sources) {
        if (s.n === 0) continue;
        rt.assertLoopTrips(kern.spec.name, s.n);
        rt.dispatch(
          kern,
          [q, s.k, s.v, mask, stats, dO, dqOut],
          { rows, nq, heads, nkeys: s.n, maskOff: s.off, maskStride: nt, scale, accumulate },
          grid(rows, WG),
        );
        accumulate = 1;
      }
      dq = dqOut;
    }
    const kvGrads = sources.map((s): [Tensor | null, Tensor | null] => {
      if (!s.k.requiresGrad && !s.v.requiresGrad) return [null, null];
      const dk = empty(s.k.shape), dv = empty(s.v.shape);
      const keyRows = batch * heads * s.n;
      if (keyRows > 0) {
        const kern = dkvKernel(d, hasMask);
        rt.assertLoopTrips(kern.spec.name, nq);
        rt.dispatch(
          kern,
          [q, s.k, s.v, mask, stats, dO, dk, dv],
          { rows: keyRows, nq, heads, nkeys: s.n, maskOff: s.off, maskStride: nt, scale },
          grid(keyRows, WG),
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
