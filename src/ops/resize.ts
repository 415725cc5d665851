/**
 * Image and feature-map resizing with PyTorch's `F.interpolate` semantics (sizes given, no
 * scale factors, align_corners=False): bicubic, antialiased bicubic, area and nearest, with
 * their exact adjoints as gradients.
 *
 * Layout: channels-last `[N, H, W, C]`. An NCHW image `[B, 3, H, W]` is passed as the view
 * `[B * 3, H, W, 1]` and a position table `[1, g * g, C]` as `[1, g, g, C]`.
 *
 * Every mode is linear and separable: out = Ry · x · Rxᵀ with one matrix per axis. Each
 * axis's matrix is computed once per (mode, in, out) on the host in float64 as a gather
 * table (per output index: its source indices and weights, duplicates from border clamping
 * merged) and its transpose (per input index: the outputs it feeds), uploaded and cached.
 * The forward runs two 1-D passes (`wgsl/resize_gather.wgsl`, one thread per output element
 * looping over that element's taps); the backward runs the same kernel with the transposed
 * tables in reverse order, one thread per input element gathering from the outputs that read
 * it: deterministic, no atomics, and the exact adjoint of the forward. A pass whose matrix is
 * the identity (same size in and out) is skipped; the axis that shrinks more goes first.
 *
 * PyTorch sources matched (aten/src/ATen/native): `UpSample.h` (`area_pixel_compute_scale`,
 * `area_pixel_compute_source_index`, `cubic_convolution1/2`,
 * `get_cubic_upsample_coefficients`, `upsample_get_value_bounded`, `nearest_idx`,
 * `nearest_neighbor_compute_source_index`), `cpu/UpSampleKernel.cpp`
 * (`HelperInterpCubic::compute_indices_weights` with `guard_index_and_lambda`,
 * `HelperInterpCubic::aa_filter`, `HelperInterpBase::_compute_index_ranges_weights` and
 * `_compute_indices_min_size_weights_aa`) and `AdaptivePooling.h` (`start_index`,
 * `end_index`). Weights are computed in float64 where PyTorch uses float32; the results
 * differ by float32 rounding only (a few 1e-7 relative), except nearest, whose float32 index
 * arithmetic is reproduced exactly because it decides which pixel is taken.
 *
 * @module
 */

import { resize_gather as gatherSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid } from "../gpu/kernel.ts";
import { gpu, type GpuBinding } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { keep } from "../autograd/scope.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { clone, empty, tensor } from "./creation.ts";
import { elementWindow, maxWindowElements, slabChunks } from "./slab_chunks.ts";

/** The resampling modes. */
type ResizeMode = "bicubic" | "bicubicAA" | "area" | "nearest";

/** One output index's sources and weights along one axis. */
interface Taps {
  /** Source indices (distinct). */
  src: number[];
  /** Their weights. */
  w: number[];
}

const gatherKernel = defineKernel({
  name: "resize_gather",
  source: gatherSrc,
  bindings: ["read", "read", "read", "write"],
  params: [
    "n:u32",
    "D:u32",
    "L:u32",
    "inner:u32",
    "T:u32",
    "d0:u32",
    "lo:u32",
    "xo:u32",
    "yo:u32",
  ],
});

/** Keys' cubic convolution kernel with parameter a (PyTorch's cubic_convolution1/2). */
function cubic(x: number, a: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

/** Adds a weight to a source, merging a source that is already listed. */
function addTap(taps: Taps, src: number, w: number): void {
  const k = taps.src.indexOf(src);
  if (k >= 0) taps.w[k]! += w;
  else {
    taps.src.push(src);
    taps.w.push(w);
  }
}

/**
 * The 1-D weights of one axis: for each output index, its sources and weights.
 *
 * - bicubic: source coordinate (o + 0.5) * in / out - 0.5, four taps floor(c) - 1 .. + 2
 *   clamped to [0, in - 1], Keys weights with a = -0.75 at the fraction.
 * - bicubicAA: scale s = in / out, support 2 * max(s, 1), center s * (o + 0.5), taps
 *   trunc(center - support + 0.5) .. trunc(center + support + 0.5) - 1 within [0, in - 1]
 *   (at most 2 * ceil(support) + 1), weight keys_{a=-0.5}((j - center + 0.5) / max(s, 1)),
 *   normalised to sum 1 per output.
 * - area: window floor(o * in / out) .. ceil((o + 1) * in / out) - 1, equal weights.
 * - nearest: one tap, min(floor(o * s32), in - 1) in float32 with s32 = float32(in / out);
 *   out == in copies and out == 2 * in takes o >> 1, as PyTorch's nearest_idx does.
 *
 * @param mode Resampling mode.
 * @param inSize Input length.
 * @param outSize Output length.
 * @returns One entry per output index.
 */
function resizeTaps(mode: ResizeMode, inSize: number, outSize: number): Taps[] {
  const out: Taps[] = [];
  const s = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const taps: Taps = { src: [], w: [] };
    if (mode === "bicubic") {
      const real = s * (o + 0.5) - 0.5;
      const i0 = Math.min(Math.floor(real), inSize - 1);
      const t = Math.min(Math.max(real - i0, 0), 1);
      const coeff = [
        cubic(t + 1, -0.75),
        cubic(t, -0.75),
        cubic(1 - t, -0.75),
        cubic(2 - t, -0.75),
      ];
      for (let j = 0; j < 4; j++) {
        addTap(taps, Math.max(Math.min(i0 + j - 1, inSize - 1), 0), coeff[j]!);
      }
    } else if (mode === "bicubicAA") {
      const support = s >= 1 ? 2 * s : 2;
      const invscale = s >= 1 ? 1 / s : 1;
      const maxTaps = Math.ceil(support) * 2 + 1;
      const center = s * (o + 0.5);
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xsize = Math.min(
        Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - xmin, 0),
        maxTaps,
      );
      let total = 0;
      for (let j = 0; j < xsize; j++) {
        const w = cubic((j + xmin - center + 0.5) * invscale, -0.5);
        addTap(taps, xmin + j, w);
        total += w;
      }
      if (total !== 0) taps.w = taps.w.map((w) => w / total);
    } else if (mode === "area") {
      const start = Math.floor((o * inSize) / outSize);
      const end = Math.floor(((o + 1) * inSize + outSize - 1) / outSize);
      for (let j = start; j < end; j++) addTap(taps, j, 1 / (end - start));
    } else {
      addTap(taps, nearestIndex(o, inSize, outSize), 1);
    }
    // Taps of weight 0 (Keys kernels vanish at integer distances) are dropped, so that a
    // same-size axis becomes the identity and is skipped.
    const nonzero = taps.w.map((w) => w !== 0);
    out.push({
      src: taps.src.filter((_, k) => nonzero[k]),
      w: taps.w.filter((_, k) => nonzero[k]),
    });
  }
  return out;
}

/**
 * PyTorch's nearest source index (`nearest_idx` in UpSampleKernel.cpp) with its float32
 * arithmetic: the scale is float32(in / out) and the product o * scale is rounded to float32
 * before the floor.
 *
 * @param o Output index.
 * @param inSize Input length.
 * @param outSize Output length.
 * @returns The source index.
 */
function nearestIndex(o: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return o;
  if (outSize === 2 * inSize) return o >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(o * scale)), inSize - 1);
}

/** Per input index, the outputs that read it and with which weight. */
function transpose(taps: readonly Taps[], inSize: number): Taps[] {
  const t: Taps[] = Array.from({ length: inSize }, () => ({ src: [], w: [] }));
  taps.forEach((row, o) => {
    row.src.forEach((i, k) => {
      t[i]!.src.push(o);
      t[i]!.w.push(row.w[k]!);
    });
  });
  return t;
}

/** A gather table on the GPU. */
interface GpuTable {
  /** Destination length. */
  dst: number;
  /** Source length. */
  srcLen: number;
  /** Taps per row (the kernel's loop bound). */
  taps: number;
  /** [dst, taps + 1] i32: count, then sources. */
  index: Tensor;
  /** [dst, taps] f32. */
  weight: Tensor;
  /** Per destination, the smallest source it reads (srcLen when it reads none). */
  lo: Int32Array;
  /** Per destination, one past the largest source it reads (0 when it reads none). */
  hi: Int32Array;
}

/** One axis of one resize: forward and transposed tables, or null for the identity. */
interface AxisPlan {
  fwd: GpuTable;
  bwd: GpuTable;
}

const plans = new Map<string, AxisPlan | null>();

function upload(rows: readonly Taps[], srcLen: number): GpuTable {
  const taps = Math.max(1, ...rows.map((r) => r.src.length));
  const index = new Int32Array(rows.length * (taps + 1));
  const weight = new Float32Array(rows.length * taps);
  const lo = new Int32Array(rows.length).fill(srcLen);
  const hi = new Int32Array(rows.length);
  rows.forEach((r, d) => {
    index[d * (taps + 1)] = r.src.length;
    r.src.forEach((s, k) => {
      index[d * (taps + 1) + 1 + k] = s;
      weight[d * taps + k] = r.w[k]!;
      lo[d] = Math.min(lo[d]!, s);
      hi[d] = Math.max(hi[d]!, s + 1);
    });
  });
  return {
    dst: rows.length,
    srcLen,
    taps,
    index: keep(tensor(index, [rows.length, taps + 1], "i32")),
    weight: keep(tensor(weight, [rows.length, taps])),
    lo,
    hi,
  };
}

/** The cached tables of one axis, or null when the axis is left unchanged. */
function axisPlan(mode: ResizeMode, inSize: number, outSize: number): AxisPlan | null {
  const key = `${mode}:${inSize}:${outSize}`;
  let plan = plans.get(key);
  if (plan !== undefined) return plan;
  const rows = resizeTaps(mode, inSize, outSize);
  const identity = inSize === outSize &&
    rows.every((r, o) => r.src.length === 1 && r.src[0] === o && r.w[0] === 1);
  plan = identity
    ? null
    : { fwd: upload(rows, inSize), bwd: upload(transpose(rows, inSize), outSize) };
  plans.set(key, plan);
  return plan;
}

/** Runs one 1-D pass along axis 1 (H) or 2 (W) of an [N, H, W, C] tensor. */
function pass(x: Tensor, axis: 1 | 2, table: GpuTable): Tensor {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const outer = axis === 1 ? n : n * h;
  const inner = axis === 1 ? w * c : c;
  const shape = axis === 1 ? [n, table.dst, w, c] : [n, h, table.dst, c];
  const y = empty(shape, "f32", "a resize pass's output");
  if (y.size === 0) return y;
  const rt = gpu();
  rt.assertLoopTrips("resize_gather", table.taps);
  const run = (
    slabs: number,
    d0: number,
    rows: number,
    lo: number,
    xw: { binding: GpuBinding; offset: number },
    yw: { binding: GpuBinding; offset: number },
  ) => {
    const threads = slabs * rows * inner;
    rt.dispatch(gatherKernel, [xw.binding, table.index, table.weight, yw.binding], {
      n: threads,
      D: rows,
      L: table.srcLen,
      inner,
      T: table.taps,
      d0,
      lo,
      xo: xw.offset,
      yo: yw.offset,
    }, grid(threads, 64));
  };
  const most = maxWindowElements();
  if (table.srcLen * inner <= most && table.dst * inner <= most) {
    for (
      const ch of slabChunks("resize_gather", outer, [
        { tensor: x, slab: table.srcLen * inner },
        { tensor: y, slab: table.dst * inner },
      ])
    ) {
      run(ch.count, 0, table.dst, 0, {
        binding: ch.bindings[0]!,
        offset: ch.offsets[0]!,
      }, { binding: ch.bindings[1]!, offset: ch.offsets[1]! });
    }
    return y;
  }
  // One slab exceeds a binding (a 270 x 270 x 1152 position table is 336 MB): split each
  // slab into runs of destination rows whose source rows and output rows both fit.
  for (let o = 0; o < outer; o++) {
    for (let d0 = 0; d0 < table.dst;) {
      let lo = table.lo[d0]!, hi = table.hi[d0]!, d1 = d0 + 1;
      if ((hi - Math.min(lo, hi)) * inner > most || inner > most) {
        throw new RangeError(
          `Cannot resize ${x.describe()}: destination row ${d0} reads more data than one ` +
            "storage binding holds",
        );
      }
      while (d1 < table.dst) {
        const nlo = Math.min(lo, table.lo[d1]!), nhi = Math.max(hi, table.hi[d1]!);
        if ((d1 + 1 - d0) * inner > most || (nhi - Math.min(nlo, nhi)) * inner > most) break;
        lo = nlo;
        hi = nhi;
        d1++;
      }
      // A run that reads nothing (transposed tables of downscales) still binds one row.
      const base = Math.min(lo, hi, table.srcLen - 1);
      const xw = elementWindow(
        x,
        (o * table.srcLen + base) * inner,
        Math.max(hi - base, 1) * inner,
      );
      const yw = elementWindow(y, (o * table.dst + d0) * inner, (d1 - d0) * inner);
      run(1, d0, d1 - d0, base, xw, yw);
      d0 = d1;
    }
  }
  return y;
}

function resize(op: string, mode: ResizeMode, x: Tensor, size: readonly [number, number]): Tensor {
  x.assertAlive();
  if (x.dtype !== "f32") throw new TypeError(`${op}() takes an f32 tensor, got ${x.describe()}`);
  if (x.rank !== 4) {
    throw new RangeError(
      `${op}() takes a channels-last [N, H, W, C] tensor, got ${fmtShape(x.shape)}`,
    );
  }
  const [oh, ow] = size;
  if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh < 1 || ow < 1) {
    throw new RangeError(`${op}() needs a positive integer size, got [${size}]`);
  }
  const [, h, w] = x.shape as [number, number, number, number];
  if (h < 1 || w < 1) throw new RangeError(`Cannot resize the empty map ${fmtShape(x.shape)}`);
  const py = axisPlan(mode, h, oh);
  const px = axisPlan(mode, w, ow);
  if (!py && !px) return clone(x);
  // Pass order: the one whose first pass leaves less work for the second.
  const ty = py?.fwd.taps ?? 0, tx = px?.fwd.taps ?? 0;
  const wFirst = h * ow * tx + oh * ow * ty <= oh * w * ty + oh * ow * tx;
  const steps: { axis: 1 | 2; plan: AxisPlan }[] = [];
  const addStep = (axis: 1 | 2, plan: AxisPlan | null) => {
    if (plan) steps.push({ axis, plan });
  };
  if (wFirst) {
    addStep(2, px);
    addStep(1, py);
  } else {
    addStep(1, py);
    addStep(2, px);
  }
  const run = (input: Tensor, order: typeof steps, dir: "fwd" | "bwd"): Tensor => {
    let cur = input;
    for (const { axis, plan } of order) {
      const next = pass(cur, axis, plan[dir]);
      if (cur !== input) cur.dispose();
      cur = next;
    }
    return cur;
  };
  const y = run(x, steps, "fwd");
  record(op, [x], [y], ([g]) => [run(g!, [...steps].reverse(), "bwd")]);
  return y;
}

/**
 * Bicubic resize, `F.interpolate(x, size, mode="bicubic", align_corners=False)` without
 * antialiasing: Keys kernel a = -0.75, source coordinate (dst + 0.5) * in / out - 0.5, taps
 * clamped at the borders. Downscaling does not low-pass (as in PyTorch).
 *
 * @param x Channels-last map [N, H, W, C] (an NCHW image as [B * 3, H, W, 1]).
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C]; the gradient is the exact adjoint.
 * @example
 * ```ts
 * const small = resizeBicubic(image.view([b * 3, 1512, 1512, 1]), [378, 378]);
 * ```
 */
export function resizeBicubic(x: Tensor, size: readonly [number, number]): Tensor {
  return resize("resizeBicubic", "bicubic", x, size);
}

/**
 * Antialiased bicubic resize, `F.interpolate(x, size, mode="bicubic", antialias=True)`:
 * PyTorch's separable filter with a = -0.5 and support 2 * max(in / out, 1), weights
 * renormalised per output pixel (so upsampling also uses a = -0.5 and renormalises at the
 * borders). timm's `resample_abs_pos_embed` resizes position tables with it.
 *
 * @param x Channels-last map [N, H, W, C] (a position table [1, g * g, C] as [1, g, g, C]).
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C]; the gradient is the exact adjoint.
 * @example
 * ```ts
 * const pos = resizeBicubicAA(table.view([1, 27, 27, c]), [54, 54]);
 * ```
 */
export function resizeBicubicAA(x: Tensor, size: readonly [number, number]): Tensor {
  return resize("resizeBicubicAA", "bicubicAA", x, size);
}

/**
 * Area resize, `F.interpolate(x, size, mode="area")` = `adaptive_avg_pool2d`: output (i, j)
 * averages rows floor(i * H / outH) .. ceil((i + 1) * H / outH) - 1 and the same for
 * columns (windows overlap when the ratio is not an integer).
 *
 * @param x Channels-last map [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C]; the gradient is the exact adjoint.
 * @example
 * ```ts
 * const cover = resizeArea(boxMap.view([b, 1512, 1512, 1]), [54, 54]);
 * ```
 */
export function resizeArea(x: Tensor, size: readonly [number, number]): Tensor {
  return resize("resizeArea", "area", x, size);
}

/**
 * Nearest resize, `F.interpolate(x, size, mode="nearest")`: source index
 * min(floor(dst * float32(in / out)), in - 1) in float32 arithmetic, as PyTorch computes it
 * when sizes (not scale factors) are given.
 *
 * @param x Channels-last map [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C]; the gradient sums over the copies of each input.
 * @example
 * ```ts
 * const probs = resizeNearest(p.view([b, 27, 27, 1]), [54, 54]);
 * ```
 */
export function resizeNearest(x: Tensor, size: readonly [number, number]): Tensor {
  return resize("resizeNearest", "nearest", x, size);
}
