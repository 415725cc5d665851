/**
 * EXIF orientation: reading the tag from a TIFF block (the payload of a JPEG APP1 "Exif"
 * segment, a PNG eXIf chunk or a WebP EXIF chunk) and applying it to pixels and to boxes.
 *
 * The eight orientations follow the EXIF / TIFF definition and PIL's
 * `ImageOps.exif_transpose`: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
 * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
 *
 * Boxes are taken to be in the stored pixel grid (what PIL's `Image.open` shows without
 * `exif_transpose`, which is how the reference reads images and therefore the frame its
 * annotations are in); {@link orientBox} carries them into the displayed frame together with
 * the pixels.
 *
 * @module
 */

import type { RgbImage } from "./rgb_image.ts";

/** The TIFF tag number of Orientation. */
const ORIENTATION_TAG = 0x0112;

/**
 * Reads the Orientation tag from IFD0 of a TIFF block. Malformed or missing data gives 1
 * (no transform): a broken EXIF block never makes an image unusable.
 *
 * @param tiff The TIFF bytes (starting at the `II*\0` / `MM\0*` header). A leading
 *   `Exif\0\0` prefix, as some WebP writers store it, is skipped.
 * @returns The orientation, 1..8.
 *
 * @example
 * ```ts
 * const tiff = new Uint8Array([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 1, 0x12, 0, 3, 0, 0, 0, 1,
 *   0, 6, 0, 0, 0, 0, 0, 0]);
 * tiffOrientation(tiff); // 6
 * ```
 */
export function tiffOrientation(tiff: Uint8Array): number {
  let base = 0;
  if (
    tiff.length >= 6 && tiff[0] === 0x45 && tiff[1] === 0x78 && tiff[2] === 0x69 &&
    tiff[3] === 0x66 && tiff[4] === 0 && tiff[5] === 0
  ) base = 6;
  if (tiff.length < base + 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  let little: boolean;
  if (tiff[base] === 0x49 && tiff[base + 1] === 0x49) little = true;
  else if (tiff[base] === 0x4d && tiff[base + 1] === 0x4d) little = false;
  else return 1;
  if (view.getUint16(base + 2, little) !== 42) return 1;
  const ifd = base + view.getUint32(base + 4, little);
  if (ifd + 2 > tiff.length) return 1;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > tiff.length) return 1;
    if (view.getUint16(entry, little) !== ORIENTATION_TAG) continue;
    const type = view.getUint16(entry + 2, little);
    // SHORT is the type the standard prescribes; LONG appears in the wild.
    const value = type === 3
      ? view.getUint16(entry + 8, little)
      : type === 4
      ? view.getUint32(entry + 8, little)
      : 0;
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/** Whether an orientation swaps width and height (5..8). */
function swapsAxes(orientation: number): boolean {
  return orientation >= 5 && orientation <= 8;
}

/**
 * Applies an EXIF orientation to an RGB image, returning the displayed image.
 *
 * @param image The stored image.
 * @param orientation EXIF orientation 1..8 (1 returns the input itself).
 * @returns The displayed image (width and height swapped for 5..8).
 *
 * @example
 * ```ts
 * const img = { width: 2, height: 1, data: new Uint8Array([1, 1, 1, 2, 2, 2]) };
 * orientImage(img, 6); // 1 x 2: top pixel 1, bottom pixel 2
 * ```
 */
export function orientImage(image: RgbImage, orientation: number): RgbImage {
  if (orientation === 1) return image;
  const { width: w, height: h, data: src } = image;
  const swap = swapsAxes(orientation);
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(ow * oh * 3);
  // Source pixel of output (X, Y) is (x0 + X*dxX + Y*dxY, y0 + X*dyX + Y*dyY).
  let x0 = 0, y0 = 0, dxX = 1, dxY = 0, dyX = 0, dyY = 1;
  switch (orientation) {
    case 2:
      [x0, dxX] = [w - 1, -1];
      break;
    case 3:
      [x0, dxX, y0, dyY] = [w - 1, -1, h - 1, -1];
      break;
    case 4:
      [y0, dyY] = [h - 1, -1];
      break;
    case 5:
      [dxX, dxY, dyX, dyY] = [0, 1, 1, 0];
      break;
    case 6:
      [dxX, dxY, y0, dyX, dyY] = [0, 1, h - 1, -1, 0];
      break;
    case 7:
      [x0, dxX, dxY, y0, dyX, dyY] = [w - 1, 0, -1, h - 1, -1, 0];
      break;
    case 8:
      [x0, dxX, dxY, dyX, dyY] = [w - 1, 0, -1, 1, 0];
      break;
    default:
      throw new RangeError(`Cannot apply EXIF orientation ${orientation}: expected 1..8`);
  }
  let o = 0;
  for (let Y = 0; Y < oh; Y++) {
    let x = x0 + Y * dxY;
    let y = y0 + Y * dyY;
    for (let X = 0; X < ow; X++) {
      const s = (y * w + x) * 3;
      out[o] = src[s]!;
      out[o + 1] = src[s + 1]!;
      out[o + 2] = src[s + 2]!;
      o += 3;
      x += dxX;
      y += dyX;
    }
  }
  return { width: ow, height: oh, data: out };
}

/**
 * Carries a box from the stored pixel grid into the displayed frame of an EXIF orientation
 * (continuous coordinates: a point (x, y) with 0 <= x <= width).
 *
 * @param box `[x1, y1, x2, y2]` in stored pixels.
 * @param orientation EXIF orientation 1..8 and the stored size.
 * @returns `[x1, y1, x2, y2]` in displayed pixels, ordered (x1 <= x2, y1 <= y2).
 *
 * @example
 * ```ts
 * orientBox([0, 0, 10, 5], { orientation: 6, width: 100, height: 50 }); // [45, 0, 50, 10]
 * ```
 */
export function orientBox(
  box: readonly [number, number, number, number],
  stored: { orientation: number; width: number; height: number },
): [number, number, number, number] {
  const { orientation, width: w, height: h } = stored;
  const map = (x: number, y: number): [number, number] => {
    switch (orientation) {
      case 1:
        return [x, y];
      case 2:
        return [w - x, y];
      case 3:
        return [w - x, h - y];
      case 4:
        return [x, h - y];
      case 5:
        return [y, x];
      case 6:
        return [h - y, x];
      case 7:
        return [h - y, w - x];
      case 8:
        return [y, w - x];
      default:
        throw new RangeError(`Cannot apply EXIF orientation ${orientation}: expected 1..8`);
    }
  };
  const [ax, ay] = map(box[0], box[1]);
  const [bx, by] = map(box[2], box[3]);
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}
