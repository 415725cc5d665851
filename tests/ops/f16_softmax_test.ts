/**
 * Softmax on f16 activations (issue 14): x, y, dy and dx stored as f16, the max, exp and sums
 * in f32 (see `f16_check.ts` for what is compared).
 *
 * Tolerances: the f32 kernel's (`softmax_test.ts`: forward 1e-7 + 4e-6 |y|, gradients 5e-7 +
 * 4e-6 |g|) plus the f16 rounding of each stored output, 2^-11 relative. The f16 forward
 * must equal the f16 rounding of the f32 path's bit for bit. The backward reads the stored
 * f16 y: its rounding (2^-11 y) times |g - dot| <= 2 (|g| <= 1, |dot| <= 1), plus y times
 * the error of dot = sum g*y (<= 2^-11), adds up to 3 * 2^-11 * max(y) absolute.
 *
 * @module
 */

import { throws as assertThrows } from "node:assert";
import { type Arr, randArr, Rng } from "../harness.ts";
import { checkF16, F16_EPS } from "./f16_check.ts";
import { softmax } from "../../src/ops/softmax.ts";
import { softmaxRef } from "../../src/reference/softmax.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";

const rng = new Rng(15);

/** The tolerances for x (max(y) from the float64 reference, see the module doc). */
function tol(x: Arr, axis: number) {
  const ymax = softmaxRef(x, { axis }).data.reduce((m, v) => Math.max(m, v), 0);
  return {
    atol: 1e-7,
    rtol: 4e-6 + F16_EPS,
    gradAtol: 5e-7 + 3 * F16_EPS * ymax,
    gradRtol: 4e-6 + F16_EPS,
  };
}

/** An f16 softmax check of x along an axis. */
function check(name: string, x: Arr, axis: number, fdSamples: number, split = false) {
  return checkF16({
    name,
    inputs: [x],
    f16: [true],
    op: ([t]) => softmax(t!, { axis }),
    ref: ([a]) => softmaxRef(a!, { axis }),
    tol: tol(x, axis),
    exactGrads: false,
    fdSamples,
    split,
  });
}

for (
  const [shape, axis] of [[[1, 1], -1], [[7, 3], -1], [[37, 65], -1], [[2, 5, 3, 7], 1]] as const
) {
  Deno.test(`softmax() on f16 x matches float64, finite differences and the f32 path for [${shape}] axis ${axis}`, () =>
    check(`softmax f16 [${shape}] axis ${axis}`, randArr([...shape], rng, -2, 3), axis, 32));
}

Deno.test("softmax() on f16 x [150, 250] past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  check("softmax f16 [150, 250]", randArr([150, 250], rng, -2, 3), -1, 8, true));

Deno.test("softmax() backward rejects an f32 gradient of an f16 output", () => {
  tidy(() => {
    const x = tensorF16(Float32Array.from(randArr([3, 4], rng).data), [3, 4]);
    x.requiresGrad = true;
    const y = softmax(x);
    assertThrows(
      () => backward(y, tensor(new Float32Array(12).fill(1), [3, 4])),
      /f16|dtype/,
    );
  });
});
