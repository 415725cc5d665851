/**
 * Normalisation ops with hand-written backward kernels: LayerNorm over the last axis
 * (`torch.nn.LayerNorm`), channel LayerNorm on NCHW maps (timm `LayerNorm2d`), and L2
 * normalisation (`F.normalize`).
 *
 * Every kernel sees its input as `[O, C, I]`, the normalised axis C in the middle: element
 * (o, c, i) lies at `o*C*I + c*I + i`. Normalising the last axis is I = 1; the channels of
 * `[B, C, H, W]` are O = B, I = H*W; so one code path serves both layouts. A row is one
 * (o, i) pair, handled by one thread.
 *
 * Layer norm takes f32 or f16 activations (issue 14's `train.precision: f16`): x, y, the
 * incoming gradient and dx share x's storage type, while the statistics (mean, rstd, computed
 * in f32 inside the kernel and saved in f32), weight, bias and their gradients stay f32.
 * L2 normalisation stays f32 (it serves the pooled features and the selection path).
 *
 * @module
 */

import {
  l2_normalize_backward as l2BackwardSrc,
  l2_normalize_forward as l2ForwardSrc,
  layer_norm_backward_input as backwardInputSrc,
  layer_norm_backward_params as backwardParamsSrc,
  layer_norm_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { sum } from "./reduce.ts";
import { enableF16, type FloatDType, floatDType } from "./storage_type.ts";

/**
 * Rows summed by one thread in the first pass of the weight and bias gradients; more rows
 * are split into chunks whose partial sums a second pass adds (llvmpipe stops loops after
 * 65535 trips, and there are no float atomics).
 */
export const LAYER_NORM_CHUNK_ROWS = 256;

/** A tensor seen as `[outer, size, inner]` around one axis. */
export interface AxisLayout {
  /** Product of the dims before the axis (O). */
  outer: number;
  /** The axis length (C). */
  size: number;
  /** Product of the dims after the axis (I). */
  inner: number;
}

/**
 * Splits a shape around one axis.
 *
 * @param shape Dimensions.
 * @param axis The axis; negative counts from the end.
 * @returns The sizes before, of and after the axis.
 * @example
 * ```ts
 * axisLayout([2, 5, 3, 4], 1); // { outer: 2, size: 5, inner: 12 }
 * ```
 */
export function axisLayout(shape: readonly number[], axis: number): AxisLayout {
  const k = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(k) || k < 0 || k >= shape.length) {
    throw new RangeError(`Axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  }
  const prod = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);
  return { outer: prod(shape.slice(0, k)), size: shape[k]!, inner: prod(shape.slice(k + 1)) };
}

/** Options of {@linkcode layerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance before the square root (default 1e-5, PyTorch's). */
  eps?: number | undefined;
}

/** Options of {@linkcode layerNormChannels}. */
export interface LayerNormChannelsOptions {
  /** Added to the variance before the square root (default 1e-6, timm LayerNorm2d's). */
  eps?: number | undefined;
}

/** Options of {@linkcode normalize}. */
export interface NormalizeOptions {
  /** Lower bound of the denominator (default 1e-12, PyTorch's). */
  eps?: number | undefined;
  /** The axis normalised (default -1, the last). */
  axis?: number | undefined;
}

const kernels = new KernelCache();

function checkF32(op: string, ts: readonly Tensor[]): void {
  for (const t of ts) {
    t.assertAlive();
    if (t.dtype !== "f32") throw new TypeError(`${op}() takes f32 tensors, got ${t.describe()}`);
  }
}

/** Checks that every tensor is alive and f32 or f16; returns x's storage type. */
function checkActivation(op: string, x: Tensor, params: readonly Tensor[]): FloatDType {
  x.assertAlive();
  const dt = floatDType(x.dtype, `${op}() input`);
  checkF32(op, params);
  return dt;
}

function checkEps(op: string, eps: number): void {
  if (!Number.isFinite(eps) || eps < 0) {
    throw new RangeError(`${op}() needs a finite eps >= 0, got ${eps}`);
  }
}

/** A block of outer indices of a tensor seen as [O, C, I], and its binding windows. */
export interface OuterBlock {
  /** First outer index. */
  first: number;
  /** Number of outer indices. */
  count: number;
  /**
   * Windows of the block: of tensors laid out as x ([O, C, I]), then of per-row ones ([O, I]).
   */
  views(full: readonly Tensor[], perRow: readonly Tensor[]): Tensor[];
  /** Releases the windows of the last `views` call. */
  dispose(): void;
}

/**
 * Blocks of outer indices whose bindings fit the device's storage binding limit: the whole
 * tensor when it fits, else blocks with aligned starts, of whole chunks of `chunkRows` rows
 * where they fit (layer norm's LAYER_NORM_CHUNK_ROWS: then the parameter gradients keep
 * their grouping). Rows are independent, so row-wise results equal one dispatch's.
 *
 * @param op The op's name, for the error.
 * @param x The tensor split (laid out as [O, C, I]; tensors laid out like it share its dtype,
 *   per-row ones are f32).
 * @param layout x seen as [O, C, I].
 * @param chunkRows Blocks are whole multiples of this many rows where they fit.
 * @returns The blocks, in order.
 * @throws {RangeError} When one slice along the normalised axis does not fit.
 */
export function outerBlocks(
  op: string,
  x: Tensor,
  layout: AxisLayout,
  chunkRows: number = LAYER_NORM_CHUNK_ROWS,
): OuterBlock[] {
  const { outer, size: C, inner } = layout;
  const info = gpu().info;
  // Bytes per element of the tensors laid out as x (x's dtype) and of the per-row ones (f32).
  const xb = DTYPE_BYTES[x.dtype], rb = 4;
  const capBytes = Math.floor(info.maxBindingBytes / 16) * 16;
  const block = (first: number, count: number): OuterBlock => {
    let held: Tensor[] = [];
    return {
      first,
      count,
      views(full, perRow) {
        if (count === outer) return [...full, ...perRow];
        held = [
          ...full.map((t) => t.window(first * C * inner, [count * C * inner])),
          ...perRow.map((t) => t.window(first * inner, [count * inner])),
        ];
        return held;
      },
      dispose() {
        for (const t of held) t.dispose();
        held = [];
      },
    };
  };
  if (x.size * xb <= capBytes && outer * inner * rb <= capBytes) return [block(0, outer)];
  const fail = (why: string): never => {
    throw new RangeError(
      `${op}() cannot split ${x.describe()} to fit the device's storage binding limit of ` +
        `${info.maxBindingBytes} bytes: ${why}`,
    );
  };
  const most = Math.floor(capBytes / Math.max(C * inner * xb, inner * rb));
  if (most < 1) fail(`one slice of ${C} x ${inner} floats passes it`);
  const align = info.bindingOffsetAlignment;
  let g = 1;
  while ((g * C * inner * xb) % align !== 0 || (g * inner * rb) % align !== 0) g *= 2;
  let h = g;
  while ((h * inner) % chunkRows !== 0) h *= 2;
  const count = most >= h ? Math.floor(most / h) * h : Math.floor(most / g) * g;
  if (count < 1) fail(`${g} aligned slices do not fit`);
  const blocks: OuterBlock[] = [];
  for (let o = 0; o < outer; o += count) blocks.push(block(o, Math.min(count, outer - o)));
  return blocks;
}

/** The defines of a kernel whose activations are stored as `dt`: `{{T}}` and `{{ENABLE}}`. */
function storage(dt: FloatDType): { T: FloatDType; ENABLE: string } {
  return { T: dt, ENABLE: enableF16(dt) };
}

/** Checks that an incoming gradient has its activation's storage type. */
function checkGrad(op: string, g: Tensor, dt: FloatDType): void {
  if (g.dtype !== dt) {
    throw new TypeError(
      `${op}() backward takes a gradient stored like its ${dt} input, got ${g.describe()}`,
    );
  }
}

/** LayerNorm over the middle axis of x seen as [O, C, I]; records the backward. */
function layerNormAxis(
  op: string,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  layout: AxisLayout,
): Tensor {
  const { outer, size: C, inner } = layout;
  const params = [...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const inputs = [x, ...params];
  const dt = checkActivation(op, x, params);
  checkEps(op, eps);
  for (const [what, p] of [["weight", weight], ["bias", bias]] as const) {
    if (p && (p.rank !== 1 || p.shape[0] !== C)) {
      throw new RangeError(
        `${op}() ${what} must be [${C}] for input ${fmtShape(x.shape)}, got ${fmtShape(p.shape)}`,
      );
    }
  }
  const rows = outer * inner;
  const rt = gpu();
  const hasW = weight !== null, hasB = bias !== null;
  const fwd = kernels.get(`f:${hasW}:${hasB}:${dt}`, () =>
    defineKernel({
      name: "layer_norm_forward",
      source: forwardSrc,
      bindings: ["read", "read", "read", "write", "write", "write"],
      params: ["rows:u32", "C:u32", "I:u32", "eps:f32"],
      defines: { HAS_WEIGHT: String(hasW), HAS_BIAS: String(hasB), ...storage(dt) },
    }));
  // y in x's storage type; the statistics stay f32 (computed in f32 inside the kernel).
  const y = empty(x.shape, dt);
  const mean = empty([rows]);
  const rstd = empty([rows]);
  mean.name = `${op}.mean`;
  rstd.name = `${op}.rstd`;
  const blocks = rows > 0 && C > 0 ? outerBlocks(op, x, layout) : [];
  if (rows > 0 && C > 0) {
    rt.assertLoopTrips("layer_norm_forward", 3 * C);
    for (const b of blocks) {
      const [xb, yb, mb, rb] = b.views([x, y], [mean, rstd]);
      const n = b.count * inner;
      rt.dispatch(fwd, [xb!, weight ?? xb!, bias ?? xb!, yb!, mb!, rb!], {
        rows: n,
        C,
        I: inner,
        eps,
      }, grid(n, 64));
      b.dispose();
    }
  }
  record(op, inputs, [y], ([g]) => {
    const dims = { rows, C, I: inner };
    checkGrad(op, g!, dt);
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      const k = kernels.get(`bi:${hasW}:${dt}`, () =>
        defineKernel({
          name: "layer_norm_backward_input",
          source: backwardInputSrc,
          bindings: ["read", "read", "read", "read", "read", "write"],
          params: ["rows:u32", "C:u32", "I:u32"],
          defines: { HAS_WEIGHT: String(hasW), ...storage(dt) },
        }));
      dx = empty(x.shape, dt);
      if (rows > 0 && C > 0) {
        rt.assertLoopTrips("layer_norm_backward_input", 2 * C);
        for (const b of blocks) {
          const [xb, gb, dxb, mb, rb] = b.views([x, g!, dx], [mean, rstd]);
          const n = b.count * inner;
          rt.dispatch(
            k,
            [xb!, weight ?? xb!, gb!, mb!, rb!, dxb!],
            { ...dims, rows: n },
            grid(n, 64),
          );
          b.dispose();
        }
      }
    }
    let dw: Tensor | null = null, db: Tensor | null = null;
    if (weight?.requiresGrad || bias?.requiresGrad) {
      [dw, db] = layerNormParamGrads({ x, g: g!, mean, rstd }, dims, blocks);
    }
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(weight.requiresGrad ? dw : null);
    if (bias) grads.push(bias.requiresGrad ? db : null);
    return grads;
  });
  // Without a recorded backward nothing reads the statistics again.
  if (!y.node) {
    mean.dispose();
    rstd.dispose();
  }
  return y;
}

/**
 * Column sums over all rows of g * xhat and g (f32, whatever x's storage type), in one pass
 * or chunked in two.
 */
function layerNormParamGrads(
  t: { x: Tensor; g: Tensor; mean: Tensor; rstd: Tensor },
  dims: { rows: number; C: number; I: number },
  blocks: readonly OuterBlock[],
): [Tensor, Tensor] {
  const { x, g, mean, rstd } = t;
  const rt = gpu();
  const dt = floatDType(x.dtype, "layerNorm() input");
  const k = kernels.get(`bp:${dt}`, () =>
    defineKernel({
      name: "layer_norm_backward_params",
      source: backwardParamsSrc,
      bindings: ["read", "read", "read", "read", "write", "write"],
      params: ["rows:u32", "C:u32", "I:u32", "chunks:u32"],
      defines: { CHUNK: LAYER_NORM_CHUNK_ROWS, ...storage(dt) },
    }));
  rt.assertLoopTrips("layer_norm_backward_params", LAYER_NORM_CHUNK_ROWS);
  const per = (rows: number) => Math.max(1, Math.ceil(rows / LAYER_NORM_CHUNK_ROWS));
  let chunks: number, pw: Tensor, pb: Tensor;
  if (blocks.length <= 1) {
    chunks = per(dims.rows);
    pw = empty([chunks, dims.C]);
    pb = empty([chunks, dims.C]);
    rt.dispatch(k, [x, g, mean, rstd, pw, pb], { ...dims, chunks }, grid(chunks * dims.C, 64));
  } else {
    // Each block's chunk partials, gathered by copies into one [chunks, C] (the same chunks
    // as one dispatch when blocks are whole chunks of rows).
    chunks = blocks.reduce((n, b) => n + per(b.count * dims.I), 0);
    pw = empty([chunks, dims.C]);
    pb = empty([chunks, dims.C]);
    let at = 0;
    for (const b of blocks) {
      const rows = b.count * dims.I, n = per(rows);
      const [xb, gb, mb, rb] = b.views([x, g], [mean, rstd]);
      const tw = empty([n, dims.C]), tb = empty([n, dims.C]);
      rt.dispatch(
        k,
        [xb!, gb!, mb!, rb!, tw, tb],
        { ...dims, rows, chunks: n },
        grid(n * dims.C, 64),
      );
      for (const [t, into] of [[tw, pw], [tb, pb]] as const) {
        rt.copy(t, {
          buffer: into.buffer,
          byteOffset: into.byteOffset + at * dims.C * 4,
          byteLength: t.byteLength,
        });
        t.dispose();
      }
      at += n;
      b.dispose();
    }
  }
  if (chunks === 1) return [pw.view([dims.C]), pb.view([dims.C])];
  return [sum(pw, 0), sum(pb, 0)];
}

/**
 * Layer normalisation over the last axis (`torch.nn.LayerNorm(C)`): each row is shifted by
 * its mean and scaled by `rstd = 1 / sqrt(var + eps)` (biased variance, computed in two
 * passes), then multiplied by `weight` and shifted by `bias`. The per-row mean and rstd are
 * kept (as tensors named `layerNorm.mean` / `layerNorm.rstd`) for the backward.
 *
 * @param x Input `[..., C]`.
 * @param weight Scale `[C]`, or null for none.
 * @param bias Shift `[C]`, or null for none.
 * @param options eps.
 * @returns The normalised tensor, shaped like x.
 * @example
 * ```ts
 * const y = layerNorm(tokens, ln.weight, ln.bias, { eps: 1e-6 }); // tokens [B, N, C]
 * ```
 */
export function layerNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  options: LayerNormOptions = {},
): Tensor {
  x.assertAlive();
  const layout = axisLayout(x.shape, -1);
  return layerNormAxis("layerNorm", x, weight, bias, options.eps ?? 1e-5, layout);
}

/**
 * Channel layer normalisation of an NCHW map (timm `LayerNorm2d`): at every (b, h, w) the C
 * channel values are normalised as by {@linkcode layerNorm}, then scaled and shifted per
 * channel. Same kernels as {@linkcode layerNorm}, addressing channels with stride H*W.
 *
 * @param x Input `[B, C, H, W]`.
 * @param weight Scale `[C]`, or null for none.
 * @param bias Shift `[C]`, or null for none.
 * @param options eps.
 * @returns The normalised map, `[B, C, H, W]`.
 * @example
 * ```ts
 * const y = layerNormChannels(map, norm.weight, norm.bias); // eps 1e-6
 * ```
 */
export function layerNormChannels(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  options: LayerNormChannelsOptions = {},
): Tensor {
  x.assertAlive();
  if (x.rank !== 4) {
    throw new RangeError(
      `layerNormChannels() needs a [B, C, H, W] input, got ${fmtShape(x.shape)}`,
    );
  }
  const layout = axisLayout(x.shape, 1);
  return layerNormAxis("layerNormChannels", x, weight, bias, options.eps ?? 1e-6, layout);
}

/**
 * L2 normalisation along an axis (`F.normalize(x, p=2, dim=axis, eps)`):
 * `x / max(||x||_2, eps)`. Below eps the denominator is the constant eps, and the gradient
 * is `g / eps` (PyTorch's `clamp_min` rule).
 *
 * @param x Input.
 * @param options eps and axis.
 * @returns The normalised tensor, shaped like x.
 * @example
 * ```ts
 * const features = normalize(pooled); // unit rows of [B, C]
 * ```
 */
export function normalize(x: Tensor, options: NormalizeOptions = {}): Tensor {
  const { eps = 1e-12, axis = -1 } = options;
  checkF32("normalize", [x]);
  checkEps("normalize", eps);
  const { outer, size: C, inner } = axisLayout(x.shape, axis);
  const rows = outer * inner;
  const rt = gpu();
  const dims = { rows, C, I: inner, eps };
  const fwd = kernels.get("l2f", () =>
    defineKernel({
      name: "l2_normalize_forward",
      source: l2ForwardSrc,
      bindings: ["read", "write", "write"],
      params: ["rows:u32", "C:u32", "I:u32", "eps:f32"],
    }));
  const y = empty(x.shape);
  const norm = empty([rows]);
  norm.name = "normalize.norm";
  if (rows > 0 && C > 0) {
    rt.assertLoopTrips("l2_normalize_forward", 2 * C);
    rt.dispatch(fwd, [x, y, norm], dims, grid(rows, 64));
  }
  record("normalize", [x], [y], ([g]) => {
    const bwd = kernels.get("l2b", () =>
      defineKernel({
        name: "l2_normalize_backward",
        source: l2BackwardSrc,
        bindings: ["read", "read", "read", "write"],
        params: ["rows:u32", "C:u32", "I:u32", "eps:f32"],
      }));
    const dx = empty(x.shape);
    if (rows > 0 && C > 0) {
      rt.assertLoopTrips("l2_normalize_backward", 2 * C);
      rt.dispatch(bwd, [y, g!, norm, dx], dims, grid(rows, 64));
    }
    return [dx];
  });
  if (!y.node) norm.dispose();
  return y;
}
