/**
 * Depthwise 2-D convolution on channels-last maps, the token mixer of PS3's ConvNeXt blocks
 * (timm ConvNeXtBlock `conv_dw`: 7 x 7, groups = C, stride 1, padding 3, bias).
 *
 * Forward and input gradient: one thread per output / input element over the K x K taps.
 * Weight and bias gradients reduce over B * HO * WO positions in two passes: per (sample,
 * block of R positions, channel) partial sums with the taps unrolled, so one invocation
 * loops R times only (llvmpipe stops loops after 65535 trips), then a sum over the partial
 * rows with {@linkcode sum}. Deterministic, no atomics. Large batches are processed in
 * chunks of samples that fit one storage binding.
 *
 * f16 activations (issue 14): x, y and their gradients may be stored as f16 (loads widen to
 * f32, every sum is f32, the store rounds once); the weight, the bias and their gradients
 * stay f32 (the weight gradient's partial sums are f32).
 *
 * @module
 */

import {
  conv_depthwise_backward_input as backwardInputSrc,
  conv_depthwise_backward_params as backwardParamsSrc,
  conv_depthwise_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { sum } from "./reduce.ts";
import { slabChunks } from "./slab_chunks.ts";
import { enableF16, type FloatDType, floatDType } from "./storage_type.ts";

/** Output positions per partial sum of the weight gradient (the params kernel's loop). */
const POSITIONS_PER_PART = 256;

const kernels = new KernelCache();

const DIMS = ["n:u32", "H:u32", "W:u32", "HO:u32", "WO:u32", "C:u32"];

/** The `{{T}}` and `{{ENABLE}}` defines of an activation storage type. */
function storage(dt: FloatDType): { T: FloatDType; ENABLE: string } {
  return { T: dt, ENABLE: enableF16(dt) };
}

function forwardKernel(k: number, p: number, hasBias: boolean, dt: FloatDType): Kernel {
  return kernels.get(`f:${k}:${p}:${hasBias}:${dt}`, () =>
    defineKernel({
      name: "conv_depthwise_forward",
      source: forwardSrc,
      bindings: ["read", "read", "read", "write"],
      params: [...DIMS, "xo:u32", "yo:u32"],
      defines: { K: k, P: p, BIAS: hasBias ? "bias[c]" : "0.0", ...storage(dt) },
    }));
}

function backwardInputKernel(k: number, p: number, dt: FloatDType): Kernel {
  return kernels.get(`bi:${k}:${p}:${dt}`, () =>
    defineKernel({
      name: "conv_depthwise_backward_input",
      source: backwardInputSrc,
      bindings: ["read", "read", "write"],
      params: [...DIMS, "go:u32", "xo:u32"],
      defines: { K: k, P: p, ...storage(dt) },
    }));
}

function backwardParamsKernel(k: number, p: number, dt: FloatDType): Kernel {
  return kernels.get(`bp:${k}:${p}:${dt}`, () => {
    const decl: string[] = [], acc: string[] = [], store: string[] = [];
    for (let ky = 0; ky < k; ky++) {
      for (let kx = 0; kx < k; kx++) {
        const i = ky * k + kx;
        const dy = ky - p, dx = kx - p;
        const off = (v: string, d: number) => d === 0 ? v : d > 0 ? `${v} + ${d}` : `${v} - ${-d}`;
        decl.push(`  var a${i} = 0.0;`);
        acc.push(`    a${i} += gv * xat(b, ${off("oy", dy)}, ${off("ox", dx)}, c);`);
        store.push(`  pw[base + ${i}u] = a${i};`);
      }
    }
    return defineKernel({
      name: "conv_depthwise_backward_params",
      source: backwardParamsSrc,
      bindings: ["read", "read", "write", "write"],
      params: [...DIMS, "S:u32", "R:u32", "xo:u32", "go:u32", "wo:u32", "bo:u32"],
      defines: {
        K: k,
        P: p,
        TAPS_DECL: decl.join("\n"),
        TAPS_ACC: acc.join("\n"),
        TAPS_STORE: store.join("\n"),
        ...storage(dt),
      },
    });
  });
}

/** Options of {@linkcode depthwiseConv2d}. */
export interface DepthwiseConvOptions {
  /** Per-channel bias [C]. */
  bias?: Tensor | undefined;
  /** Zero padding on every side (default 0); k - 1 - 2 * padding must not exceed H or W. */
  padding?: number | undefined;
}

/**
 * Depthwise convolution (groups = C, stride 1, zero padding) of a channels-last map with a
 * weight in PyTorch's layout: `y[b, i, j, c] = bias[c] + sum_{ky, kx} weight[c, 0, ky, kx] *
 * x[b, i + ky - padding, j + kx - padding, c]`. Gradients reach x, weight and bias.
 * The output (and x's gradient) is stored in x's dtype (f32, or f16 activations).
 *
 * @param x Channels-last map [B, H, W, C], f32 or f16.
 * @param weight Kernel [C, 1, k, k], f32.
 * @param options Bias and padding.
 * @returns [B, H + 2 * padding - k + 1, W + 2 * padding - k + 1, C].
 * @example
 * ```ts
 * const y = depthwiseConv2d(x, convDw.weight, { bias: convDw.bias, padding: 3 }); // 7 x 7
 * ```
 */
export function depthwiseConv2d(
  x: Tensor,
  weight: Tensor,
  options: DepthwiseConvOptions = {},
): Tensor {
  const { bias, padding = 0 } = options;
  for (const t of [x, weight, ...(bias ? [bias] : [])]) t.assertAlive();
  const dt = floatDType(x.dtype, "depthwiseConv2d() x");
  for (const t of [weight, ...(bias ? [bias] : [])]) {
    if (t.dtype !== "f32") {
      throw new TypeError(`depthwiseConv2d() takes an f32 weight and bias, got ${t.describe()}`);
    }
  }
  if (x.rank !== 4) {
    throw new RangeError(
      `depthwiseConv2d() takes a channels-last [B, H, W, C] map, got ${fmtShape(x.shape)}`,
    );
  }
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const k = weight.shape[2] ?? 0;
  if (
    weight.rank !== 4 || weight.shape[0] !== c || weight.shape[1] !== 1 || weight.shape[3] !== k ||
    k < 1
  ) {
    throw new RangeError(
      `depthwiseConv2d() weight must be [${c}, 1, k, k] for input ${fmtShape(x.shape)}, got ` +
        fmtShape(weight.shape),
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== c)) {
    throw new RangeError(`depthwiseConv2d() bias must be [${c}], got ${fmtShape(bias.shape)}`);
  }
  const ho = h + 2 * padding - k + 1, wo = w + 2 * padding - k + 1;
  if (!Number.isInteger(padding) || padding < 0 || ho < 1 || wo < 1) {
    throw new RangeError(
      `depthwiseConv2d() cannot apply a ${k} x ${k} kernel with padding ${padding} to ` +
        fmtShape(x.shape),
    );
  }
  const rt = gpu();
  const dims = { H: h, W: w, HO: ho, WO: wo, C: c };
  const samples = b * c === 0 ? 0 : b;
  const y = empty([b, ho, wo, c], dt);
  // The forward and input-gradient kernels loop over the k x k taps.
  rt.assertLoopTrips("conv_depthwise_forward", k * k + k);
  for (
    const ch of slabChunks("conv_depthwise_forward", samples, [
      { tensor: x, slab: h * w * c },
      { tensor: weight, slab: 0 },
      { tensor: bias ?? weight, slab: 0 },
      { tensor: y, slab: ho * wo * c },
    ])
  ) {
    const n = ch.count * ho * wo * c;
    rt.dispatch(forwardKernel(k, padding, !!bias, dt), ch.bindings, {
      n,
      ...dims,
      xo: ch.offsets[0]!,
      yo: ch.offsets[3]!,
    }, grid(n, 64));
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  record("depthwiseConv2d", inputs, [y], ([g]) => {
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (g!.dtype !== dt) {
      throw new TypeError(
        `depthwiseConv2d() backward takes a ${dt} gradient, got ${g!.describe()}`,
      );
    }
    if (x.requiresGrad) {
      dx = empty(x.shape, dt);
      for (
        const ch of slabChunks("conv_depthwise_backward_input", samples, [
          { tensor: g!, slab: ho * wo * c },
          { tensor: weight, slab: 0 },
          { tensor: dx, slab: h * w * c },
        ])
      ) {
        const n = ch.count * h * w * c;
        rt.dispatch(backwardInputKernel(k, padding, dt), ch.bindings, {
          n,
          ...dims,
          go: ch.offsets[0]!,
          xo: ch.offsets[2]!,
        }, grid(n, 64));
      }
    }
    if (weight.requiresGrad || bias?.requiresGrad) {
      const parts = Math.ceil((ho * wo) / POSITIONS_PER_PART);
      const pw = empty([b * parts, c, k * k]);
      const pb = empty([b * parts, c]);
      rt.assertLoopTrips("conv_depthwise_backward_params", POSITIONS_PER_PART);
      for (
        const ch of slabChunks("conv_depthwise_backward_params", samples, [
          { tensor: x, slab: h * w * c },
          { tensor: g!, slab: ho * wo * c },
          { tensor: pw, slab: parts * c * k * k },
          { tensor: pb, slab: parts * c },
        ])
      ) {
        const n = ch.count * parts * c;
        rt.dispatch(backwardParamsKernel(k, padding, dt), ch.bindings, {
          n,
          ...dims,
          S: parts,
          R: POSITIONS_PER_PART,
          xo: ch.offsets[0]!,
          go: ch.offsets[1]!,
          wo: ch.offsets[2]!,
          bo: ch.offsets[3]!,
        }, grid(n, 64));
      }
      if (weight.requiresGrad) dw = sum(pw, [0]).view(weight.shape);
      if (bias?.requiresGrad) db = sum(pb, [0]);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
  return y;
}
