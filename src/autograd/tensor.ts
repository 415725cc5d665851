/**
 * Tensors on the GPU: a shape, a dtype and a window of a pooled buffer.
 *
 * Several tensors may share one buffer (views: reshapes, aligned slices, parameters inside a
 * parameter table); the buffer returns to the pool when its last view is disposed. Tensors
 * created inside {@linkcode tidy} are disposed when it ends unless returned or kept.
 *
 * @module
 */

import { gpu, type GpuBinding } from "../gpu/runtime.ts";
import { track, untrack } from "./scope.ts";
import { type GradNode, isGradEnabled } from "./tape.ts";
import { fmtShape } from "./fmt_shape.ts";

export { fmtShape };

/** Element types. f16 needs the adapter's `shader-f16`. */
export type DType = "f32" | "f16" | "i32" | "u32";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, i32: 4, u32: 4 };

/** Host arrays returned by {@linkcode Tensor.read} for each dtype. */
export type HostArray<D extends DType = DType> = D extends "f32" ? Float32Array
  : D extends "f16" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** A GPU buffer shared by tensor views; back to the pool when the last view is disposed. */
export class Storage {
  /** The buffer. */
  readonly buffer: GPUBuffer;
  /** Live views. */
  refs = 1;
  /** False for buffers the pool does not own (they are destroyed instead). */
  readonly pooled: boolean;

  /**
   * Wraps a buffer with one live view.
   *
   * @param buffer The buffer.
   * @param pooled Whether it came from the runtime's pool.
   */
  constructor(buffer: GPUBuffer, pooled: boolean) {
    this.buffer = buffer;
    this.pooled = pooled;
  }

  /** Drops one view; the last one returns the buffer. */
  release(): void {
    if (--this.refs > 0) return;
    if (this.pooled) gpu().pool.release(this.buffer);
    else this.buffer.destroy();
  }
}

let nextId = 1;

/**
 * Number of elements of a shape.
 *
 * @param shape Dimensions.
 * @returns Their product (1 for a scalar).
 */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A multi-dimensional array on the GPU that autograd can track. */
export class Tensor implements GpuBinding {
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** The shared buffer. */
  readonly storage: Storage;
  /** Byte offset of element 0 in the buffer. */
  readonly byteOffset: number;
  /** Unique id (for debugging and stable ordering). */
  readonly id = nextId++;
  /** Optional name, used in error messages and parameter tables. */
  name: string;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor, after backward. */
  grad: Tensor | null = null;
  /** The op that produced this tensor and the output index, while a graph is recorded. */
  node: { node: GradNode; index: number } | null = null;
  /** Set when a backward pass freed the graph that produced this tensor. */
  graphReleased = false;
  #disposed = false;

  /**
   * Wraps a window of a storage; use the creation ops rather than this constructor.
   *
   * @param storage Buffer shared by views.
   * @param shape Dimensions.
   * @param dtype Element type.
   * @param byteOffset Byte offset of element 0.
   * @param name Optional name.
   */
  constructor(
    storage: Storage,
    shape: readonly number[],
    dtype: DType,
    byteOffset = 0,
    name = "",
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new RangeError(`Cannot create a tensor of shape ${fmtShape(shape)}`);
      }
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.byteOffset = byteOffset;
    this.name = name;
    if (byteOffset + numel(shape) * DTYPE_BYTES[dtype] > storage.buffer.size) {
      throw new RangeError(`Tensor window of ${fmtShape(shape)} ${dtype} overruns its buffer`);
    }
    track(this);
  }

  /** The GPU buffer (for bindings). */
  get buffer(): GPUBuffer {
    this.assertAlive();
    return this.storage.buffer;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** Bytes of data. */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** Whether {@linkcode Tensor.dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** Throws when the tensor has been disposed. */
  assertAlive(): void {
    if (this.#disposed) {
      throw new Error(
        `Tensor ${this.describe()} was used after dispose (is it created inside a tidy() ` +
          "that already ended?)",
      );
    }
  }

  /**
   * Describes the tensor for error messages.
   *
   * @returns A short description: name (or id), shape and dtype.
   */
  describe(): string {
    return `${this.name ? `"${this.name}" ` : `#${this.id} `}${fmtShape(this.shape)} ${this.dtype}`;
  }

  /**
   * A view of the same elements with another shape (no copy, no autograd; use the
   * `reshape` op when gradients must flow). Refused while recording for a tensor that
   * requires a gradient, since the view would silently cut the graph.
   *
   * @param shape New dimensions; one may be -1.
   * @returns The view.
   */
  view(shape: readonly number[]): Tensor {
    this.assertAlive();
    if (this.requiresGrad && isGradEnabled()) {
      throw new Error(
        `Tensor.view() of ${this.describe()} would cut its gradient: use reshape() (or view it ` +
          "inside noGrad())",
      );
    }
    return this.alias(shape);
  }

  /**
   * A view of the same elements with another shape, without the gradient check of
   * {@linkcode Tensor.view} (for ops that record their own gradient, and `detach`).
   *
   * @param shape New dimensions; one may be -1.
   * @returns The view.
   */
  alias(shape: readonly number[]): Tensor {
    this.assertAlive();
    const dims = resolveShape(shape, this.size, this.shape);
    this.storage.refs++;
    return new Tensor(this.storage, dims, this.dtype, this.byteOffset);
  }

  /**
   * A view of `count` elements starting at element `start`, with the given shape. The start
   * must be aligned to the device's binding alignment.
   *
   * @param start First element.
   * @param shape Shape of the window.
   * @returns The view.
   */
  window(start: number, shape: readonly number[]): Tensor {
    this.assertAlive();
    const bytes = DTYPE_BYTES[this.dtype];
    const off = this.byteOffset + start * bytes;
    if (start < 0 || start + numel(shape) > this.size) {
      throw new RangeError(
        `Cannot take a window of ${fmtShape(shape)} at element ${start} of ${this.describe()}`,
      );
    }
    if (off % gpu().info.bindingOffsetAlignment !== 0) {
      throw new RangeError(
        `Cannot take a window at byte ${off}: not a multiple of ${gpu().info.bindingOffsetAlignment}`,
      );
    }
    this.storage.refs++;
    return new Tensor(this.storage, shape, this.dtype, off);
  }

  /**
   * Copies the data to the host (waits for the GPU). f16 data is widened to f32.
   *
   * @returns The elements in row-major order.
   */
  async read(): Promise<HostArray> {
    this.assertAlive();
    const [bytes] = await gpu().read([this]);
    return toHost(bytes!, this.dtype);
  }

  /** Returns the buffer window to its storage; the last view returns the buffer to the pool. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.node = null;
    untrack(this);
    this.storage.release();
  }
}

/**
 * Converts raw bytes read from the GPU to a host array.
 *
 * @param bytes Raw data.
 * @param dtype Element type.
 * @returns The typed array (f16 widened to f32).
 */
export function toHost(bytes: ArrayBuffer, dtype: DType): HostArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(bytes);
    case "i32":
      return new Int32Array(bytes);
    case "u32":
      return new Uint32Array(bytes);
    case "f16": {
      const h = new Uint16Array(bytes);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]!);
      return out;
    }
  }
}

/**
 * Decodes an IEEE half-precision value.
 *
 * @param h The 16 bits.
 * @returns The value as a number.
 */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Resolves a shape with at most one -1 against an element count.
 *
 * @param shape Requested dimensions.
 * @param size Element count that must match.
 * @param from Original shape, for the error message.
 * @returns The concrete shape.
 */
export function resolveShape(
  shape: readonly number[],
  size: number,
  from: readonly number[],
): number[] {
  const dims = [...shape];
  const free = dims.indexOf(-1);
  if (free >= 0) {
    const rest = numel(dims.filter((_, i) => i !== free));
    dims[free] = rest === 0 ? 0 : size / rest;
  }
  if (numel(dims) !== size || dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`Cannot reshape ${fmtShape(from)} to ${fmtShape(shape)}`);
  }
  return dims;
}
