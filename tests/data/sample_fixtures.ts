/**
 * Fixtures of the per-sample data tests: error assertions, a PNG writer for every colour type
 * and bit depth (so tests make their own odd images), JPEG surgery (EXIF segments), and the
 * real photo.
 *
 * @module
 */

import { ok as assert } from "node:assert";
import { deflateSync } from "node:zlib";
import { SampleError, type SampleErrorKind } from "../../src/data/formats/sample_error.ts";

/** The real 2250x1500 photo shared by the project. */
export const DOCK_JPG = new URL("../testdata/dock.jpg", import.meta.url);

/**
 * Asserts that `fn` throws an instance of `cls` whose message contains `includes`.
 *
 * @param fn Code expected to throw.
 * @param cls The error class.
 * @param includes A substring of the message.
 * @returns The error.
 */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: new (...args: never[]) => E,
  includes = "",
): E {
  try {
    fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert(e.message.includes(includes), `message "${e.message}" lacks "${includes}"`);
    return e;
  }
  throw new Error(`expected ${cls.name} containing "${includes}", nothing was thrown`);
}

/**
 * Asserts that `fn` throws a SampleError of the given kind.
 *
 * @param fn Code expected to throw.
 * @param kind The expected kind.
 * @param includes A substring of the message.
 * @returns The error.
 */
export function assertKind(fn: () => unknown, kind: SampleErrorKind, includes = ""): SampleError {
  const e = assertThrows(fn, SampleError, includes);
  assert(e.kind === kind, `expected kind "${kind}", got "${e.kind}": ${e.message}`);
  return e;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const v of b) c = CRC_TABLE[(c ^ v) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(body, 8);
  v.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

/** A PNG to write: samples row-major, already at the bit depth (packed by the writer). */
export interface PngSpec {
  /** Width. */
  width: number;
  /** Height. */
  height: number;
  /** PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colorType: 0 | 2 | 3 | 4 | 6;
  /** 1, 2, 4, 8 or 16. */
  depth: 1 | 2 | 4 | 8 | 16;
  /** `width * height * channels` sample values. */
  samples: ArrayLike<number>;
  /** RGB palette entries for colour type 3. */
  palette?: [number, number, number][];
  /** A tRNS chunk body to include. */
  trns?: Uint8Array;
  /** A TIFF block to store as an eXIf chunk. */
  exif?: Uint8Array;
}

/**
 * Encodes a PNG (filter 0, no interlace) of any colour type and bit depth.
 *
 * @param spec Size, mode and samples.
 * @returns The file bytes.
 */
export function encodePng(spec: PngSpec): Uint8Array {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[spec.colorType];
  const { width: w, height: h, depth } = spec;
  const rowBytes = Math.ceil((w * channels * depth) / 8);
  const raw = new Uint8Array(h * (rowBytes + 1));
  for (let y = 0; y < h; y++) {
    const row = y * (rowBytes + 1) + 1;
    for (let i = 0; i < w * channels; i++) {
      const v = spec.samples[y * w * channels + i]!;
      if (depth === 16) {
        raw[row + 2 * i] = v >> 8;
        raw[row + 2 * i + 1] = v & 255;
      } else if (depth === 8) {
        raw[row + i] = v;
      } else {
        const bit = i * depth;
        raw[row + (bit >> 3)]! |= v << (8 - depth - (bit & 7));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr.set([depth, spec.colorType, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
  ];
  if (spec.exif) parts.push(chunk("eXIf", spec.exif));
  if (spec.palette) parts.push(chunk("PLTE", new Uint8Array(spec.palette.flat())));
  if (spec.trns) parts.push(chunk("tRNS", spec.trns));
  parts.push(chunk("IDAT", new Uint8Array(deflateSync(raw))), chunk("IEND", new Uint8Array()));
  return concat(parts);
}

/**
 * Concatenates byte arrays.
 *
 * @param parts The pieces.
 * @returns One array.
 */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A big-endian TIFF block whose IFD0 holds only an Orientation tag.
 *
 * @param orientation The value (1..8, or anything for malformed-data tests).
 * @returns The TIFF bytes.
 */
export function tiffWithOrientation(orientation: number): Uint8Array {
  return new Uint8Array([
    0x4d,
    0x4d,
    0,
    42,
    0,
    0,
    0,
    8, // header, IFD0 at 8
    0,
    1, // one entry
    0x01,
    0x12,
    0,
    3,
    0,
    0,
    0,
    1,
    orientation >> 8,
    orientation & 255,
    0,
    0, // Orientation
    0,
    0,
    0,
    0, // no next IFD
  ]);
}

/**
 * Inserts an APP1 "Exif" segment right after a JPEG's SOI.
 *
 * @param jpeg A JPEG file.
 * @param tiff The TIFF block.
 * @returns The new file.
 */
export function withJpegExif(jpeg: Uint8Array, tiff: Uint8Array): Uint8Array {
  const body = concat([new TextEncoder().encode("Exif\0\0"), tiff]);
  const len = body.length + 2;
  return concat([
    jpeg.subarray(0, 2),
    new Uint8Array([0xff, 0xe1, len >> 8, len & 255]),
    body,
    jpeg.subarray(2),
  ]);
}

/**
 * A tokenizer.json (T5 layout) whose vocabulary is "▁", the letters, the digits and a few
 * words, so every canonical caption tokenises without unknowns; pad id 0, `</s>` id 1.
 *
 * @returns The parsed JSON.
 */
export function letterTokenizerJson(): Record<string, unknown> {
  const vocab: [string, number][] = [["<pad>", 0], ["</s>", 0], ["<unk>", 0], ["\u2581", -3]];
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") vocab.push([c, -4]);
  for (const w of ["boat", "green", "dock", "sky", "the", "a", "harbour"]) {
    vocab.push([`\u2581${w}`, -2]);
  }
  return {
    normalizer: { type: "Precompiled", precompiled_charsmap: "" },
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    padding: { pad_id: 0, pad_token: "<pad>" },
    model: { type: "Unigram", unk_id: 2, vocab },
  };
}
