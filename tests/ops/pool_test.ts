import { assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { tensor } from "../../src/ops/creation.ts";
import { adaptiveMaxPool } from "../../src/ops/pool.ts";
import { adaptiveMaxPoolRef } from "../../src/reference/pool.ts";

const rng = new Rng(3);

// Forward: a max selects an input exactly (atol 0). Gradients: on random inputs no two values
// of a window lie within the FD step of each other, so the reference is linear around the
// point and its central differences are exact up to float64 rounding.
const TOL = { atol: 0, rtol: 0, gradAtol: 1e-6, gradRtol: 1e-6 };

const CASES: { shape: [number, number, number, number]; size: [number, number] }[] = [
  { shape: [2, 54, 6, 1], size: [27, 4] },
  { shape: [2, 7, 9, 3], size: [3, 4] },
  { shape: [1, 5, 3, 5], size: [3, 7] },
  { shape: [2, 3, 4, 3], size: [1, 1] },
  { shape: [1, 1, 1, 2], size: [2, 3] },
  { shape: [2, 13, 11, 1], size: [5, 5] },
];

for (const { shape, size } of CASES) {
  Deno.test(`adaptiveMaxPool() [${shape}] -> [${size}] matches float64 and FD`, async () => {
    await checkOp(
      "adaptiveMaxPool",
      [randArr(shape, rng)],
      ([x]) => adaptiveMaxPool(x!, size),
      ([x]) => adaptiveMaxPoolRef(x!, size),
      TOL,
    );
  });
}

Deno.test("adaptiveMaxPool() routes gradients of tied windows to the first maximum", async () => {
  // 5 -> 3 rows: windows [0, 2), [1, 4), [3, 5). A constant row makes every window a tie, so
  // output 0 picks row 0, output 1 row 1, output 2 row 3 (PyTorch keeps the first of equal
  // values); with output gradients 1, 10, 100 the input gradient is [1, 10, 0, 100, 0].
  const { y, dx } = tidy(() => {
    const x = tensor([2, 2, 2, 2, 2], [1, 5, 1, 1]);
    x.requiresGrad = true;
    const y = adaptiveMaxPool(x, [3, 1]);
    backward(y, tensor([1, 10, 100], [1, 3, 1, 1]));
    return { y, dx: x.grad! };
  });
  assertClose(await y.read(), [2, 2, 2], { atol: 0, rtol: 0, label: "tied values" });
  assertClose(await dx.read(), [1, 10, 0, 100, 0], { atol: 0, rtol: 0, label: "tied gradient" });
  y.dispose();
  dx.dispose();
});

Deno.test("adaptiveMaxPool() sums the gradient of a maximum shared by windows", async () => {
  // 3 -> 2 columns: windows [0, 2) and [1, 3) share column 1, the largest value.
  const { dx } = tidy(() => {
    const x = tensor([0, 5, 1], [1, 1, 3, 1]);
    x.requiresGrad = true;
    const y = adaptiveMaxPool(x, [1, 2]);
    backward(y, tensor([3, 4], [1, 1, 2, 1]));
    return { dx: x.grad! };
  });
  assertClose(await dx.read(), [0, 7, 0], { atol: 0, rtol: 0, label: "shared maximum" });
  dx.dispose();
});
