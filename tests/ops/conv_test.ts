import { throws as assertThrows } from "node:assert";
import { checkOp, randArr, Rng } from "../harness.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { zeros } from "../../src/ops/creation.ts";
import { depthwiseConv2d } from "../../src/ops/conv.ts";
import { depthwiseConv2dRef } from "../../src/reference/conv.ts";

const rng = new Rng(8);

// Forward: at most 49 float32 products of values in [-1, 1] plus a bias (~3e-6 worst case).
// Gradients: the op is bilinear in (x, weight), so FD of the float64 reference is exact up
// to rounding; the weight gradient sums up to B * HO * WO = 2 * 300 float32 products in
// blocks of 256 then across blocks (~1e-5 of the sum's magnitude).
const TOL = { atol: 2e-5, rtol: 1e-5, gradAtol: 5e-5, gradRtol: 1e-4 };

const CASES: { shape: [number, number, number, number]; k: number; padding: number }[] = [
  { shape: [2, 9, 11, 3], k: 7, padding: 3 }, // the ConvNeXt block; borders everywhere
  { shape: [1, 5, 4, 5], k: 7, padding: 3 }, // map smaller than the kernel
  { shape: [2, 6, 7, 1], k: 3, padding: 1 },
  { shape: [1, 8, 6, 2], k: 3, padding: 0 }, // valid convolution, output 6 x 4
  { shape: [2, 15, 20, 3], k: 7, padding: 3 }, // 300 positions: two partial blocks
];

for (const { shape, k, padding } of CASES) {
  const c = shape[3];
  Deno.test(
    `depthwiseConv2d() [${shape}] k=${k} padding=${padding} matches direct float64 and FD`,
    async () => {
      await checkOp(
        "depthwiseConv2d",
        [randArr(shape, rng), randArr([c, 1, k, k], rng), randArr([c], rng)],
        ([x, wt, b]) => depthwiseConv2d(x!, wt!, { bias: b!, padding }),
        ([x, wt, b]) => depthwiseConv2dRef(x!, wt!, b!, padding),
        TOL,
      );
    },
  );
}

Deno.test("depthwiseConv2d() without bias matches direct float64 and FD", async () => {
  await checkOp(
    "depthwiseConv2d",
    [randArr([2, 4, 5, 2], rng), randArr([2, 1, 3, 3], rng)],
    ([x, wt]) => depthwiseConv2d(x!, wt!, { padding: 1 }),
    ([x, wt]) => depthwiseConv2dRef(x!, wt!, null, 1),
    TOL,
  );
});

Deno.test("depthwiseConv2d() rejects a weight that is not [C, 1, k, k]", () => {
  tidy(() => {
    const x = zeros([1, 4, 4, 3]);
    assertThrows(() => depthwiseConv2d(x, zeros([3, 3, 3, 3])), {
      name: "RangeError",
      message: /weight must be \[3, 1, k, k\]/,
    });
    assertThrows(() => depthwiseConv2d(x, zeros([3, 1, 7, 7])), {
      name: "RangeError",
      message: /cannot apply a 7 x 7 kernel with padding 0/,
    });
  });
});
