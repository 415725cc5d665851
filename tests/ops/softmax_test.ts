import { arr, checkOp, randArr, Rng } from "../harness.ts";
import { softmax } from "../../src/ops/softmax.ts";
import { softmaxRef } from "../../src/reference/softmax.ts";

const rng = new Rng(4);

// y in (0, 1]. WGSL lets exp err by 3 + 2|x| ulp, and |x - max| <= 5 here: up to ~13 ulp
// relative (1.6e-6); llvmpipe measured ~1 ulp. dx = y * (g - dot) is O(1).
const TOL = { atol: 1e-7, rtol: 4e-6, gradAtol: 5e-7, gradRtol: 4e-6 };

for (const shape of [[1, 1], [7, 3], [37, 64], [7, 65], [2, 3, 5], [3, 1152]]) {
  Deno.test(`softmax() matches float64 and finite differences for [${shape}]`, async () => {
    await checkOp(
      `softmax [${shape}]`,
      [randArr(shape, rng, -2, 3)],
      ([t]) => softmax(t!),
      ([a]) => softmaxRef(a!),
      TOL,
    );
  });
}

Deno.test("softmax() forward matches float64 for C=4304 (3*C loop trips)", async () => {
  await checkOp(
    "softmax [2, 4304]",
    [randArr([2, 4304], rng, -2, 3)],
    ([t]) => softmax(t!),
    ([a]) => softmaxRef(a!),
    TOL,
    [0], // forward only: finite differences over 8608 inputs are too slow
  );
});

Deno.test("softmax() along axis 1 of [2, 5, 3, 4] matches float64 and FD", async () => {
  await checkOp(
    "softmax axis 1",
    [randArr([2, 5, 3, 4], rng, -2, 3)],
    ([t]) => softmax(t!, { axis: 1 }),
    ([a]) => softmaxRef(a!, { axis: 1 }),
    TOL,
  );
});

Deno.test("softmax() is stable for logits near +-1000 (max subtracted)", async () => {
  // Without the max, exp(1000) overflows f32 and the rows become NaN.
  const x = arr([4, 3], [1000, 1001, 999, -1000, -1001, -999, -1000, 0, 1000, 88, 89, 90]);
  await checkOp("softmax large", [x], ([t]) => softmax(t!), ([a]) => softmaxRef(a!), TOL);
});
