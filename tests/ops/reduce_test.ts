import { assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { addInto, empty, fillInto } from "../../src/ops/creation.ts";
import { max, mean, sum, sumSquares } from "../../src/ops/reduce.ts";
import { reduceRef } from "../../src/reference/reduce.ts";

const rng = new Rng(2);
const CASES: { shape: number[]; axes: number[] }[] = [
  { shape: [37], axes: [0] },
  { shape: [5, 7], axes: [1] },
  { shape: [5, 7], axes: [0] },
  { shape: [3, 4, 5], axes: [0, 2] },
  { shape: [2, 3, 4, 5], axes: [1, 3] },
  { shape: [2, 3, 4, 5], axes: [0, 1, 2, 3] },
  { shape: [1, 9, 1, 4], axes: [1] },
];

for (const { shape, axes } of CASES) {
  for (const [name, fn] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
    Deno.test(`${name}() over axes [${axes}] of [${shape}] matches float64 and FD`, async () => {
      await checkOp(
        name,
        [randArr(shape, rng, -2, 2)],
        ([x]) => fn(x!, axes),
        ([x]) => reduceRef(x!, axes, name),
        { atol: 1e-6, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-4 },
      );
    });
  }
}

Deno.test("sum() keepDims keeps reduced axes as size 1", async () => {
  await checkOp(
    "sum-keep",
    [randArr([3, 4, 5], rng)],
    ([x]) => sum(x!, [1], true),
    ([x]) => {
      const r = reduceRef(x!, [1], "sum");
      return { data: r.data, shape: [3, 1, 5] };
    },
  );
});

Deno.test("sum() of 100000 values: two passes, float32 error within 1e-6 relative", async () => {
  const x = randArr([100000], rng, 0, 1);
  await checkOp("sum-long", [x], ([t]) => sum(t!), ([a]) => reduceRef(a!, [0], "sum"), {
    // A plain float32 loop is off by ~1e-5 here; blocked summation keeps ~1e-7.
    atol: 0,
    rtol: 1e-6,
    gradAtol: 1e-6,
    gradRtol: 0,
  }, [0]); // forward only: FD over 100000 inputs is too slow, and sum's gradient is tested above
});

Deno.test("sumSquares(), addInto() and fillInto() work on buffers larger than one binding", async () => {
  // 40M floats = 160 MB > the 128 MiB binding limit of llvmpipe (real GPUs allow more; the
  // windowed path then runs only when the tensor exceeds their limit).
  const n = 40_000_000;
  const a = empty([n]), b = empty([n]);
  fillInto(a, 0.5);
  fillInto(b, 0.25);
  addInto(a, b, 2); // a = 1.0 everywhere
  const s = await sumSquares(a).read();
  assertClose([s[0]!], [n], { atol: 0, rtol: 1e-6, label: "sum of squares" });
  const tail = await a.window(n - 64, [64]).read();
  assertClose(tail, new Array(64).fill(1), { atol: 0, rtol: 0, label: "last window" });
  a.dispose();
  b.dispose();
});
