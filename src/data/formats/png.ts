/**
 * PNG encoding of 8-bit RGB/RGBA pixels: the one image writer of ps3 (synthetic datasets,
 * training plots, selection heat maps).
 *
 * @module
 */

import { deflateSync } from "node:zlib";

const ENC = new TextEncoder();

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const b of parts) {
    for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  const t = ENC.encode(type);
  out.set(t, 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32([t, data]));
  return out;
}

/**
 * Encodes 8-bit RGB or RGBA pixels as a PNG (zlib via `node:zlib`, "Sub" row filter).
 *
 * @param pixels Interleaved pixels, row-major, `width * height * channels` bytes.
 * @param options Width, height, and channel count (3 = RGB, 4 = RGBA; default 3).
 * @returns The PNG file's bytes.
 * @example
 * ```ts
 * const png = encodePng(new Uint8Array(2 * 2 * 3), { width: 2, height: 2 });
 * ```
 */
export function encodePng(
  pixels: Uint8Array,
  options: { width: number; height: number; channels?: 3 | 4 | undefined },
): Uint8Array {
  const { width, height } = options;
  const ch = options.channels ?? 3;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Cannot encode a PNG of ${width}x${height} pixels`);
  }
  if (pixels.length !== width * height * ch) {
    throw new RangeError(
      `Cannot encode ${pixels.length} bytes as a ${width}x${height} PNG with ${ch} channels ` +
        `(expected ${width * height * ch})`,
    );
  }
  const stride = width * ch;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    raw[o] = 1; // Sub filter: each byte minus the byte one pixel to its left.
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const left = x >= ch ? pixels[row + x - ch]! : 0;
      raw[o + 1 + x] = (pixels[row + x]! - left) & 255;
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = ch === 3 ? 2 : 6;
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(raw, { level: 6 }))),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
