import { deepStrictEqual as assertEquals } from "node:assert";
import { type Arr, arr, assertClose, checkOp, randArr, Rng, roundF32, rt } from "../harness.ts";
import {
  matmul,
  type MatmulKernel,
  type MatmulTiles,
  type MatmulVariant,
  matmulVariant,
  TEXTURE_MIN_SIDE,
} from "../../src/ops/matmul.ts";
import { tensor } from "../../src/ops/creation.ts";
import { cast } from "../../src/ops/cast.ts";
import { matmulRef } from "../../src/reference/matmul.ts";

const rng = new Rng(3);

const CASES: { a: number[]; b: number[]; transA?: boolean; transB?: boolean; bias?: boolean }[] = [
  { a: [1, 1], b: [1, 1] },
  { a: [9, 13], b: [13, 11] },
  { a: [17, 5], b: [7, 5], transB: true, bias: true },
  { a: [5, 17], b: [5, 7], transA: true },
  { a: [5, 17], b: [7, 5], transA: true, transB: true },
  { a: [3, 10, 6], b: [6, 9], bias: true },
  { a: [3, 10, 6], b: [9, 6], transB: true },
  { a: [2, 3, 10, 6], b: [2, 3, 6, 9] },
  { a: [2, 6, 10], b: [2, 9, 6], transA: true, transB: true },
  { a: [2, 6, 10], b: [6, 9], transA: true },
  { a: [33, 65], b: [65, 31], bias: true },
];

for (const c of CASES) {
  const label = `[${c.a}]${c.transA ? "^T" : ""} @ [${c.b}]${c.transB ? "^T" : ""}` +
    (c.bias ? " + bias" : "");
  Deno.test(`matmul() ${label} matches float64 and FD`, async () => {
    const n = c.transB ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
    const inputs = [randArr(c.a, rng), randArr(c.b, rng)];
    if (c.bias) inputs.push(randArr([n], rng));
    await checkOp(
      "matmul",
      inputs,
      ([a, b, bias]) => matmul(a!, b!, { transA: c.transA, transB: c.transB, bias }),
      ([a, b, bias]) => matmulRef(a!, b!, { transA: c.transA, transB: c.transB, bias }),
      // K <= 65 products of |x| <= 1: f32 accumulation error well under 1e-5.
      { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
    );
  });
}

Deno.test("matmul() with K = 70000 sums every term (past llvmpipe's 65535-trip loop limit)", async () => {
  const k = 70000;
  const a = arr([2, k]), b = arr([k, 3]);
  a.data.fill(1);
  b.data.fill(0.5);
  const y = await matmul(
    tensor(Float32Array.from(a.data), a.shape),
    tensor(Float32Array.from(b.data), b.shape),
  ).read();
  assertClose(y, new Array(6).fill(k * 0.5), { atol: 0, rtol: 1e-6, label: "K=70000" });
});

// Every kernel family on shapes that reach its vec4 paths (N a multiple of 4) yet leave
// partial tiles (M 13 vs tile rows 12, N 20 vs 16), in every transpose, with K a multiple of
// 4 (operands used in place) and not (27: both operands packed with zero padding).
const VARIANT_CASES: {
  a: number[];
  b: number[];
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
}[] = [
  { a: [13, 24], b: [24, 20] },
  { a: [13, 24], b: [20, 24], transB: true, bias: true },
  { a: [13, 27], b: [20, 27], transB: true, bias: true },
  { a: [27, 20], b: [27, 36], transA: true },
  { a: [2, 16, 20], b: [2, 12, 16], transA: true, transB: true },
  { a: [3, 10, 8], b: [8, 12], bias: true },
  { a: [2, 3, 9, 8], b: [2, 3, 8, 12] },
];

const TILINGS: { variant: MatmulVariant; tiles?: Partial<MatmulTiles>; label: string }[] = [
  { variant: "scalar", label: "scalar" },
  { variant: "vec4", label: "vec4" },
  { variant: "vec4", tiles: { vec4: { tm: 4, tn: 8 } }, label: "vec4 4x8" },
  { variant: "texture", label: "texture" },
  { variant: "texture", tiles: { vec4: { tm: 4, tn: 8 } }, label: "texture 4x8" },
  { variant: "tiled", label: "tiled" },
  { variant: "tiled", tiles: { tiled: { bm: 32, bn: 16, bk: 4 } }, label: "tiled 32x16x4" },
];

/** The kernel choice of a tiling, as the op takes it. */
function kernelOf(t: { variant: MatmulVariant; tiles?: Partial<MatmulTiles> | undefined }) {
  return { variant: t.variant, tiles: t.tiles };
}

for (const v of TILINGS) {
  for (const c of VARIANT_CASES) {
    const label = `[${c.a}]${c.transA ? "^T" : ""} @ [${c.b}]${c.transB ? "^T" : ""}` +
      (c.bias ? " + bias" : "");
    Deno.test(`matmul() ${v.label} kernel: ${label} and its gradients match float64`, async () => {
      const kernel = kernelOf(v);
      const n = c.transB ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
      const inputs = [randArr(c.a, rng), randArr(c.b, rng)];
      if (c.bias) inputs.push(randArr([n], rng));
      await checkOp(
        "matmul",
        inputs,
        ([a, b, bias]) => matmul(a!, b!, { transA: c.transA, transB: c.transB, bias, kernel }),
        ([a, b, bias]) => matmulRef(a!, b!, { transA: c.transA, transB: c.transB, bias }),
        // K <= 36 products of |x| <= 1: f32 accumulation error well under 1e-5.
        { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
      );
    });
  }
}

/** Forward only, on shapes spanning several tiles and workgroup blocks. */
async function checkForward(
  a: Arr,
  b: Arr,
  opts: { transA?: boolean; transB?: boolean },
  kernel: MatmulKernel,
) {
  const y = await matmul(
    tensor(Float32Array.from(a.data), a.shape),
    tensor(Float32Array.from(b.data), b.shape),
    { ...opts, kernel },
  ).read();
  // K = 64 products of |x| <= 1 summed in f32.
  assertClose(y, matmulRef(a, b, opts).data, { atol: 1e-5, rtol: 1e-5, label: "forward" });
}

for (const v of TILINGS) {
  Deno.test(`matmul() ${v.label} kernel matches float64 over several blocks (130x132x64)`, async () => {
    const a = roundF32(randArr([130, 64], rng)), b = roundF32(randArr([64, 132], rng));
    await checkForward(a, b, {}, kernelOf(v));
    const at = roundF32(randArr([64, 132], rng)), bt = roundF32(randArr([132, 64], rng));
    await checkForward(at, bt, { transA: true, transB: true }, kernelOf(v));
  });
}

Deno.test("matmul() tiled-f16 kernel equals the f32 sum of f16-rounded operands", async () => {
  if (!rt.info.hasF16) return; // the op falls back to tiled, tested above
  {
    for (const [ta, tb] of [[false, false], [true, false], [false, true]] as const) {
      const a = randArr(ta ? [40, 37] : [37, 40], rng), b = randArr(tb ? [29, 40] : [40, 29], rng);
      const ah = arr(a.shape), bh = arr(b.shape);
      // The GPU rounds the f32 upload to f16 (rounding f64 to f16 directly differs at ties).
      ah.data.set(a.data.map((x) => Math.f16round(Math.fround(x))));
      bh.data.set(b.data.map((x) => Math.f16round(Math.fround(x))));
      const y = await matmul(
        tensor(Float32Array.from(a.data), a.shape),
        tensor(Float32Array.from(b.data), b.shape),
        { transA: ta, transB: tb, kernel: { variant: "tiled-f16" } },
      ).read();
      // Products of two f16 values are exact in f32: only the f32 accumulation (K = 40) differs.
      assertClose(y, matmulRef(ah, bh, { transA: ta, transB: tb }).data, {
        atol: 1e-5,
        rtol: 1e-5,
        label: `tiled-f16 transA=${ta} transB=${tb}`,
      });
    }
  }
});

for (
  const [v, k, n] of [
    [{ variant: "vec4" as const }, 140000, 4],
    [{ variant: "texture" as const }, 140000, 4],
    [{ variant: "tiled" as const, tiles: { tiled: { bm: 16, bn: 16, bk: 8 } } }, 270000, 3],
  ] as const
) {
  Deno.test(`matmul() ${v.variant} kernel with K = ${k} sums every term (K split over dispatches)`, async () => {
    const a = new Float32Array(2 * k).fill(1), b = new Float32Array(k * n).fill(0.5);
    const y = await matmul(tensor(a, [2, k]), tensor(b, [k, n]), { kernel: kernelOf(v) }).read();
    assertClose(y, new Array(2 * n).fill(k * 0.5), { atol: 0, rtol: 1e-6, label: `K=${k}` });
  });
}

Deno.test("matmulVariant() picks texture on CPU adapters for large matmuls with N a multiple of 4, vec4 for small ones and past the largest texture", () => {
  const picks = [20, 21, 4, 3].map((n) => matmulVariant({ m: 13, n, k: 27 }));
  const t = TEXTURE_MIN_SIDE;
  const large = [[t, t, t], [t - 1, t, t], [t, t - 4, t], [t, t, t - 1], [t, t + 1, t]];
  picks.push(...large.map(([m, n, k]) => matmulVariant({ m: m!, n: n!, k: k! })));
  assertEquals(
    picks,
    rt.info.isSoftware
      ? ["vec4", "scalar", "vec4", "scalar", "texture", "vec4", "vec4", "vec4", "scalar"]
      : new Array(9).fill("tiled"),
  );
  const side = rt.info.maxTextureSide;
  const over = [
    { m: side + 1, n: 8, k: 4 }, // A taller than a texture
    { m: 2, n: 8, k: 4, batch: Math.floor(side / 2) + 1 }, // A's batch entries stacked
    { m: 2, n: 8, k: 4, batch: side, sharedB: false }, // B's batch entries stacked
    { m: 2, n: 8, k: 4 * side + 4 }, // rows of A wider than a texture
  ];
  const fits = [{ m: side, n: 8, k: 4 * side }, { m: 1, n: 8, k: 4, batch: side }];
  assertEquals(
    [...over, ...fits].map((d) => matmulVariant(d, "texture")),
    [...over.map(() => "vec4"), ...fits.map(() => "texture")],
  );
});

// The texture family runs the vec4 kernel's sums in the same order: equal bits, in every
// layout, with f16 operands, epilogues, K not a multiple of 4 and K split over dispatches.
const SAME_BITS: { a: number[]; b: number[]; transA?: boolean; transB?: boolean; label: string }[] =
  [
    { a: [37, 24], b: [20, 24], transB: true, label: "A B^T" },
    { a: [37, 22], b: [22, 20], label: "A B, K % 4 = 2" },
    { a: [24, 37], b: [24, 20], transA: true, label: "A^T B" },
    { a: [23, 37], b: [20, 23], transA: true, transB: true, label: "A^T B^T, K % 4 = 3" },
    { a: [3, 17, 12], b: [3, 12, 8], label: "batched" },
    { a: [3, 12, 17], b: [12, 8], transA: true, label: "batched A^T, shared B" },
  ];
for (const c of SAME_BITS) {
  for (const dtype of ["f32", "f16"] as const) {
    Deno.test(`matmul() texture equals vec4 bit for bit: ${c.label}, ${dtype} operands, bias + GELU and residual`, async () => {
      if (dtype === "f16" && !rt.info.hasF16) return;
      const rand = (shape: number[]) => tensor(Float32Array.from(randArr(shape, rng).data), shape);
      const at = cast(rand(c.a), dtype), bt = cast(rand(c.b), dtype);
      const run = (variant: MatmulVariant, opts: Parameters<typeof matmul>[2]) =>
        matmul(at, bt, { transA: c.transA, transB: c.transB, kernel: { variant }, ...opts });
      const plain = [run("vec4", {}), run("texture", {})];
      const n = plain[0]!.shape.at(-1)!;
      const bias = rand([n]);
      const residual = cast(rand([...plain[0]!.shape]), dtype);
      const pairs = [
        plain,
        [run("vec4", { bias, activation: "gelu" }), run("texture", { bias, activation: "gelu" })],
        [run("vec4", { bias, residual }), run("texture", { bias, residual })],
      ];
      for (const [v, t] of pairs) {
        const [x, y] = [await cast(v!, "f32").read(), await cast(t!, "f32").read()];
        assertEquals(new Uint32Array(y.buffer), new Uint32Array(x.buffer));
      }
    });
  }
}

Deno.test("matmul() texture equals vec4 bit for bit with K summed over several dispatches", async () => {
  const k = 140004; // past llvmpipe's loop limit: three K ranges
  const rand = (shape: number[]) => tensor(Float32Array.from(randArr(shape, rng).data), shape);
  const a = rand([2, k]), b = rand([8, k]);
  const [x, y] = await Promise.all(
    (["vec4", "texture"] as const).map((variant) =>
      matmul(a, b, { transB: true, kernel: { variant } }).read()
    ),
  );
  assertEquals(new Uint32Array(y!.buffer), new Uint32Array(x!.buffer));
});

Deno.test("matmul() texture returns its operand textures to the pool and reuses them", async () => {
  const a = tensor(new Float32Array(40 * 24).fill(1), [40, 24]);
  const b = tensor(new Float32Array(24 * 16).fill(1), [24, 16]);
  matmul(a, b, { kernel: { variant: "texture" } }).dispose();
  await rt.sync();
  const before = rt.memory();
  const y = matmul(a, b, { kernel: { variant: "texture" } });
  await rt.sync();
  const after = rt.memory();
  // Only the result is new: both textures came back and were taken again.
  assertEquals(after.allocatedBytes, before.allocatedBytes);
  assertEquals(after.liveBuffers, before.liveBuffers + 1);
  y.dispose();
});
