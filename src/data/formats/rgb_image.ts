/**
 * The decoded-image type shared by the decoders, EXIF orientation and the resizers.
 *
 * @module
 */

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (`[H, W, 3]`). */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width * height * 3` bytes. */
  data: Uint8Array;
}
