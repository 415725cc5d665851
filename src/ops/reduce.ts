/**
 * Reductions over any set of axes: sum (blocked for accuracy), mean, max, and the sum of squares
 * of a whole buffer (gradient norms). The kernel itself is in `reduce_kernel.ts`.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty, forWindows } from "./creation.ts";
import { binary, broadcastTo, unary } from "./elementwise.ts";
import { normAxes, reduceRaw } from "./reduce_kernel.ts";
import { floatDType } from "./storage_type.ts";

export { normAxes };

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
  // An f16 input sums in f32 and stores the result in f16 (its activation dtype).
  const dtype = floatDType(x.dtype, `${op}()`);
  const y = reduceRaw(x, ax, 0, scale, reducedShape(x.shape, ax, keepDims), dtype);
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
  const y = reduceRaw(
    x,
    ax,
    1,
    1,
    reducedShape(x.shape, ax, keepDims),
    floatDType(x.dtype, "max()"),
  );
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
