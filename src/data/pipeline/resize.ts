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

/** PIL's `normalize_coeffs_8bpc`: weights to 22-bit fixed point, rounded half away from 0. */
function fixedPoint(w: Float64Array): Float64Array {
  const out = new Float64Array(w.length);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    out[i] = v < 0 ? Math.trunc(-0.5 + v * one) : Math.trunc(0.5 + v * one);
  }
  return out;
}

/** PIL's `clip8`: fixed-point sum (already offset by a half) to 0..255. */
function clip8(sum: number): number {
  const v = Math.floor(sum / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

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
  const src = image.data;
  const base = crop.top * srcStride + crop.left * 3;

  const vert = bicubicWeights(crop.height, outH);
  const needH = outW !== crop.width;
  const needV = outH !== crop.height;

  // Horizontal pass over the rows the vertical pass will read (all rows when it is skipped).
  let rows: Uint8Array;
  let rowsStride: number;
  let rowsBase: number;
  let firstRow = 0;
  if (needH) {
    firstRow = needV ? vert.bounds[0]! : 0;
    const lastRow = needV ? vert.bounds[2 * outH - 2]! + vert.bounds[2 * outH - 1]! : crop.height;
    const horiz = bicubicWeights(crop.width, outW);
    const kk = fixedPoint(horiz.weights);
    const nRows = lastRow - firstRow;
    rowsStride = outW * 3;
    rowsBase = 0;
    rows = new Uint8Array(nRows * rowsStride);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < nRows; y++) {
      const srow = base + (firstRow + y) * srcStride;
      const orow = y * rowsStride;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = horiz.bounds[2 * xx]!;
        const n = horiz.bounds[2 * xx + 1]!;
        const k = xx * horiz.ksize;
        let s0 = half, s1 = half, s2 = half;
        let p = srow + xmin * 3;
        for (let x = 0; x < n; x++, p += 3) {
          const w = kk[k + x]!;
          s0 += src[p]! * w;
          s1 += src[p + 1]! * w;
          s2 += src[p + 2]! * w;
        }
        const o = orow + xx * 3;
        rows[o] = clip8(s0);
        rows[o + 1] = clip8(s1);
        rows[o + 2] = clip8(s2);
      }
    }
  } else {
    rows = src;
    rowsStride = srcStride;
    rowsBase = base;
  }

  const out = new Uint8Array(outW * outH * 3);
  if (!needV) {
    for (let y = 0; y < outH; y++) {
      const s = rowsBase + y * rowsStride;
      out.set(rows.subarray(s, s + outW * 3), y * outW * 3);
    }
    return { width: outW, height: outH, data: out };
  }
  // Vertical pass: every output row is a weighted sum of whole input rows (exact integer sums
  // in float64, so the order of accumulation cannot change the result).
  const kk = fixedPoint(vert.weights);
  const rowLen = outW * 3;
  const acc = new Float64Array(rowLen);
  for (let yy = 0; yy < outH; yy++) {
    acc.fill(1 << (PRECISION_BITS - 1));
    const ymin = vert.bounds[2 * yy]! - firstRow;
    const n = vert.bounds[2 * yy + 1]!;
    const k = yy * vert.ksize;
    for (let y = 0; y < n; y++) {
      const w = kk[k + y]!;
      const r = rowsBase + (ymin + y) * rowsStride;
      for (let x = 0; x < rowLen; x++) acc[x]! += rows[r + x]! * w;
    }
    const o = yy * rowLen;
    for (let x = 0; x < rowLen; x++) out[o + x] = clip8(acc[x]!);
  }
  return { width: outW, height: outH, data: out };
}
