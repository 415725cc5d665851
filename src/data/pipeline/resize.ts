/**
 * Bicubic resampling of 8-bit RGB images on the CPU, bit-exact with PIL's
 * `Image.resize(size, Image.BICUBIC)`, which is what the reference's transforms run: its
 * images are PIL images (webdataset `"pilrgb"`), so torchvision's `RandomResizedCrop` (train)
 * and `Resize` (evaluation "squash") both end in Pillow's `ImagingResample`
 * (`src/libImaging/Resample.c`), never in `torch.nn.functional.interpolate`.
 *
 * The filter is the Keys cubic with a = -0.5, its support (2) scaled by the downscale factor
 * (antialiasing; no scaling when enlarging); output pixel i samples the input at
 * `(i + 0.5) * scale` with taps `floor-ish(center -/+ support + 0.5)` clipped to the image, and
 * its weights are normalised to sum to 1 (so edges renormalise instead of padding). This is
 * the same formula as PyTorch's `interpolate(mode="bicubic", antialias=True)` (written to
 * match PIL); PIL additionally rounds the weights to 22-bit fixed point and rounds to 8 bits
 * after the horizontal pass and after the vertical pass, and this module does exactly that.
 * (Plain a = -0.75 bicubic without antialiasing is not implemented: the reference never uses
 * tensor interpolation for images.)
 *
 * @module
 */

import type { RgbImage } from "../formats/image.ts";

/** A rectangle of whole pixels. */
export interface CropRect {
  /** First column. */
  left: number;
  /** First row. */
  top: number;
  /** Width in pixels (>= 1). */
  width: number;
  /** Height in pixels (>= 1). */
  height: number;
}

/** Per-output-pixel taps of a 1-D resampling. */
export interface ResampleWeights {
  /** Coefficients reserved per output pixel. */
  ksize: number;
  /** `[first input index, tap count]` per output pixel. */
  bounds: Int32Array;
  /** `outSize * ksize` normalised float64 weights (unused slots are 0). */
  weights: Float64Array;
}

/** Fixed-point precision of PIL's 8-bit resampling: 32 - 8 - 2. */
const PRECISION_BITS = 22;

/**
 * The bicubic convolution kernel with a = -0.5 (PIL's `bicubic_filter`).
 *
 * @param x Distance in (possibly scaled) input pixels.
 * @returns The kernel value.
 */
export function bicubicKernel(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/**
 * The taps and weights of resampling `inSize` pixels to `outSize` (PIL's
 * `precompute_coeffs` for the box `[0, inSize)`).
 *
 * @param inSize Input length in pixels.
 * @param outSize Output length in pixels.
 * @returns Bounds and normalised weights.
 *
 * @example
 * ```ts
 * const w = bicubicWeights(4, 2);
 * Array.from(w.bounds); // [0, 4, 0, 4]
 * ```
 */
export function bicubicWeights(inSize: number, outSize: number): ResampleWeights {
  if (!(inSize >= 1 && outSize >= 1 && Number.isInteger(inSize) && Number.isInteger(outSize))) {
    throw new RangeError(`Cannot resample ${inSize} pixels to ${outSize}: sizes must be >= 1`);
  }
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) truncates toward zero; the clamp to 0 makes that equal to PIL's.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    const k = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicKernel((x + xmin - center + 0.5) * ss);
      weights[k + x] = w;
      ww += w;
    }
    if (ww !== 0) { for (let x = 0; x < xmax; x++) weights[k + x]! /= ww; }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

/**
 * PIL's `normalize_coeffs_8bpc`: weights to 22-bit fixed point, rounded half away from 0.
 * They fit int32 and so do the sums PIL forms with them (|w| sums to < 1.3 * 2^22 for the
 * a = -0.5 cubic, times 255 plus the half stays < 2^31), so int32 arithmetic is exact.
 */
function fixedPoint(w: Float64Array): Int32Array {
  const out = new Int32Array(w.length);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    out[i] = v < 0 ? Math.trunc(-0.5 + v * one) : Math.trunc(0.5 + v * one);
  }
  return out;
}

/** Half of one output level in fixed point: PIL starts every sum there (rounding). */
const HALF = 1 << (PRECISION_BITS - 1);

/** Options of {@link resizeBicubic}. */
export interface ResizeOptions {
  /** Output width. */
  width: number;
  /** Output height. */
  height: number;
  /** Region of the input to resample (default: all of it), as `Image.crop` then resize. */
  crop?: CropRect | undefined;
}

/**
 * Resizes (a crop of) an RGB image with antialiased bicubic filtering, bit-exact with PIL's
 * `image.crop(box).resize((width, height), Image.BICUBIC)`.
 *
 * @param image The source image.
 * @param options Output size and optional crop.
 * @returns A new image (a copy when no resampling is needed, as PIL returns).
 *
 * @example
 * ```ts
 * const src = { width: 4, height: 1, data: new Uint8Array([0,0,0, 100,100,100, 200,200,200,
 *   255,255,255]) };
 * resizeBicubic(src, { width: 2, height: 1 }).data; // [60, 60, 60, 221, 221, 221]
 * ```
 */
export function resizeBicubic(image: RgbImage, options: ResizeOptions): RgbImage {
  const crop = options.crop ?? { left: 0, top: 0, width: image.width, height: image.height };
  const { width: outW, height: outH } = options;
  if (
    crop.left < 0 || crop.top < 0 || crop.width < 1 || crop.height < 1 ||
    crop.left + crop.width > image.width || crop.top + crop.height > image.height
  ) {
    throw new RangeError(
      `Cannot crop ${JSON.stringify(crop)} from a ${image.width}x${image.height} image`,
    );
  }
  if (!(outW >= 1 && outH >= 1 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new RangeError(`Cannot resize to ${outW}x${outH}: sizes must be positive integers`);
  }
  const srcStride = image.width * 3;
  const base = crop.top * srcStride + crop.left * 3;
  const vert = bicubicWeights(crop.height, outH);
  const needH = outW !== crop.width;
  const needV = outH !== crop.height;
  // Only the rows the vertical pass reads (all when it is skipped) are resampled along x.
  const firstRow = needV ? vert.bounds[0]! : 0;
  const lastRow = needV ? vert.bounds[2 * outH - 2]! + vert.bounds[2 * outH - 1]! : crop.height;
  const from = base + firstRow * srcStride;
  const rows = needH
    ? horizontalPass(image.data, {
      base: from,
      stride: srcStride,
      rows: lastRow - firstRow,
      weights: bicubicWeights(crop.width, outW),
    })
    : { data: image.data, base: from, stride: srcStride };
  const out = new Uint8Array(outW * outH * 3);
  if (needV) verticalPass(rows, vert, out);
  else {
    for (let y = 0; y < outH; y++) {
      const s = rows.base + y * rows.stride;
      out.set(rows.data.subarray(s, s + outW * 3), y * outW * 3);
    }
  }
  return { width: outW, height: outH, data: out };
}

/** Rows of 8-bit RGB pixels: row y starts at `base + y * stride`. */
interface RowSpan {
  data: Uint8Array;
  base: number;
  stride: number;
}

/**
 * Resamples each of `rows` RGB rows (from `base`, `stride` bytes apart) along x. Sums are
 * int32 (`Math.imul`, `| 0`), and the stores go through a `Uint8ClampedArray` view, which
 * clips `sum >> 22` to 0..255 as PIL's `clip8` does.
 */
function horizontalPass(
  src: Uint8Array,
  span: { base: number; stride: number; rows: number; weights: ResampleWeights },
): RowSpan {
  const { bounds, ksize } = span.weights;
  const kk = fixedPoint(span.weights.weights);
  const outW = bounds.length / 2;
  const stride = outW * 3;
  const data = new Uint8Array(span.rows * stride);
  const clamped = new Uint8ClampedArray(data.buffer);
  for (let y = 0; y < span.rows; y++) {
    const srow = span.base + y * span.stride;
    let o = y * stride;
    for (let xx = 0; xx < outW; xx++, o += 3) {
      const n = bounds[2 * xx + 1]!;
      let p = srow + bounds[2 * xx]! * 3;
      let k = xx * ksize;
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let x = 0; x < n; x++, p += 3, k++) {
        const w = kk[k]!;
        s0 = (s0 + Math.imul(src[p]!, w)) | 0;
        s1 = (s1 + Math.imul(src[p + 1]!, w)) | 0;
        s2 = (s2 + Math.imul(src[p + 2]!, w)) | 0;
      }
      clamped[o] = s0 >> PRECISION_BITS;
      clamped[o + 1] = s1 >> PRECISION_BITS;
      clamped[o + 2] = s2 >> PRECISION_BITS;
    }
  }
  return { data, base: 0, stride };
}

/**
 * Resamples along y: output row yy is the weighted sum of whole input rows, `rows.base`
 * being the first row any output reads (`vert.bounds[0]`). Four taps (every enlargement)
 * run unrolled; other counts loop over the taps per byte.
 */
function verticalPass(rows: RowSpan, vert: ResampleWeights, out: Uint8Array): void {
  const { bounds, ksize } = vert;
  const kk = fixedPoint(vert.weights);
  const outH = bounds.length / 2;
  const rowLen = out.length / outH;
  const src = rows.data;
  const clamped = new Uint8ClampedArray(out.buffer, out.byteOffset, out.length);
  const first = bounds[0]!;
  const taps = new Int32Array(ksize);
  for (let yy = 0; yy < outH; yy++) {
    const n = bounds[2 * yy + 1]!;
    const r = rows.base + (bounds[2 * yy]! - first) * rows.stride;
    const k = yy * ksize;
    const o = yy * rowLen;
    if (n === 4) {
      const w0 = kk[k]!, w1 = kk[k + 1]!, w2 = kk[k + 2]!, w3 = kk[k + 3]!;
      const st = rows.stride;
      for (let x = 0, p = r; x < rowLen; x++, p++) {
        clamped[o + x] = (HALF + Math.imul(src[p]!, w0) + Math.imul(src[p + st]!, w1) +
          Math.imul(src[p + 2 * st]!, w2) + Math.imul(src[p + 3 * st]!, w3)) >> PRECISION_BITS;
      }
      continue;
    }
    for (let t = 0; t < n; t++) taps[t] = r + t * rows.stride;
    for (let x = 0; x < rowLen; x++) {
      let s = HALF;
      for (let t = 0; t < n; t++) s = (s + Math.imul(src[taps[t]! + x]!, kk[k + t]!)) | 0;
      clamped[o + x] = s >> PRECISION_BITS;
    }
  }
}
