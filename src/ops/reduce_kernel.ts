/**
 * The reduction kernel: any set of axes of a tensor (as up to 4 runs of kept and 4 runs of
 * reduced dims), sum, max or sum of squares, in one or two passes. No autograd: the ops in
 * `reduce.ts` and the broadcasting gradient in `elementwise.ts` build on it.
 *
 * @module
 */

import { reduce as reduceSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { type DType, DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";

/** Reduced elements per thread: well inside llvmpipe's 65535-trip loop limit. */
const CHUNK = 16384;

const NAMES = ["reduce_sum", "reduce_max", "reduce_sum_squares"];
const kernels = new KernelCache();

/** The kernel of a mode reading `tx` and writing `ty` (f32 kernels keep their names). */
function reduceKernel(mode: 0 | 1 | 2, tx: DType, ty: DType): Kernel {
  const tag = tx === "f32" && ty === "f32" ? "" : `_${tx}_${ty}`;
  return kernels.get(`${mode}${tag}`, () =>
    defineKernel({
      name: NAMES[mode]! + tag,
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
      defines: { MODE: mode, CHUNK, TX: tx, TY: ty, ENABLE: enableF16(tx, ty) },
    }));
}

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

/**
 * Reduces `x` over `axes` into a new tensor of `outShape`, without recording a gradient: long
 * reductions run in two passes.
 *
 * @param x Input.
 * @param axes Sorted axes to reduce.
 * @param mode 0 sum, 1 max, 2 sum of squares.
 * @param scale Factor applied to the result.
 * @param outShape Shape of the result (the kept dims, with or without size-1 axes).
 * @param dtype Storage of the result (default f32); x may be f32 or f16, partial sums are
 *   f32 either way.
 * @returns The reduced tensor.
 */
export function reduceRaw(
  x: Tensor,
  axes: readonly number[],
  mode: 0 | 1 | 2,
  scale: number,
  outShape: readonly number[],
  dtype: FloatDType = "f32",
): Tensor {
  const count = plan(x.shape, axes).red.reduce((p, [d]) => p * d, 1);
  const y = empty(outShape, dtype);
  if (y.size === 0) return y;
  if (x.size > Math.floor(gpu().info.maxBindingBytes / 16) * 4) {
    reduceWindows(x, axes, mode, scale, count, y);
    return y;
  }
  const parts = Math.ceil(count / CHUNK);
  // Long reductions go in two passes: partial results [n, parts], then over parts.
  const first = parts > 1 ? empty([y.size, parts]) : y;
  dispatchPass(x, axes, mode, { y: first, n: y.size, parts, scale: parts > 1 ? 1 : scale });
  if (parts > 1) {
    const rest = reduceRaw(first, [1], mode === 1 ? 1 : 0, scale, outShape, dtype);
    gpu().copy(rest, y, y.byteLength);
    rest.dispose();
    first.dispose();
  }
  return y;
}

/** The dispatch of one pass: `x` reduced over `axes` into `y` [n, parts]. */
function dispatchPass(
  x: Tensor,
  axes: readonly number[],
  mode: 0 | 1 | 2,
  out: { y: Tensor; n: number; parts: number; scale: number },
): void {
  const { kept, red } = plan(x.shape, axes);
  const p: Record<string, number> = {
    n: out.n,
    parts: out.parts,
    count: red.reduce((c, [d]) => c * d, 1),
    scale: out.scale,
  };
  kept.forEach(([d, st], i) => {
    p[`k${i}`] = d;
    p[`ks${i}`] = st;
  });
  red.forEach(([d, st], i) => {
    p[`r${i}`] = d;
    p[`rs${i}`] = st;
  });
  gpu().dispatch(
    reduceKernel(mode, x.dtype, out.y.dtype),
    [x, out.y],
    p,
    grid(out.n * out.parts, 64),
  );
}

/**
 * A reduction over leading axes of an input larger than a storage binding: windows of rows
 * (the reduced index) against every kept element, each reduced into one row of partial
 * results, which a second pass reduces. Windows of CHUNK rows reproduce the one-binding
 * path's parts, so the result is the same bit for bit; when CHUNK rows do not fit, windows
 * of fewer rows (as many as fit, their starts aligned) change the grouping of the additions.
 */
function reduceWindows(
  x: Tensor,
  axes: readonly number[],
  mode: 0 | 1 | 2,
  scale: number,
  count: number,
  y: Tensor,
): void {
  const info = gpu().info;
  const cap = Math.floor(info.maxBindingBytes / 16) * 4;
  const n = y.size;
  const fail = (why: string): never => {
    throw new RangeError(
      `Kernel "${NAMES[mode]!}" cannot split ${x.describe()} over axes [${axes}] ` +
        `to fit the device's storage binding limit of ${info.maxBindingBytes} bytes: ${why}`,
    );
  };
  if (!axes.every((a, i) => a === i)) fail("only reductions over leading axes run in windows");
  const align = Math.max(1, info.bindingOffsetAlignment / DTYPE_BYTES[x.dtype]);
  let unit = 1;
  while ((unit * n) % align !== 0) unit *= 2;
  const fit = Math.floor(cap / n);
  const rows = fit >= CHUNK ? CHUNK : Math.floor(fit / unit) * unit;
  if (rows < 1) fail(`${unit} rows of ${n} kept elements do not fit`);
  const windows = Math.ceil(count / rows);
  const first = empty([windows, n]);
  const part = empty([n]);
  for (let i = 0; i < windows; i++) {
    const cnt = Math.min(rows, count - i * rows);
    const xw = x.window(i * rows * n, [cnt, n]);
    dispatchPass(xw, [0], mode, { y: part, n, parts: 1, scale: 1 });
    xw.dispose();
    gpu().copy(part, {
      buffer: first.buffer,
      byteOffset: first.byteOffset + i * n * 4,
      byteLength: n * 4,
    });
  }
  part.dispose();
  const rest = reduceRaw(first, [0], mode === 1 ? 1 : 0, scale, y.shape, y.dtype as FloatDType);
  gpu().copy(rest, y, y.byteLength);
  rest.dispose();
  first.dispose();
}
