/**
 * Image decoding to 8-bit RGB: JPEG (MozJPEG's libjpeg-turbo as WebAssembly, from
 * `@jsquash/jpeg`), PNG (all colour types and bit depths, from the pure-JS `fast-png`) and WebP
 * (libwebp as WebAssembly, from `@jsquash/webp`). Everything is synchronous, so it runs the
 * same on the main thread, in Workers and in a `deno compile` binary: the `.wasm` files are
 * imported as compiled modules (`import source`, in `codecs.js`) and instantiated on first use,
 * never fetched or read from disk.
 *
 * The format is sniffed from the bytes, not the file name (as PIL does). The header is read
 * first: the pixel count is checked against `maxPixels` before any decoding (decompression
 * bombs), and truncated files are recognised. Conversion to RGB follows PIL's
 * `convert("RGB")`, which the reference's webdataset `"pilrgb"` decoder calls: alpha is
 * dropped (not composited), grey is replicated, palettes are looked up (indices past the
 * palette give black, as in PIL). One deliberate difference: 16-bit samples keep their high
 * byte (what PIL does for 16-bit RGB), also for 16-bit grey, where PIL's `I;16 -> RGB`
 * clips values above 255 to white.
 *
 * EXIF orientation (JPEG APP1, PNG eXIf, WebP EXIF) is applied; see `exif.ts` for the frame
 * of the boxes. The reference (PIL without `exif_transpose`) ignores it.
 *
 * @module
 */

import { jpegDecoderModule, webpDecoderModule } from "./codecs.js";
import jpegFactory from "npm:@jsquash/jpeg@1.6.0/codec/dec/mozjpeg_dec.js";
import webpFactory from "npm:@jsquash/webp@1.5.0/codec/dec/webp_dec.js";
import { decode as decodePng } from "npm:fast-png@8.0.0";
import { orientImage, tiffOrientation } from "./exif.ts";
import { SampleError, type SampleWhere } from "./sample_error.ts";
import { rgbaToRgb, type RgbImage } from "./rgb_image.ts";

export type { RgbImage } from "./rgb_image.ts";

/** The image formats {@link decodeImage} reads. */
export type ImageFormat = "jpeg" | "png" | "webp";

/** What the header says, read without decoding pixels. */
export interface ImageInfo {
  /** The sniffed format. */
  format: ImageFormat;
  /** Stored width (before EXIF orientation). */
  width: number;
  /** Stored height (before EXIF orientation). */
  height: number;
  /** EXIF orientation 1..8 (1 when absent). */
  orientation: number;
}

/** A decoded image and how it was stored. */
export interface DecodedImage {
  /** The displayed image: RGB, EXIF orientation applied. */
  image: RgbImage;
  /** The header facts (stored size, orientation). */
  info: ImageInfo;
}

/** Options of {@link decodeImage}. */
export interface DecodeImageOptions {
  /** The file name, for error messages. */
  file: string;
  /** The sample key, for error messages. */
  key?: string | undefined;
  /** Largest accepted `width * height`, checked from the header before decoding. */
  maxPixels: number;
}

/**
 * Reads format, size and EXIF orientation from the header, and checks that the file is not
 * cut short, without decoding pixels.
 *
 * @param bytes The encoded image.
 * @param where The sample key and file name, for errors.
 * @returns The header facts.
 * @throws {SampleError} `image-unsupported`, `image-corrupt` or `image-truncated`.
 *
 * @example
 * ```ts
 * const info = readImageInfo(Deno.readFileSync("dock.jpg"), { key: "", file: "dock.jpg" });
 * info.width; // 2250
 * ```
 */
export function readImageInfo(bytes: Uint8Array, where: SampleWhere): ImageInfo {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpegInfo(b, where);
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    return pngInfo(b, where);
  }
  if (b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") {
    return webpInfo(b, where);
  }
  const head = Array.from(b.subarray(0, 4), (v) => v.toString(16).padStart(2, "0")).join(" ");
  throw new SampleError(
    "image-unsupported",
    `not a JPEG, PNG or WebP file (first bytes ${head || "none"})`,
    where,
  );
}

/**
 * Decodes an image to RGB with its EXIF orientation applied.
 *
 * @param bytes The encoded image (JPEG, PNG or WebP).
 * @param options File name, sample key and the pixel limit.
 * @returns The displayed RGB image and its header facts.
 * @throws {SampleError} `image-unsupported`, `image-corrupt`, `image-truncated` or
 *   `image-too-large`; never anything else for bad bytes.
 *
 * @example
 * ```ts
 * const { image } = decodeImage(Deno.readFileSync("dock.jpg"), {
 *   file: "dock.jpg",
 *   maxPixels: 50_000_000,
 * });
 * image.width * image.height; // 3375000
 * ```
 */
export function decodeImage(bytes: Uint8Array, options: DecodeImageOptions): DecodedImage {
  const where = { key: options.key ?? "", file: options.file };
  const info = readImageInfo(bytes, where);
  const pixels = info.width * info.height;
  if (pixels > options.maxPixels) {
    throw new SampleError(
      "image-too-large",
      `${info.width}x${info.height} is ${pixels} pixels, over the limit of ${options.maxPixels}`,
      where,
    );
  }
  let stored: RgbImage;
  if (info.format === "png") stored = pngPixels(bytes, where);
  else stored = wasmDecode(info.format, bytes, where);
  if (stored.width !== info.width || stored.height !== info.height) {
    throw new SampleError(
      "image-corrupt",
      `decoded size ${stored.width}x${stored.height} differs from the header's ` +
        `${info.width}x${info.height}`,
      where,
    );
  }
  return { image: orientImage(stored, info.orientation), info };
}

// ---------------------------------------------------------------------------------------------
// Headers

function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

function u16be(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function u24le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
}

function u32le(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function checkSize(format: string, w: number, h: number, where: SampleWhere): void {
  if (w === 0 || h === 0) {
    throw new SampleError(
      "image-unsupported",
      `${format} header declares a ${w}x${h} image`,
      where,
    );
  }
}

/** Walks JPEG segments up to the first scan: SOF size, components, EXIF orientation. */
function jpegInfo(b: Uint8Array, where: SampleWhere): ImageInfo {
  let at = 2;
  let orientation = 1;
  let size: [number, number] | null = null;
  while (true) {
    // Fill bytes (0xff) may precede a marker.
    while (at < b.length && b[at] === 0xff && b[at + 1] === 0xff) at++;
    if (at + 4 > b.length) {
      throw new SampleError(
        "image-truncated",
        `JPEG ends at byte ${b.length} inside its header, before the first scan`,
        where,
      );
    }
    if (b[at] !== 0xff) {
      throw new SampleError("image-corrupt", `JPEG has no marker at byte ${at}`, where);
    }
    const marker = b[at + 1]!;
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2;
      continue;
    }
    const len = u16be(b, at + 2);
    if (len < 2) {
      throw new SampleError("image-corrupt", `JPEG segment at byte ${at} has length ${len}`, where);
    }
    const body = at + 4;
    const end = at + 2 + len;
    if (marker === 0xda) break;
    if (end > b.length) {
      throw new SampleError(
        "image-truncated",
        `JPEG ends at byte ${b.length} inside a header segment`,
        where,
      );
    }
    if (marker === 0xe1 && len >= 8 && ascii(b, body, 6) === "Exif\0\0") {
      orientation = tiffOrientation(b.subarray(body + 6, end));
    } else if (
      marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc
    ) {
      if (len < 8) {
        throw new SampleError("image-corrupt", `JPEG frame header at byte ${at} is short`, where);
      }
      const precision = b[body]!;
      const h = u16be(b, body + 1);
      const w = u16be(b, body + 3);
      const comps = b[body + 5]!;
      if (precision !== 8) {
        throw new SampleError(
          "image-unsupported",
          `JPEG has ${precision}-bit samples (only 8-bit is decoded)`,
          where,
        );
      }
      if (comps !== 1 && comps !== 3) {
        throw new SampleError(
          "image-unsupported",
          `JPEG has ${comps} colour components (CMYK/YCCK JPEGs are not decoded)`,
          where,
        );
      }
      checkSize("JPEG", w, h, where);
      size = [w, h];
    } else if (marker === 0xd9) {
      throw new SampleError("image-corrupt", "JPEG ends (EOI) before any scan", where);
    }
    at = end;
  }
  if (!size) {
    throw new SampleError("image-corrupt", "JPEG has a scan before its frame header", where);
  }
  // Entropy-coded data cannot contain FF D9 (0xff is stuffed as FF 00), so a file without an
  // end-of-image marker after its first scan was cut short.
  let eoi = b.length - 2;
  while (eoi > at && !(b[eoi] === 0xff && b[eoi + 1] === 0xd9)) eoi--;
  if (eoi <= at) {
    throw new SampleError(
      "image-truncated",
      `JPEG ends at byte ${b.length} without its end-of-image marker`,
      where,
    );
  }
  return { format: "jpeg", width: size[0], height: size[1], orientation };
}

/** Walks PNG chunks to IEND: IHDR size, eXIf orientation, truncation. */
function pngInfo(b: Uint8Array, where: SampleWhere): ImageInfo {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (sig.some((v, i) => b[i] !== v)) {
    throw new SampleError("image-corrupt", "PNG signature is damaged", where);
  }
  let at = 8;
  let size: [number, number] | null = null;
  let orientation = 1;
  let sawData = false;
  let needsPalette = false;
  let sawPalette = false;
  while (true) {
    if (at + 8 > b.length) {
      throw new SampleError(
        "image-truncated",
        `PNG ends at byte ${b.length} before its IEND chunk`,
        where,
      );
    }
    const len = u32be(b, at);
    const type = ascii(b, at + 4, 4);
    const end = at + 12 + len;
    if (end > b.length) {
      throw new SampleError(
        "image-truncated",
        `PNG ends at byte ${b.length} inside its "${type}" chunk`,
        where,
      );
    }
    if (!size && type !== "IHDR") {
      throw new SampleError("image-corrupt", `PNG starts with "${type}" instead of IHDR`, where);
    }
    if (type === "IHDR") {
      if (len !== 13) {
        throw new SampleError("image-corrupt", "PNG IHDR has the wrong length", where);
      }
      const w = u32be(b, at + 8);
      const h = u32be(b, at + 12);
      checkSize("PNG", w, h, where);
      size = [w, h];
      needsPalette = b[at + 17] === 3;
    } else if (type === "PLTE") {
      sawPalette = true;
    } else if (type === "eXIf") {
      orientation = tiffOrientation(b.subarray(at + 8, at + 8 + len));
    } else if (type === "IDAT") {
      if (needsPalette && !sawPalette) {
        throw new SampleError("image-corrupt", "PNG palette image has no PLTE chunk", where);
      }
      sawData = true;
    } else if (type === "IEND") {
      break;
    }
    at = end;
  }
  if (!sawData) throw new SampleError("image-corrupt", "PNG has no IDAT chunk", where);
  return { format: "png", width: size![0], height: size![1], orientation };
}

/** Reads the RIFF chunks of a WebP: VP8 / VP8L / VP8X size, EXIF orientation, animation. */
function webpInfo(b: Uint8Array, where: SampleWhere): ImageInfo {
  const riffEnd = 8 + u32le(b, 4);
  if (riffEnd > b.length) {
    throw new SampleError(
      "image-truncated",
      `WebP ends at byte ${b.length}; its RIFF header says ${riffEnd}`,
      where,
    );
  }
  let at = 12;
  let size: [number, number] | null = null;
  let orientation = 1;
  while (at + 8 <= riffEnd) {
    const type = ascii(b, at, 4);
    const len = u32le(b, at + 4);
    const body = at + 8;
    if (body + len > riffEnd) {
      throw new SampleError("image-truncated", `WebP "${type}" chunk runs past the file`, where);
    }
    if (type === "VP8X" && len >= 10) {
      if (b[body]! & 0x02) {
        throw new SampleError("image-unsupported", "animated WebP is not decoded", where);
      }
      size ??= [u24le(b, body + 4) + 1, u24le(b, body + 7) + 1];
    } else if (type === "VP8 " && len >= 10 && !size) {
      if (b[body + 3] !== 0x9d || b[body + 4] !== 0x01 || b[body + 5] !== 0x2a) {
        throw new SampleError("image-corrupt", "WebP VP8 frame has no start code", where);
      }
      size = [
        (b[body + 6]! | (b[body + 7]! << 8)) & 0x3fff,
        (b[body + 8]! | (b[body + 9]! << 8)) & 0x3fff,
      ];
    } else if (type === "VP8L" && len >= 5 && !size) {
      if (b[body] !== 0x2f) {
        throw new SampleError("image-corrupt", "WebP VP8L stream has no signature", where);
      }
      const bits = u32le(b, body + 1);
      size = [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
    } else if (type === "EXIF") {
      orientation = tiffOrientation(b.subarray(body, body + len));
    }
    at = body + len + (len & 1);
  }
  if (!size) throw new SampleError("image-corrupt", "WebP has no VP8, VP8L or VP8X chunk", where);
  checkSize("WebP", size[0], size[1], where);
  return { format: "webp", width: size[0], height: size[1], orientation };
}

// ---------------------------------------------------------------------------------------------
// PNG pixels

function pngPixels(bytes: Uint8Array, where: SampleWhere): RgbImage {
  let png;
  try {
    png = decodePng(bytes, { checkCrc: true });
  } catch (e) {
    const msg = e instanceof Error
      ? e.message + (e.cause instanceof Error ? ` (${e.cause.message})` : "")
      : String(e);
    throw new SampleError("image-corrupt", `PNG does not decode: ${msg}`, where);
  }
  const { width: w, height: h, depth, channels, palette } = png;
  const n = w * h;
  const out = new Uint8Array(n * 3);
  const src = png.data;
  if (palette) {
    const idx = unpackSamples(src, { width: w, height: h, depth });
    for (let i = 0; i < n; i++) {
      const c = palette[idx[i]!];
      if (c) {
        out[3 * i] = c[0]!;
        out[3 * i + 1] = c[1]!;
        out[3 * i + 2] = c[2]!;
      }
    }
    return { width: w, height: h, data: out };
  }
  const shift = depth === 16 ? 8 : 0;
  if (channels <= 2) {
    // Grey (+ alpha, dropped). Depths below 8 are packed and scaled to 0..255 as PIL does.
    if (depth < 8) {
      const v = unpackSamples(src, { width: w, height: h, depth });
      const scale = 255 / ((1 << depth) - 1);
      for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v[i]! * scale;
    } else {
      for (let i = 0; i < n; i++) {
        out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = src[i * channels]! >> shift;
      }
    }
  } else {
    // RGB (+ alpha, dropped).
    for (let i = 0; i < n; i++) {
      const s = i * channels;
      out[3 * i] = src[s]! >> shift;
      out[3 * i + 1] = src[s + 1]! >> shift;
      out[3 * i + 2] = src[s + 2]! >> shift;
    }
  }
  return { width: w, height: h, data: out };
}

/** Unpacks 1/2/4/8-bit single-channel rows (each row starts on a byte). */
function unpackSamples(
  src: ArrayLike<number>,
  shape: { width: number; height: number; depth: number },
): Uint8Array {
  const { width: w, height: h, depth } = shape;
  const out = new Uint8Array(w * h);
  if (depth >= 8) {
    for (let i = 0; i < w * h; i++) out[i] = src[i]!;
    return out;
  }
  const rowBytes = Math.ceil((w * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const bit = x * depth;
      const byte = src[y * rowBytes + (bit >> 3)]!;
      out[y * w + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// WebAssembly decoders (JPEG, WebP)

interface WasmCodec {
  decode(data: Uint8Array, preserveOrientation?: boolean): {
    width: number;
    height: number;
    data: Uint8ClampedArray;
  } | null;
}

type EmscriptenFactory = (opts: Record<string, unknown>) => Promise<unknown>;

interface CodecSlot {
  module: WebAssembly.Module;
  factory: EmscriptenFactory;
  instance: WasmCodec | null;
  messages: string[];
}

const CODECS: Record<"jpeg" | "webp", CodecSlot> = {
  jpeg: {
    module: jpegDecoderModule,
    factory: jpegFactory as unknown as EmscriptenFactory,
    instance: null,
    messages: [],
  },
  webp: {
    module: webpDecoderModule,
    factory: webpFactory as unknown as EmscriptenFactory,
    instance: null,
    messages: [],
  },
};

/**
 * Instantiates an Emscripten codec synchronously: the imported module is instantiated in
 * `instantiateWasm`, so the factory finishes before it returns.
 */
function codec(slot: CodecSlot): WasmCodec {
  if (slot.instance) return slot.instance;
  const mod = slot.module;
  const opts: Record<string, unknown> = {
    noInitialRun: true,
    print: (s: string) => slot.messages.push(s),
    printErr: (s: string) => slot.messages.push(s),
    instantiateWasm: (
      imports: WebAssembly.Imports,
      done: (instance: WebAssembly.Instance) => void,
    ) => {
      const instance = new WebAssembly.Instance(mod, imports);
      done(instance);
      return instance.exports;
    },
  };
  slot.factory(opts).catch(() => {});
  if (typeof opts.decode !== "function") {
    throw new Error("Cannot start the image decoder: the WebAssembly module did not initialise");
  }
  slot.instance = opts as unknown as WasmCodec;
  return slot.instance;
}

const NAMES = { jpeg: "JPEG", webp: "WebP" } as const;

/** Decoder messages that mean a valid file uses a feature this build lacks. */
const UNSUPPORTED =
  /Unsupported (color conversion|JPEG process|JPEG data precision)|Sorry|Requested features/;

/** libjpeg warnings that leave a correct image (seen in files from common writers). */
const HARMLESS_JPEG_WARNINGS = [/extraneous bytes before marker/, /Invalid SOS parameters/];

function wasmDecode(format: "jpeg" | "webp", bytes: Uint8Array, where: SampleWhere): RgbImage {
  const slot = CODECS[format];
  const dec = codec(slot);
  slot.messages.length = 0;
  let result;
  try {
    result = format === "jpeg" ? dec.decode(bytes, false) : dec.decode(bytes);
  } catch (e) {
    // libjpeg's error_exit ends in exit(): the instance may hold leaked buffers, so it is
    // dropped and the next image gets a fresh one.
    slot.instance = null;
    const msg = slot.messages.join("; ") || (e instanceof Error ? e.message : String(e));
    const kind = UNSUPPORTED.test(msg) ? "image-unsupported" : "image-corrupt";
    throw new SampleError(kind, `${NAMES[format]} does not decode: ${msg}`, where);
  }
  if (!result) {
    const msg = slot.messages.length ? ": " + slot.messages.join("; ") : "";
    throw new SampleError("image-corrupt", `${NAMES[format]} does not decode${msg}`, where);
  }
  const problems = slot.messages.filter((m) => !HARMLESS_JPEG_WARNINGS.some((r) => r.test(m)));
  if (problems.length > 0) {
    // libjpeg says "Premature end of JPEG file" when the data runs out; "premature end of data
    // segment" only means a marker was hit inside a scan (damage anywhere).
    const truncated = problems.some((m) => m.includes("Premature end of JPEG file"));
    throw new SampleError(
      truncated ? "image-truncated" : "image-corrupt",
      `${NAMES[format]} data is damaged: ${problems.join("; ")}`,
      where,
    );
  }
  const { width, height, data } = result;
  return { width, height, data: rgbaToRgb(data, width * height) };
}
