import { deepStrictEqual as assertEquals } from "node:assert";
import { assertClose, checkOp, randArr, Rng, roundF32, rt } from "../harness.ts";
import {
  attention,
  ATTENTION_VARIANTS,
  type AttentionKernel,
  attentionRows,
  type AttentionTiles,
  attentionTiles,
  type AttentionVariant,
  attentionVariant,
  UNIFORM_MIN_QUERIES,
  type UniformShape,
  uniformShape,
} from "../../src/ops/attention.ts";
import { attentionRef } from "../../src/reference/attention.ts";
import { type Arr, arr } from "../../src/reference/array.ts";
import { tensor } from "../../src/ops/creation.ts";
import { cast } from "../../src/ops/cast.ts";
import { noGrad } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";

const rng = new Rng(5);

interface Case {
  b: number;
  nq: number;
  nk: number;
  nc: number;
  heads: number;
  d: number;
  /** Key mask: random zeros ("some"), or sample 0 fully masked ("empty"). */
  mask?: "some" | "empty";
  scale?: number;
  /** Only the cache takes gradients (q, k and v are constants). */
  cacheGradsOnly?: boolean;
}

/** A key mask [B, Nt] with about a third zeros and at least one 1 per sample. */
function randMask(b: number, nt: number, empty: boolean): Arr {
  const m = arr([b, nt]);
  for (let s = 0; s < b; s++) {
    if (empty && s === 0) continue;
    for (let j = 0; j < nt; j++) m.data[s * nt + j] = rng.uniform(0, 1) < 0.35 ? 0 : 1;
    m.data[s * nt + rng.int(nt)] = 1;
  }
  return m;
}

/** Inputs [q, k, v, (cache k, cache v), (mask)] for checkOp and the index of the mask. */
function inputsOf(c: Case): { xs: Arr[]; maskAt: number } {
  const w = c.heads * c.d;
  const xs = [
    randArr([c.b, c.nq, w], rng),
    randArr([c.b, c.nk, w], rng),
    randArr([c.b, c.nk, w], rng),
  ];
  if (c.nc > 0) xs.push(randArr([c.b, c.nc, w], rng), randArr([c.b, c.nc, w], rng));
  const maskAt = c.mask ? xs.length : -1;
  if (c.mask) xs.push(randMask(c.b, c.nc + c.nk, c.mask === "empty"));
  return { xs, maskAt };
}

const CASES: Case[] = [
  { b: 1, nq: 1, nk: 1, nc: 0, heads: 1, d: 1 },
  { b: 2, nq: 7, nk: 13, nc: 0, heads: 2, d: 8 },
  { b: 1, nq: 7, nk: 13, nc: 5, heads: 3, d: 5 },
  { b: 2, nq: 1, nk: 13, nc: 0, heads: 3, d: 16, mask: "some" },
  { b: 2, nq: 7, nk: 0, nc: 5, heads: 2, d: 8 },
  { b: 2, nq: 7, nk: 0, nc: 5, heads: 1, d: 5, mask: "some" },
  { b: 2, nq: 7, nk: 13, nc: 5, heads: 2, d: 5, mask: "some" },
  { b: 2, nq: 7, nk: 13, nc: 5, heads: 3, d: 16, mask: "some", scale: 0.4 },
  { b: 1, nq: 7, nk: 1, nc: 5, heads: 1, d: 72, scale: 0.3 },
  { b: 1, nq: 1, nk: 13, nc: 5, heads: 2, d: 72, mask: "some" },
  { b: 2, nq: 7, nk: 13, nc: 5, heads: 3, d: 1, scale: 2.5 },
  { b: 1, nq: 7, nk: 13, nc: 5, heads: 2, d: 16, mask: "some", scale: 2 },
  { b: 2, nq: 7, nk: 13, nc: 5, heads: 2, d: 8, mask: "empty" },
  { b: 2, nq: 7, nk: 13, nc: 5, heads: 2, d: 8, cacheGradsOnly: true },
];

function label(c: Case): string {
  return `B=${c.b} Nq=${c.nq} Nk=${c.nk} Nc=${c.nc} H=${c.heads} D=${c.d}` +
    (c.mask === "some" ? " masked" : c.mask === "empty" ? " with a fully masked sample" : "") +
    (c.scale === undefined ? "" : ` scale=${c.scale}`) +
    (c.cacheGradsOnly ? ", gradients to the cache only" : "");
}

/** A kernel family with its sizes, as the tests run it. */
interface Layout {
  variant: AttentionVariant | "auto";
  rows?: number;
  tiles?: Partial<AttentionTiles>;
  uniform?: Partial<UniformShape>;
  label: string;
}

// The adapter's choice; the rows family with one query row per thread (the GPU layout) and an
// odd count that leaves partial groups; the tiled family with its default sizes (one tile
// covers every case's keys) and with blocks of 4 rows and tiles of 3 (several blocks per head,
// several tiles per source, partial blocks and tiles everywhere); the uniform forward with
// its default shape (one partial block, partial chunks) and with 2 threads of 3 rows and
// chunks of 2 keys (several blocks per head, several chunks per source, partial everywhere).
// The uniform family's backward is the rows family's (4 rows per thread on CPU adapters).
const LAYOUTS: Layout[] = [
  { variant: "auto", label: "" },
  { variant: "rows", rows: 1, label: " with the rows kernel, 1 row per thread" },
  { variant: "rows", rows: 3, label: " with the rows kernel, 3 rows per thread" },
  { variant: "tiled", label: " with the tiled kernel" },
  {
    variant: "tiled",
    tiles: { block: 4, tile: 3 },
    label: " with the tiled kernel, blocks of 4 and tiles of 3",
  },
  { variant: "uniform", label: " with the uniform forward" },
  {
    variant: "uniform",
    uniform: { wg: 2, rows: 3, chunk: 2 },
    label: " with the uniform forward, 2 threads x 3 rows, chunks of 2",
  },
  { variant: "texture", label: " with the texture forward" },
  {
    variant: "texture",
    uniform: { wg: 2, rows: 3, chunk: 2 },
    label: " with the texture forward, 2 threads x 3 rows, chunks of 2",
  },
];

/** The kernel choice of a layout, as the op takes it. */
function kernelOf(l: Layout): AttentionKernel {
  return { variant: l.variant, rows: l.rows, tiles: l.tiles, uniform: l.uniform };
}

for (const l of LAYOUTS) {
  for (const c of CASES) {
    Deno.test(`attention() ${label(c)}${l.label} matches float64 and FD`, async () => {
      const kernel = kernelOf(l);
      const ran = attentionVariant(c.d, kernel);
      // texture reads vec4 texels: D % 4 != 0 runs its storage twin, uniform.
      const fallback = l.variant === "texture" && c.d % 4 !== 0 && ran === "uniform";
      if (l.variant !== "auto" && ran !== l.variant && !fallback) {
        throw new Error(`The ${l.variant} kernels cannot run D=${c.d} on this adapter`);
      }
      await checkCase(c, kernel);
    });
  }
}

/** Checks one case against the float64 reference and finite differences. */
async function checkCase(c: Case, kernel: AttentionKernel): Promise<void> {
  const { xs, maskAt } = inputsOf(c);
  const opts = <T>(ys: T[]) => ({
    heads: c.heads,
    scale: c.scale,
    cache: c.nc > 0 ? { k: ys[3]!, v: ys[4]! } : undefined,
    keyMask: maskAt >= 0 ? ys[maskAt]! : undefined,
  });
  await checkOp(
    "attention",
    xs,
    (ts) => attention(ts[0]!, ts[1]!, ts[2]!, { ...opts(ts), kernel }),
    (as) => attentionRef(as[0]!, as[1]!, as[2]!, opts(as)),
    // f32 rounding of sums of <= 18 terms and of exp() (WGSL allows 3 + 2|x| ulp): measured
    // worst |error| 2e-7 forward, 7e-7 for gradients (the peaked scale=2 case, gradients
    // up to 2) on llvmpipe; the central difference (float64, h = 1e-5) adds ~1e-10.
    { atol: 5e-7, rtol: 2e-6, gradAtol: 2e-6, gradRtol: 1e-5 },
    [...(c.cacheGradsOnly ? [0, 1, 2] : []), ...(maskAt >= 0 ? [maskAt] : [])],
  );
}

Deno.test("attention() without gradients keeps no logsumexp buffer", () => {
  const q = tensor(new Float32Array(2 * 3 * 8), [2, 3, 8]);
  const before = rt.memory().inUseBytes;
  const y = noGrad(() => attention(q, q, q, { heads: 2 }));
  assertClose([rt.memory().inUseBytes - before], [y.storage.buffer.size], {
    atol: 0,
    rtol: 0,
    label: "bytes held after the op",
  });
  y.dispose();
  q.dispose();
});

Deno.test("attention() rejects mismatched shapes, heads, masks and empty key sets", () => {
  tidy(() => {
    const x = (shape: number[]) => tensor(new Float32Array(shape.reduce((p, d) => p * d)), shape);
    const q = x([2, 3, 12]), k = x([2, 5, 12]), c = x([2, 4, 12]);
    const expectThrow = (fn: () => Tensor, type: ErrorConstructor, text: string) => {
      let err: unknown = null;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      if (!(err instanceof type) || !err.message.includes(text)) {
        throw new Error(`Expected ${type.name} mentioning "${text}", got ${err}`);
      }
    };
    expectThrow(() => attention(q, k, x([2, 4, 12]), { heads: 3 }), RangeError, "one shape");
    expectThrow(() => attention(q, x([1, 5, 12]), k, { heads: 3 }), RangeError, "[2, N, 12]");
    expectThrow(() => attention(q, k, k, { heads: 5 }), RangeError, "into 5 heads");
    expectThrow(
      () => attention(q, k, k, { heads: 3, cache: { k: c, v: x([2, 3, 12]) } }),
      RangeError,
      "cache.k and cache.v",
    );
    expectThrow(
      () => attention(q, k, k, { heads: 3, cache: { k: c, v: c }, keyMask: x([2, 5]) }),
      RangeError,
      "[2, 9]",
    );
    const none = x([2, 0, 12]);
    expectThrow(() => attention(q, none, none, { heads: 3 }), RangeError, "at least one key");
    const ints = tensor(new Int32Array(2 * 5 * 12), [2, 5, 12], "i32");
    expectThrow(() => attention(q, ints, k, { heads: 3 }), TypeError, "f32");
  });
});

Deno.test("attentionVariant() picks texture (uniform for D % 4 != 0; from 256 queries) or rows on CPU adapters and tiled on GPUs; tiled falls back to rows when its tile cannot fit", () => {
  assertEquals(attentionVariant(8), rt.info.isSoftware ? "rows" : "tiled");
  const cpu = (d: number, nq: number) =>
    nq >= UNIFORM_MIN_QUERIES ? (d % 4 === 0 ? "texture" : "uniform") : "rows";
  for (const d of [72, 5]) {
    for (const nq of [1, 96, 255, 256, 729, 2560]) {
      assertEquals(attentionVariant(d, {}, nq), rt.info.isSoftware ? cpu(d, nq) : "tiled");
    }
  }
  assertEquals(attentionVariant(72, { variant: "rows" }, 2560), "rows");
  assertEquals(attentionVariant(72, { variant: "uniform" }, 1), "uniform");
  assertEquals(attentionVariant(72, { variant: "texture" }, 1), "texture");
  assertEquals(attentionVariant(5, { variant: "texture" }, 2560), "uniform");
  assertEquals(attentionVariant(8, { variant: "tiled" }), "tiled");
  assertEquals(attentionVariant(8, { variant: "tiled", tiles: { tile: 1 << 20 } }), "rows");
});

Deno.test("attentionVariant(), attentionTiles() and attentionRows() reject unknown families and bad sizes", () => {
  const bad: [() => void, string][] = [
    [
      () => attentionVariant(8, { variant: "flash" as AttentionVariant }),
      "Unknown attention variant",
    ],
    [() => attentionTiles({ block: 0 }), "block must be 1 to 256"],
    [() => attentionTiles({ block: 257 }), "block must be 1 to 256"],
    [() => attentionTiles({ tile: 0 }), "tile must be a positive"],
    [() => attentionTiles({ tile: 2.5 }), "tile must be a positive"],
    [() => attentionRows({ rows: 9 }), "rows per thread must be 1 to 8"],
    [() => uniformShape({ wg: 0 }), "1 to 256 threads"],
    [() => uniformShape({ rows: 33 }), "1 to 32 rows"],
    [() => uniformShape({ chunk: 1.5 }), "chunks of 1 to 16"],
  ];
  for (const [fn, text] of bad) {
    let err: unknown = null;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    if (!(err instanceof RangeError) || !err.message.includes(text)) {
      throw new Error(`Expected a RangeError mentioning "${text}", got ${err}`);
    }
  }
  assertEquals(attentionVariant(8), rt.info.isSoftware ? "rows" : "tiled");
});

// llvmpipe silently leaves loops after 65535 trips per invocation; each kernel family counts
// its worst case (every loop's trips plus its final test) and refuses more keys. At the
// largest key count the guard accepts, the last key must still be seen: with zero queries and
// keys every key weighs 1/n, and only the last has a value (1), so the output is exactly 1/n.
for (const variant of ATTENTION_VARIANTS) {
  Deno.test({
    name: `attention() ${variant} kernel sees every key at the largest count its loop guard ` +
      "accepts on llvmpipe, and refuses one more",
    ignore: !Number.isFinite(rt.info.maxLoopTrips),
    async fn() {
      {
        // The output for n keys, or null when the loop guard refuses them.
        const run = (n: number): Tensor | null => {
          const q = tensor(new Float32Array(4), [1, 1, 4]);
          const k = tensor(new Float32Array(n * 4), [1, n, 4]);
          const v = tensor(new Float32Array(n * 4).fill(1, (n - 1) * 4), [1, n, 4]);
          try {
            return noGrad(() => attention(q, k, v, { heads: 1, kernel: { variant } }));
          } catch (e) {
            if (e instanceof RangeError && e.message.includes("loop iterations")) return null;
            throw e;
          }
        };
        const accepts = (n: number) => tidy(() => run(n) !== null);
        // The uniform forward walks keys in chunks: its loops run a quarter as many trips.
        const perTrip = variant === "uniform" || variant === "texture" ? uniformShape().chunk : 1;
        let lo = 1, hi = perTrip * (rt.info.maxLoopTrips + 1);
        if (!accepts(lo) || accepts(hi)) {
          throw new Error(`The loop guard should accept 1 key and refuse ${hi}`);
        }
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (accepts(mid)) lo = mid;
          else hi = mid;
        }
        const y = tidy(() => run(lo)!);
        const got = await y.read();
        y.dispose();
        assertClose(Array.from(got, (x) => x * lo), [1, 1, 1, 1], {
          atol: 0,
          rtol: 1e-4,
          label: `n * output at n = ${lo} keys`,
        });
      }
    },
  });
}

// One PS3-1.5K high-res block at batch 1: 2560 selected tokens attend to the 729 cached
// low-res tokens and to each other, 16 heads of D = 72 (SO400M).
Deno.test("attention() forward at one high-res block's size (Nq=Nk=2560, Nc=729, H=16, D=72)", async () => {
  const c = { b: 1, nq: 2560, nk: 2560, nc: 729, heads: 16, d: 72 };
  const w = c.heads * c.d;
  const big = (n: number) => roundF32(randArr([c.b, n, w], rng));
  const q = big(c.nq), k = big(c.nk), v = big(c.nk), ck = big(c.nc), cv = big(c.nc);
  const up = (a: Arr) => tensor(Float32Array.from(a.data), a.shape);
  const t0 = performance.now();
  const y = await tidy(() =>
    noGrad(() =>
      attention(up(q), up(k), up(v), { heads: c.heads, cache: { k: up(ck), v: up(cv) } })
    )
  ).read();
  const ms = performance.now() - t0;
  console.log(`attention forward ${label(c)}: ${ms.toFixed(0)} ms on ${rt.info.description}`);
  // Query rows are independent: check 12 random rows against the float64 reference.
  const picks = Array.from({ length: 12 }, () => rng.int(c.nq));
  const qs = arr([1, picks.length, w]);
  const got = new Float64Array(picks.length * w);
  picks.forEach((i, r) => {
    qs.data.set(q.data.subarray(i * w, (i + 1) * w), r * w);
    got.set(y.subarray(i * w, (i + 1) * w), r * w);
  });
  const want = attentionRef(qs, k, v, { heads: c.heads, cache: { k: ck, v: cv } });
  // Outputs average 3289 values |v| <= 1; measured worst |error| 1e-7 (f32 running sums).
  assertClose(got, want.data, { atol: 5e-7, rtol: 2e-6, label: "sampled rows" });
});

// The texture forward does the uniform forward's sums in the same order: equal bits, with a
// cache, masks, f16 storage, no own keys, and a batch past the largest texture (uniform then).
for (
  const c of [
    { b: 2, nq: 300, nk: 40, nc: 24, heads: 2, d: 8, mask: true, label: "cache and mask" },
    { b: 2, nq: 260, nk: 0, nc: 24, heads: 3, d: 12, mask: false, label: "cache only" },
    { b: 3, nq: 257, nk: 33, nc: 0, heads: 1, d: 72, mask: false, label: "own keys only" },
  ]
) {
  for (const dtype of ["f32", "f16"] as const) {
    Deno.test(`attention() texture forward equals uniform bit for bit: ${c.label}, ${dtype}`, async () => {
      if (dtype === "f16" && !rt.info.hasF16) return;
      const w = c.heads * c.d;
      const rand = (n: number, shape: number[]) =>
        cast(tensor(Float32Array.from(randArr([n], rng).data), shape), dtype);
      const q = rand(c.b * c.nq * w, [c.b, c.nq, w]);
      const k = rand(c.b * c.nk * w, [c.b, c.nk, w]), v = rand(c.b * c.nk * w, [c.b, c.nk, w]);
      const cache = c.nc > 0
        ? { k: rand(c.b * c.nc * w, [c.b, c.nc, w]), v: rand(c.b * c.nc * w, [c.b, c.nc, w]) }
        : undefined;
      const keyMask = c.mask
        ? tensor(
          Float32Array.from({ length: c.b * (c.nc + c.nk) }, (_, i) => (i % 7 === 3 ? 0 : 1)),
          [c.b, c.nc + c.nk],
        )
        : undefined;
      const [x, y] = await Promise.all(
        (["uniform", "texture"] as const).map((variant) =>
          cast(
            noGrad(() =>
              attention(q, k, v, { heads: c.heads, cache, keyMask, kernel: { variant } })
            ),
            "f32",
          ).read()
        ),
      );
      assertEquals(new Uint32Array(y!.buffer), new Uint32Array(x!.buffer));
    });
  }
}

Deno.test("attention() texture forward runs the uniform kernel when the batch's keys pass the largest texture", () => {
  const side = rt.info.maxTextureSide, heads = 1, d = 4;
  const nk = Math.floor(side / 2) + 1; // two samples' keys stacked pass it
  const q = tensor(new Float32Array(2 * 256 * d), [2, 256, d]);
  const k = tensor(new Float32Array(2 * nk * d), [2, nk, d]);
  const names: string[] = [];
  rt.observe({ dispatch: (r) => void names.push(r.kernel.spec.name) });
  try {
    tidy(() => noGrad(() => void attention(q, k, k, { heads, kernel: { variant: "texture" } })));
  } finally {
    rt.observe(null);
  }
  assertEquals(names.some((n) => n.startsWith("attention_texture")), false);
  assertEquals(names.some((n) => n.startsWith("attention_uniform")), true);
});
