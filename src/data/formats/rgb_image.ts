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

/**
 * Drops the alpha bytes of RGBA pixels (what the WebAssembly decoders return). Reads four
 * pixels as four 32-bit words and writes them as three (little-endian byte order, which
 * every platform Deno runs on has), when the input is 4-byte aligned; bytewise otherwise
 * and for the last `n % 4` pixels.
 *
 * @param rgba `n * 4` bytes.
 * @param n Pixel count.
 * @returns `n * 3` bytes.
 *
 * @example
 * ```ts
 * rgbaToRgb(new Uint8Array([1, 2, 3, 255, 4, 5, 6, 255]), 2); // [1, 2, 3, 4, 5, 6]
 * ```
 */
export function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, n: number): Uint8Array {
  if (rgba.length < n * 4) {
    throw new RangeError(`Cannot read ${n} RGBA pixels from ${rgba.length} bytes`);
  }
  const out = new Uint8Array(n * 3);
  let done = 0;
  if (rgba.byteOffset % 4 === 0) {
    const quads = n >> 2;
    const src = new Uint32Array(rgba.buffer, rgba.byteOffset, quads * 4);
    const dst = new Uint32Array(out.buffer, 0, quads * 3);
    for (let q = 0, s = 0, d = 0; q < quads; q++, s += 4, d += 3) {
      const a = src[s]!, b = src[s + 1]!, c = src[s + 2]!, e = src[s + 3]!;
      dst[d] = (a & 0xffffff) | (b << 24);
      dst[d + 1] = ((b >>> 8) & 0xffff) | (c << 16);
      dst[d + 2] = ((c >>> 16) & 0xff) | (e << 8);
    }
    done = quads * 4;
  }
  for (let i = done; i < n; i++) {
    out[3 * i] = rgba[4 * i]!;
    out[3 * i + 1] = rgba[4 * i + 1]!;
    out[3 * i + 2] = rgba[4 * i + 2]!;
  }
  return out;
}
