/**
 * Elementwise ops as a table of one-line WGSL snippets: unary ops (GELU, sigmoid, exp, ...),
 * binary ops with NumPy broadcasting (add, mul, BCE, ...), and their gradients.
 *
 * Unary snippets see `v` (input), `a`, `b` (op constants); their derivatives also see `out`
 * (forward output) and `g` (output gradient). Binary snippets see `u`, `v`.
 *
 * Two kernel families (chosen per call, {@linkcode ElementwiseOptions}): `scalar`, one element per thread
 * (any size; binary ops with broadcasting), and `vec4`, four elements per thread through
 * `array<vec4<f32>>` bindings, used for unary ops and their backward, and for binary ops and
 * their backward on operands of one shape, whenever the size is a multiple of 4. A load or
 * store moves 16 bytes instead of 4, which is what memory-bound kernels need to approach the
 * copy bandwidth. Both families evaluate the same scalar snippet per element, so their results
 * are bit for bit the same.
 *
 * @module
 */

import {
  binary as binarySrc,
  binary_backward as binaryBackwardSrc,
  binary_backward_vec4 as binaryBackwardVec4Src,
  binary_vec4 as binaryVec4Src,
  unary as unarySrc,
  unary_backward as unaryBackwardSrc,
  unary_backward_vec4 as unaryBackwardVec4Src,
  unary_vec4 as unaryVec4Src,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty, forWindows } from "./creation.ts";
import { cast } from "./cast.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";
import { reduceRaw } from "./reduce_kernel.ts";

/** WGSL helpers shared by the snippets. */
const FUNCS = `
const SQRT1_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
// erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit).
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn tanh_(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn softplus_(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
const GELU_K: f32 = 0.7978845608028654;
fn gelu_tanh_inner(v: f32) -> f32 { return GELU_K * (v + 0.044715 * v * v * v); }
`;

/** A unary op: forward expression and derivative expression (`dx` given `g`). */
interface UnaryDef {
  expr: string;
  deriv: string;
}

/** Names of the unary ops (the keys of the op table). */
export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "sqrt"
  | "square"
  | "abs"
  | "sigmoid"
  | "logSigmoid"
  | "tanh"
  | "relu"
  | "gelu"
  | "geluTanh"
  | "affine"
  | "clamp"
  | "greaterThan"
  | "equalTo";

const UNARY = {
  neg: { expr: "-v", deriv: "-g" },
  exp: { expr: "exp(v)", deriv: "g * out" },
  log: { expr: "log(v)", deriv: "g / v" },
  sqrt: { expr: "sqrt(v)", deriv: "g * 0.5 / out" },
  square: { expr: "v * v", deriv: "g * 2.0 * v" },
  abs: { expr: "abs(v)", deriv: "g * sign(v)" },
  sigmoid: { expr: "sigmoid_(v)", deriv: "g * out * (1.0 - out)" },
  logSigmoid: { expr: "-softplus_(-v)", deriv: "g * (1.0 - sigmoid_(v))" },
  tanh: { expr: "tanh_(v)", deriv: "g * (1.0 - out * out)" },
  relu: { expr: "max(v, 0.0)", deriv: "select(0.0, g, v > 0.0)" },
  gelu: {
    expr: "0.5 * v * (1.0 + erf_(v * SQRT1_2))",
    deriv: "g * (0.5 * (1.0 + erf_(v * SQRT1_2)) + v * INV_SQRT_2PI * exp(-0.5 * v * v))",
  },
  geluTanh: {
    expr: "0.5 * v * (1.0 + tanh_(gelu_tanh_inner(v)))",
    deriv: "g * (0.5 * (1.0 + tanh_(gelu_tanh_inner(v))) + 0.5 * v * " +
      "(1.0 - tanh_(gelu_tanh_inner(v)) * tanh_(gelu_tanh_inner(v))) * GELU_K * " +
      "(1.0 + 3.0 * 0.044715 * v * v))",
  },
  /** a * v + b */
  affine: { expr: "a * v + b", deriv: "g * a" },
  /** clamp to [a, b]; gradient passes where a <= v <= b (PyTorch's rule). */
  clamp: { expr: "clamp(v, a, b)", deriv: "select(0.0, g, v >= a && v <= b)" },
  /** 1 where v > a else 0 (a mask; no gradient). */
  greaterThan: { expr: "select(0.0, 1.0, v > a)", deriv: "0.0" },
  /** 1 where v == a else 0 (a mask; no gradient). */
  equalTo: { expr: "select(0.0, 1.0, v == a)", deriv: "0.0" },
} satisfies Record<UnaryOp, UnaryDef>;

/** Names of the binary ops (the keys of the op table). */
export type BinaryOp = "add" | "sub" | "mul" | "div" | "maximum" | "bce" | "equal" | "greater";

const BINARY = {
  add: { expr: "u + v", du: "g", dv: "g" },
  sub: { expr: "u - v", du: "g", dv: "-g" },
  mul: { expr: "u * v", du: "g * v", dv: "g * u" },
  div: { expr: "u / v", du: "g / v", dv: "-g * u / (v * v)" },
  maximum: { expr: "max(u, v)", du: "select(0.0, g, u >= v)", dv: "select(0.0, g, v > u)" },
  /** Elementwise binary cross-entropy of probability u against target v, with PyTorch's
   * clamp of each log at -100 and its gradient rule. */
  bce: {
    expr: "-(v * max(log(u), -100.0) + (1.0 - v) * max(log(1.0 - u), -100.0))",
    du: "g * (u - v) / max((1.0 - u) * u, 1e-12)",
    dv: "g * (max(log(1.0 - u), -100.0) - max(log(u), -100.0))",
  },
  /** 1 where u == v else 0 (no gradient). */
  equal: { expr: "select(0.0, 1.0, u == v)", du: "0.0", dv: "0.0" },
  /** 1 where u > v else 0 (no gradient). */
  greater: { expr: "select(0.0, 1.0, u > v)", du: "0.0", dv: "0.0" },
} satisfies Record<BinaryOp, { expr: string; du: string; dv: string }>;

const kernels = new KernelCache();

/** An elementwise kernel family (see the module documentation). */
export type ElementwiseVariant = "scalar" | "vec4";

/** Options of the elementwise ops that choose their kernel family. */
export interface ElementwiseOptions {
  /**
   * The family (default "auto": `vec4` wherever it applies). `vec4` falls back to `scalar`
   * for sizes that are not a multiple of 4 and for broadcasting binary ops. Both give the
   * same bits; benchmarks and tests compare them.
   */
  variant?: ElementwiseVariant | "auto" | undefined;
}

/**
 * The family an elementwise op over `size` elements runs with (operands of one shape).
 *
 * @param size Number of elements.
 * @param wanted The family asked for (default "auto").
 * @returns `vec4` when the size is a multiple of 4 and `scalar` is not asked for, else `scalar`.
 */
export function elementwiseVariant(
  size: number,
  wanted: ElementwiseVariant | "auto" = "auto",
): ElementwiseVariant {
  if (wanted !== "auto" && wanted !== "scalar" && wanted !== "vec4") {
    throw new RangeError(`Unknown elementwise variant "${wanted}"`);
  }
  return wanted !== "scalar" && size % 4 === 0 ? "vec4" : "scalar";
}

/** Asserts the operands are live float tensors (f32, or f16 activations). */
function checkFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    t.assertAlive();
    if (t.dtype !== "f32" && t.dtype !== "f16") {
      throw new TypeError(`${op}() takes f32 or f16 tensors, got ${t.describe()}`);
    }
  }
}

/** The activation dtype of a result: f16 when any operand stores f16, else f32. */
function resultType(...ts: Tensor[]): FloatDType {
  return ts.some((t) => t.dtype === "f16") ? "f16" : "f32";
}

/**
 * Applies a unary op from the table.
 *
 * @param op Op name.
 * @param x Input.
 * @param a First op constant (affine scale, clamp low).
 * @param b Second op constant (affine shift, clamp high).
 * @param options The kernel family (forward and backward).
 * @returns f(x), same shape and dtype (f16 inputs evaluate in f32 and store f16).
 */
export function unary(
  op: UnaryOp,
  x: Tensor,
  a = 0,
  b = 0,
  options: ElementwiseOptions = {},
): Tensor {
  checkFloat(op, x);
  const y = empty(x.shape, x.dtype);
  const variant = options.variant;
  dispatchUnary(op, false, [x, y], { size: x.size, a, b, variant });
  if (op === "greaterThan" || op === "equalTo") return y;
  record(op, [x], [y], ([g]) => [unaryBackward(op, { x, y, dy: g!, a, b, variant })]);
  return y;
}

/**
 * The gradient of a unary op, `dx = dy * f'(x)`: the kernel the backward of {@linkcode unary}
 * runs, callable on its own by kernels that fuse the op into another one (the GELU epilogue
 * of `matmul()` keeps the pre-activation x for it).
 *
 * @param op Op name.
 * @param io The forward input `x`, its output `y` (read by derivatives written in terms of
 *   it, such as sigmoid's), the output gradient `dy` (all of x's shape), the op
 *   constants `a`, `b` the forward used, and the kernel family.
 * @returns The input gradient, shaped like x.
 * @example
 * ```ts
 * const dz = unaryBackward("gelu", { x: z, y: gelu(z), dy });
 * ```
 */
export function unaryBackward(
  op: UnaryOp,
  io: {
    x: Tensor;
    y: Tensor;
    dy: Tensor;
    a?: number | undefined;
    b?: number | undefined;
    variant?: ElementwiseVariant | "auto" | undefined;
  },
): Tensor {
  const { x, y, dy, a = 0, b = 0, variant } = io;
  checkFloat("unaryBackward", x, y, dy);
  for (const t of [y, dy]) {
    if (!sameShape(t.shape, x.shape) || t.dtype !== x.dtype) {
      throw new RangeError(
        `unaryBackward() of ${op} needs tensors of one shape and dtype, got x ${x.describe()} ` +
          `and ${t.describe()}`,
      );
    }
  }
  const dx = empty(x.shape, x.dtype);
  dispatchUnary(op, true, [x, y, dy, dx], { size: x.size, a, b, variant });
  return dx;
}

/**
 * Records a unary op's forward (`grad` false: x -> y) or backward (x, y, dy -> dx) over
 * `size` elements, with the family {@linkcode elementwiseVariant} picks. Both families
 * evaluate the same snippet per element, so the choice does not change the result.
 */
function dispatchUnary(
  op: UnaryOp,
  grad: boolean,
  buffers: Tensor[],
  run: { size: number; a: number; b: number; variant: ElementwiseVariant | "auto" | undefined },
): void {
  const { size, a, b } = run;
  const def: UnaryDef = UNARY[op];
  const vec = elementwiseVariant(size, run.variant) === "vec4";
  const dtype = buffers[0]!.dtype as FloatDType;
  const tag = (vec ? "_vec4" : "") + (dtype === "f16" ? "_f16" : "");
  const k = kernels.get(`u${grad ? "b" : ""}:${op}${tag}`, () =>
    defineKernel({
      name: `${op}_${grad ? "backward" : "forward"}${tag}`,
      source: grad
        ? (vec ? unaryBackwardVec4Src : unaryBackwardSrc)
        : (vec ? unaryVec4Src : unarySrc),
      bindings: grad ? ["read", "read", "read", "write"] : ["read", "write"],
      params: [vec ? "n4:u32" : "n:u32", "a:f32", "b:f32"],
      defines: {
        FUNCS,
        ...(grad ? { DERIV: def.deriv } : { EXPR: def.expr }),
        T: dtype,
        ENABLE: enableF16(dtype),
      },
    }));
  // The vec4 kernels take the size in vec4s; windows past the binding limit (multiples of
  // 64 elements, so every window but the last is whole vec4s, and the last is when size is).
  forWindows(buffers, (m, views) => {
    const n = vec ? m / 4 : m;
    gpu().dispatch(k, views, vec ? { n4: n, a, b } : { n, a, b }, grid(n, 256));
  });
}

/**
 * WGSL of a unary op as a function `fn <name>(v: f32) -> f32`, with the helpers its snippet
 * needs, for kernels that fuse the op into their stores (the `matmul()` epilogues). It is
 * the very snippet the elementwise kernels evaluate, so a fused result equals the separate
 * op's bit for bit (on adapters that compile both the same way, as llvmpipe does). Only
 * for ops without constants (the snippet may not use `a`, `b`).
 *
 * @param op Op name.
 * @param name The WGSL function's name.
 * @returns WGSL declarations to paste at module scope.
 * @example
 * ```ts
 * const src = unaryWgsl("gelu", "act") + "fn main() { let y = act(1.0); }";
 * ```
 */
export function unaryWgsl(op: UnaryOp, name: string): string {
  return `${FUNCS}\nfn ${name}(v: f32) -> f32 {\n  return ${UNARY[op].expr};\n}\n`;
}

/**
 * The broadcast shape of two shapes (NumPy rules).
 *
 * @param a First shape.
 * @param b Second shape.
 * @returns The shape both broadcast to.
 */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`Cannot broadcast shapes ${fmtShape(a)} and ${fmtShape(b)}`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element strides of `shape` laid against the 6-d padded output `out` (0 = broadcast). */
function paddedStrides(shape: readonly number[], out: readonly number[]): number[] {
  const strides = new Array(6).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const j = 6 - (shape.length - i);
    strides[j] = shape[i] === 1 && out[j] !== 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

const BINARY_PARAMS = [
  "n:u32",
  ...[0, 1, 2, 3, 4, 5].map((i) => `d${i}:u32`),
  ...[0, 1, 2, 3, 4, 5].map((i) => `sp${i}:u32`),
  ...[0, 1, 2, 3, 4, 5].map((i) => `sq${i}:u32`),
];

function dispatchBroadcast(
  k: Kernel,
  [p, q, g]: [Tensor, Tensor, Tensor | null],
  shape: readonly number[],
  dtype: FloatDType,
): Tensor {
  if (shape.length > 6) {
    throw new RangeError(`Broadcasting supports rank <= 6, got ${shape.length}`);
  }
  const out6 = [...new Array(6 - shape.length).fill(1), ...shape];
  const sp = paddedStrides(p.shape, out6);
  const sq = paddedStrides(q.shape, out6);
  const z = empty(shape, dtype);
  const params: Record<string, number> = { n: z.size };
  for (let i = 0; i < 6; i++) {
    params[`d${i}`] = out6[i]!;
    params[`sp${i}`] = sp[i]!;
    params[`sq${i}`] = sq[i]!;
  }
  const rt = gpu();
  const cap = Math.floor(rt.info.maxBindingBytes / 16) * 4;
  if ([p, q, g, z].every((t) => !t || t.size <= cap)) {
    rt.dispatch(k, g ? [p, q, g, z] : [p, q, z], params, grid(z.size, 256));
    return z;
  }
  // Past the binding limit: blocks of the output's outermost dim (extent > 1); an operand
  // that varies along it is windowed alike (its earlier dims are 1), one that does not is
  // bound whole. Block starts stay aligned for the bindings.
  const i0 = out6.findIndex((d) => d > 1);
  const inner = out6.slice(i0 + 1).reduce((x, d) => x * d, 1);
  const parts: [Tensor, number][] = [
    [p, sp[i0]!],
    [q, sq[i0]!],
    ...(g ? [[g, inner]] as [Tensor, number][] : []),
    [z, inner],
  ];
  let most = out6[i0]!, step = 1;
  const fail = (why: string): never => {
    z.dispose();
    throw new RangeError(
      `Kernel "${k.spec.name}" cannot split ${fmtShape(shape)} (operands ${fmtShape(p.shape)}, ` +
        `${fmtShape(q.shape)}) to fit the device's storage binding limit of ` +
        `${rt.info.maxBindingBytes} bytes: ${why}`,
    );
  };
  for (const [t, row] of parts) {
    if (row === 0) {
      if (t.size > cap) fail(`the broadcast operand ${fmtShape(t.shape)} alone passes it`);
      continue;
    }
    // Window starts in elements of this operand's dtype (2-byte f16 needs twice as many).
    const align = Math.max(1, rt.info.bindingOffsetAlignment / DTYPE_BYTES[t.dtype]);
    most = Math.min(most, Math.floor(cap / row));
    step = Math.max(step, align / gcd(align, row));
  }
  if (most < step) fail(`${step} aligned rows of the outermost dim do not fit`);
  const rows = Math.floor(most / step) * step;
  for (let r0 = 0; r0 < out6[i0]!; r0 += rows) {
    const cnt = Math.min(rows, out6[i0]! - r0);
    const views = parts.map(([t, row]) => row === 0 ? t : t.window(r0 * row, [cnt * row]));
    const n = cnt * inner;
    rt.dispatch(k, views, { ...params, n, [`d${i0}`]: cnt }, grid(n, 256));
    views.forEach((v, i) => v !== parts[i]![0] && v.dispose());
  }
  return z;
}

/** Greatest common divisor. */
function gcd(x: number, y: number): number {
  while (y) [x, y] = [y, x % y];
  return x;
}

/**
 * Applies a binary op from the table with broadcasting.
 *
 * @param op Op name.
 * @param u First operand.
 * @param v Second operand.
 * @param options The kernel family (forward and backward).
 * @returns f(u, v) in the broadcast shape: f16 when either operand is f16 (an f16
 *   activation plus an f32 bias is f16), else f32. The gradient of each operand has its dtype.
 */
export function binary(
  op: BinaryOp,
  u: Tensor,
  v: Tensor,
  options: ElementwiseOptions = {},
): Tensor {
  checkFloat(op, u, v);
  const def = BINARY[op];
  const dtype = resultType(u, v);
  const shape = broadcastShape(u.shape, v.shape);
  // Operands of one shape take the vec4 kernels (when the size allows); the choice is made
  // once for both passes.
  const vec = sameShape(u.shape, v.shape) &&
    elementwiseVariant(u.size, options.variant) === "vec4";
  const fwd = binaryKernel(`${op}_forward`, { expr: def.expr, vec, types: [u, v, null, dtype] });
  const z = vec
    ? dispatchVec4(fwd, [u, v], shape, dtype)
    : dispatchBroadcast(fwd, [u, v, null], shape, dtype);
  if (op === "equal" || op === "greater") return z;
  record(op, [u, v], [z], ([g]) => {
    const partial = (which: "u" | "v", expr: string, target: Tensor) => {
      if (!target.requiresGrad) return null;
      const td = target.dtype as FloatDType;
      if (expr === "g") return sumTo(g!, target.shape, td);
      const types = [u, v, g!, td] as const;
      const k = binaryKernel(`${op}_backward_${which}`, { expr, vec, types });
      if (vec) return dispatchVec4(k, [u, v, g!], shape, td);
      const full = dispatchBroadcast(k, [u, v, g!], shape, td);
      if (sameShape(full.shape, target.shape)) return full;
      const reduced = sumTo(full, target.shape);
      full.dispose();
      return reduced;
    };
    return [partial("u", def.du, u), partial("v", def.dv, v)];
  });
  return z;
}

/**
 * The kernel of a binary snippet named `name` (unique per snippet): the forward (no `g`
 * among `types`) or the gradient of one operand, broadcasting or vec4. `types` are the
 * storage types of the bindings p, q, g (null in the forward) and of the result.
 */
function binaryKernel(
  name: string,
  opts: {
    expr: string;
    vec: boolean;
    types: readonly [Tensor, Tensor, Tensor | null, FloatDType];
  },
) {
  const { expr, vec } = opts;
  const [p, q, g, tz] = opts.types;
  const grad = g !== null;
  const dts = [p.dtype, q.dtype, ...(g ? [g.dtype] : []), tz];
  // f32 kernels keep their names; mixed or f16 ones are named by their binding dtypes.
  const tag = (vec ? "_vec4" : "") + (dts.includes("f16") ? `_${dts.join("_")}` : "");
  const types = { TP: p.dtype, TQ: q.dtype, TG: g?.dtype ?? "f32", TZ: tz };
  return kernels.get(`b:${name}${tag}`, () =>
    defineKernel({
      name: `${name}${tag}`,
      source: grad
        ? (vec ? binaryBackwardVec4Src : binaryBackwardSrc)
        : (vec ? binaryVec4Src : binarySrc),
      bindings: grad ? ["read", "read", "read", "write"] : ["read", "read", "write"],
      params: vec ? ["n4:u32"] : BINARY_PARAMS,
      defines: { FUNCS, EXPR: expr, ...types, ENABLE: enableF16(...dts) },
    }));
}

/** Dispatches a vec4 kernel over operands of one shape (size a multiple of 4). */
function dispatchVec4(
  k: Kernel,
  operands: Tensor[],
  shape: readonly number[],
  dtype: FloatDType,
): Tensor {
  const z = empty(shape, dtype);
  // Windows past the binding limit (multiples of 64 elements: whole vec4s).
  forWindows([z, ...operands], (m, [w, ...views]) => {
    const n4 = m / 4;
    gpu().dispatch(k, [...views, w!], { n4 }, grid(n4, 256));
  });
  return z;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Sums a broadcast tensor back onto a shape it was broadcast from (the gradient rule of
 * broadcasting). Returns `x` itself when the shapes and dtypes already match.
 *
 * @param x A tensor of a broadcast shape.
 * @param shape The target shape.
 * @param dtype The result's storage (default x's): an f16 activation gradient sums in f32
 *   into the f32 gradient of a parameter with `"f32"`.
 * @returns The reduced tensor, shaped `shape`.
 */
export function sumTo(
  x: Tensor,
  shape: readonly number[],
  dtype: FloatDType = x.dtype as FloatDType,
): Tensor {
  if (x.rank === shape.length && x.shape.every((d, i) => d === shape[i])) {
    return x.dtype === dtype ? x : cast(x, dtype);
  }
  const lead = x.rank - shape.length;
  if (lead < 0) {
    throw new RangeError(`Cannot sum ${fmtShape(x.shape)} onto a larger rank ${fmtShape(shape)}`);
  }
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    const target = i < lead ? 1 : shape[i - lead]!;
    if (target === 1 && x.shape[i] !== 1) axes.push(i);
    else if (target !== x.shape[i]) {
      throw new RangeError(`Cannot sum ${fmtShape(x.shape)} onto ${fmtShape(shape)}`);
    }
  }
  const y = reduceRaw(x, axes, 0, 1, shape, dtype);
  record("sumTo", [x], [y], ([g]) => [broadcastTo(g!, x.shape, x.dtype as FloatDType)]);
  return y;
}

/**
 * Broadcasts a tensor to a larger shape (a copy; NumPy rules). The gradient sums back.
 *
 * @param x Input.
 * @param shape Target shape.
 * @param dtype The result's storage (default x's).
 * @returns x repeated along its size-1 and missing leading dims.
 */
export function broadcastTo(
  x: Tensor,
  shape: readonly number[],
  dtype: FloatDType = x.dtype as FloatDType,
): Tensor {
  checkFloat("broadcastTo", x);
  const full = broadcastShape(x.shape, shape);
  if (!sameShape(full, shape)) {
    throw new RangeError(`Cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const k = binaryKernel("broadcast_copy", { expr: "u", vec: false, types: [x, x, null, dtype] });
  const y = dispatchBroadcast(k, [x, x, null], shape, dtype);
  record("broadcastTo", [x], [y], ([g]) => [sumTo(g!, x.shape, x.dtype as FloatDType)]);
  return y;
}

/**
 * `u + v` with broadcasting.
 *
 * @param u First operand.
 * @param v Second operand.
 * @returns The sum.
 */
export const add = (u: Tensor, v: Tensor): Tensor => binary("add", u, v);
/**
 * `u - v` with broadcasting.
 *
 * @param u First operand.
 * @param v Second operand.
 * @returns The difference.
 */
export const sub = (u: Tensor, v: Tensor): Tensor => binary("sub", u, v);
/**
 * `u * v` with broadcasting.
 *
 * @param u First operand.
 * @param v Second operand.
 * @returns The product.
 */
export const mul = (u: Tensor, v: Tensor): Tensor => binary("mul", u, v);
/**
 * `u / v` with broadcasting.
 *
 * @param u First operand.
 * @param v Second operand.
 * @returns The quotient.
 */
export const div = (u: Tensor, v: Tensor): Tensor => binary("div", u, v);
/**
 * Elementwise maximum with broadcasting.
 *
 * @param u First operand.
 * @param v Second operand.
 * @returns max(u, v).
 */
export const maximum = (u: Tensor, v: Tensor): Tensor => binary("maximum", u, v);
/**
 * Binary cross-entropy of probabilities against targets, elementwise (PyTorch's clamp).
 *
 * @param p Probabilities in (0, 1).
 * @param t Targets in [0, 1].
 * @returns The per-element losses.
 */
export const bce = (p: Tensor, t: Tensor): Tensor => binary("bce", p, t);
/**
 * Elementwise negation.
 *
 * @param x Input.
 * @returns -x.
 */
export const neg = (x: Tensor): Tensor => unary("neg", x);
/**
 * Elementwise natural exponential.
 *
 * @param x Input.
 * @returns e^x.
 */
export const exp = (x: Tensor): Tensor => unary("exp", x);
/**
 * Elementwise natural logarithm.
 *
 * @param x Input.
 * @returns ln x.
 */
export const log = (x: Tensor): Tensor => unary("log", x);
/**
 * Elementwise square root.
 *
 * @param x Input.
 * @returns √x.
 */
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
/**
 * Elementwise square.
 *
 * @param x Input.
 * @returns x².
 */
export const square = (x: Tensor): Tensor => unary("square", x);
/**
 * Elementwise logistic sigmoid.
 *
 * @param x Input.
 * @returns 1 / (1 + e^-x).
 */
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);
/**
 * Elementwise log-sigmoid, computed stably as `-softplus(-x)`.
 *
 * @param x Input.
 * @returns log(sigmoid(x)), computed stably.
 */
export const logSigmoid = (x: Tensor): Tensor => unary("logSigmoid", x);
/**
 * Elementwise hyperbolic tangent.
 *
 * @param x Input.
 * @returns tanh x.
 */
export const tanh = (x: Tensor): Tensor => unary("tanh", x);
/**
 * Elementwise rectified linear unit.
 *
 * @param x Input.
 * @returns max(x, 0).
 */
export const relu = (x: Tensor): Tensor => unary("relu", x);
/**
 * Exact GELU, `0.5 x (1 + erf(x / √2))`.
 *
 * @param x Input.
 * @returns GELU(x).
 */
export const gelu = (x: Tensor): Tensor => unary("gelu", x);
/**
 * GELU with the tanh approximation.
 *
 * @param x Input.
 * @returns GELU_tanh(x).
 */
export const geluTanh = (x: Tensor): Tensor => unary("geluTanh", x);
/**
 * Elementwise affine map `a·x + b` with scalar constants.
 *
 * @param x Input.
 * @param a Scale.
 * @param b Shift (default 0).
 * @returns a·x + b.
 */
export const affine = (x: Tensor, a: number, b = 0): Tensor => unary("affine", x, a, b);
/**
 * Elementwise clamp to a closed interval (PyTorch's gradient rule).
 *
 * @param x Input.
 * @param lo Lower bound.
 * @param hi Upper bound.
 * @returns x clamped to [lo, hi]; the gradient passes inside the bounds.
 */
export const clamp = (x: Tensor, lo: number, hi: number): Tensor => unary("clamp", x, lo, hi);
