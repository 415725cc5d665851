/**
 * Creating tensors: uninitialised, filled, from host data, random; copies and in-place
 * accumulation (the two ops the autograd tape needs).
 *
 * @module
 */

import { add_into as addIntoSrc, fill as fillSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { installTapeOps, record } from "../autograd/tape.ts";
import { type DType, DTYPE_BYTES, fmtShape, numel, Storage, Tensor } from "../autograd/tensor.ts";
import { Rng } from "../util/rng.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";

const fillKernels = Object.fromEntries(
  (["f32", "f16", "i32", "u32"] as const).map((t) => [
    t,
    defineKernel({
      name: `fill_${t}`,
      source: fillSrc,
      bindings: ["write"],
      params: ["n:u32", "value:f32"],
      defines: { T: t, ENABLE: enableF16(t) },
    }),
  ]),
) as Record<DType, Kernel>;

const addIntoKernels = Object.fromEntries(
  (["f32", "f16"] as const).map((t) => [
    t,
    defineKernel({
      name: t === "f32" ? "add_into" : "add_into_f16",
      source: addIntoSrc,
      bindings: ["read", "write"],
      params: ["n:u32", "alpha:f32"],
      defines: { T: t, ENABLE: enableF16(t) },
    }),
  ]),
) as Record<FloatDType, Kernel>;

/**
 * A tensor with undefined contents, from the buffer pool.
 *
 * @param shape Dimensions.
 * @param dtype Element type (default f32).
 * @param what What the tensor is, for the error when it cannot exist (an op's output, the
 *   image batch); default "a tensor".
 * @returns The tensor.
 * @throws {RangeError} Before anything is allocated or recorded, when the tensor is larger
 *   than the device's largest buffer (a tensor is one buffer): naming it, its shape, bytes and
 *   the limit.
 */
export function empty(shape: readonly number[], dtype: DType = "f32", what?: string): Tensor {
  const bytes = Math.max(numel(shape) * DTYPE_BYTES[dtype], 4);
  const pool = gpu().pool;
  if (bytes > pool.maxBytes) {
    throw new RangeError(
      `Cannot allocate ${what ?? "a tensor"} of ${fmtShape(shape)} ${dtype}: ${bytes} bytes ` +
        `(${fmtBytes(bytes)}), more than the device's largest buffer of ${pool.maxBytes} bytes ` +
        `(${fmtBytes(pool.maxBytes)}, maxBufferSize); a tensor is one buffer`,
    );
  }
  const storage = new Storage(pool.acquire(bytes), true);
  return new Tensor(storage, shape, dtype);
}

/**
 * A tensor filled with one value.
 *
 * @param shape Dimensions.
 * @param value The value.
 * @param dtype f32 (default), f16 (the value rounded to nearest even), i32 or u32.
 * @returns The tensor.
 */
export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  const t = empty(shape, dtype);
  fillInto(t, value);
  return t;
}

/**
 * Overwrites every element of a tensor with one value (in place, no autograd).
 *
 * @param t The tensor.
 * @param value The value.
 */
export function fillInto(t: Tensor, value: number): void {
  const k = fillKernels[t.dtype];
  forWindows([t], (n, [w]) => gpu().dispatch(k, [w!], { n, value }, grid(n, 256)));
}

/**
 * Runs a flat elementwise dispatch over same-sized tensors in windows no larger than the
 * device's storage-binding limit (128 MiB on llvmpipe), so parameter and gradient buffers
 * larger than one binding (the 147 MB token table of the real text tower) still work.
 * Windows start at 256-byte boundaries; tensors must start on one too when split. Windows
 * hold multiples of 64 elements (128 when a tensor has 2-byte f16 elements).
 *
 * @param ts Tensors of equal element count (4-byte or f16 elements).
 * @param fn Records the dispatch for one window: element count and the window views.
 */
export function forWindows(ts: readonly Tensor[], fn: (n: number, views: Tensor[]) => void): void {
  const size = ts[0]!.size;
  if (size === 0) return;
  const unit = ts.some((t) => t.dtype === "f16") ? 128 : 64;
  const step = Math.floor(gpu().info.maxBindingBytes / 4 / unit) * unit;
  if (size <= step) {
    fn(size, [...ts]);
    return;
  }
  for (let start = 0; start < size; start += step) {
    const n = Math.min(step, size - start);
    const views = ts.map((t) => t.window(start, [n]));
    fn(n, views);
    for (const v of views) v.dispose();
  }
}

/**
 * Creates a tensor filled with zeros.
 *
 * @param shape Dimensions.
 * @param dtype Element type (default f32).
 * @returns A tensor of zeros.
 */
export function zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return full(shape, 0, dtype);
}

/**
 * Creates an f32 tensor filled with ones.
 *
 * @param shape Dimensions.
 * @returns A tensor of ones (f32).
 */
export function ones(shape: readonly number[]): Tensor {
  return full(shape, 1);
}

/**
 * Uploads host data.
 *
 * @param data Values in row-major order.
 * @param shape Dimensions (default 1-d).
 * @param dtype Element type; inferred from the array type when omitted.
 * @param what What the tensor is, for the error of {@linkcode empty}.
 * @returns The tensor.
 * @example
 * ```ts
 * const x = tensor([1, 2, 3, 4], [2, 2]);
 * ```
 */
export function tensor(
  data: ArrayLike<number>,
  shape: readonly number[] = [data.length],
  dtype?: DType,
  what?: string,
): Tensor {
  const dt: DType = dtype ??
    (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
  if (numel(shape) !== data.length) {
    throw new RangeError(
      `Cannot make a tensor of shape ${fmtShape(shape)} from ${data.length} values`,
    );
  }
  const t = empty(shape, dt, what);
  const host = dt === "f32"
    ? Float32Array.from(data)
    : dt === "i32"
    ? Int32Array.from(data)
    : dt === "u32"
    ? Uint32Array.from(data)
    : (() => {
      throw new TypeError("tensor() does not upload f16 data");
    })();
  gpu().upload(t, host);
  return t;
}

/**
 * Standard normal values from a seeded host generator (for initialisation and tests).
 *
 * @param shape Dimensions.
 * @param rng Generator (or a seed).
 * @param std Standard deviation (default 1).
 * @returns The tensor.
 */
export function randn(shape: readonly number[], rng: Rng | number = 0, std = 1): Tensor {
  const r = typeof rng === "number" ? new Rng(rng) : rng;
  const a = new Float32Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = r.normal() * std;
  return tensor(a, shape);
}

/**
 * Uniform values in [lo, hi) from a seeded host generator.
 *
 * @param shape Dimensions.
 * @param lo Lower bound.
 * @param hi Upper bound.
 * @param rng Generator (or a seed).
 * @returns The tensor.
 */
export function uniform(
  shape: readonly number[],
  lo: number,
  hi: number,
  rng: Rng | number = 0,
): Tensor {
  const r = typeof rng === "number" ? new Rng(rng) : rng;
  const a = new Float32Array(numel(shape));
  for (let i = 0; i < a.length; i++) a[i] = r.uniform(lo, hi);
  return tensor(a, shape);
}

/**
 * A copy in a new buffer; the gradient passes through.
 *
 * @param x Input.
 * @returns The copy.
 */
export function clone(x: Tensor): Tensor {
  x.assertAlive();
  const y = empty(x.shape, x.dtype);
  gpu().copy(x, y, Math.ceil(x.byteLength / 4) * 4);
  record("clone", [x], [y], ([g]) => [g!]);
  return y;
}

/**
 * In place `dst += alpha * src` (no autograd): gradient accumulation and updates. f16
 * tensors (activation gradients) add in f32 and store the sum rounded to f16.
 *
 * @param dst Destination (f32 or f16).
 * @param src Same size and dtype as dst.
 * @param alpha Scale of src (default 1).
 */
export function addInto(dst: Tensor, src: Tensor, alpha = 1): void {
  dst.assertAlive();
  src.assertAlive();
  if (
    dst.size !== src.size || dst.dtype !== src.dtype || (dst.dtype !== "f32" && dst.dtype !== "f16")
  ) {
    throw new RangeError(`Cannot add ${src.describe()} into ${dst.describe()}`);
  }
  const k = addIntoKernels[dst.dtype];
  forWindows([src, dst], (n, [s, d]) => gpu().dispatch(k, [s!, d!], { n, alpha }, grid(n, 256)));
}

/**
 * A detached view: same data, no gradient history.
 *
 * @param x Input.
 * @returns The view.
 */
export function detach(x: Tensor): Tensor {
  return x.alias(x.shape);
}

installTapeOps({
  addInto: (dst, src) => addInto(dst, src),
  onesLike: (t) => full(t.shape, 1, t.dtype),
  clone: (t) => {
    const y = empty(t.shape, t.dtype);
    gpu().copy(t, y, Math.ceil(t.byteLength / 4) * 4);
    return y;
  },
});
