/**
 * Depthwise convolution on f16 activations (issue 14; the ConvNet's token mixer): x, y, dy and
 * dx stored as f16, the weight, the bias and their gradients f32 (see `f16_check.ts` for what
 * is compared).
 *
 * Tolerances: the f32 kernel's (`conv_test.ts`: forward 2e-5 + 1e-5 |y|, gradients 5e-5 +
 * 1e-4 |g|) plus the f16 rounding of each stored output, 2^-11 relative. The kernels' arithmetic
 * is the f32 path's (loads widen exactly, f32 sums, one rounding at the store), so the f16
 * outputs and x's gradient equal the f16 rounding of the f32 path's bit for bit, and the f32
 * weight and bias gradients (f32 sums of the same values) equal the f32 path's.
 *
 * @module
 */

import { deepStrictEqual as assertEquals } from "node:assert";
import { randArr, Rng } from "../harness.ts";
import { checkF16, F16_EPS } from "./f16_check.ts";
import { depthwiseConv2d } from "../../src/ops/conv.ts";
import { depthwiseConv2dRef } from "../../src/reference/conv.ts";
import { zeros } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { tidy } from "../../src/autograd/scope.ts";

const rng = new Rng(1414);

const TOL = { atol: 2e-5, rtol: 1e-5 + F16_EPS, gradAtol: 5e-5, gradRtol: 1e-4 + F16_EPS };

const CASES: { shape: [number, number, number, number]; k: number; padding: number }[] = [
  { shape: [2, 9, 11, 3], k: 7, padding: 3 }, // the ConvNeXt block; borders everywhere
  { shape: [1, 8, 6, 2], k: 3, padding: 0 }, // valid convolution
  { shape: [2, 15, 20, 3], k: 7, padding: 3 }, // 300 positions: two partial blocks
];

for (const { shape, k, padding } of CASES) {
  const c = shape[3];
  Deno.test(`depthwiseConv2d() on f16 x [${shape}] k=${k} padding=${padding} matches float64, FD and the f32 path`, () =>
    checkF16({
      name: `depthwiseConv2d f16 [${shape}]`,
      inputs: [randArr(shape, rng), randArr([c, 1, k, k], rng), randArr([c], rng)],
      f16: [true, false, false],
      op: ([x, w, b]) => depthwiseConv2d(x!, w!, { bias: b!, padding }),
      ref: ([x, w, b]) => depthwiseConv2dRef(x!, w!, b!, padding),
      tol: TOL,
      fdSamples: 24,
    }));
}

Deno.test("depthwiseConv2d() on f16 x [4, 32, 32, 12] past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "depthwiseConv2d f16 [4, 32, 32, 12]",
    inputs: [randArr([4, 32, 32, 12], rng), randArr([12, 1, 7, 7], rng), randArr([12], rng)],
    f16: [true, false, false],
    op: ([x, w, b]) => depthwiseConv2d(x!, w!, { bias: b!, padding: 3 }),
    ref: ([x, w, b]) => depthwiseConv2dRef(x!, w!, b!, 3),
    tol: TOL,
    fdSamples: 16,
    split: true,
  }));

Deno.test("depthwiseConv2d() stores its output in x's dtype and refuses an f16 weight", () => {
  tidy(() => {
    const x = tensorF16(new Float32Array(2 * 5 * 5 * 3), [2, 5, 5, 3]);
    assertEquals(depthwiseConv2d(x, zeros([3, 1, 3, 3]), { padding: 1 }).dtype, "f16");
    let message = "";
    try {
      depthwiseConv2d(x, tensorF16(new Float32Array(27), [3, 1, 3, 3]));
    } catch (e) {
      message = (e as Error).message;
    }
    assertEquals(/f32 weight and bias/.test(message), true, message);
  });
});
