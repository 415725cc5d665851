/**
 * Kernel benchmarks on the shapes of the real model (PS3 on SigLIP SO400M: width 1152,
 * 16 heads of 72, MLP 4304; 729 low-res tokens, a 2560-token high-res selection, images up
 * to 3780 px): time, GFLOP/s or GB/s, and the fraction of the device ceiling measured in the
 * same run. The matmul is compared, in the same run, with its scalar-load kernel (the kernel
 * before the vec4 one), a plain JavaScript matmul, and jax-js on its WebGPU and Wasm devices;
 * attention runs with every kernel family (the adapter's choice first), GELU and add with the
 * vec4 elementwise kernels and the scalar ones before them, and the matmuls with fused GELU
 * and residual epilogues against the separate passes they replace. Every matmul kernel family
 * is also timed at the model's shapes in the three layouts of a Linear layer.
 *
 * @module
 */

import { type BenchRow, median, timeGpuMedian, timeHost } from "./timing.ts";
import type { Ceilings } from "./ceiling.ts";
import { benchJaxMatmul } from "./jax_matmul.ts";
import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { keep } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import { randn, tensor } from "../ops/creation.ts";
import { add, binary, type ElementwiseVariant, gelu, unary } from "../ops/elementwise.ts";
import { concat, permute, slice } from "../ops/layout.ts";
import { matmul, MATMUL_VARIANTS, type MatmulVariant, matmulVariant } from "../ops/matmul.ts";
import {
  attention,
  attentionRows,
  type AttentionVariant,
  attentionVariant,
  uniformShape,
} from "../ops/attention.ts";
import { layerNorm } from "../ops/norm.ts";
import { softmax } from "../ops/softmax.ts";
import { resizeBicubic } from "../ops/resize.ts";
import { gatherRows } from "../ops/gather.ts";
import { gatherPatches } from "../ops/patch.ts";
import { topkIndices } from "../ops/topk.ts";
import { Rng } from "../util/rng.ts";

/** Options of {@linkcode benchOps}. */
export interface OpsBenchOptions {
  /** Shapes scaled down (about 1/4 per side) for a quick run on a slow adapter. */
  quick?: boolean | undefined;
  /** Timed runs per row; the median is reported (default 3). */
  runs?: number | undefined;
  /** Skip the jax-js comparison (it starts a child process). */
  noJax?: boolean | undefined;
  /** The sections to run (default all of {@linkcode OPS_SECTIONS}). */
  only?: readonly OpsSection[] | undefined;
}

/** The sections of the kernel table, in order. */
export const OPS_SECTIONS = [
  "square-matmul",
  "linears",
  "matmul-variants",
  "attention",
  "memory",
  "resize",
  "gather",
  "topk",
] as const;

/** A section of the kernel table. */
export type OpsSection = typeof OPS_SECTIONS[number];

function persistent(shape: number[], seed: number, grad = false): Tensor {
  const t = keep(randn(shape, seed));
  t.requiresGrad = grad;
  return t;
}

/** A plain JS matmul (i-k-j loop order, Float32Array), the baseline of the ratio. */
export function jsMatmul(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  dims: { m: number; n: number; k: number },
): void {
  const { m, n, k } = dims;
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

/** A Linear layer of the model: tokens x in -> out, timed in its three matmuls. */
interface LinearShape {
  label: string;
  tokens: number;
  inF: number;
  outF: number;
}

/**
 * The three matmuls of a Linear layer y = x W^T: forward (A [T, in] @ W[out, in]^T), the
 * input gradient (dY [T, out] @ W) and the weight gradient (dY^T @ X).
 */
function linearMatmuls(s: LinearShape) {
  const { tokens: t, inF, outF } = s;
  return [
    { name: `${s.label} forward`, m: t, n: outF, k: inF, transA: false, transB: true },
    { name: `${s.label} dX`, m: t, n: inF, k: outF, transA: false, transB: false },
    { name: `${s.label} dW`, m: outF, n: inF, k: t, transA: true, transB: false },
  ];
}

/**
 * Times one matmul shape with a kernel family (default the adapter's).
 *
 * @param d Shape and transposes.
 * @param runs Timed runs (median kept).
 * @param variant Kernel family.
 * @returns Milliseconds per call.
 */
export async function timeMatmul(
  d: { m: number; n: number; k: number; transA: boolean; transB: boolean },
  runs: number,
  variant: MatmulVariant | "auto" = "auto",
): Promise<number> {
  const a = persistent(d.transA ? [d.k, d.m] : [d.m, d.k], 1);
  const b = persistent(d.transB ? [d.n, d.k] : [d.k, d.n], 2);
  const ms = await timeGpuMedian(
    () => void matmul(a, b, { transA: d.transA, transB: d.transB, kernel: { variant } }),
    { runs, minMs: 200, maxReps: 50 },
  );
  a.dispose();
  b.dispose();
  return ms;
}

/**
 * Times every matmul kernel family at the model's matmul shapes (1024^3, the low-res qkv
 * 729x3456x1152 and the high-res MLP 2560x4304x1152), each in the three layouts of a Linear
 * layer: A @ B^T (forward), A @ B (input gradient) and A^T @ B (weight gradient). Rows give
 * GFLOP/s and the fraction of the FMA ceiling measured in the same run; the adapter's default
 * family is marked. A family that cannot run on this adapter is timed as the one it falls
 * back to and says so.
 *
 * @param ceilings The device ceilings measured in this run.
 * @param options Shape preset (quick: about 1/4 per side) and runs per row.
 * @returns Result rows.
 * @example
 * ```ts
 * const rows = await benchMatmulVariants(await measureCeilings(), { runs: 1 });
 * ```
 */
export async function benchMatmulVariants(
  ceilings: Ceilings,
  options: { quick?: boolean | undefined; runs?: number | undefined } = {},
): Promise<BenchRow[]> {
  const quick = options.quick ?? false, runs = options.runs ?? 1;
  const q = (x: number) => (quick ? Math.max(4, Math.round(x / 16) * 4) : x);
  const flopRow = flopRows(ceilings);
  const shapes = [
    { m: q(1024), n: q(1024), k: q(1024) },
    { m: q(729), n: q(3456), k: q(1152) },
    { m: q(2560), n: q(4304), k: q(1152) },
  ];
  const layouts = [
    { label: "A B^T", transA: false, transB: true },
    { label: "A B", transA: false, transB: false },
    { label: "A^T B", transA: true, transB: false },
  ];
  const rows: BenchRow[] = [];
  for (const s of shapes) {
    const chosen = matmulVariant(s);
    for (const l of layouts) {
      for (const v of MATMUL_VARIANTS) {
        const ran = matmulVariant(s, v);
        const ms = await timeMatmul({ ...s, ...l }, runs, v);
        const note = [
          ...(ran === chosen ? ["default"] : []),
          ...(ran !== v ? [`runs as ${ran} here`] : []),
        ].join(", ");
        rows.push(
          flopRow(
            `matmul ${s.m}x${s.n}x${s.k} ${l.label} (${v})`,
            ms,
            2 * s.m * s.n * s.k,
            note || undefined,
          ),
        );
      }
    }
  }
  return rows;
}

/** Makes rows of GFLOP/s, with the fraction of the device's FMA ceiling. */
function flopRows(ceilings: Ceilings) {
  return (name: string, ms: number, flops: number, note?: string): BenchRow => ({
    name,
    ms,
    rate: flops / ms / 1e6,
    unit: "GFLOP/s",
    ceiling: flops / ms / 1e6 / ceilings.gflops,
    note,
  });
}

/**
 * Times the matmul epilogues on the high-res MLP (2560 tokens, width 1152, hidden 4304):
 * fc1 with its GELU fused against matmul then gelu, and fc2 with the block's residual add
 * fused against matmul then add; the fused rows' notes give the speedup. Inputs take no
 * gradient (the inference form: the fused fc1 writes only its output), and fc1 is also timed
 * as training records it (weights that take a gradient: it writes the pre-activation too).
 *
 * @param ceilings The device ceilings measured in this run.
 * @param options Shape preset (quick: about 1/4 per side) and runs.
 * @returns Result rows.
 * @example
 * ```ts
 * const rows = await benchEpilogues(await measureCeilings(), { runs: 3 });
 * ```
 */
export async function benchEpilogues(
  ceilings: Ceilings,
  options: Pick<OpsBenchOptions, "quick" | "runs"> = {},
): Promise<BenchRow[]> {
  const quick = options.quick ?? false;
  const runs = options.runs ?? 3;
  const q = (x: number) => (quick ? Math.max(4, Math.round(x / 16) * 4) : x);
  const flopRow = flopRows(ceilings);
  const t = q(2560), c = q(1152), hid = q(4304);
  const x1 = persistent([t, c], 20), w1 = persistent([hid, c], 21), b1 = persistent([hid], 22);
  const w1g = persistent([hid, c], 21, true);
  const x2 = persistent([t, hid], 23), w2 = persistent([c, hid], 24), b2 = persistent([c], 25);
  const res = persistent([t, c], 26);
  const fc1 = `matmul high-res mlp fc1 + GELU ${t}x${hid}x${c}`;
  const fc2 = `matmul high-res mlp fc2 + residual ${t}x${c}x${hid}`;
  const pairs = [
    {
      name: fc1,
      dims: { m: t, n: hid, k: c },
      fused: () => void matmul(x1, w1, { transB: true, bias: b1, activation: "gelu" }),
      separate: () => void gelu(matmul(x1, w1, { transB: true, bias: b1 })),
      what: "matmul, then gelu",
    },
    {
      name: `${fc1}, recorded`,
      dims: { m: t, n: hid, k: c },
      fused: () => void matmul(x1, w1g, { transB: true, bias: b1, activation: "gelu" }),
      separate: () => void gelu(matmul(x1, w1g, { transB: true, bias: b1 })),
      what: "matmul, then gelu",
    },
    {
      name: fc2,
      dims: { m: t, n: c, k: hid },
      fused: () => void matmul(x2, w2, { transB: true, bias: b2, residual: res }),
      separate: () => void add(res, matmul(x2, w2, { transB: true, bias: b2 })),
      what: "matmul, then add",
    },
  ];
  const rows: BenchRow[] = [];
  const timing = { runs, minMs: 200, maxReps: 50 };
  for (const p of pairs) {
    const fused = await timeGpuMedian(p.fused, timing);
    const separate = await timeGpuMedian(p.separate, timing);
    const flops = 2 * p.dims.m * p.dims.n * p.dims.k;
    rows.push(
      flopRow(
        `${p.name} (fused)`,
        fused,
        flops,
        `${(separate / fused).toFixed(2)}x ${p.what}; ${matmulVariant(p.dims)}`,
      ),
      flopRow(`${p.name} (${p.what}, before)`, separate, flops, "separate passes"),
    );
  }
  for (const x of [x1, w1, b1, w1g, x2, w2, b2, res]) x.dispose();
  return rows;
}

/** What every section of {@linkcode benchOps} shares. */
interface BenchContext {
  ceilings: Ceilings;
  quick: boolean;
  runs: number;
  noJax: boolean;
  /** A size of the real shapes, scaled down in a quick run. */
  q: (x: number) => number;
  /** A GFLOP/s row. */
  flopRow: ReturnType<typeof flopRows>;
  /** A GB/s row. */
  byteRow: (name: string, ms: number, bytes: number, note?: string) => BenchRow;
}

/** Square matmul: this kernel, the kernel before it, plain JS and jax-js in one run. */
async function benchSquareMatmul(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, flopRow } = ctx;
  const rows: BenchRow[] = [];
  // Square matmul: this kernel, the kernel before it, plain JS and jax-js in one run.
  const side = quick ? 256 : 1024;
  const sq = { m: side, n: side, k: side, transA: false, transB: false };
  const sqFlops = 2 * side ** 3;
  const chosen = matmulVariant(sq);
  const mine = await timeMatmul(sq, runs);
  const before = await timeMatmul(sq, runs, "scalar");
  const rng = new Rng(3);
  const ha = new Float32Array(side * side).map(() => rng.uniform(-1, 1));
  const hb = new Float32Array(side * side).map(() => rng.uniform(-1, 1));
  const hc = new Float32Array(side * side);
  const jsTimes: number[] = [];
  for (let r = 0; r < runs; r++) jsTimes.push(timeHost(() => jsMatmul(ha, hb, hc, sq), 300));
  const jsMs = median(jsTimes);
  const jax = ctx.noJax ? [] : await benchJaxMatmul(side, ["webgpu", "wasm"]);
  rows.push(
    flopRow(
      `matmul ${side}^3 (${chosen})`,
      mine,
      sqFlops,
      [
        `${(before / mine).toFixed(2)}x the scalar kernel`,
        `${(jsMs / mine).toFixed(1)}x plain JS`,
        ...jax.filter((j) => j.ms !== undefined).map((j) =>
          `${(j.ms! / mine).toFixed(2)}x jax-js ${j.device}`
        ),
      ].join(", "),
    ),
    flopRow(`matmul ${side}^3 (scalar, before)`, before, sqFlops),
    {
      name: `matmul ${side}^3 plain JS (host)`,
      ms: jsMs,
      rate: sqFlops / jsMs / 1e6,
      unit: "GFLOP/s",
    },
  );
  for (const j of jax) {
    rows.push(
      j.ms !== undefined
        ? {
          name: `matmul ${side}^3 jax-js ${j.device}`,
          ms: j.ms,
          rate: j.gflops,
          unit: "GFLOP/s",
          note: j.device === "webgpu" ? "same adapter" : "host CPU, one thread",
        }
        : { name: `matmul ${side}^3 jax-js ${j.device}`, ms: NaN, note: j.error },
    );
  }
  return rows;
}

/** The model's Linear layers, forward and both gradients. */
async function benchLinears(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, q, flopRow } = ctx;
  const rows: BenchRow[] = [];
  // The model's Linear layers, forward and both gradients.
  const linears: LinearShape[] = [
    { label: "low-res qkv", tokens: q(729), inF: q(1152), outF: q(3456) },
    { label: "low-res mlp fc1", tokens: q(729), inF: q(1152), outF: q(4304) },
    { label: "high-res mlp fc2", tokens: q(2560), inF: q(4304), outF: q(1152) },
  ];
  for (const lin of linears) {
    for (const d of linearMatmuls(lin)) {
      const ms = await timeMatmul(d, runs);
      rows.push(
        flopRow(
          `matmul ${d.name} ${d.m}x${d.n}x${d.k}`,
          ms,
          2 * d.m * d.n * d.k,
          matmulVariant(d),
        ),
      );
    }
  }
  rows.push(...await benchEpilogues(ctx.ceilings, { quick, runs }));
  return rows;
}

/** Attention of one high-res block against the low-res cache, every kernel family. */
async function benchAttention(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, q, flopRow } = ctx;
  const rows: BenchRow[] = [];
  // Attention of one high-res block against the low-res cache (forward, and backward).
  const heads = quick ? 4 : 16, dh = 72, w = heads * dh;
  const nq = q(2560), nc = q(729);
  const qt = persistent([1, nq, w], 4, true), kt = persistent([1, nq, w], 5, true);
  const vt = persistent([1, nq, w], 6, true);
  const ck = persistent([1, nc, w], 7, true), cv = persistent([1, nc, w], 8, true);
  const pairs = heads * nq * (nq + nc);
  const attnLabel = `attention Nq=${nq} Nc=${nc}+Nk=${nq} H=${heads} D=${dh}`;
  const attnRuns = quick ? runs : 1;
  const dOut = persistent([1, nq, w], 9);
  // Every family in the same run, the adapter's choice first: `rows` with its rows per thread
  // here (and with 1, the GPU layout, on CPU adapters), and `tiled`.
  const attnChoice = attentionVariant(dh, {}, nq);
  const r = attentionRows();
  const u = uniformShape();
  type Layout = { variant: AttentionVariant; rows: number | "auto"; label: string };
  const layouts: Layout[] = [
    { variant: "rows", rows: "auto", label: `rows, ${r} query row${r > 1 ? "s" : ""} per thread` },
    { variant: "rows", rows: 1, label: "rows, 1 query row per thread" },
    { variant: "tiled", rows: "auto", label: "tiled: K/V tiles in workgroup memory" },
    {
      variant: "uniform",
      rows: "auto",
      label: `uniform: ${u.wg} threads x ${u.rows} query rows, key chunks of ${u.chunk}; ` +
        "rows backward",
    },
    {
      variant: "texture",
      rows: "auto",
      label: "texture: uniform reading K/V from textures; rows backward",
    },
  ];
  if (r === 1) layouts.splice(1, 1);
  layouts.sort((a, b) => Number(b.variant === attnChoice) - Number(a.variant === attnChoice));
  const timed: { label: string; fwd: number; bwd: number }[] = [];
  for (const l of layouts) {
    const kernel = { variant: l.variant, rows: l.rows };
    const attn = () => attention(qt, kt, vt, { heads, cache: { k: ck, v: cv }, kernel });
    const fwd = await timeGpuMedian(() => void noGrad(attn), {
      runs: attnRuns,
      minMs: 100,
      maxReps: 10,
    });
    const fwdBwd = await timeGpuMedian(() => backward(attn(), dOut), {
      runs: attnRuns,
      minMs: 100,
      maxReps: 10,
    });
    timed.push({ label: l.label, fwd, bwd: Math.max(fwdBwd - fwd, 1e-3) });
  }
  const viaMatmul = await timeGpuMedian(
    () => void noGrad(() => matmulAttention({ q: qt, k: kt, v: vt, ck, cv }, heads)),
    { runs: attnRuns, minMs: 100, maxReps: 10 },
  );
  const best = timed[0]!;
  for (const [i, t] of timed.entries()) {
    const vs = i === 0
      ? timed.slice(1).map((o) => `${(o.fwd / t.fwd).toFixed(2)}x (${o.label})`).join(", ")
      : `${(best.fwd / t.fwd).toFixed(2)}x the adapter's choice`;
    rows.push(
      flopRow(
        `${attnLabel} forward (${t.label})`,
        t.fwd,
        4 * dh * pairs,
        `${i === 0 ? "chosen here; " : ""}${vs}`,
      ),
      flopRow(
        `${attnLabel} backward (${t.label})`,
        t.bwd,
        14 * dh * pairs,
        "fwd+bwd minus fwd; p recomputed from the saved logsumexp",
      ),
    );
  }
  rows.push(flopRow(
    `${attnLabel} forward (matmuls: per-head copies, S = Q K^T, softmax, P V)`,
    viaMatmul,
    4 * dh * pairs,
    `${(best.fwd / viaMatmul).toFixed(2)}x the adapter's choice; heads in groups of 4 ` +
      "(score blocks of 135 MB); P is packed for its matmul (Nc + Nk not a multiple of 4)",
  ));
  for (const t of [qt, kt, vt, ck, cv, dOut]) {
    t.grad?.dispose();
    t.dispose();
  }
  rows.push(...await benchLowResAttention(ctx));
  return rows;
}

/**
 * Attention's forward through the matmul kernels, the candidate the fused kernels are
 * measured against: q, [cache k ; k] and [cache v ; v] copied per head ([H, N, D], values
 * transposed [H, D, Nt]), then per group of 4 heads S = (scale q) K^T (the vec4 matmul on
 * CPU adapters), the row softmax in f32 and O = P V, copied back to [1, Nq, H*D]. No key mask.
 */
function matmulAttention(
  t: { q: Tensor; k: Tensor; v: Tensor; ck: Tensor; cv: Tensor },
  heads: number,
): Tensor {
  const [, nq, w] = t.q.shape as [number, number, number];
  const d = w / heads, nt = t.ck.shape[1]! + t.k.shape[1]!;
  const scaled = binary("mul", t.q, tensor(Float32Array.of(1 / Math.sqrt(d)), [1]));
  const qh = permute(scaled.view([1, nq, heads, d]), [0, 2, 1, 3]);
  const kh = permute(concat([t.ck, t.k], 1).view([1, nt, heads, d]), [0, 2, 1, 3]);
  const vt = permute(concat([t.cv, t.v], 1).view([1, nt, heads, d]), [0, 2, 3, 1]);
  const outs: Tensor[] = [];
  for (let h = 0; h < heads; h += 4) {
    const part = (x: Tensor) => slice(x, { axis: 1, start: h, end: Math.min(heads, h + 4) });
    const scores = matmul(part(qh), part(kh), { transB: true });
    const p = softmax(scores);
    scores.dispose();
    outs.push(matmul(p, part(vt), { transB: true }));
    p.dispose(); // one group's score blocks at a time
  }
  return permute(concat(outs, 1), [0, 2, 1, 3]).view([1, nq, w]);
}

/**
 * The low-res pass's self-attention (729 tokens, 16 heads of 72), forward: the `texture`
 * and `uniform` kernels against `rows`, in the same run.
 */
async function benchLowResAttention(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, q, flopRow } = ctx;
  const heads = quick ? 4 : 16, dh = 72, n = q(729), w = heads * dh;
  const [x, k, v] = [11, 12, 13].map((seed) => persistent([1, n, w], seed));
  const label = `attention low-res N=${n} H=${heads} D=${dh} forward`;
  const time = (variant: AttentionVariant) =>
    timeGpuMedian(() => void noGrad(() => attention(x!, k!, v!, { heads, kernel: { variant } })), {
      runs: quick ? runs : 1,
      minMs: 100,
      maxReps: 10,
    });
  const textureMs = await time("texture");
  const uniformMs = await time("uniform"), rowsMs = await time("rows");
  const flops = 4 * dh * heads * n * n;
  for (const t of [x, k, v]) t!.dispose();
  return [
    flopRow(`${label} (texture)`, textureMs, flops, `${(rowsMs / textureMs).toFixed(2)}x rows`),
    flopRow(`${label} (uniform)`, uniformMs, flops, `${(rowsMs / uniformMs).toFixed(2)}x rows`),
    flopRow(`${label} (rows)`, rowsMs, flops),
  ];
}

/** Memory-bound kernels: layer norm, elementwise (vec4 and scalar), softmax. */
async function benchMemoryBound(ctx: BenchContext): Promise<BenchRow[]> {
  const { runs, q, byteRow } = ctx;
  const rows: BenchRow[] = [];
  // Memory-bound kernels: bytes read + written once.
  const tok = q(2560), c = q(1152), hid = q(4304);
  const x = persistent([tok, c], 10), lw = persistent([c], 11), lb = persistent([c], 12);
  const lnMs = await timeGpuMedian(() => void layerNorm(x, lw, lb, { eps: 1e-6 }), { runs });
  rows.push(byteRow(`layerNorm [${tok}, ${c}]`, lnMs, 8 * tok * c));
  x.dispose();
  lw.dispose();
  lb.dispose();
  // Elementwise kernels: the vec4 family (4 floats per thread) and the scalar one before it.
  const h = persistent([tok, hid], 13), h2 = persistent([tok, hid], 19);
  const elementwise = [
    {
      name: `gelu [${tok}, ${hid}]`,
      fn: (variant: ElementwiseVariant) => void unary("gelu", h, 0, 0, { variant }),
      bytes: 8 * tok * hid,
    },
    {
      name: `add [${tok}, ${hid}] + [${tok}, ${hid}]`,
      fn: (variant: ElementwiseVariant) => void binary("add", h, h2, { variant }),
      bytes: 12 * tok * hid,
    },
  ];
  for (const e of elementwise) {
    const vec = await timeGpuMedian(() => e.fn("vec4"), { runs });
    const scalar = await timeGpuMedian(() => e.fn("scalar"), { runs });
    rows.push(
      byteRow(`${e.name} (vec4)`, vec, e.bytes, `${(scalar / vec).toFixed(2)}x the scalar kernel`),
      byteRow(`${e.name} (scalar, before)`, scalar, e.bytes, "one float per thread"),
    );
  }
  h.dispose();
  h2.dispose();
  const sRows = q(2560), sCols = q(729);
  const sIn = persistent([sRows, sCols], 14);
  const smMs = await timeGpuMedian(() => void softmax(sIn), { runs });
  rows.push(byteRow(`softmax [${sRows}, ${sCols}]`, smMs, 8 * sRows * sCols));
  sIn.dispose();
  return rows;
}

/** Resizes of the 4K path. */
async function benchResizes(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, byteRow } = ctx;
  const rows: BenchRow[] = [];
  // Resizes of the 4K path: the 3780 image to 1512 (scale 2 and the ConvNet input) and 1512
  // to 378 (the low-res view), bicubic on [B * 3, H, W, 1].
  for (const [from, to] of quick ? [[756, 302], [302, 76]] : [[3780, 1512], [1512, 378]]) {
    const img = persistent([3, from!, from!, 1], 15);
    const ms = await timeGpuMedian(() => void resizeBicubic(img, [to!, to!]), { runs });
    rows.push(
      byteRow(`resize bicubic 3x${from}^2 -> ${to}^2`, ms, 4 * 3 * (from! ** 2 + to! ** 2)),
    );
    img.dispose();
  }
  return rows;
}

/** Gathers of the high-res pass. */
async function benchGathers(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, q, byteRow } = ctx;
  const rows: BenchRow[] = [];
  // Gathers of the high-res pass: the selected patches of a 1512 image and their positions.
  const side1 = quick ? 378 : 1512, p = 14, grid1 = side1 / p, sel = q(2560), c = q(1152);
  const pick = (n: number, k: number) => {
    const idx = new Int32Array(k);
    for (let i = 0; i < k; i++) idx[i] = Math.floor((i * n) / k);
    return keep(tensor(idx, [1, k], "i32"));
  };
  const im = persistent([1, 3, side1, side1], 16);
  const idx = pick(grid1 * grid1, sel);
  const gpMs = await timeGpuMedian(() => void gatherPatches(im, { patch: p, index: idx }), {
    runs,
  });
  rows.push(byteRow(`gatherPatches ${sel} of ${grid1}^2 patches, p=14`, gpMs, 8 * sel * 3 * p * p));
  im.dispose();
  const table = persistent([grid1 * grid1, c], 17);
  const grMs = await timeGpuMedian(() => void gatherRows(table, idx), { runs });
  rows.push(byteRow(`gatherRows ${sel} of [${grid1 * grid1}, ${c}]`, grMs, 8 * sel * c));
  table.dispose();
  idx.dispose();
  return rows;
}

/** Top-k of the selection. */
async function benchTopk(ctx: BenchContext): Promise<BenchRow[]> {
  const { quick, runs, byteRow } = ctx;
  const rows: BenchRow[] = [];
  // Top-k of the selection: 2134 of the 4K grid (270^2), 2048 of the 1.5K grid (108^2).
  for (const [n, k] of quick ? [[4900, 512], [1296, 256]] : [[72900, 2134], [11664, 2048]]) {
    const scores = persistent([1, n!], 18);
    const ms = await timeGpuMedian(() => void topkIndices(scores, k!), { runs });
    rows.push(
      byteRow(`topkIndices ${k} of ${n}`, ms, 4 * n! + 4 * k!, "radix passes over the row"),
    );
    scores.dispose();
  }
  return rows;
}

/**
 * Runs the kernel benchmarks.
 *
 * @param ceilings The device ceilings measured in this run (rates are given as fractions).
 * @param options Shape preset, runs, jax-js.
 * @returns Result rows.
 * @example
 * ```ts
 * const rows = await benchOps(await measureCeilings(), { quick: true });
 * ```
 */
export async function benchOps(
  ceilings: Ceilings,
  options: OpsBenchOptions = {},
): Promise<BenchRow[]> {
  const quick = options.quick ?? false;
  const ctx: BenchContext = {
    ceilings,
    quick,
    runs: options.runs ?? 3,
    noJax: options.noJax ?? false,
    q: (x: number) => (quick ? Math.max(4, Math.round(x / 16) * 4) : x),
    flopRow: flopRows(ceilings),
    byteRow: (name, ms, bytes, note) => ({
      name,
      ms,
      rate: bytes / ms / 1e6,
      unit: "GB/s",
      ceiling: bytes / ms / 1e6 / ceilings.gbps,
      note,
    }),
  };
  const sections: Record<OpsSection, (c: BenchContext) => Promise<BenchRow[]>> = {
    "square-matmul": benchSquareMatmul,
    linears: benchLinears,
    "matmul-variants": (c) => benchMatmulVariants(c.ceilings, { quick: c.quick, runs: 1 }),
    attention: benchAttention,
    memory: benchMemoryBound,
    resize: benchResizes,
    gather: benchGathers,
    topk: benchTopk,
  };
  const only = options.only ?? OPS_SECTIONS;
  for (const name of only) {
    if (!OPS_SECTIONS.includes(name)) {
      throw new RangeError(
        `Unknown bench section "${name}": expected one of ${OPS_SECTIONS.join(", ")}`,
      );
    }
  }
  const rows: BenchRow[] = [];
  for (const name of OPS_SECTIONS) if (only.includes(name)) rows.push(...await sections[name](ctx));
  await gpu().sync();
  return rows;
}
