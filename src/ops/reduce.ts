/**
 * Reductions over any set of axes: sum (blocked for accuracy), mean, max, and `sumTo`, which folds a
 * broadcast gradient back onto its operand's shape.
 *
 * @module
 */

import reduceSrc from "../../wgsl/reduce.wgsl" with { type: "text" };
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty, forWindows } from "./creation.ts";
import { binary, broadcastTo, unary } from "./elementwise.ts";

/** Reduced elements per thread: well inside llvmpipe's 65535-trip loop limit. */
const CHUNK = 16384;

const kernels: Kernel[] = [0, 1, 2].map((mode) =>
  defineKernel({
    name: ["reduce_sum", "reduce_max", "reduce_sum_squares"][mode]!,
    source: reduceSrc,
    bindings: ["read", "write"],
    params: [
      "n:u32",
      "parts:u32",
      "count:u32",
      "scale:f32",
      ...["k0", "k1", "k2", "k3", "ks0", "ks1", "ks2", "ks3"].map((s) => `${s}:u32`),
      ...["r0", "r1", "r2", "r3", "rs0", "rs1", "rs2", "rs3"].map((s) => `${s}:u32`),
    ],
    defines: { MODE: mode, CHUNK },
  })
);

/**
 * Normalises an axis argument to a sorted list of distinct non-negative axes.
 *
 * @param rank Tensor rank.
 * @param axes Axis, axes, or undefined for all; negative axes count from the end.
 * @returns Sorted axes.
 */
export function normAxes(rank: number, axes?: number | readonly number[]): number[] {
  const list = axes === undefined ? [...Array(rank).keys()] : typeof axes === "number" ? [axes] : [
    ...axes,
  ];
  const out = new Set<number>();
  for (const a of list) {
    const k = a < 0 ? a + rank : a;
    if (!Number.isInteger(k) || k < 0 || k >= rank) {
      throw new RangeError(`Axis ${a} is out of range for rank ${rank}`);
    }
    out.add(k);
  }
  return [...out].sort((p, q) => p - q);
}

/** Groups the dims into runs of kept and reduced dims, merging neighbours of the same kind. */
function plan(shape: readonly number[], axes: readonly number[]) {
  const strides: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  const kept: [number, number][] = [];
  const red: [number, number][] = [];
  let prevKind: boolean | null = null;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d === 1) continue;
    const isRed = axes.includes(i);
    const list = isRed ? red : kept;
    const last = list[list.length - 1];
    if (prevKind === isRed && last && last[1] === d * strides[i]!) {
      last[0] *= d;
      last[1] = strides[i]!;
    } else {
      list.push([d, strides[i]!]);
    }
    prevKind = isRed;
  }
  if (kept.length > 4 || red.length > 4) {
    throw new RangeError(
      `Cannot reduce ${fmtShape(shape)} over axes [${axes}]: more than 4 separate runs of dims`,
    );
  }
  while (kept.length < 4) kept.unshift([1, 0]);
  while (red.length < 4) red.unshift([1, 0]);
  return { kept, red };
}

function reduceRaw(
  x: Tensor,
  axes: readonly number[],
  mode: 0 | 1 | 2,
  scale: number,
  outShape: readonly number[],
): Tensor {
  const { kept, red } = plan(x.shape, axes);
  const count = red.reduce((p, [d]) => p * d, 1);
  const y = empty(outShape);
  if (y.size === 0) return y;
  const parts = Math.ceil(count / CHUNK);
  // Long reductions go in two passes: partial results [n, parts], then over parts.
  const first = parts > 1 ? empty([y.size, parts]) : y;
  const p: Record<string, number> = {
    n: y.size,
    parts,
    count,
    scale: parts > 1 ? 1 : scale,
  };
  kept.forEach(([d, st], i) => {
    p[`k${i}`] = d;
    p[`ks${i}`] = st;
  });
  red.forEach(([d, st], i) => {
    p[`r${i}`] = d;
    p[`rs${i}`] = st;
  });
  gpu().dispatch(kernels[mode]!, [x, first], p, grid(y.size * parts, 64));
  if (parts > 1) {
    const rest = reduceRaw(first, [1], mode === 1 ? 1 : 0, scale, outShape);
    gpu().copy(rest, y, y.byteLength);
    rest.dispose();
    first.dispose();
  }
  return y;
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean) {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

function reduceOp(
  op: "sum" | "mean",
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepDims: boolean,
): Tensor {
  x.assertAlive();
  const ax = normAxes(x.rank, axes);
  const count = ax.reduce((n, a) => n * x.shape[a]!, 1);
  const scale = op === "mean" ? 1 / Math.max(count, 1) : 1;
  const y = reduceRaw(x, ax, 0, scale, reducedShape(x.shape, ax, keepDims));
  record(op, [x], [y], ([g]) => {
    const kept = g!.view(reducedShape(x.shape, ax, true));
    const full = broadcastTo(kept, x.shape);
    kept.dispose();
    if (scale === 1) return [full];
    const scaled = unary("affine", full, scale, 0);
    full.dispose();
    return [scaled];
  });
  return y;
}

/**
 * Sum over axes.
 *
 * @param x Input.
 * @param axes Axis or axes (default all).
 * @param keepDims Keep reduced axes as size 1.
 * @returns The sums.
 * @example
 * ```ts
 * const total = sum(x); // scalar
 * const rows = sum(x, -1); // one per row
 * ```
 */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp("sum", x, axes, keepDims);
}

/**
 * Mean over axes.
 *
 * @param x Input.
 * @param axes Axis or axes (default all).
 * @param keepDims Keep reduced axes as size 1.
 * @returns The means.
 */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceOp("mean", x, axes, keepDims);
}

/**
 * Maximum over axes. The gradient is shared equally among tied maxima (PyTorch's `amax`).
 *
 * @param x Input.
 * @param axes Axis or axes (default all).
 * @param keepDims Keep reduced axes as size 1.
 * @returns The maxima.
 */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  x.assertAlive();
  const ax = normAxes(x.rank, axes);
  const y = reduceRaw(x, ax, 1, 1, reducedShape(x.shape, ax, keepDims));
  record("max", [x], [y], ([g]) => {
    const yk = y.view(reducedShape(x.shape, ax, true));
    const gk = g!.view(yk.shape);
    const hit = binary("equal", x, yk);
    const ties = reduceRaw(hit, ax, 0, 1, yk.shape);
    const share = binary("div", gk, ties);
    return [binary("mul", hit, share)];
  });
  return y;
}

/**
 * Sums a broadcast tensor back onto a shape it was broadcast from (the gradient rule of
 * broadcasting). Returns `x` itself when the shapes already match.
 *
 * @param x A tensor of a broadcast shape.
 * @param shape The target shape.
 * @returns The reduced tensor, shaped `shape`.
 */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  if (x.rank === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
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
  const y = reduceRaw(x, axes, 0, 1, shape);
  record("sumTo", [x], [y], ([g]) => [broadcastTo(g!, x.shape)]);
  return y;
}

/**
 * Sum of squares of all elements, without autograd and without a squared copy (gradient
 * norms over large buffers).
 *
 * @param x Input (any shape).
 * @returns A scalar tensor.
 */
export function sumSquares(x: Tensor): Tensor {
  x.assertAlive();
  const parts: Tensor[] = [];
  forWindows([x], (_n, [w]) => parts.push(reduceRaw(w!, [...Array(w!.rank).keys()], 2, 1, [1])));
  if (parts.length === 1) {
    const total = parts[0]!.alias([]);
    parts[0]!.dispose();
    return total;
  }
  const all = empty([parts.length]);
  parts.forEach((p, i) =>
    gpu().copy(p, { buffer: all.buffer, byteOffset: all.byteOffset + 4 * i, byteLength: 4 })
  );
  const total = reduceRaw(all, [0], 0, 1, []);
  for (const p of [...parts, all]) p.dispose();
  return total;
}
