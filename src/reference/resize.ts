/**
 * Float64 references of `src/ops/resize.ts`, written as direct transcriptions of PyTorch's
 * loops (not through the op's gather tables), on channels-last [N, H, W, C] arrays.
 *
 * - bicubic: `upsample_bicubic2d` (UpSample.h `area_pixel_compute_source_index` with
 *   cubic=true, `get_cubic_upsample_coefficients` with A = -0.75,
 *   `upsample_get_value_bounded` clamping every one of the 4 x 4 taps).
 * - bicubicAA: `_upsample_bicubic2d_aa` (UpSampleKernel.cpp
 *   `_compute_indices_min_size_weights_aa` per axis with `HelperInterpCubic::aa_filter`,
 *   a = -0.5), applied as the 2-D sum of products of the two axes' weights.
 * - area: `adaptive_avg_pool2d` (AdaptivePooling.h `start_index` / `end_index`).
 * - nearest: `upsample_nearest2d` (`nearest_idx`, float32 index arithmetic).
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/** Keys' cubic convolution weight at distance x with parameter a. */
function keys(x: number, a: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

function dims(x: Arr): [number, number, number, number] {
  if (x.shape.length !== 4) throw new RangeError(`Expected [N, H, W, C], got [${x.shape}]`);
  return x.shape as [number, number, number, number];
}

/**
 * Runs `value(n, oy, ox, c)` over every output element.
 *
 * @param x Input, for N and C.
 * @param size Output [outH, outW].
 * @param value Element function.
 * @returns The output array.
 */
function build(
  x: Arr,
  size: readonly [number, number],
  value: (n: number, oy: number, ox: number, c: number) => number,
): Arr {
  const [n, , , c] = dims(x);
  const [oh, ow] = size;
  const y = arr([n, oh, ow, c]);
  let i = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++) y.data[i++] = value(b, oy, ox, ch);
      }
    }
  }
  return y;
}

/**
 * `F.interpolate(mode="bicubic", align_corners=False)`.
 *
 * @param x [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 */
export function resizeBicubicRef(x: Arr, size: readonly [number, number]): Arr {
  const [, h, w, c] = dims(x);
  const [oh, ow] = size;
  const at = (b: number, yy: number, xx: number, ch: number) =>
    x.data[
      ((b * h + Math.max(Math.min(yy, h - 1), 0)) * w + Math.max(Math.min(xx, w - 1), 0)) * c + ch
    ]!;
  const coeffs = (
    t: number,
  ) => [keys(t + 1, -0.75), keys(t, -0.75), keys(1 - t, -0.75), keys(2 - t, -0.75)];
  return build(x, size, (b, oy, ox, ch) => {
    const ry = (h / oh) * (oy + 0.5) - 0.5;
    const rx = (w / ow) * (ox + 0.5) - 0.5;
    const iy = Math.floor(ry), ix = Math.floor(rx);
    const cy = coeffs(ry - iy), cx = coeffs(rx - ix);
    let s = 0;
    for (let j = 0; j < 4; j++) {
      for (let k = 0; k < 4; k++) s += cy[j]! * cx[k]! * at(b, iy - 1 + j, ix - 1 + k, ch);
    }
    return s;
  });
}

/** PyTorch's antialiased weights of one axis: per output, first source and weights. */
function aaWeights(inSize: number, outSize: number): { xmin: number; w: number[] }[] {
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invscale = scale >= 1 ? 1 / scale : 1;
  const maxInterp = Math.ceil(support) * 2 + 1;
  const out: { xmin: number; w: number[] }[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    let xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    xsize = Math.min(Math.max(xsize, 0), maxInterp);
    const w: number[] = [];
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const v = keys((j + xmin - center + 0.5) * invscale, -0.5);
      w.push(v);
      total += v;
    }
    out.push({ xmin, w: total !== 0 ? w.map((v) => v / total) : w });
  }
  return out;
}

/**
 * `F.interpolate(mode="bicubic", antialias=True, align_corners=False)`.
 *
 * @param x [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 */
export function resizeBicubicAARef(x: Arr, size: readonly [number, number]): Arr {
  const [, h, w, c] = dims(x);
  const wy = aaWeights(h, size[0]), wx = aaWeights(w, size[1]);
  return build(x, size, (b, oy, ox, ch) => {
    const ay = wy[oy]!, ax = wx[ox]!;
    let s = 0;
    ay.w.forEach((vy, j) => {
      ax.w.forEach((vx, k) => {
        s += vy * vx * x.data[((b * h + ay.xmin + j) * w + ax.xmin + k) * c + ch]!;
      });
    });
    return s;
  });
}

/**
 * `F.interpolate(mode="area")` = `adaptive_avg_pool2d`.
 *
 * @param x [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 */
export function resizeAreaRef(x: Arr, size: readonly [number, number]): Arr {
  const [, h, w, c] = dims(x);
  const [oh, ow] = size;
  return build(x, size, (b, oy, ox, ch) => {
    const [y0, y1] = adaptiveWindow(oy, oh, h);
    const [x0, x1] = adaptiveWindow(ox, ow, w);
    let s = 0;
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) s += x.data[((b * h + yy) * w + xx) * c + ch]!;
    }
    return s / ((y1 - y0) * (x1 - x0));
  });
}

/**
 * PyTorch's adaptive pooling window (AdaptivePooling.h): start_index(a, b, c) =
 * (a / b) * c + ((a % b) * c) / b and end_index(a, b, c) = 1 + ((a + 1) * c - 1) / b in
 * integer arithmetic, i.e. [floor(a * c / b), ceil((a + 1) * c / b)).
 *
 * @param o Output index.
 * @param outSize Output length.
 * @param inSize Input length.
 * @returns [start, end) of the input window.
 */
export function adaptiveWindow(o: number, outSize: number, inSize: number): [number, number] {
  const start = Math.floor(o / outSize) * inSize + Math.floor(((o % outSize) * inSize) / outSize);
  const end = 1 + Math.floor(((o + 1) * inSize - 1) / outSize);
  return [start, end];
}

/**
 * `F.interpolate(mode="nearest")` with sizes given.
 *
 * @param x [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 */
export function resizeNearestRef(x: Arr, size: readonly [number, number]): Arr {
  const [, h, w, c] = dims(x);
  const [oh, ow] = size;
  const idx = (o: number, inSize: number, outSize: number) => {
    if (outSize === inSize) return o;
    if (outSize === 2 * inSize) return o >> 1;
    const scale = Math.fround(inSize / outSize);
    return Math.min(Math.floor(Math.fround(o * scale)), inSize - 1);
  };
  return build(x, size, (b, oy, ox, ch) => {
    const yy = idx(oy, h, oh), xx = idx(ox, w, ow);
    return x.data[((b * h + yy) * w + xx) * c + ch]!;
  });
}
