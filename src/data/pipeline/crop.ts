/**
 * The reference's training crop: torchvision `transforms.v2.RandomResizedCrop(size,
 * scale=(0.9, 1.0), interpolation=BICUBIC)` (ratio left at its default [3/4, 4/3]) applied
 * jointly to a PIL image and its `BoundingBoxes` (`train/src/open_clip/transform.py`,
 * `image_transform`), and the evaluation "squash" `Resize((size, size))`.
 *
 * Crop parameters follow `RandomResizedCrop._get_params`: up to 10 draws of an area fraction
 * in `scale` and a log-uniform aspect ratio in `ratio`, `w = round(sqrt(area * ratio))`,
 * `h = round(sqrt(area / ratio))` (Python's round, half to even), accepted when
 * `0 < w <= width` and `0 < h <= height`, with a uniform integer offset; after 10 failures the
 * centre crop of the closest allowed aspect ratio. The image is cropped then resized with
 * PIL's antialiased bicubic (`resize.ts`).
 *
 * Boxes follow torchvision's `resized_crop` kernels for `XYXY` boxes, emulating its tensor
 * arithmetic: shift by the crop offset and clamp to the crop (`crop_bounding_boxes`), then
 * multiply by the float32 ratios `new / old` (`resize_bounding_boxes`). Boxes whose JSON
 * coordinates are integers live in an int64 tensor there, so the product is truncated back to
 * integers; others stay float32.
 *
 * @module
 */

import type { Rng } from "../../util/rng.ts";
import type { Box } from "./annotations.ts";
import type { RgbImage } from "../formats/image.ts";
import { type CropRect, resizeBicubic } from "./resize.ts";

/** Options of {@link randomResizedCropParams}. */
export interface RandomCropOptions {
  /** Range of the crop's area as a fraction of the image (reference: [0.9, 1.0]). */
  scale?: readonly [number, number] | undefined;
  /** Range of the crop's aspect ratio w/h (torchvision default [3/4, 4/3]). */
  ratio?: readonly [number, number] | undefined;
}

/**
 * Python's `round()`: to the nearest integer, ties to even.
 *
 * @param x A number.
 * @returns The rounded integer.
 *
 * @example
 * ```ts
 * [roundHalfEven(2.5), roundHalfEven(3.5), roundHalfEven(-0.5)]; // [2, 4, -0]
 * ```
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Draws the crop of torchvision's `RandomResizedCrop.get_params`.
 *
 * @param size The image size.
 * @param rng Random source.
 * @param options Scale and ratio ranges (defaults: the reference's [0.9, 1.0] and
 *   [3/4, 4/3]).
 * @returns The crop rectangle.
 *
 * @example
 * ```ts
 * const c = randomResizedCropParams({ width: 2250, height: 1500 }, new Rng(0));
 * c.width * c.height >= 0.9 * 2250 * 1500 * 0.99; // true (up to rounding)
 * ```
 */
export function randomResizedCropParams(
  size: { width: number; height: number },
  rng: Rng,
  options: RandomCropOptions = {},
): CropRect {
  const { width, height } = size;
  const [s0, s1] = options.scale ?? [0.9, 1.0];
  const [r0, r1] = options.ratio ?? [3 / 4, 4 / 3];
  const area = width * height;
  const logR0 = Math.log(r0);
  const logR1 = Math.log(r1);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(s0, s1);
    const aspect = Math.exp(rng.uniform(logR0, logR1));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  // Fallback: centre crop of the closest allowed aspect ratio.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(r0, r1)) h = roundHalfEven(w / Math.min(r0, r1));
  else if (inRatio > Math.max(r0, r1)) w = roundHalfEven(h * Math.max(r0, r1));
  return {
    left: Math.floor((width - w) / 2),
    top: Math.floor((height - h) / 2),
    width: w,
    height: h,
  };
}

/**
 * Carries boxes through a crop and a resize as torchvision's `resized_crop` does for `XYXY`
 * boxes: subtract the offset, clamp to the crop, scale by float32 `out / crop` ratios,
 * truncate integral boxes.
 *
 * @param boxes Boxes in the (displayed) source image.
 * @param transform The crop and the output size.
 * @returns Boxes in output pixels.
 *
 * @example
 * ```ts
 * const [b] = resizedCropBoxes([{ x1: 110, y1: 20, x2: 410, y2: 220, integral: true }], {
 *   crop: { left: 10, top: 20, width: 1000, height: 800 },
 *   width: 500,
 *   height: 400,
 * });
 * // b = { x1: 50, y1: 0, x2: 200, y2: 100, integral: true }
 * ```
 */
export function resizedCropBoxes(
  boxes: readonly Box[],
  transform: { crop: CropRect; width: number; height: number },
): Box[] {
  const { crop, width: outW, height: outH } = transform;
  const f = Math.fround;
  const rw = f(outW / crop.width);
  const rh = f(outH / crop.height);
  const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return boxes.map((b) => {
    const coord = (v: number, offset: number, hi: number, ratio: number) => {
      const shifted = b.integral ? v - offset : f(f(v) - offset);
      const scaled = f(clamp(shifted, hi) * ratio);
      return b.integral ? Math.trunc(scaled) : scaled;
    };
    return {
      x1: coord(b.x1, crop.left, crop.width, rw),
      y1: coord(b.y1, crop.top, crop.height, rh),
      x2: coord(b.x2, crop.left, crop.width, rw),
      y2: coord(b.y2, crop.top, crop.height, rh),
      integral: b.integral,
    };
  });
}

/** Options of {@link resizedCrop}. */
export interface ResizedCropOptions {
  /** The region to keep (the whole image for the evaluation squash resize). */
  crop: CropRect;
  /** Output width. */
  width: number;
  /** Output height. */
  height: number;
}

/**
 * Crops and resizes an image and its boxes together.
 *
 * @param image The displayed source image.
 * @param boxes Boxes in its pixels.
 * @param options The crop and the output size.
 * @returns The resized image and boxes in its pixels.
 *
 * @example
 * ```ts
 * const crop = randomResizedCropParams(image, rng);
 * const out = resizedCrop(image, boxes, { crop, width: 1512, height: 1512 });
 * ```
 */
export function resizedCrop(
  image: RgbImage,
  boxes: readonly Box[],
  options: ResizedCropOptions,
): { image: RgbImage; boxes: Box[] } {
  return {
    image: resizeBicubic(image, options),
    boxes: resizedCropBoxes(boxes, options),
  };
}
