import { deepStrictEqual as assertEquals, throws } from "node:assert";
import { type Arr, assertClose, checkOp, randArr, Rng, rt } from "../harness.ts";
import { tensor } from "../../src/ops/creation.ts";
import {
  binary,
  broadcastTo,
  type ElementwiseVariant,
  elementwiseVariant,
  unary,
  type UnaryOp,
} from "../../src/ops/elementwise.ts";
import { binaryRef, broadcastToRef, unaryRef } from "../../src/reference/elementwise.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";

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

// 7x13 (91 elements) runs the scalar kernels, 5x12 (60) the vec4 ones.
for (const c of UNARY_CASES) {
  for (const shape of [[7, 13], [5, 12]]) {
    const size = shape[0]! * shape[1]!;
    const variant = elementwiseVariant(size);
    Deno.test(
      `unary("${c.op}") ${variant} kernel matches float64 and finite differences on ${
        shape.join("x")
      }`,
      async () => {
        await checkOp(
          c.op,
          [randArr(shape, rng, c.lo, c.hi)],
          ([x]) => unary(c.op, x!, c.a, c.b),
          ([x]) => unaryRef(c.op, x!, c.a, c.b),
          // |f32 rounding| of exp/log-based snippets is a few ulp of the result.
          { atol: 1e-6, rtol: 2e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
        );
      },
    );
  }
}

Deno.test("elementwiseVariant() picks vec4 for sizes that are multiples of 4 unless scalar is asked for", () => {
  const picks = (v: ElementwiseVariant | "auto"): ElementwiseVariant[] => [
    elementwiseVariant(60, v),
    elementwiseVariant(91, v),
  ];
  assertEquals(picks("auto"), ["vec4", "scalar"]);
  assertEquals(picks("scalar"), ["scalar", "scalar"]);
  assertEquals(picks("vec4"), ["vec4", "scalar"]);
  assertThrows(() => elementwiseVariant(60, "vec8" as ElementwiseVariant), RangeError, "vec8");
});

/** Asserts that fn throws an error of a type whose message mentions `text`. */
function assertThrows(fn: () => void, type: ErrorConstructor, text: string): void {
  throws(fn, (e: unknown) => e instanceof type && e.message.includes(text));
}

/**
 * Forward output and input gradients (given the output gradient `dOut`, or none for ops
 * without gradients) of `op` under a variant, as raw f32 bits.
 */
async function runBits(
  variant: ElementwiseVariant,
  inputs: Arr[],
  op: (xs: Tensor[], variant: ElementwiseVariant) => Tensor,
  dOut: Arr | null,
): Promise<Uint32Array[]> {
  {
    const outs = tidy(() => {
      const xs = inputs.map((x) => {
        const t = tensor(Float32Array.from(x.data), x.shape);
        t.requiresGrad = dOut !== null;
        return t;
      });
      const y = op(xs, variant);
      if (dOut === null) return [y];
      backward(y, tensor(Float32Array.from(dOut.data), dOut.shape));
      return [y, ...xs.map((x) => x.grad!)];
    });
    const bytes = await rt.read(outs);
    for (const t of outs) t.dispose();
    return bytes.map((b) => new Uint32Array(b));
  }
}

/** Asserts that two runs produced the same bits, naming the first differing element. */
function assertSameBits(a: Uint32Array[], b: Uint32Array[], label: string): void {
  const names = ["forward", "gradient of input 0", "gradient of input 1"];
  a.forEach((x, k) => {
    const y = b[k]!;
    const at = x.findIndex((v, i) => v !== y[i]);
    if (x.length !== y.length || at >= 0) {
      throw new Error(`${label} ${names[k]}: vec4 and scalar kernels differ at element ${at}`);
    }
  });
}

// 4 * 1031 elements spanning each op's range (with the masks' special values and zeros), so
// every branch of the snippets (erf's sign, sigmoid's, clamp's bounds) is taken.
for (const c of [...UNARY_CASES, { op: "greaterThan" as const, lo: -2, hi: 2, a: 0.5 }]) {
  Deno.test(`unary("${c.op}") vec4 kernel equals the scalar kernel bit for bit`, async () => {
    const x = randArr([4, 1031], rng, c.lo, c.hi);
    x.data[7] = c.a ?? 0;
    x.data[8] = c.b ?? 0;
    const dOut = c.op === "greaterThan" ? null : randArr(x.shape, rng);
    const run = (v: ElementwiseVariant) =>
      runBits(v, [x], ([t], variant) => unary(c.op, t!, c.a, c.b, { variant }), dOut);
    assertSameBits(await run("vec4"), await run("scalar"), c.op);
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

// [5, 7] with [5, 7] runs the scalar kernels (35 elements), [3, 8] with [3, 8] the vec4 ones;
// the rest broadcast (scalar kernels whatever the size).
const SHAPES: [number[], number[]][] = [
  [[5, 7], [5, 7]],
  [[3, 8], [3, 8]],
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

for (const op of ["add", "sub", "mul", "div", "maximum", "bce", "equal", "greater"] as const) {
  Deno.test(`binary("${op}") vec4 kernel equals the scalar kernel bit for bit`, async () => {
    const shape = [4, 1031];
    const lo = op === "div" ? 0.5 : op === "bce" ? 0.02 : -2;
    const u = randArr(shape, rng, lo, op === "bce" ? 0.98 : 2);
    const v = randArr(shape, rng, op === "bce" ? 0 : lo, op === "bce" ? 1 : 2);
    // Ties, where maximum's gradient and equal() pick a side.
    for (let i = 0; i < 40; i++) u.data[i * 97] = v.data[i * 97]!;
    const dOut = op === "equal" || op === "greater" ? null : randArr(shape, rng);
    const run = (variant: ElementwiseVariant) =>
      runBits(variant, [u, v], ([a, b], vv) => binary(op, a!, b!, { variant: vv }), dOut);
    assertSameBits(await run("vec4"), await run("scalar"), op);
  });
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
