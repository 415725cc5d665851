/**
 * Pictures of PS3's patch selection over the photo. The heat map follows the PS3 README's
 * `save_visualization` / `create_heatmap_overlay`: the selection probability map resized to
 * the picture (torchvision `Resize` on a tensor: bilinear, antialiased), smoothed with
 * scipy's `gaussian_filter` (reflect borders, truncate 4), min-max normalised, coloured with
 * matplotlib's `jet` and blended as `cv2.addWeighted(image, 0.6, heat, 0.4, 0)`: the photo,
 * darkened to 60 %, under a 40 % colour layer. (The README also min-max normalises before
 * resizing; resizing and smoothing are normalised linear filters, so that step cancels out.)
 * The selection picture darkens the patches that were not encoded and outlines the regions
 * that were.
 *
 * Everything is drawn at a display size: the original size, clamped to a range of long sides
 * (a 4K photo is drawn at 1024 px, a 20-pixel one at 256 px); the README's smoothing of
 * 10 px on its 2250-px photo becomes long side / 225.
 *
 * @module
 */

import type { RgbImage } from "../data/formats/image.ts";
import { resizeBicubic } from "../data/pipeline/resize.ts";
import type { Size } from "../model/scales.ts";

/** matplotlib's `_jet_data`: (x, value) knots per channel. */
const JET_KNOTS: readonly (readonly [number, number][])[] = [
  [[0, 0], [0.35, 0], [0.66, 1], [0.89, 1], [1, 0.5]],
  [[0, 0], [0.125, 0], [0.375, 1], [0.64, 1], [0.91, 0], [1, 0]],
  [[0, 0.5], [0.11, 1], [0.34, 1], [0.65, 0], [1, 0]],
];

/** matplotlib's 256-entry jet table as bytes (`(cmap(x) * 255).astype(uint8)`). */
const JET_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    JET_KNOTS.forEach((knots, c) => {
      let k = 1;
      while (k < knots.length - 1 && knots[k]![0] < x) k++;
      const [x0, y0] = knots[k - 1]!, [x1, y1] = knots[k]!;
      const v = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
      lut[3 * i + c] = Math.trunc(Math.min(1, Math.max(0, v)) * 255);
    });
  }
  return lut;
})();

/**
 * The jet colour of a value in [0, 1] (matplotlib: table index `min(floor(v * 256), 255)`).
 *
 * @param v The value (clamped to [0, 1]).
 * @returns [r, g, b] bytes.
 *
 * @example
 * ```ts
 * jetColor(0); // [0, 0, 127]
 * jetColor(1); // [127, 0, 0]
 * ```
 */
export function jetColor(v: number): [number, number, number] {
  const i = Math.min(255, Math.max(0, Math.floor(v * 256)));
  return [JET_LUT[3 * i]!, JET_LUT[3 * i + 1]!, JET_LUT[3 * i + 2]!];
}

/** Options of {@link displaySize}. */
export interface DisplayOptions {
  /** Exact long side of the pictures; default: the image's, clamped to [256, 1024]. */
  longSide?: number | undefined;
}

/**
 * The size the pictures are drawn at.
 *
 * @param image Width and height of the photo.
 * @param options An exact long side, if wanted.
 * @returns [h, w].
 */
export function displaySize(
  image: { width: number; height: number },
  options: DisplayOptions = {},
): Size {
  const long = Math.max(image.width, image.height);
  const target = options.longSide ?? Math.min(1024, Math.max(256, long));
  if (!(Number.isInteger(target) && target >= 1)) {
    throw new RangeError(`Cannot draw pictures with a long side of ${target} pixels`);
  }
  const s = target / long;
  return [
    Math.max(1, Math.round(image.height * s)),
    Math.max(1, Math.round(image.width * s)),
  ];
}

/**
 * The photo at a display size (Pillow's bicubic), or the photo itself at its own size.
 *
 * @param image The photo.
 * @param size [h, w].
 * @returns The picture background.
 */
export function displayImage(image: RgbImage, size: Size): RgbImage {
  const [h, w] = size;
  if (h === image.height && w === image.width) return image;
  return resizeBicubic(image, { width: w, height: h });
}

/**
 * Taps of a 1-D antialiased linear resampling (PyTorch's `interpolate(mode="bilinear",
 * antialias=True)`, the same formula as Pillow's BILINEAR): a triangle filter widened by the
 * downscale factor, normalised per output pixel.
 */
function linearTaps(inSize: number, outSize: number): { first: number[]; w: number[][] } {
  const scale = inSize / outSize;
  const fs = Math.max(scale, 1);
  const first: number[] = [], w: number[][] = [];
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - fs + 0.5), 0);
    const hi = Math.min(Math.trunc(center + fs + 0.5), inSize);
    const ws: number[] = [];
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j - center + 0.5) / fs));
      ws.push(v);
      sum += v;
    }
    first.push(lo);
    w.push(sum > 0 ? ws.map((v) => v / sum) : ws);
  }
  return { first, w };
}

/**
 * Resizes a single-channel float map with antialiased bilinear filtering.
 *
 * @param map Row-major values.
 * @param from [h, w] of the map.
 * @param to [h, w] wanted.
 * @returns The resized map.
 */
export function resizeMap(map: ArrayLike<number>, from: Size, to: Size): Float64Array {
  const [h, w] = from, [oh, ow] = to;
  const tx = linearTaps(w, ow), ty = linearTaps(h, oh);
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      const ws = tx.w[x]!, f = tx.first[x]!;
      let s = 0;
      for (let k = 0; k < ws.length; k++) s += ws[k]! * map[y * w + f + k]!;
      rows[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const ws = ty.w[y]!, f = ty.first[y]!;
    for (let k = 0; k < ws.length; k++) {
      const wk = ws[k]!, r = (f + k) * ow;
      for (let x = 0; x < ow; x++) out[y * ow + x]! += wk * rows[r + x]!;
    }
  }
  return out;
}

/** scipy.ndimage's "reflect" border: (d c b a | a b c d | d c b a), for any distance. */
function reflect(i: number, n: number): number {
  const m = ((i % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

/**
 * Gaussian smoothing as scipy's `gaussian_filter(x, sigma)` (radius `int(4 * sigma + 0.5)`,
 * reflect borders), rows then columns.
 *
 * @param map Row-major values.
 * @param size [h, w].
 * @param sigma Standard deviation in pixels (0 returns a copy).
 * @returns The smoothed map.
 */
export function gaussianBlur(map: ArrayLike<number>, size: Size, sigma: number): Float64Array {
  const [h, w] = size;
  const out = Float64Array.from(map);
  if (sigma <= 0) return out;
  const r = Math.trunc(4 * sigma + 0.5);
  const k = new Float64Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-0.5 * i * i / (sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  // One line at a time, padded by r reflected values on each side.
  const pass = (n: number, count: number, stride: number, step: number) => {
    const line = new Float64Array(n + 2 * r);
    for (let c = 0; c < count; c++) {
      const base = c * stride;
      for (let i = -r; i < n + r; i++) line[i + r] = out[base + reflect(i, n) * step]!;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j <= 2 * r; j++) s += k[j]! * line[i + j]!;
        out[base + i * step] = s;
      }
    }
  };
  pass(h, w, 1, w); // axis 0 first, as scipy
  pass(w, h, w, 1);
  return out;
}

/** Options of {@link heatmapOverlay}. */
export interface HeatmapOptions {
  /** Gaussian sigma in display pixels (default long side / 225; 0 for none). */
  sigma?: number | undefined;
  /** Weight of the colour layer (default 0.4, the README's). */
  alpha?: number | undefined;
}

/**
 * Draws a selection probability map as a jet heat map over the picture.
 *
 * @param picture The photo at display size.
 * @param probs Probabilities on the feature grid, row-major.
 * @param grid [gh, gw] of the map.
 * @param options Smoothing and opacity.
 * @returns The blended picture.
 *
 * @example
 * ```ts
 * const pic = heatmapOverlay(displayImage(photo, displaySize(photo)), probs, [54, 54]);
 * ```
 */
export function heatmapOverlay(
  picture: RgbImage,
  probs: ArrayLike<number>,
  grid: Size,
  options: HeatmapOptions = {},
): RgbImage {
  const { width: w, height: h } = picture;
  if (probs.length !== grid[0] * grid[1]) {
    throw new RangeError(
      `Cannot draw a ${grid[0]}x${grid[1]} map from ${probs.length} probabilities`,
    );
  }
  const sigma = options.sigma ?? Math.max(w, h) / 225;
  const alpha = options.alpha ?? 0.4;
  const heat = gaussianBlur(resizeMap(probs, grid, [h, w]), [h, w], sigma);
  let lo = Infinity, hi = -Infinity;
  for (const v of heat) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  // A constant map would be 0/0 in the README's code; draw it as the lowest colour.
  const range = hi > lo ? hi - lo : Infinity;
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const j = 3 * Math.min(255, Math.max(0, Math.floor((heat[i]! - lo) / range * 256)));
    for (let ch = 0; ch < 3; ch++) {
      const v = picture.data[3 * i + ch]! * (1 - alpha) + JET_LUT[j + ch]! * alpha;
      out[3 * i + ch] = Math.min(255, Math.round(v));
    }
  }
  return { width: w, height: h, data: out };
}

/** Options of {@link selectionOverlay}. */
export interface SelectionOverlayOptions {
  /** Brightness kept on patches that were not encoded (default 0.3). */
  dim?: number | undefined;
  /** Outline colour of the encoded regions (default yellow). */
  color?: readonly [number, number, number] | undefined;
}

/**
 * Marks the encoded patches of one scale: the others darkened, the encoded regions outlined.
 *
 * @param picture The photo at display size.
 * @param selected 0/1 per patch of the scale's grid, row-major.
 * @param grid [gh, gw].
 * @param options Dimming and outline colour.
 * @returns The marked picture.
 */
export function selectionOverlay(
  picture: RgbImage,
  selected: ArrayLike<number>,
  grid: Size,
  options: SelectionOverlayOptions = {},
): RgbImage {
  const { width: w, height: h } = picture;
  const [gh, gw] = grid;
  if (selected.length !== gh * gw) {
    throw new RangeError(`Cannot draw a ${gh}x${gw} selection from ${selected.length} values`);
  }
  const dim = options.dim ?? 0.3;
  const color = options.color ?? [255, 220, 0];
  // The patch grid covers the whole picture (each scale resizes the whole image).
  const col = Int32Array.from({ length: w }, (_, x) => Math.floor((x + 0.5) * gw / w));
  const row = Int32Array.from({ length: h }, (_, y) => Math.floor((y + 0.5) * gh / h));
  const on = (x: number, y: number) => selected[row[y]! * gw + col[x]!]! > 0;
  const t = Math.max(1, Math.round(Math.max(w, h) / 400));
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!on(x, y)) {
        for (let ch = 0; ch < 3; ch++) {
          out[3 * i + ch] = Math.round(picture.data[3 * i + ch]! * dim);
        }
        continue;
      }
      // On the outline when an unselected patch lies within t pixels across (not the border).
      let edge = false;
      for (let d = 1; d <= t && !edge; d++) {
        edge = (x - d >= 0 && !on(x - d, y)) || (x + d < w && !on(x + d, y)) ||
          (y - d >= 0 && !on(x, y - d)) || (y + d < h && !on(x, y + d));
      }
      for (let ch = 0; ch < 3; ch++) {
        out[3 * i + ch] = edge ? color[ch]! : picture.data[3 * i + ch]!;
      }
    }
  }
  return { width: w, height: h, data: out };
}
