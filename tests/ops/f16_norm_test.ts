/**
 * Layer norm on f16 activations (issue 14): x, y, dy and dx stored as f16, weight, bias,
 * their gradients and the saved statistics f32 (see `f16_check.ts` for what is compared).
 *
 * Tolerances: the f32 kernel's (`norm_test.ts`: forward 1e-6 + 2e-6 |y|, gradients 5e-6 +
 * 1e-5 |g|) plus the f16 rounding of each stored output, 2^-11 relative (the f32 weight and
 * bias gradients are sums in f32 of the same f16 inputs: no extra rounding, but the same
 * bound is used for all gradients). The f16 outputs must equal the f16 rounding of the f32
 * path's bit for bit (the kernels' arithmetic is the f32 path's).
 *
 * @module
 */

import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert";
import { type Arr, randArr, Rng } from "../harness.ts";
import { checkF16, F16_EPS } from "./f16_check.ts";
import { layerNorm, layerNormChannels } from "../../src/ops/norm.ts";
import { layerNormChannelsRef, layerNormRef } from "../../src/reference/norm.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { tidy } from "../../src/autograd/scope.ts";

const rng = new Rng(14);

const TOL = {
  atol: 1e-6,
  rtol: 2e-6 + F16_EPS,
  gradAtol: 5e-6,
  gradRtol: 1e-5 + F16_EPS,
};

/** x uniform in [-2, 3] (rows of C >= 8 then have a std well above 0.5), weight, bias. */
function inputs(shape: number[], C: number): Arr[] {
  return [randArr(shape, rng, -2, 3), randArr([C], rng, 0.5, 1.5), randArr([C], rng, -0.5, 0.5)];
}

for (const [rows, C] of [[1, 8], [7, 33], [37, 65]] as const) {
  Deno.test(`layerNorm() on f16 x matches float64, finite differences and the f32 path for [${rows}, ${C}]`, () =>
    checkF16({
      name: `layerNorm f16 [${rows}, ${C}]`,
      inputs: inputs([rows, C], C),
      f16: [true, false, false],
      op: ([x, w, b]) => layerNorm(x!, w!, b!),
      ref: ([x, w, b]) => layerNormRef(x!, w!, b!),
      tol: TOL,
      fdSamples: 24,
    }));
}

Deno.test("layerNorm() on f16 x [300, 129] past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "layerNorm f16 [300, 129]",
    inputs: inputs([300, 129], 129),
    f16: [true, false, false],
    op: ([x, w, b]) => layerNorm(x!, w!, b!),
    ref: ([x, w, b]) => layerNormRef(x!, w!, b!),
    tol: TOL,
    fdSamples: 24,
    split: true,
    // Under the limit the f16 and f32 runs split x into blocks of different sizes (their
    // elements differ in size), so the f32 sums of the weight and bias gradients group
    // differently: compared within the tolerance there.
    exactGrads: !Deno.env.get("PS3_MAX_BINDING_BYTES"),
  }));

Deno.test("layerNormChannels() on f16 x [4, 33, 16, 16] past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "layerNormChannels f16 [4, 33, 16, 16]",
    inputs: inputs([4, 33, 16, 16], 33),
    f16: [true, false, false],
    op: ([x, w, b]) => layerNormChannels(x!, w!, b!),
    ref: ([x, w, b]) => layerNormChannelsRef(x!, w!, b!),
    tol: TOL,
    fdSamples: 16,
    split: true,
  }));

Deno.test("layerNormChannels() on f16 x matches float64, finite differences and the f32 path for [3, 9, 5, 7]", () =>
  checkF16({
    name: "layerNormChannels f16 [3, 9, 5, 7]",
    inputs: inputs([3, 9, 5, 7], 9),
    f16: [true, false, false],
    op: ([x, w, b]) => layerNormChannels(x!, w!, b!),
    ref: ([x, w, b]) => layerNormChannelsRef(x!, w!, b!),
    tol: TOL,
    fdSamples: 24,
  }));

Deno.test("layerNorm() on f16 x without weight and bias matches the f32 path", () =>
  checkF16({
    name: "layerNorm f16 no affine [5, 17]",
    inputs: [randArr([5, 17], rng, -2, 3)],
    f16: [true],
    op: ([x]) => layerNorm(x!, null, null),
    ref: ([x]) => layerNormRef(x!, null, null),
    tol: TOL,
  }));

Deno.test("layerNorm() on f16 x rejects f16 parameters; its output is f16 with or without them", () => {
  tidy(() => {
    const x = tensorF16(Float32Array.from(randArr([4, 6], rng).data), [4, 6]);
    const w = tensorF16(new Float32Array(6).fill(1), [6]);
    assertThrows(() => layerNorm(x, w, null), /layerNorm\(\) takes f32 tensors, got .* f16/);
    const y = layerNorm(x, null, null);
    assertEquals(y.dtype, "f16");
    x.requiresGrad = true;
    const y2 = layerNorm(x, tensor(new Float32Array(6).fill(1), [6]), null);
    assertEquals(y2.dtype, "f16");
  });
});
