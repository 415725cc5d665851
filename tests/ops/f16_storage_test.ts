/**
 * f16 storage of the elementwise ops, reductions, layout ops and creation (issue 14): inputs
 * are f16-representable (rounded on the host), the float64 reference runs on those values,
 * and forward results may differ from it by the f16 rounding of the stored output (relative
 * 2^-11) plus the f32 kernel's own tolerance. Gradients: the f16 kernels against the f32
 * kernels of the same source on the same values (the f32 path has the finite-difference
 * checks of elementwise_test.ts, reduce_test.ts and layout_test.ts), within the f16 rounding
 * of the stored gradient; gradients of f16 tensors are f16, of f32 parameters f32.
 *
 * @module
 */

import { deepStrictEqual as assertEquals } from "node:assert";
import { type Arr, assertClose, randArr, Rng, rt } from "../harness.ts";
import { fillInto, full, tensor, zeros } from "../../src/ops/creation.ts";
import { cast, tensorF16 } from "../../src/ops/cast.ts";
import { binary, type BinaryOp, unary, type UnaryOp } from "../../src/ops/elementwise.ts";
import { max, mean, sum } from "../../src/ops/reduce.ts";
import { concat, permute, slice, split } from "../../src/ops/layout.ts";
import { backward } from "../../src/autograd/tape.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import { roundF16 } from "../../src/reference/cast.ts";
import { binaryRef, unaryRef } from "../../src/reference/elementwise.ts";
import { reduceRef } from "../../src/reference/reduce.ts";
import { concatRef, permuteRef, sliceRef } from "../../src/reference/layout.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { matmulRef } from "../../src/reference/matmul.ts";
import { checkF16, F16_EPS } from "./f16_check.ts";

const rng = new Rng(7);
/** Relative rounding of one f16 store (half an ulp). */
const H = 2 ** -11;

/** Random f16-representable values. */
function rand16(shape: number[], lo = -2, hi = 2): Arr {
  const a = randArr(shape, rng, lo, hi);
  for (let i = 0; i < a.data.length; i++) a.data[i] = roundF16(a.data[i]!);
  return a;
}

const f16 = (a: Arr) => tensorF16(Float32Array.from(a.data), a.shape);
const f32 = (a: Arr) => tensor(Float32Array.from(a.data), a.shape);

/** Gradients of <w, op(xs)> for xs given as tensors (each requires grad). */
async function grads(
  xs: Tensor[],
  op: (xs: Tensor[]) => Tensor,
  w: Arr,
): Promise<{ y: Tensor; g: Tensor[]; vals: Float32Array[] }> {
  for (const x of xs) x.requiresGrad = true;
  const y = op(xs);
  const wt = y.dtype === "f16" ? f16(w) : f32(w);
  backward(y, wt);
  const g = xs.map((x) => x.grad!);
  return { y, g, vals: await Promise.all(g.map((t) => t.read() as Promise<Float32Array>)) };
}

/**
 * Gradient tolerances: the stored dx rounds (H relative), and derivatives written in terms of
 * the forward output read it rounded to f16: exp's g*out gains another H relative; tanh's
 * g*(1 - out^2) an absolute |g| * 2 out^2 * H <= 2 * 2 * H (|g| <= 2 here); sigmoid's
 * g*out*(1 - out) an absolute |g| * |1 - 2 out| * out * H <= 2 * 1 * H.
 */
const UNARY: { op: UnaryOp; lo: number; hi: number; rtol: number; grtol: number; gatol: number }[] =
  [
    { op: "gelu", lo: -4, hi: 4, rtol: 1e-5, grtol: H + 1e-6, gatol: 1e-6 },
    { op: "exp", lo: -3, hi: 3, rtol: 1e-5, grtol: 2 * H + 1e-6, gatol: 1e-6 },
    { op: "tanh", lo: -3, hi: 3, rtol: 1e-5, grtol: H + 1e-6, gatol: 4 * H },
    { op: "sigmoid", lo: -6, hi: 6, rtol: 1e-5, grtol: H + 1e-6, gatol: 2 * H },
    { op: "square", lo: -3, hi: 3, rtol: 1e-6, grtol: H + 1e-6, gatol: 1e-6 },
  ];

// 7x13 runs the scalar kernels, 6x16 the vec4 ones.
for (const c of UNARY) {
  for (const shape of [[7, 13], [6, 16]]) {
    Deno.test(`unary("${c.op}") on f16 storage matches float64 and the f32 gradient on ${shape}`, async () => {
      if (!rt.info.hasF16) return;
      const x = rand16(shape, c.lo, c.hi);
      const w = rand16(shape);
      const h = await grads([f16(x)], ([t]) => unary(c.op, t!), w);
      assertEquals(h.y.dtype, "f16");
      assertEquals(h.g[0]!.dtype, "f16");
      const ref = unaryRef(c.op, x).data;
      assertClose(await h.y.read(), ref, { atol: 1e-6, rtol: H + c.rtol, label: c.op });
      const s = await grads([f32(x)], ([t]) => unary(c.op, t!), w);
      assertClose(h.vals[0]!, s.vals[0]!, { atol: c.gatol, rtol: c.grtol, label: `d${c.op}` });
    });
  }
}

const BINARY: { op: BinaryOp; u: number[]; v: number[]; vDtype: "f16" | "f32" }[] = [
  // Residual add of two f16 activations (vec4 and scalar sizes).
  { op: "add", u: [4, 8], v: [4, 8], vDtype: "f16" },
  { op: "add", u: [5, 7], v: [5, 7], vDtype: "f16" },
  // f16 activation + f32 bias (broadcast): f16 result, f32 bias gradient.
  { op: "add", u: [3, 5, 8], v: [8], vDtype: "f32" },
  { op: "mul", u: [3, 5, 8], v: [8], vDtype: "f32" },
  { op: "mul", u: [6, 8], v: [6, 8], vDtype: "f16" },
  { op: "sub", u: [2, 5, 6], v: [5, 1], vDtype: "f16" },
  { op: "div", u: [4, 6], v: [4, 6], vDtype: "f32" },
];

for (const c of BINARY) {
  Deno.test(`binary("${c.op}") f16 ${c.u} with ${c.vDtype} ${c.v} matches float64 and the f32 gradients`, async () => {
    if (!rt.info.hasF16) return;
    const u = rand16(c.u);
    const v = c.op === "div" ? rand16(c.v, 0.5, 2) : rand16(c.v);
    const shape = c.u.length >= c.v.length ? c.u : c.v;
    const w = rand16(shape);
    const vt = c.vDtype === "f16" ? f16(v) : f32(v);
    const h = await grads([f16(u), vt], ([p, q]) => binary(c.op, p!, q!), w);
    assertEquals(h.y.dtype, "f16");
    assertEquals(h.g.map((g) => g.dtype), ["f16", c.vDtype]);
    const ref = binaryRef(c.op, u, v).data;
    assertClose(await h.y.read(), ref, { atol: 1e-6, rtol: H + 1e-6, label: c.op });
    const s = await grads([f32(u), f32(v)], ([p, q]) => binary(c.op, p!, q!), w);
    assertClose(h.vals[0]!, s.vals[0]!, { atol: 1e-6, rtol: H + 1e-6, label: `d${c.op}/du` });
    // A broadcast operand's gradient is summed in f32 (f16 terms, f32 accumulation).
    const rtolV = c.vDtype === "f16" ? H + 1e-5 : 1e-5;
    assertClose(h.vals[1]!, s.vals[1]!, { atol: 1e-5, rtol: rtolV, label: `d${c.op}/dv` });
  });
}

Deno.test("sum(), mean(), max() of f16 accumulate in f32 and store f16", async () => {
  if (!rt.info.hasF16) return;
  const x = rand16([6, 50, 16]);
  for (
    const [name, f, mode] of [["sum", sum, "sum"], ["mean", mean, "mean"], [
      "max",
      max,
      "max",
    ]] as const
  ) {
    for (const axes of [[1], [0, 1], [2]]) {
      const y = f(f16(x), axes);
      assertEquals(y.dtype, "f16");
      const ref = reduceRef(x, axes, mode).data;
      // f32 sums of up to 300 f16 terms: well inside 1e-5 relative of the largest partial.
      assertClose(await y.read(), ref, { atol: 1e-4, rtol: H + 1e-5, label: `${name} ${axes}` });
    }
  }
  const w = rand16([6, 16]);
  const h = await grads([f16(x)], ([t]) => mean(t!, 1), w);
  const s = await grads([f32(x)], ([t]) => mean(t!, 1), w);
  assertEquals(h.g[0]!.dtype, "f16");
  assertClose(h.vals[0]!, s.vals[0]!, { atol: 1e-7, rtol: H + 1e-6, label: "dmean" });
});

Deno.test("concat(), slice(), split(), permute() move f16 elements (odd offsets too)", async () => {
  if (!rt.info.hasF16) return;
  const a = rand16([2, 3, 5]), b = rand16([2, 4, 5]);
  const c = concat([f16(a), f16(b)], 1);
  assertEquals(c.dtype, "f16");
  assertClose(await c.read(), concatRef([a, b], 1).data, { atol: 0, rtol: 0, label: "concat" });
  const s = slice(f16(a), { axis: 2, start: 1, end: 4 });
  assertClose(await s.read(), sliceRef(a, { axis: 2, start: 1, end: 4 }).data, {
    atol: 0,
    rtol: 0,
    label: "slice",
  });
  // A contiguous run at an odd element offset (not whole 4-byte words).
  const s1 = slice(f16(b), { axis: 0, start: 1, end: 2 });
  assertClose(await s1.read(), sliceRef(b, { axis: 0, start: 1, end: 2 }).data, {
    atol: 0,
    rtol: 0,
    label: "slice odd",
  });
  const p = permute(f16(a), [2, 0, 1]);
  assertClose(await p.read(), permuteRef(a, [2, 0, 1]).data, { atol: 0, rtol: 0, label: "perm" });
  // Gradients: exact moves, f16 in, f16 out.
  const w = rand16([2, 7, 5]);
  const h = await grads([f16(a), f16(b)], (xs) => concat(xs, 1), w);
  const r = await grads([f32(a), f32(b)], (xs) => concat(xs, 1), w);
  assertEquals(h.g.map((g) => g.dtype), ["f16", "f16"]);
  assertClose(h.vals[0]!, r.vals[0]!, { atol: 0, rtol: 0, label: "dconcat a" });
  assertClose(h.vals[1]!, r.vals[1]!, { atol: 0, rtol: 0, label: "dconcat b" });
  const ws = rand16([2, 1, 5]);
  const hs = await grads([f16(b)], ([t]) => split(t!, [1, 3], { axis: 1 })[0]!, ws);
  const rs = await grads([f32(b)], ([t]) => split(t!, [1, 3], { axis: 1 })[0]!, ws);
  assertClose(hs.vals[0]!, rs.vals[0]!, { atol: 0, rtol: 0, label: "dsplit" });
});

Deno.test("zeros(), full(), fillInto() and cast() gradients accumulate in f16", async () => {
  if (!rt.info.hasF16) return;
  assertEquals(await zeros([5], "f16").read(), new Float32Array(5));
  const t = full([3], 0.1, "f16");
  assertEquals(t.dtype, "f16");
  assertClose(await t.read(), [roundF16(0.1), roundF16(0.1), roundF16(0.1)], {
    atol: 0,
    rtol: 0,
  });
  fillInto(t, 70000);
  assertEquals(Array.from(await t.read()), [Infinity, Infinity, Infinity]);
  // Fan-out: the gradient of an f16 tensor used twice is accumulated in place (f16).
  const x = f16(rand16([9]));
  x.requiresGrad = true;
  const y = binary("add", x, x);
  backward(cast(y, "f32"), f32(rand16([9])));
  assertEquals(x.grad!.dtype, "f16");
});

// Past a lowered binding limit (run by f16_binding_limit_test.ts under a 64 KiB limit; see
// f16_check.ts): each case's largest f16 tensor passes the limit, so the op splits its work.
// Tolerances: the f32 kernels' (elementwise_test.ts, matmul_test.ts) plus the f16 rounding
// of each stored activation or activation gradient (F16_EPS relative).

Deno.test("gelu() on f16 x [200, 200] past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "gelu f16 [200, 200]",
    inputs: [randArr([200, 200], rng, -4, 4)],
    f16: [true],
    op: ([x]) => unary("gelu", x!),
    ref: ([x]) => unaryRef("gelu", x!),
    tol: { atol: 1e-6, rtol: 1e-5 + F16_EPS, gradAtol: 1e-4, gradRtol: 1e-3 + F16_EPS },
    fdSamples: 16,
    split: true,
  }));

Deno.test("add() of f16 x [50, 20, 64] and an f32 bias past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "add f16 + f32 bias",
    inputs: [randArr([50, 20, 64], rng), randArr([64], rng)],
    f16: [true, false],
    op: ([x, b]) => binary("add", x!, b!),
    ref: ([x, b]) => binaryRef("add", x!, b!),
    // The bias gradient sums 1000 f16 terms in f32, in windows under the limit.
    tol: { atol: 1e-6, rtol: 1e-6 + F16_EPS, gradAtol: 1e-3, gradRtol: 1e-3 },
    exactGrads: false,
    fdSamples: 16,
    split: true,
  }));

Deno.test("matmul() of f16 x [4, 100, 100] with an f32 weight and bias past a 64 KiB binding limit matches float64, FD and the f32 path", () =>
  checkF16({
    name: "matmul f16 rows",
    inputs: [randArr([4, 100, 100], rng), randArr([24, 100], rng, -0.3, 0.3), randArr([24], rng)],
    f16: [true, false, false],
    op: ([x, w, b]) => matmul(x!, w!, { transB: true, bias: b! }),
    ref: ([x, w, b]) => matmulRef(x!, w!, { transB: true, bias: b! }),
    // Sums of 100 products (forward, dA) or 400 (dW, dbias) in f32; the weight gradient's K
    // split regroups its sums differently in the f16 and f32 runs.
    tol: { atol: 1e-5, rtol: 1e-5 + F16_EPS, gradAtol: 1e-3, gradRtol: 1e-3 + F16_EPS },
    exactGrads: false,
    fdSamples: 8,
    split: true,
  }));
