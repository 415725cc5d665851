import { arr, assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { tensor } from "../../src/ops/creation.ts";
import { resizeArea, resizeBicubic, resizeBicubicAA, resizeNearest } from "../../src/ops/resize.ts";
import {
  resizeAreaRef,
  resizeBicubicAARef,
  resizeBicubicRef,
  resizeNearestRef,
} from "../../src/reference/resize.ts";

const rng = new Rng(11);

// Forward: the GPU sums at most ~25 weighted float32 terms of |x| <= 1 with |weights| <= 1.2
// (float32 rounding ~1e-6); the reference sees the same float32-rounded inputs.
// Gradients: the ops are linear, so central differences of the float64 reference are exact
// up to float64 rounding; the GPU adjoint sums float32 products (~1e-6).
const TOL = { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-4 };

type Size = [number, number];
/** [N, H, W, C] in, [outH, outW] out: down, up, non-integer ratios, 1-pixel, one axis fixed. */
const CASES: { shape: [number, number, number, number]; size: Size }[] = [
  { shape: [2, 7, 9, 3], size: [3, 4] },
  { shape: [2, 3, 2, 1], size: [7, 5] },
  { shape: [1, 1, 1, 5], size: [3, 2] },
  { shape: [2, 5, 4, 3], size: [1, 1] },
  { shape: [1, 6, 3, 5], size: [4, 5] },
  { shape: [2, 5, 6, 1], size: [5, 3] },
  { shape: [1, 4, 13, 2], size: [9, 2] },
];

const OPS = [
  { name: "resizeBicubic", op: resizeBicubic, ref: resizeBicubicRef },
  { name: "resizeBicubicAA", op: resizeBicubicAA, ref: resizeBicubicAARef },
  { name: "resizeArea", op: resizeArea, ref: resizeAreaRef },
  { name: "resizeNearest", op: resizeNearest, ref: resizeNearestRef },
] as const;

for (const { name, op, ref } of OPS) {
  for (const { shape, size } of CASES) {
    Deno.test(`${name}() [${shape}] -> [${size}] matches float64 and FD`, async () => {
      await checkOp(
        name,
        [randArr(shape, rng)],
        ([x]) => op(x!, size),
        ([x]) => ref(x!, size),
        TOL,
      );
    });
  }
}

Deno.test("resizeBicubicAA() 47 -> 4 (25 taps per axis) matches float64 and FD", async () => {
  await checkOp(
    "resizeBicubicAA",
    [randArr([1, 47, 5, 2], rng)],
    ([x]) => resizeBicubicAA(x!, [4, 3]),
    ([x]) => resizeBicubicAARef(x!, [4, 3]),
    TOL,
  );
});

Deno.test("resizeNearest() PS3's grids 27 -> 54, 108, 270 match float64 and FD", async () => {
  for (const outSize of [54, 108, 270]) {
    await checkOp(
      "resizeNearest",
      [randArr([1, 27, 2, 1], rng)],
      ([x]) => resizeNearest(x!, [outSize, 3]),
      ([x]) => resizeNearestRef(x!, [outSize, 3]),
      TOL,
    );
  }
});

/** Runs a resize on host data and returns the output. */
async function run(
  op: (x: ReturnType<typeof tensor>, size: Size) => ReturnType<typeof tensor>,
  data: number[],
  shape: number[],
  size: Size,
): Promise<Float32Array> {
  const y = tidy(() => op(tensor(data, shape), size));
  const out = await y.read();
  y.dispose();
  return out as Float32Array;
}

Deno.test("resizeBicubic() 4x4 -> 2x2 equals hand-derived PyTorch values", async () => {
  // Scale 2: source coordinate 2o + 0.5, so floor 0 (o = 0) and 2 (o = 1), t = 0.5.
  // Keys a = -0.75 at t = 0.5: [-0.09375, 0.59375, 0.59375, -0.09375].
  // o = 0 taps -1, 0, 1, 2 clamp to 0, 0, 1, 2: weights [0.5, 0.59375, -0.09375, 0] on 0..3.
  // o = 1 taps 1, 2, 3, 4 clamp to 1, 2, 3, 3: weights [0, -0.09375, 0.59375, 0.5].
  // First moments m1 = [0.40625, 2.59375]; second moments m2 = [0.21875, 6.78125].
  // Channel 0 holds 4i + j: out = 4 m1[oy] + m1[ox].
  // Channel 1 holds (4i + j)^2: out = 16 m2[oy] + 8 m1[oy] m1[ox] + m2[ox].
  const data: number[] = [];
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) data.push(4 * i + j, (4 * i + j) ** 2);
  const got = await run(resizeBicubic, data, [1, 4, 4, 2], [2, 2]);
  const expected = [
    2.03125,
    5.0390625,
    4.21875,
    18.7109375,
    10.78125,
    117.1484375,
    12.96875,
    169.1015625,
  ];
  // float32 arithmetic on values up to 225: a few ulps of 169.
  assertClose(got, expected, { atol: 1e-5, rtol: 1e-6, label: "bicubic 4x4 -> 2x2" });
});

Deno.test("resizeBicubic() 2x2 -> 5x5 equals hand-derived PyTorch values", async () => {
  // Scale 0.4: source coordinate 0.4o - 0.3 = -0.3, 0.1, 0.5, 0.9, 1.3. With two inputs every
  // tap clamps to 0 or 1, so out = x0 + m (x1 - x0), m = the weight landing on index 1:
  // o=0 (floor -1, t 0.7): c3 = k(1.3) = -0.11025; o=1 (floor 0, t 0.1): c2 + c3 =
  // k(0.9) + k(1.9) = 0.08875 - 0.00675 = 0.082; o=2: 0.59375 - 0.09375 = 0.5; o=3 (t 0.9):
  // k(0.1) + k(1.1) = 0.97875 - 0.06075 = 0.918; o=4 (floor 1, t 0.3): 1 - c0 = 1 - k(1.3) =
  // 1.11025 (k = Keys a = -0.75). Input [[1, -2], [4, 8]]:
  // out = 1 + 3 my - 3 mx + 7 my mx.
  const got = await run(resizeBicubic, [1, -2, 4, 8], [1, 2, 2, 1], [5, 5]);
  const expected = [
    1.0850854375,
    0.3599665,
    -1.216625,
    -2.7932165,
    -3.5183354375,
    1.5134665,
    1.047068,
    0.033,
    -0.981068,
    -1.4474665,
    2.444875,
    2.541,
    2.75,
    2.959,
    3.055125,
    3.3762835,
    4.034932,
    5.467,
    6.899068,
    7.5577165,
    3.8046645625,
    4.7220335,
    6.716625,
    8.7112165,
    9.6285854375,
  ];
  assertClose(got, expected, { atol: 2e-6, rtol: 1e-6, label: "bicubic 2x2 -> 5x5" });
});

Deno.test("resizeBicubicAA() 4x4 -> 2x2 equals hand-derived PyTorch values", async () => {
  // Scale 2: support 4, weights keys_{-0.5}((j - center + 0.5) / 2) with center 1 and 3.
  // o = 0: taps 0..3 at distances 0.25, 0.25, 0.75, 1.25 -> [111, 111, 29, -9] / 128,
  // normalised by 242/128 -> [111, 111, 29, -9] / 242; o = 1 mirrors it.
  // Input 4i + j: first moments m = [142, 584] / 242, out = 4 m[oy] + m[ox].
  const data: number[] = [];
  for (let i = 0; i < 16; i++) data.push(i);
  const got = await run(resizeBicubicAA, data, [1, 4, 4, 1], [2, 2]);
  const expected = [710 / 242, 1152 / 242, 2478 / 242, 2920 / 242];
  assertClose(got, expected, { atol: 1e-5, rtol: 1e-6, label: "bicubic AA 4x4 -> 2x2" });
});

Deno.test("resizeBicubicAA() 2x2 -> 4x4 renormalises the a = -0.5 kernel at borders", async () => {
  // Scale 0.5: support 2, center 0.25, 0.75, 1.25, 1.75; taps trunc(center - 1.5) ..
  // trunc(center + 2.5) - 1 within [0, 1]. o = 0: distances 0.25, 1.25 -> [111, -9] / 128,
  // renormalised -> [111, -9] / 102. o = 1: distances 0.25, 0.75 -> [111, 29] / 140.
  // o = 2, 3 mirror. Input 2i + j: m (weight on index 1) = [-9/102, 29/140, 111/140, 111/102],
  // out = 2 m[oy] + m[ox].
  const m = [-9 / 102, 29 / 140, 111 / 140, 111 / 102];
  const got = await run(resizeBicubicAA, [0, 1, 2, 3], [1, 2, 2, 1], [4, 4]);
  const expected = m.flatMap((my) => m.map((mx) => 2 * my + mx));
  assertClose(got, expected, { atol: 1e-6, rtol: 1e-6, label: "bicubic AA 2x2 -> 4x4" });
});

Deno.test("resizeNearest() 3 -> 123 follows PyTorch's float32 index arithmetic", async () => {
  // scale = float32(3 / 123) = 0.024390243..., slightly below 1/41: output 41 computes
  // float32(41 * scale) = 0.99999994 and takes row 0 (exact arithmetic would give 1/41 * 41 =
  // 1); likewise output 82 takes row 1, not 2. Rows 0, 1, 2 hold 0, 1, 2.
  const got = await run(resizeNearest, [0, 1, 2], [1, 3, 1, 1], [123, 1]);
  const expected = [...Array(123).keys()].map((o) =>
    o === 41 ? 0 : o === 82 ? 1 : Math.floor(o / 41)
  );
  assertClose(got, expected, { atol: 0, rtol: 0, label: "nearest 3 -> 123" });
});

Deno.test("resizeArea() 5 -> 3 averages PyTorch's overlapping windows", async () => {
  // Windows [floor(5i / 3), ceil(5(i + 1) / 3)): rows [0, 2), [1, 4), [3, 5) of 0..4, so the
  // means are 0.5, 2 and 3.5.
  const got = await run(resizeArea, [0, 1, 2, 3, 4], [1, 5, 1, 1], [3, 1]);
  assertClose(got, [0.5, 2, 3.5], { atol: 1e-7, rtol: 0, label: "area 5 -> 3" });
});

Deno.test("resizeBicubic() splits a [3, 3780, 3780, 1] image over several bindings", async () => {
  // 171 MB of input, more than one 128 MiB storage binding: the op splits its dispatches over
  // image planes. Scale 10: source coordinate 10o + 4.5, so every output reads rows and
  // columns 10o + 3 .. 10o + 6 (never clamped) with weights [-0.09375, 0.59375, 0.59375,
  // -0.09375]; sampled outputs are checked against that sum in float64.
  const [n, s, o] = [3, 3780, 378];
  const data = new Float32Array(n * s * s);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001) + (i % 7) * 0.01;
  const y = tidy(() => resizeBicubic(tensor(data, [n, s, s, 1]), [o, o]));
  const got = (await y.read()) as Float32Array;
  y.dispose();
  const c = [-0.09375, 0.59375, 0.59375, -0.09375];
  const sample = new Rng(5);
  const want: number[] = [], have: number[] = [];
  for (let k = 0; k < 256; k++) {
    const b = sample.int(n), oy = sample.int(o), ox = sample.int(o);
    let v = 0;
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < 4; i++) {
        v += c[j]! * c[i]! * data[(b * s + 10 * oy + 3 + j) * s + 10 * ox + 3 + i]!;
      }
    }
    want.push(v);
    have.push(got[(b * o + oy) * o + ox]!);
  }
  assertClose(have, want, { atol: 1e-5, rtol: 1e-5, label: "3780 -> 378 sampled outputs" });
});

Deno.test("resizeBicubicAA() splits one slab larger than a binding into row runs", async () => {
  // [1, 8, 1, 2^20] -> [1, 40, 1, 2^20]: the output (168 MB) is one slab along H, as a
  // 270 x 270 x 1152 position table is; forward and backward must split it by rows (each
  // input row feeds ~21 output rows, 88 MB, which one binding holds).
  const [inRows, rows, c] = [8, 40, 1 << 20];
  const x = new Float32Array(inRows * c);
  for (let i = 0; i < x.length; i++) x[i] = Math.cos(i * 0.37);
  const g = new Float32Array(rows * c);
  for (let i = 0; i < g.length; i++) g[i] = ((i * 7919) % 13) - 6;
  const { y, dx } = tidy(() => {
    const xt = tensor(x, [1, inRows, 1, c]);
    xt.requiresGrad = true;
    const y = resizeBicubicAA(xt, [rows, 1]);
    backward(y, tensor(g, y.shape));
    return { y, dx: xt.grad! };
  });
  const [got, grad] = [await y.read(), await dx.read()];
  y.dispose();
  dx.dispose();
  // The 40 x 8 weight matrix: the float64 reference applied to unit inputs.
  const wcol = [...Array(inRows).keys()].map((j) => {
    const unit = arr([1, inRows, 1, 1]);
    unit.data[j] = 1;
    return resizeBicubicAARef(unit, [rows, 1]).data;
  });
  const sample = new Rng(9);
  const want: number[] = [], have: number[] = [], gWant: number[] = [], gHave: number[] = [];
  for (let k = 0; k < 200; k++) {
    const ch = sample.int(c), d = sample.int(rows), j = sample.int(inRows);
    let v = 0;
    for (let i = 0; i < inRows; i++) v += wcol[i]![d]! * x[i * c + ch]!;
    want.push(v);
    have.push(got[d * c + ch]!);
    let s = 0;
    for (let o = 0; o < rows; o++) s += wcol[j]![o]! * g[o * c + ch]!;
    gWant.push(s);
    gHave.push(grad[j * c + ch]!);
  }
  assertClose(have, want, { atol: 1e-5, rtol: 1e-5, label: "split forward" });
  // ~21-term sums of integers up to 6 with weights summing to ~5 per input row.
  assertClose(gHave, gWant, { atol: 1e-4, rtol: 1e-5, label: "split backward" });
});

for (const { name, op } of OPS) {
  Deno.test(`${name}() to the same size returns the input unchanged`, async () => {
    // Every mode's weights are exactly the identity then (the Keys kernels vanish at integer
    // distances), as in PyTorch; the op copies.
    const x = randArr([2, 5, 6, 3], rng);
    const got = await run(op, Array.from(Float32Array.from(x.data)), x.shape, [5, 6]);
    assertClose(got, Float32Array.from(x.data), { atol: 0, rtol: 0, label: `${name} same size` });
  });
}
