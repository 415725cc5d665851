/**
 * Attention on f16 activations (issue 14): q, k, v, the cache, out and their gradients stored
 * as f16; scores, softmax, logsumexp and the backward's statistics f32 inside the kernels
 * (see `f16_check.ts` for what is compared), for both kernel families, with and without a
 * cache and a key mask, head dims with and without a scalar tail.
 *
 * Tolerances (inputs in [-1, 1], so |O| <= 1, and weights |w| = |dO| <= 1):
 * - forward: the f32 kernel's (`attention_test.ts`: 5e-7 + 2e-6 |y|) plus the f16 rounding
 *   of out, 2^-11 relative; bit for bit the f16 rounding of the f32 path's out.
 * - gradients against a float64 model of the f16 run (the exact backward, but with delta =
 *   rowsum(dO * O) from the f16 run's stored O, as the kernels compute it): the f32 kernel's
 *   2e-6 + 1e-5 |g| plus the f16 rounding of the stored gradient, 2^-11 |g|; with a cache,
 *   dQ of the own keys is added to the stored f16 dQ of the cache: one more rounding of that
 *   partial, |partial| <= scale * D (|ds| sums to <= 2 per row, |k| <= 1), so 2^-11 * scale * D
 *   more.
 * - gradients against finite differences of the exact float64 reference and against the f32
 *   path: the stored O is off by 2^-11 |O|, so delta by <= 2^-11 * D; dQ rows by
 *   scale * D * 2^-11 (the probabilities of a row sum to 1, |k| <= 1), dK rows by
 *   scale * D * 2^-11 * Nq (a key's probabilities over Nq queries sum to <= Nq); dV not at
 *   all. Hence 2e-6 + 2^-11 * scale * D * max(2, Nq) absolute plus the relative rounding.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert";
import { type Arr, arr, randArr, Rng } from "../harness.ts";
import { checkF16, F16_EPS } from "./f16_check.ts";
import { attention, type AttentionKernel, attentionVariant } from "../../src/ops/attention.ts";
import { attentionRef } from "../../src/reference/attention.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { tidy } from "../../src/autograd/scope.ts";

const rng = new Rng(16);

interface Case {
  b: number;
  nq: number;
  nk: number;
  nc: number;
  heads: number;
  d: number;
  mask?: boolean;
}

/** Key mask [B, Nt], about a third zeros, at least one 1 per sample. */
function randMask(b: number, nt: number): Arr {
  const m = arr([b, nt]);
  for (let s = 0; s < b; s++) {
    for (let j = 0; j < nt; j++) m.data[s * nt + j] = rng.uniform(0, 1) < 0.35 ? 0 : 1;
    m.data[s * nt + rng.int(nt)] = 1;
  }
  return m;
}

/**
 * The float64 gradients of `<w, attention>` with delta = rowsum(dO * O) taken from a given O
 * (the f16 run's): [dq, dk, dv, (dcache k, dcache v)].
 */
function gradGivenO(c: Case, xs: Arr[], o: Float32Array, w: Arr): Arr[] {
  const [q, k, v] = xs as [Arr, Arr, Arr];
  const ck = c.nc > 0 ? xs[3]! : null, cv = c.nc > 0 ? xs[4]! : null;
  const mask = c.mask ? xs[xs.length - 1]! : null;
  const hd = c.heads * c.d, nt = c.nc + c.nk, d = c.d, scale = 1 / Math.sqrt(d);
  const dq = arr(q.shape), dk = arr(k.shape), dv = arr(v.shape);
  const dck = ck ? arr(ck.shape) : null, dcv = cv ? arr(cv.shape) : null;
  const row = (b: number, j: number): [Arr, Arr, Arr, Arr, number] =>
    j < c.nc
      ? [ck!, cv!, dck!, dcv!, (b * c.nc + j) * hd]
      : [k, v, dk, dv, (b * c.nk + j - c.nc) * hd];
  const p = new Float64Array(nt);
  for (let b = 0; b < c.b; b++) {
    for (let h = 0; h < c.heads; h++) {
      for (let i = 0; i < c.nq; i++) {
        const qo = (b * c.nq + i) * hd + h * d;
        let m = -Infinity;
        for (let j = 0; j < nt; j++) {
          if (mask && mask.data[b * nt + j] === 0) {
            p[j] = -Infinity;
            continue;
          }
          const [ka, , , , ko] = row(b, j);
          let s = 0;
          for (let e = 0; e < d; e++) s += q.data[qo + e]! * ka.data[ko + h * d + e]!;
          p[j] = scale * s;
          m = Math.max(m, p[j]!);
        }
        if (m === -Infinity) continue;
        let l = 0;
        for (let j = 0; j < nt; j++) l += p[j] = Math.exp(p[j]! - m);
        let delta = 0;
        for (let e = 0; e < d; e++) delta += w.data[qo + e]! * o[qo + e]!;
        for (let j = 0; j < nt; j++) {
          const pj = p[j]! / l;
          if (pj === 0) continue;
          const [ka, va, dka, dva, ko] = row(b, j);
          let dp = 0;
          for (let e = 0; e < d; e++) dp += w.data[qo + e]! * va.data[ko + h * d + e]!;
          const ds = pj * (dp - delta);
          for (let e = 0; e < d; e++) {
            dq.data[qo + e]! += scale * ds * ka.data[ko + h * d + e]!;
            dka.data[ko + h * d + e]! += scale * ds * q.data[qo + e]!;
            dva.data[ko + h * d + e]! += pj * w.data[qo + e]!;
          }
        }
      }
    }
  }
  return [dq, dk, dv, ...(dck && dcv ? [dck, dcv] : [])];
}

/** Checks one case with a kernel choice. */
function check(c: Case, kernel: AttentionKernel, fdSamples = 16, split = false) {
  const w = c.heads * c.d;
  const xs = [
    randArr([c.b, c.nq, w], rng),
    randArr([c.b, c.nk, w], rng),
    randArr([c.b, c.nk, w], rng),
  ];
  if (c.nc > 0) xs.push(randArr([c.b, c.nc, w], rng), randArr([c.b, c.nc, w], rng));
  if (c.mask) xs.push(randMask(c.b, c.nc + c.nk));
  const maskAt = c.mask ? xs.length - 1 : -1;
  const opts = <T>(ys: T[]) => ({
    heads: c.heads,
    cache: c.nc > 0 ? { k: ys[3]!, v: ys[4]! } : undefined,
    keyMask: maskAt >= 0 ? ys[maskAt]! : undefined,
  });
  const scaleD = Math.sqrt(c.d); // scale * D
  return checkF16({
    name: `attention f16 ${JSON.stringify(c)} ${kernel.variant}`,
    inputs: xs,
    f16: xs.map((_, i) => i !== maskAt),
    op: (ts) => attention(ts[0]!, ts[1]!, ts[2]!, { ...opts(ts), kernel }),
    ref: (as) => attentionRef(as[0]!, as[1]!, as[2]!, opts(as)),
    tol: {
      atol: 5e-7,
      rtol: 2e-6 + F16_EPS,
      gradAtol: 2e-6 + F16_EPS * scaleD * Math.max(2, c.nq),
      gradRtol: 1e-5 + F16_EPS,
    },
    noGrad: maskAt >= 0 ? [maskAt] : [],
    exactGrads: false,
    fdSamples,
    split,
    gradModel: (as, y, ww) => gradGivenO(c, as, y, ww),
    modelTol: { atol: 2e-6 + (c.nc > 0 ? F16_EPS * scaleD : 0), rtol: 1e-5 + F16_EPS },
  });
}

const CASES: Case[] = [
  { b: 2, nq: 7, nk: 13, nc: 0, heads: 2, d: 8 },
  { b: 1, nq: 7, nk: 13, nc: 5, heads: 3, d: 5 },
  { b: 2, nq: 5, nk: 11, nc: 6, heads: 2, d: 16, mask: true },
  { b: 2, nq: 3, nk: 0, nc: 9, heads: 1, d: 6, mask: true },
];

const KERNELS: AttentionKernel[] = [
  { variant: "rows" },
  { variant: "rows", rows: 3 },
  { variant: "tiled", tiles: { block: 4, tile: 3 } },
  { variant: "uniform" },
  { variant: "uniform", uniform: { wg: 2, rows: 3, chunk: 2 } },
];

for (const kernel of KERNELS) {
  for (const c of CASES) {
    Deno.test(`attention() on f16 q, k, v${c.nc ? " and cache" : ""}${c.mask ? ", masked," : ""} D=${c.d} with ${JSON.stringify(kernel)} matches float64, its model and the f32 path`, () => {
      if (attentionVariant(c.d, kernel) !== kernel.variant) {
        throw new Error(`The ${kernel.variant} kernels cannot run D=${c.d} on this adapter`);
      }
      return check(c, kernel);
    });
  }
}

Deno.test("attention() on f16 q [4, 64, 144] with a cache past a 64 KiB binding limit matches float64, its model and the f32 path", () =>
  // 18 KiB of q per sample: blocks of 3 samples and 1.
  check({ b: 4, nq: 64, nk: 40, nc: 16, heads: 2, d: 72 }, {}, 6, true));

Deno.test("attention() on f16 q [4, 64, 144] with a cache past a 64 KiB binding limit, uniform forward of 4 threads x 4 rows, matches float64, its model and the f32 path", () =>
  check(
    { b: 4, nq: 64, nk: 40, nc: 16, heads: 2, d: 72 },
    {
      variant: "uniform",
      uniform: { wg: 4, rows: 4, chunk: 3 },
    },
    6,
    true,
  ));

Deno.test("attention() on f16 takes q, k, v and the cache of one storage type and an f32 mask", () => {
  tidy(() => {
    const h = tensorF16(new Float32Array(2 * 3 * 8), [2, 3, 8]);
    const f = tensor(new Float32Array(2 * 3 * 8), [2, 3, 8]);
    assertThrows(() => attention(h, f, f, { heads: 2 }), /all f32 or all f16, got q f16 and k/);
    assertThrows(
      () => attention(h, h, h, { heads: 2, cache: { k: f, v: f } }),
      /all f32 or all f16, got q f16 and cache.k/,
    );
    assertThrows(
      () => attention(h, h, h, { heads: 2, keyMask: tensorF16(new Float32Array(6), [2, 3]) }),
      /f32 keyMask/,
    );
    assertEquals(attention(h, h, h, { heads: 2 }).dtype, "f16");
  });
});
