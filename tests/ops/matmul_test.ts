import { arr, assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { tensor } from "../../src/ops/creation.ts";
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
