/**
 * The device check of `ps3 bench --device-check`: the kernels at the model's sizes on the
 * current adapter against the float64 references of `src/reference/` (the op tests cover
 * awkward small sizes and every gradient; this covers the sizes that matter, where tiling,
 * grids and binding windows differ), with every kernel family: the matmul families (the
 * forward also with its fused residual and GELU epilogues), both
 * attention families (`rows` with the adapter's rows per thread and with one; `tiled`) and
 * both elementwise families (vec4, scalar). Matmul outputs are poisoned first (every element
 * must be overwritten); outputs are compared by ||out - ref|| / ||ref|| over every element,
 * or over sampled elements for the big products (whose outputs are still checked whole for
 * being written and finite).
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { tidy } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import { full, tensor } from "../ops/creation.ts";
import { binary, type ElementwiseVariant, unary } from "../ops/elementwise.ts";
import { MATMUL_VARIANTS, matmulInto, type MatmulVariant, matmulVariant } from "../ops/matmul.ts";
import { attention, type AttentionVariant } from "../ops/attention.ts";
import { layerNorm } from "../ops/norm.ts";
import { softmax } from "../ops/softmax.ts";
import { resizeBicubic } from "../ops/resize.ts";
import { gatherPatches } from "../ops/patch.ts";
import { topkIndices } from "../ops/topk.ts";
import { type Arr, arr, randArr } from "../reference/array.ts";
import { attentionRef } from "../reference/attention.ts";
import { binaryRef, UNARY_REF, unaryRef } from "../reference/elementwise.ts";
import { layerNormRef } from "../reference/norm.ts";
import { softmaxRef } from "../reference/softmax.ts";
import { resizeBicubicRef } from "../reference/resize.ts";
import { gatherPatchesRef } from "../reference/patch.ts";
import { topkIndicesRef } from "../reference/topk.ts";
import { Rng } from "../util/rng.ts";

/** One check's outcome. */
export interface CheckResult {
  /** Kernel and size. */
  name: string;
  /** Whether it passed. */
  ok: boolean;
  /** Milliseconds of GPU work and readback. */
  ms: number;
  /** Errors against the tolerance. */
  detail: string;
}

/** Written into outputs before a kernel runs; random data never produces it. */
const POISON = 3.0e38;

const up = (a: Arr, shape: readonly number[] = a.shape) => tensor(Float32Array.from(a.data), shape);
/** A copy of an array with its values rounded to f32 (what the GPU receives). */
const roundArr = (a: Arr): Arr => ({
  data: Float64Array.from(Float32Array.from(a.data)),
  shape: a.shape,
});

/** Relative error ||got - want|| / ||want|| and the largest |difference|; NaN is +Infinity. */
function compare(got: ArrayLike<number>, want: ArrayLike<number>) {
  let num = 0, den = 0, max = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    if (!Number.isFinite(got[i]!)) return { rel: Infinity, max: Infinity };
    num += d * d;
    den += want[i]! * want[i]!;
    max = Math.max(max, Math.abs(d));
  }
  return { rel: Math.sqrt(num / Math.max(den, 1e-300)), max };
}

function verdict(name: string, ms: number, err: { rel: number; max: number }, tol: number) {
  return {
    name,
    ok: err.rel <= tol,
    ms,
    detail: `rel err ${err.rel.toExponential(2)} (tol ${tol.toExponential(0)}), ` +
      `max |err| ${err.max.toExponential(2)}`,
  };
}

/** Runs GPU work and reads tensors back, timing both. */
async function run(fn: () => Tensor[]): Promise<{ ms: number; out: Float32Array[] }> {
  const t0 = performance.now();
  const ts = tidy(fn);
  const bytes = await gpu().read(ts);
  const ms = performance.now() - t0;
  for (const t of ts) t.dispose();
  return { ms, out: bytes.map((b) => new Float32Array(b)) };
}

/** Matmul checks: every kernel family and transpose at the qkv size, sampled outputs. */
async function checkMatmuls(rng: Rng, out: CheckResult[]) {
  // The low-res qkv layer's three products (T 729, in 1152, out 3456).
  const modes = [
    { name: "forward x W^T", m: 729, n: 3456, k: 1152, transA: false, transB: true },
    { name: "dX = dY W", m: 729, n: 1152, k: 3456, transA: false, transB: false },
    { name: "dW = dY^T X", m: 3456, n: 1152, k: 729, transA: true, transB: false },
  ];
  for (const mode of modes) {
    const a = randArr(mode.transA ? [mode.k, mode.m] : [mode.m, mode.k], rng);
    const b = randArr(mode.transB ? [mode.n, mode.k] : [mode.k, mode.n], rng);
    const bias = randArr([mode.n], rng);
    for (const v of a.data.keys()) a.data[v] = Math.fround(a.data[v]!);
    for (const v of b.data.keys()) b.data[v] = Math.fround(b.data[v]!);
    // 4096 sampled outputs, computed in float64.
    const picks = Array.from({ length: 4096 }, () => [rng.int(mode.m), rng.int(mode.n)] as const);
    const exact = picks.map(([i, j]) => {
      let s = Math.fround(bias.data[j]!);
      for (let p = 0; p < mode.k; p++) {
        const av = a.data[mode.transA ? p * mode.m + i : i * mode.k + p]!;
        s += av * b.data[mode.transB ? j * mode.k + p : p * mode.n + j]!;
      }
      return s;
    });
    // The forward also runs with the fused epilogues: a residual add, and GELU with its input
    // saved for the backward (both outputs checked).
    const residual = randArr([mode.m, mode.n], rng);
    const epilogues: { name: string; fused: "residual" | "gelu" | null }[] = mode.transB
      ? [{ name: "", fused: null }, { name: " + residual", fused: "residual" }, {
        name: " + GELU",
        fused: "gelu",
      }]
      : [{ name: "", fused: null }];
    for (const variant of MATMUL_VARIANTS) {
      const used: MatmulVariant = matmulVariant(mode, variant);
      if (used !== variant) continue; // e.g. tiled-f16 without shader-f16
      for (const epi of epilogues) {
        const { ms, out: ys } = await run(() => {
          const c = full([mode.m, mode.n], POISON);
          const z = full([mode.m, mode.n], POISON);
          matmulInto(
            up(a),
            up(b),
            c,
            { batch: 1, m: mode.m, n: mode.n, k: mode.k, sharedB: true },
            {
              transA: mode.transA,
              transB: mode.transB,
              bias: up(bias),
              residual: epi.fused === "residual" ? up(residual) : undefined,
              activation: epi.fused === "gelu" ? "gelu" : undefined,
              preActivation: epi.fused === "gelu" ? z : undefined,
              kernel: { variant },
            },
          );
          return epi.fused === "gelu" ? [c, z] : [c];
        });
        const f16 = variant === "tiled-f16";
        // Each output against its float64 value at the sampled places.
        const outputs: { y: Float32Array; want: number[]; what: string }[] = [];
        if (epi.fused === "gelu") {
          outputs.push({ y: ys[0]!, want: exact.map((v) => UNARY_REF.gelu!(v, 0, 0)), what: "" });
          outputs.push({ y: ys[1]!, want: exact, what: " (saved input)" });
        } else if (epi.fused === "residual") {
          const want = exact.map((v, i) =>
            v + residual.data[picks[i]![0] * mode.n + picks[i]![1]]!
          );
          outputs.push({ y: ys[0]!, want, what: "" });
        } else outputs.push({ y: ys[0]!, want: exact, what: "" });
        for (const o of outputs) {
          const unwritten = o.y.findIndex((x) => !Number.isFinite(x) || x === Math.fround(POISON));
          const got = picks.map(([i, j]) => o.y[i * mode.n + j]!);
          // f32: K <= 3456 products summed in f32 (~1e-6 relative); f16: operands rounded to
          // f16 (2^-11 relative each), so ~1e-3 against the exact product.
          const r = verdict(
            `matmul ${variant} ${mode.name}${epi.name}${o.what} ${mode.m}x${mode.n}x${mode.k}`,
            ms,
            unwritten >= 0 ? { rel: Infinity, max: Infinity } : compare(got, o.want),
            f16 ? 3e-3 : 1e-5,
          );
          if (unwritten >= 0) {
            r.detail = `output element ${unwritten} not written (or not finite)`;
          }
          out.push(r);
        }
      }
    }
  }
}

/** The attention kernel families and layouts the check runs. */
const ATTENTION_LAYOUTS: { variant: AttentionVariant; rows: number | "auto"; label: string }[] = [
  { variant: "rows", rows: "auto", label: "rows, rows/thread: auto" },
  { variant: "rows", rows: 1, label: "rows, rows/thread: 1" },
  { variant: "tiled", rows: "auto", label: "tiled" },
];

/**
 * Attention at one high-res block's size (sampled rows), and its gradients at a medium size,
 * with every kernel family.
 */
async function checkAttention(rng: Rng, out: CheckResult[]) {
  const heads = 16, d = 72, w = heads * d, nq = 2560, nc = 729;
  const big = (n: number) => randArr([1, n, w], rng);
  const q = big(nq), k = big(nq), v = big(nq), ck = big(nc), cv = big(nc);
  const picks = Array.from({ length: 16 }, () => rng.int(nq));
  const qs = arr([1, picks.length, w]);
  picks.forEach((i, r) => qs.data.set(q.data.subarray(i * w, (i + 1) * w), r * w));
  const want = attentionRef(qs, k, v, { heads, cache: { k: ck, v: cv } });
  for (const l of ATTENTION_LAYOUTS) {
    const kernel = { variant: l.variant, rows: l.rows };
    const { ms, out: [y] } = await run(() => [
      noGrad(() =>
        attention(up(q), up(k), up(v), { heads, cache: { k: up(ck), v: up(cv) }, kernel })
      ),
    ]);
    const got = new Float64Array(picks.length * w);
    picks.forEach((i, r) => got.set(y!.subarray(i * w, (i + 1) * w), r * w));
    const finite = y!.every(Number.isFinite);
    out.push(
      verdict(
        `attention forward (${l.label}) Nq=${nq} Nc=${nc}+Nk=${nq} H=${heads} D=${d}`,
        ms,
        finite ? compare(got, want.data) : { rel: Infinity, max: Infinity },
        1e-5,
      ),
    );
  }
  // Gradients: <dO, y> differentiated along a random direction, against central differences
  // of the float64 reference (h = 1e-4 on inputs of size ~1: truncation ~1e-8).
  const m = 160, mc = 57, hh = 2, ww = hh * d;
  const xs = [m, m, m, mc, mc].map((n) => randArr([1, n, ww], rng));
  const dOut = randArr([1, m, ww], rng);
  const dirs = xs.map((x) => randArr(x.shape, rng));
  const f = (ys: Arr[]) => {
    const y = attentionRef(ys[0]!, ys[1]!, ys[2]!, { heads: hh, cache: { k: ys[3]!, v: ys[4]! } });
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += y.data[i]! * Math.fround(dOut.data[i]!);
    return s;
  };
  for (const l of ATTENTION_LAYOUTS) {
    const kernel = { variant: l.variant, rows: l.rows };
    const { ms, out: grads } = await run(() => {
      const ts = xs.map((x) => {
        const t = up(x);
        t.requiresGrad = true;
        return t;
      });
      const y = attention(ts[0]!, ts[1]!, ts[2]!, {
        heads: hh,
        cache: { k: ts[3]!, v: ts[4]! },
        kernel,
      });
      backward(y, up(dOut));
      return ts.map((t) => t.grad!);
    });
    const names = ["q", "k", "v", "cache k", "cache v"];
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!, u = dirs[i]!, hStep = 1e-4;
      const rounded = xs.map((z) => ({ data: z.data.map(Math.fround), shape: z.shape }));
      const plus = rounded.map((z) => ({ ...z, data: z.data.slice() }));
      const minus = rounded.map((z) => ({ ...z, data: z.data.slice() }));
      for (let e = 0; e < x.data.length; e++) {
        plus[i]!.data[e] = plus[i]!.data[e]! + hStep * u.data[e]!;
        minus[i]!.data[e] = minus[i]!.data[e]! - hStep * u.data[e]!;
      }
      const fd = (f(plus) - f(minus)) / (2 * hStep);
      let dot = 0;
      for (let e = 0; e < x.data.length; e++) dot += grads[i]![e]! * u.data[e]!;
      out.push(
        verdict(
          `attention gradient of ${names[i]} (${l.label}) along a random direction`,
          ms,
          compare([dot], [fd]),
          1e-4,
        ),
      );
    }
  }
}

/** Memory-bound kernels at the model's sizes, every element compared. */
async function checkOthers(rng: Rng, out: CheckResult[]) {
  const x = randArr([2560, 1152], rng), lw = randArr([1152], rng), lb = randArr([1152], rng);
  let r = await run(() => [layerNorm(up(x), up(lw), up(lb), { eps: 1e-6 })]);
  out.push(
    verdict(
      "layerNorm [2560, 1152]",
      r.ms,
      compare(r.out[0]!, layerNormRef(x, lw, lb, { eps: 1e-6 }).data),
      1e-5,
    ),
  );
  // Elementwise ops with both kernel families (the vec4 one runs by default at these sizes).
  const h = randArr([2560, 4304], rng, -4, 4), h2 = randArr([2560, 4304], rng, -4, 4);
  const geluRef = unaryRef("gelu", h).data;
  const addRef = binaryRef("add", roundArr(h), roundArr(h2)).data;
  for (const variant of ["vec4", "scalar"] as ElementwiseVariant[]) {
    r = await run(() => [unary("gelu", up(h), 0, 0, { variant })]);
    out.push(verdict(`gelu (${variant}) [2560, 4304]`, r.ms, compare(r.out[0]!, geluRef), 1e-5));
    r = await run(() => [binary("add", up(h), up(h2), { variant })]);
    // One f32 rounding of the exact sum of f32 inputs.
    out.push(verdict(`add (${variant}) [2560, 4304]`, r.ms, compare(r.out[0]!, addRef), 1e-7));
  }
  const s = randArr([2560, 729], rng, -8, 8);
  r = await run(() => [softmax(up(s))]);
  out.push(verdict("softmax [2560, 729]", r.ms, compare(r.out[0]!, softmaxRef(s).data), 1e-5));
  const img = randArr([3, 1512, 1512, 1], rng);
  r = await run(() => [resizeBicubic(up(img), [378, 378])]);
  out.push(
    verdict(
      "resize bicubic 3x1512^2 -> 378^2",
      r.ms,
      compare(r.out[0]!, resizeBicubicRef(img, [378, 378]).data),
      1e-5,
    ),
  );
  const im = randArr([1, 3, 1512, 1512], rng);
  im.data.set(Float32Array.from(im.data)); // a copy is exact: compare with the f32 inputs
  const n = 108 * 108, kSel = 2560;
  const sel = Array.from({ length: kSel }, (_, i) => Math.floor((i * n) / kSel));
  r = await run(() => [
    gatherPatches(up(im), { patch: 14, index: tensor(Int32Array.from(sel), [1, kSel], "i32") }),
  ]);
  out.push(
    verdict(
      "gatherPatches 2560 of 108^2, p=14",
      r.ms,
      compare(r.out[0]!, gatherPatchesRef(im, 14, [sel]).data),
      0,
    ),
  );
  // Top-k: distinct scores, so the selected set is unique.
  const scores = arr(
    [1, 72900],
    Array.from({ length: 72900 }, (_, i) => ((i * 7919) % 72900) / 7e4),
  );
  const t0 = performance.now();
  const idx = tidy(() => topkIndices(up(scores), 2134));
  const got = Array.from(new Int32Array((await gpu().read([idx]))[0]!));
  idx.dispose();
  const ms = performance.now() - t0;
  const want = Array.from(topkIndicesRef(scores, 2134).data);
  const same = got.length === want.length && got.every((g, i) => g === want[i]);
  out.push({
    name: "topkIndices 2134 of 72900",
    ok: same,
    ms,
    detail: same ? "same indices" : "different indices",
  });
}

/**
 * Checks the kernels on the current adapter at the model's sizes.
 *
 * @param options Progress log.
 * @returns One result per check.
 * @example
 * ```ts
 * const failed = (await deviceCheck()).filter((c) => !c.ok);
 * ```
 */
export async function deviceCheck(
  options: { log?: ((line: string) => void) | undefined } = {},
): Promise<CheckResult[]> {
  const rng = new Rng(2024);
  const out: CheckResult[] = [];
  const log = options.log ?? (() => {});
  const report = (from: number) => {
    for (const c of out.slice(from)) log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  };
  let at = 0;
  for (const part of [checkMatmuls, checkAttention, checkOthers]) {
    await part(rng, out);
    report(at);
    at = out.length;
  }
  return out;
}
