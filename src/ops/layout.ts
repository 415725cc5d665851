/**
 * Data-movement ops: concat, slice, split, permute and transpose, with their gradients.
 *
 * All of them are one strided copy (`wgsl/layout_copy.wgsl`): an iteration shape of rank
 * <= 6 with a stride per dim for the source and for the destination. Neighbouring dims that
 * are contiguous in both are merged first, so a copy of one contiguous run becomes a plain
 * buffer copy and higher ranks work when their dims merge down to six. Elements move as raw
 * 4-byte words (f32, i32 and u32 alike) or as 2-byte f16 values (f16 activations). Past the
 * storage binding limit a copy runs in blocks of its outermost (merged) dim, each binding the
 * windows of source and destination it touches.
 *
 * @module
 */

import { layout_copy as copySrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty, zeros } from "./creation.ts";
import { elementWindow, maxWindowElements } from "./slab_chunks.ts";
import { enableF16 } from "./storage_type.ts";

const MAX_RANK = 6;

/** The copy kernel of 4-byte words (index 4) and of 2-byte f16 elements (index 2). */
const copyKernels = Object.fromEntries(([4, 2] as const).map((bytes) => [
  bytes,
  defineKernel({
    name: bytes === 4 ? "layout_copy" : "layout_copy_f16",
    source: copySrc,
    bindings: ["read", "write"],
    params: [
      "n:u32",
      ...[0, 1, 2, 3, 4, 5].map((i) => `d${i}:u32`),
      ...[0, 1, 2, 3, 4, 5].map((i) => `xs${i}:u32`),
      ...[0, 1, 2, 3, 4, 5].map((i) => `ys${i}:u32`),
      "xoff:u32",
      "yoff:u32",
    ],
    defines: bytes === 4 ? { T: "u32", ENABLE: "" } : { T: "f16", ENABLE: enableF16("f16") },
  }),
])) as Record<2 | 4, Kernel>;

/**
 * Row-major element strides of a shape.
 *
 * @param shape Dimensions.
 * @returns One stride per dim.
 */
function contiguousStrides(shape: readonly number[]): number[] {
  const s: number[] = new Array(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** One strided copy: iteration dims with source and destination strides and offsets. */
interface CopyPlan {
  dims: readonly number[];
  xs: readonly number[];
  ys: readonly number[];
  xoff: number;
  yoff: number;
}

/**
 * Records `y[yoff + c·ys] = x[xoff + c·xs]` for every coordinate c of `dims` (no autograd).
 *
 * @param op Op name, for messages.
 * @param x Source.
 * @param y Destination.
 * @param plan Iteration dims, strides and offsets, in elements.
 */
function stridedCopy(op: string, x: Tensor, y: Tensor, plan: CopyPlan): void {
  x.assertAlive();
  y.assertAlive();
  const dims: number[] = [], xs: number[] = [], ys: number[] = [];
  for (let i = 0; i < plan.dims.length; i++) {
    const d = plan.dims[i]!;
    if (d === 0) return;
    if (d === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && xs[last] === plan.xs[i]! * d && ys[last] === plan.ys[i]! * d) {
      dims[last]! *= d;
      xs[last] = plan.xs[i]!;
      ys[last] = plan.ys[i]!;
    } else {
      dims.push(d);
      xs.push(plan.xs[i]!);
      ys.push(plan.ys[i]!);
    }
  }
  const n = dims.reduce((p, d) => p * d, 1);
  if (x.dtype === "f16" !== (y.dtype === "f16")) {
    throw new TypeError(`${op}(): cannot copy ${x.describe()} into ${y.describe()}`);
  }
  const eb = x.dtype === "f16" ? 2 : 4;
  // A contiguous run is a buffer copy when its byte range is whole 4-byte words.
  const words = (plan.xoff * eb) % 4 === 0 && (plan.yoff * eb) % 4 === 0 && (n * eb) % 4 === 0;
  if (dims.length <= 1 && (xs[0] ?? 1) === 1 && (ys[0] ?? 1) === 1 && words) {
    gpu().copy(
      { buffer: x.buffer, byteOffset: x.byteOffset + plan.xoff * eb, byteLength: n * eb },
      { buffer: y.buffer, byteOffset: y.byteOffset + plan.yoff * eb, byteLength: n * eb },
      n * eb,
    );
    return;
  }
  if (dims.length > MAX_RANK) {
    throw new RangeError(
      `${op}(): cannot copy ${fmtShape(plan.dims)}: ${dims.length} dims remain after merging ` +
        `contiguous ones, the kernel handles ${MAX_RANK}`,
    );
  }
  const params = (d: readonly number[], xoff: number, yoff: number) => {
    const pad = MAX_RANK - d.length;
    const p: Record<string, number> = { n: d.reduce((a, b) => a * b, 1), xoff, yoff };
    for (let i = 0; i < MAX_RANK; i++) {
      p[`d${i}`] = i < pad ? 1 : d[i - pad]!;
      p[`xs${i}`] = i < pad ? 0 : xs[i - pad]!;
      p[`ys${i}`] = i < pad ? 0 : ys[i - pad]!;
    }
    return p;
  };
  const limit = gpu().info.maxBindingBytes;
  if (x.size * eb <= limit && y.size * eb <= limit) {
    gpu().dispatch(copyKernels[eb], [x, y], params(dims, plan.xoff, plan.yoff), grid(n, 256));
    return;
  }
  // Past the binding limit: blocks of the outermost iteration dim, each binding the windows
  // of x and y it touches (a copy: the same values as one dispatch).
  for (const blk of outerBlocks(op, plan.dims, dims, xs, ys, eb)) {
    const d = [blk.count, ...dims.slice(1)];
    const xw = elementWindow(x, plan.xoff + blk.first * xs[0]!, blk.spanX, eb);
    const yw = elementWindow(y, plan.yoff + blk.first * ys[0]!, blk.spanY, eb);
    const p = params(d, xw.offset, yw.offset);
    gpu().dispatch(copyKernels[eb], [xw.binding, yw.binding], p, grid(p.n!, 256));
  }
}

/** A block of the outermost iteration dim and the elements it spans in x and in y. */
interface OuterBlock {
  first: number;
  count: number;
  spanX: number;
  spanY: number;
}

/**
 * Splits a strided copy's outermost iteration dim into blocks whose source and destination
 * spans fit one binding window (elements of `eb` bytes).
 *
 * @throws {RangeError} Before any dispatch, when one index of the outer dim does not fit.
 */
function outerBlocks(
  op: string,
  shape: readonly number[],
  dims: readonly number[],
  xs: readonly number[],
  ys: readonly number[],
  eb: number,
): OuterBlock[] {
  const rest = (s: readonly number[]) =>
    1 + dims.slice(1).reduce((a, d, j) => a + (d - 1) * s[j + 1]!, 0);
  const restX = rest(xs), restY = rest(ys);
  const most = maxWindowElements(eb);
  const fit = (r: number, s0: number) =>
    r > most ? 0 : s0 === 0 ? dims[0]! : Math.floor((most - r) / s0) + 1;
  const per = Math.min(dims[0]!, fit(restX, xs[0]!), fit(restY, ys[0]!));
  if (per < 1) {
    throw new RangeError(
      `${op}(): cannot split the copy of ${fmtShape(shape)} to fit the device's storage ` +
        `binding limit of ${gpu().info.maxBindingBytes} bytes: one slice of its outer dim ` +
        `spans ${Math.max(restX, restY) * eb} bytes`,
    );
  }
  const blocks: OuterBlock[] = [];
  for (let first = 0; first < dims[0]!; first += per) {
    const count = Math.min(per, dims[0]! - first);
    blocks.push({
      first,
      count,
      spanX: (count - 1) * xs[0]! + restX,
      spanY: (count - 1) * ys[0]! + restY,
    });
  }
  return blocks;
}

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new RangeError(`${op}(): axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/**
 * Copies `src` (whole) into the block of `dst` that starts at `start` along `axis` (no
 * autograd; split past the binding limit like every layout copy).
 *
 * @param op Op name, for messages.
 * @param src Source, shaped like dst except along axis.
 * @param dst Destination.
 * @param axis Axis.
 * @param start First index along axis.
 */
export function copyIntoBlock(
  op: string,
  src: Tensor,
  dst: Tensor,
  axis: number,
  start: number,
): void {
  const ds = contiguousStrides(dst.shape);
  stridedCopy(op, src, dst, {
    dims: src.shape,
    xs: contiguousStrides(src.shape),
    ys: ds,
    xoff: 0,
    yoff: start * ds[axis]!,
  });
}

/**
 * Copies the block of `src` from `start` to `start + len` along `axis` into a new tensor (no
 * autograd; split past the binding limit like every layout copy).
 *
 * @param op Op name, for messages.
 * @param src Source.
 * @param axis Axis.
 * @param start First index along axis.
 * @param len Block length.
 * @returns The block.
 */
export function copyBlock(
  op: string,
  src: Tensor,
  axis: number,
  start: number,
  len: number,
): Tensor {
  const shape = [...src.shape];
  shape[axis] = len;
  const y = empty(shape, src.dtype);
  const xs = contiguousStrides(src.shape);
  stridedCopy(op, src, y, {
    dims: shape,
    xs,
    ys: contiguousStrides(shape),
    xoff: start * xs[axis]!,
    yoff: 0,
  });
  return y;
}

/**
 * Joins tensors along an axis. All inputs share dtype, rank and every other dim.
 *
 * @param tensors Inputs (at least one).
 * @param axis Axis to join along; negative counts from the end (default 0).
 * @returns The concatenation; its gradient is sliced back to each input.
 * @example
 * ```ts
 * const tokens = concat([lowRes, highRes], 1); // [B, N0 + N1, C]
 * ```
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  const first = tensors[0];
  if (!first) throw new RangeError("concat(): needs at least one tensor");
  for (const t of tensors) t.assertAlive();
  const a = normAxis("concat", axis, first.rank);
  let total = 0;
  for (const t of tensors) {
    const same = t.rank === first.rank && t.dtype === first.dtype &&
      t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!same) {
      throw new RangeError(
        `concat(): cannot join ${t.describe()} to ${first.describe()} along axis ${a}`,
      );
    }
    total += t.shape[a]!;
  }
  const shape = [...first.shape];
  shape[a] = total;
  const y = empty(shape, first.dtype);
  const starts: number[] = [];
  let at = 0;
  for (const t of tensors) {
    starts.push(at);
    copyIntoBlock("concat", t, y, a, at);
    at += t.shape[a]!;
  }
  record(
    "concat",
    tensors,
    [y],
    ([g]) =>
      tensors.map((t, i) =>
        t.requiresGrad ? copyBlock("concat", g!, a, starts[i]!, t.shape[a]!) : null
      ),
  );
  return y;
}

/** Options of {@linkcode slice}. */
export interface SliceOptions {
  /** Axis to slice; negative counts from the end. */
  axis: number;
  /** First index kept; negative counts from the end. */
  start: number;
  /** One past the last index kept; negative counts from the end (default: the dim). */
  end?: number | undefined;
}

/**
 * The elements `start <= i < end` along one axis (a copy).
 *
 * @param x Input (rank <= 6 after merging contiguous dims).
 * @param options Axis and range.
 * @returns The slice; its gradient is written into zeros shaped like x.
 * @example
 * ```ts
 * const cls = slice(tokens, { axis: 1, start: 0, end: 1 }); // [B, 1, C]
 * ```
 */
export function slice(x: Tensor, options: SliceOptions): Tensor {
  x.assertAlive();
  const a = normAxis("slice", options.axis, x.rank);
  const dim = x.shape[a]!;
  const norm = (v: number) => (v < 0 ? v + dim : v);
  const start = norm(options.start);
  const end = norm(options.end ?? dim);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > dim || end < start) {
    throw new RangeError(
      `slice(): range [${options.start}, ${options.end ?? dim}) does not fit axis ${a} of ` +
        x.describe(),
    );
  }
  const y = copyBlock("slice", x, a, start, end - start);
  record("slice", [x], [y], ([g]) => {
    const dx = zeros(x.shape, x.dtype);
    copyIntoBlock("slice", g!, dx, a, start);
    return [dx];
  });
  return y;
}

/** Options of {@linkcode split}. */
export interface SplitOptions {
  /** Axis to split; negative counts from the end (default 0). */
  axis?: number | undefined;
}

/**
 * Cuts a tensor into consecutive pieces along an axis.
 *
 * @param x Input.
 * @param sizes Piece lengths along the axis; they sum to the dim.
 * @param options The axis.
 * @returns One tensor per piece; the gradient reassembles them (zeros for unused pieces).
 * @example
 * ```ts
 * const [q, k, v] = split(qkv, [C, C, C], { axis: -1 });
 * ```
 */
export function split(x: Tensor, sizes: readonly number[], options: SplitOptions = {}): Tensor[] {
  x.assertAlive();
  const a = normAxis("split", options.axis ?? 0, x.rank);
  const sum = sizes.reduce((p, s) => p + s, 0);
  if (
    sizes.length === 0 || sum !== x.shape[a] || sizes.some((s) => !Number.isInteger(s) || s < 0)
  ) {
    throw new RangeError(
      `split(): sizes [${sizes.join(", ")}] do not add up to axis ${a} of ${x.describe()}`,
    );
  }
  const starts: number[] = [];
  sizes.reduce((at, s) => (starts.push(at), at + s), 0);
  const ys = sizes.map((s, i) => copyBlock("split", x, a, starts[i]!, s));
  record("split", [x], ys, (grads) => {
    const dx = grads.every((g) => g !== null) ? empty(x.shape, x.dtype) : zeros(x.shape, x.dtype);
    grads.forEach((g, i) => {
      if (g) copyIntoBlock("split", g, dx, a, starts[i]!);
    });
    return [dx];
  });
  return ys;
}

/**
 * Reorders the dims: output dim i is input dim `perm[i]` (a copy).
 *
 * @param x Input (rank <= 6 after merging dims that stay contiguous).
 * @param perm A permutation of the input dims; negative entries count from the end.
 * @returns The permuted tensor; the gradient is permuted back.
 * @example
 * ```ts
 * const nchw = permute(nhwc, [0, 3, 1, 2]);
 * ```
 */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  x.assertAlive();
  const p = perm.map((d) => (d < 0 ? d + x.rank : d));
  const seen = new Set(p);
  if (p.length !== x.rank || seen.size !== x.rank || p.some((d) => !(d >= 0 && d < x.rank))) {
    throw new RangeError(`permute(): [${perm.join(", ")}] is not a permutation of ${x.describe()}`);
  }
  const shape = p.map((d) => x.shape[d]!);
  const y = empty(shape, x.dtype);
  const xs = contiguousStrides(x.shape);
  stridedCopy("permute", x, y, {
    dims: shape,
    xs: p.map((d) => xs[d]!),
    ys: contiguousStrides(shape),
    xoff: 0,
    yoff: 0,
  });
  record("permute", [x], [y], ([g]) => {
    const inv: number[] = new Array(p.length);
    p.forEach((d, i) => (inv[d] = i));
    return [permute(g!, inv)];
  });
  return y;
}

/**
 * Swaps two dims (a copy).
 *
 * @param x Input.
 * @param axes The two dims to swap; negative counts from the end (default the last two).
 * @returns The transposed tensor; the gradient is transposed back.
 * @example
 * ```ts
 * const kt = transpose(k, [-2, -1]); // [B, H, D, N]
 * ```
 */
export function transpose(x: Tensor, axes: readonly [number, number] = [-2, -1]): Tensor {
  const a = normAxis("transpose", axes[0], x.rank);
  const b = normAxis("transpose", axes[1], x.rank);
  const perm = [...Array(x.rank).keys()];
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}
