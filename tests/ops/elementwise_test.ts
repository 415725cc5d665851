import { assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { tensor } from "../../src/ops/creation.ts";
import { binary, broadcastTo, unary, type UnaryOp } from "../../src/ops/elementwise.ts";
import { binaryRef, broadcastToRef, unaryRef } from "../../src/reference/elementwise.ts";

const rng = new Rng(1);

const UNARY_CASES: { op: UnaryOp; lo: number; hi: number; a?: number; b?: number }[] = [
  { op: "neg", lo: -3, hi: 3 },
  { op: "exp", lo: -3, hi: 3 },
  { op: "log", lo: 0.1, hi: 4 },
  { op: "sqrt", lo: 0.1, hi: 4 },
  { op: "square", lo: -3, hi: 3 },
  { op: "abs", lo: -3, hi: 3 },
  { op: "sigmoid", lo: -8, hi: 8 },
  { op: "logSigmoid", lo: -8, hi: 8 },
  { op: "tanh", lo: -4, hi: 4 },
  { op: "relu", lo: -3, hi: 3 },
  { op: "gelu", lo: -6, hi: 6 },
  { op: "geluTanh", lo: -6, hi: 6 },
  { op: "affine", lo: -3, hi: 3, a: 2.5, b: -0.75 },
  { op: "clamp", lo: -3, hi: 3, a: -1, b: 1.5 },
];

for (const op of ["greaterThan", "equalTo"] as const) {
  Deno.test(`unary("${op}") makes a 0/1 mask without a gradient`, async () => {
    const x = randArr([3, 5], rng, -2, 2);
    x.data[4] = 0.5;
    const y = await unary(op, tensor(Float32Array.from(x.data), x.shape), 0.5).read();
    assertClose(y, unaryRef(op, x, 0.5).data, { atol: 0, rtol: 0, label: op });
  });
}

for (const c of UNARY_CASES) {
  Deno.test(`unary("${c.op}") matches float64 and finite differences on 7x13`, async () => {
    await checkOp(
      c.op,
      [randArr([7, 13], rng, c.lo, c.hi)],
      ([x]) => unary(c.op, x!, c.a, c.b),
      ([x]) => unaryRef(c.op, x!, c.a, c.b),
      // |f32 rounding| of exp/log-based snippets is a few ulp of the result.
      { atol: 1e-6, rtol: 2e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
    );
  });
}

Deno.test("unary(gelu) reaches 1e-6 of exact erf GELU over [-10, 10]", async () => {
  const x = randArr([1, 4001], rng, -10, 10);
  for (let i = 0; i < 4001; i++) x.data[i] = -10 + i * 0.005;
  await checkOp("gelu-dense", [x], ([t]) => unary("gelu", t!), ([a]) => unaryRef("gelu", a!), {
    atol: 1e-6,
    rtol: 2e-6,
    gradAtol: 2e-5,
    gradRtol: 1e-4,
  });
});

const SHAPES: [number[], number[]][] = [
  [[5, 7], [5, 7]],
  [[5, 7], [7]],
  [[3, 1, 6], [4, 1]],
  [[1], [2, 3, 5]],
  [[2, 3, 1, 5], [3, 4, 1]],
];

for (const op of ["add", "sub", "mul", "div", "maximum"] as const) {
  for (const [sa, sb] of SHAPES) {
    Deno.test(`binary("${op}") broadcasts [${sa}] with [${sb}], gradients sum back`, async () => {
      const lo = op === "div" ? 0.5 : -2;
      await checkOp(
        op,
        [randArr(sa, rng, -2, 2), randArr(sb, rng, lo, 2)],
        ([u, v]) => binary(op, u!, v!),
        ([u, v]) => binaryRef(op, u!, v!),
        { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-5, gradRtol: 1e-5 },
      );
    });
  }
}

Deno.test("binary(bce) matches PyTorch's clamped BCE and its gradient", async () => {
  const t = randArr([6, 9], rng, 0, 1);
  t.data.forEach((v, i) => t.data[i] = v > 0.5 ? 1 : 0);
  await checkOp(
    "bce",
    [randArr([6, 9], rng, 0.02, 0.98), t],
    ([p, q]) => binary("bce", p!, q!),
    ([p, q]) => binaryRef("bce", p!, q!),
    { atol: 1e-6, rtol: 1e-5, gradAtol: 1e-4, gradRtol: 1e-4 },
    [1],
  );
});

Deno.test("broadcastTo() copies along new and size-1 dims; gradient sums back", async () => {
  await checkOp(
    "broadcastTo",
    [randArr([3, 1, 4], rng)],
    ([x]) => broadcastTo(x!, [2, 3, 5, 4]),
    ([x]) => broadcastToRef(x!, [2, 3, 5, 4]),
    { atol: 0, rtol: 0, gradAtol: 1e-5, gradRtol: 1e-5 },
  );
});
