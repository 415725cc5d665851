import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import jpegEncFactory from "npm:@jsquash/jpeg@1.6.0/codec/enc/mozjpeg_enc.js";
import { defaultOptions as jpegDefaults } from "npm:@jsquash/jpeg@1.6.0/meta.js";
import webpEncFactory from "npm:@jsquash/webp@1.5.0/codec/enc/webp_enc.js";
import { defaultOptions as webpDefaults } from "npm:@jsquash/webp@1.5.0/meta.js";
import { SampleError } from "../../src/data/formats/sample_error.ts";
import { Rng } from "../../src/util/rng.ts";
import { orientBox, orientImage, tiffOrientation } from "../../src/data/formats/exif.ts";
import { decodeImage, readImageInfo, type RgbImage } from "../../src/data/formats/image.ts";
import { rgbaToRgb } from "../../src/data/formats/rgb_image.ts";
import {
  assertKind,
  assertThrows,
  concat,
  DOCK_JPG,
  encodePng,
  type PngSpec,
  tiffWithOrientation,
  withJpegExif,
} from "./sample_fixtures.ts";

const DOCK = Deno.readFileSync(DOCK_JPG);
const MAX = 100_000_000;
const where = { key: "k", file: "k.img" };

function decode(bytes: Uint8Array, maxPixels = MAX) {
  return decodeImage(bytes, { file: "k.img", key: "k", maxPixels });
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return Array.from(img.data.subarray(i, i + 3));
}

/** Offset of the first SOF0 marker of a JPEG (the photo is baseline). */
function sofOffset(jpeg: Uint8Array): number {
  for (let i = 2; i < jpeg.length - 1; i++) if (jpeg[i] === 0xff && jpeg[i + 1] === 0xc0) return i;
  throw new Error("no SOF0");
}

type Encode = (d: Uint8ClampedArray, w: number, h: number, o: unknown) => Uint8Array;

/** Starts an Emscripten encoder of @jsquash synchronously, as the decoders are started. */
// The encoders' .wasm files, read from the npm packages the factories come from (a bytes
// import would need the unstable raw-imports flag).
const jpegEncWasm = Deno.readFileSync(
  new URL(import.meta.resolve("npm:@jsquash/jpeg@1.6.0/codec/enc/mozjpeg_enc.wasm")),
);
const webpEncWasm = Deno.readFileSync(
  new URL(import.meta.resolve("npm:@jsquash/webp@1.5.0/codec/enc/webp_enc.wasm")),
);

function encoder(wasm: Uint8Array, factory: unknown): Encode {
  const mod = new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
  const codec: Record<string, unknown> = {
    noInitialRun: true,
    instantiateWasm: (imports: WebAssembly.Imports, done: (i: WebAssembly.Instance) => void) => {
      const instance = new WebAssembly.Instance(mod, imports);
      done(instance);
      return instance.exports;
    },
  };
  (factory as (o: unknown) => Promise<unknown>)(codec).catch(() => {});
  return codec.encode as Encode;
}

/** Encodes RGBA pixels as lossless WebP with libwebp (the encoder half of @jsquash/webp). */
function encodeWebp(rgba: Uint8ClampedArray, width: number, height: number): Uint8Array {
  const encode = encoder(webpEncWasm, webpEncFactory);
  return new Uint8Array(encode(rgba, width, height, { ...webpDefaults, lossless: 1 }));
}

/** Encodes RGBA pixels as a baseline JPEG with MozJPEG (the encoder half of @jsquash/jpeg). */
function encodeJpeg(rgba: Uint8ClampedArray, width: number, height: number): Uint8Array {
  const encode = encoder(jpegEncWasm, jpegEncFactory);
  return new Uint8Array(encode(rgba, width, height, { ...jpegDefaults, progressive: false }));
}

Deno.test("decodeImage() decodes the real photo exactly as Pillow (libjpeg-turbo) does", async () => {
  const { image, info } = decode(DOCK);
  assertEquals(info, { format: "jpeg", width: 2250, height: 1500, orientation: 1 });
  assertEquals([image.width, image.height], [2250, 1500]);
  // Digest of numpy.asarray(PIL.Image.open("dock.jpg").convert("RGB")), Pillow 9.4.0.
  assertEquals(
    await sha256(image.data),
    "f99443b7e434b0415e94257e4d686d554117db4df3f55e26ecd5d9e88d200482",
  );
  assertEquals(pixel(image, 0, 0), [176, 200, 234]); // sky
  assertEquals(pixel(image, 1050, 990), [0, 141, 13]); // green hull
  assertEquals(pixel(image, 1800, 450), [186, 145, 93]); // brick wall
});

Deno.test("orientImage() and orientBox() follow the EXIF definition for all 8 orientations", () => {
  // Stored 3x2 "a b c / d e f", pixel value = letter index.
  const stored = {
    width: 3,
    height: 2,
    data: new Uint8Array([0, 1, 2, 3, 4, 5].flatMap((v) => [v, v, v])),
  };
  const want: Record<number, [number, number, number[]]> = {
    1: [3, 2, [0, 1, 2, 3, 4, 5]],
    2: [3, 2, [2, 1, 0, 5, 4, 3]], // mirror left-right
    3: [3, 2, [5, 4, 3, 2, 1, 0]], // rotate 180
    4: [3, 2, [3, 4, 5, 0, 1, 2]], // mirror top-bottom
    5: [2, 3, [0, 3, 1, 4, 2, 5]], // transpose
    6: [2, 3, [3, 0, 4, 1, 5, 2]], // rotate 90 clockwise
    7: [2, 3, [5, 2, 4, 1, 3, 0]], // transverse
    8: [2, 3, [2, 5, 1, 4, 0, 3]], // rotate 90 counter-clockwise
  };
  for (let o = 1; o <= 8; o++) {
    const out = orientImage(stored, o);
    const [w, h, values] = want[o]!;
    assertEquals([out.width, out.height], [w, h], `orientation ${o}`);
    const got = Array.from({ length: w * h }, (_, i) => out.data[3 * i]!);
    assertEquals(got, values, `orientation ${o}`);
    // The unit box of every stored pixel lands on the unit box of that pixel's new place.
    for (let v = 0; v < 6; v++) {
      const [x, y] = [v % 3, Math.floor(v / 3)];
      const [x1, y1, x2, y2] = orientBox([x, y, x + 1, y + 1], {
        orientation: o,
        width: 3,
        height: 2,
      });
      assertEquals([x2 - x1, y2 - y1], [1, 1]);
      assertEquals(out.data[3 * (y1 * w + x1)], v, `orientation ${o} pixel ${v}`);
    }
  }
});

Deno.test("tiffOrientation() reads both byte orders and ignores malformed blocks", () => {
  assertEquals(tiffOrientation(tiffWithOrientation(6)), 6);
  const le = new Uint8Array([
    0x49,
    0x49,
    42,
    0,
    8,
    0,
    0,
    0,
    1,
    0,
    0x12,
    0x01,
    3,
    0,
    1,
    0,
    0,
    0,
    8,
    0,
    0,
    0,
  ]);
  assertEquals(tiffOrientation(le), 8);
  assertEquals(
    tiffOrientation(concat([new TextEncoder().encode("Exif\0\0"), tiffWithOrientation(3)])),
    3,
  );
  assertEquals(tiffOrientation(tiffWithOrientation(9)), 1); // out of range
  assertEquals(tiffOrientation(tiffWithOrientation(6).subarray(0, 14)), 1); // cut short
  assertEquals(tiffOrientation(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), 1); // not TIFF
});

Deno.test("decodeImage() applies the EXIF orientation of a JPEG APP1 segment", () => {
  const stored = decode(DOCK).image;
  for (const o of [3, 6, 8]) {
    const { image, info } = decode(withJpegExif(DOCK, tiffWithOrientation(o)));
    assertEquals(info.orientation, o);
    assertEquals(info.width, 2250); // the stored size
    const expected = orientImage(stored, o);
    assertEquals([image.width, image.height], [expected.width, expected.height]);
    let same = image.data.length === expected.data.length;
    for (let i = 0; same && i < image.data.length; i++) same = image.data[i] === expected.data[i];
    assert(same, `orientation ${o} pixels`);
  }
  // Orientation 6: displayed top-left is the stored bottom-left.
  const six = decode(withJpegExif(DOCK, tiffWithOrientation(6))).image;
  assertEquals(pixel(six, 0, 0), pixel(stored, 0, 1499));
});

Deno.test("decodeImage() converts every PNG colour type and bit depth to RGB like PIL", () => {
  const grey = (v: number[]) => v.flatMap((x) => [x, x, x]);
  const cases: [string, PngSpec, number[]][] = [
    [
      "grey 1-bit",
      { width: 3, height: 1, colorType: 0, depth: 1, samples: [0, 1, 1] },
      grey([0, 255, 255]),
    ],
    [
      "grey 2-bit",
      { width: 4, height: 1, colorType: 0, depth: 2, samples: [0, 1, 2, 3] },
      grey([0, 85, 170, 255]),
    ],
    [
      "grey 4-bit",
      { width: 3, height: 1, colorType: 0, depth: 4, samples: [0, 7, 15] },
      grey([0, 119, 255]),
    ],
    [
      "grey 8-bit",
      { width: 2, height: 1, colorType: 0, depth: 8, samples: [9, 250] },
      grey([9, 250]),
    ],
    [
      "grey 16-bit",
      { width: 2, height: 1, colorType: 0, depth: 16, samples: [0x12ff, 0xfe01] },
      grey([0x12, 0xfe]),
    ],
    [
      "grey+alpha 8-bit (alpha dropped)",
      { width: 2, height: 1, colorType: 4, depth: 8, samples: [10, 0, 200, 128] },
      grey([10, 200]),
    ],
    [
      "grey+alpha 16-bit",
      { width: 1, height: 1, colorType: 4, depth: 16, samples: [0xabcd, 0x0001] },
      grey([0xab]),
    ],
    [
      "RGB 16-bit (high byte)",
      {
        width: 1,
        height: 2,
        colorType: 2,
        depth: 16,
        samples: [0x0102, 0x7fff, 0xff00, 0, 1, 65535],
      },
      [1, 0x7f, 0xff, 0, 0, 255],
    ],
    [
      "RGBA 8-bit (alpha dropped)",
      { width: 2, height: 1, colorType: 6, depth: 8, samples: [1, 2, 3, 0, 4, 5, 6, 255] },
      [1, 2, 3, 4, 5, 6],
    ],
    [
      "RGBA 16-bit",
      { width: 1, height: 1, colorType: 6, depth: 16, samples: [0x1000, 0x2000, 0x3000, 0] },
      [0x10, 0x20, 0x30],
    ],
    [
      "palette 2-bit with tRNS, index past the palette is black",
      {
        width: 5,
        height: 1,
        colorType: 3,
        depth: 2,
        samples: [0, 1, 2, 1, 3],
        palette: [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
        trns: new Uint8Array([0, 128]),
      },
      [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 0, 0, 0, 0],
    ],
    [
      "palette 8-bit, odd width over two rows",
      {
        width: 3,
        height: 2,
        colorType: 3,
        depth: 8,
        samples: [1, 0, 1, 0, 0, 1],
        palette: [[10, 20, 30], [40, 50, 60]],
      },
      [40, 50, 60, 10, 20, 30, 40, 50, 60, 10, 20, 30, 10, 20, 30, 40, 50, 60],
    ],
    [
      "palette 1-bit, 9 wide (row padding)",
      {
        width: 9,
        height: 2,
        colorType: 3,
        depth: 1,
        samples: [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        palette: [[0, 0, 0], [200, 100, 50]],
      },
      [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0].flatMap((
        i,
      ) => (i ? [200, 100, 50] : [0, 0, 0])),
    ],
  ];
  for (const [name, spec, rgb] of cases) {
    const { image, info } = decode(encodePng(spec));
    assertEquals([info.format, image.width, image.height], ["png", spec.width, spec.height], name);
    assertEquals(Array.from(image.data), rgb, name);
  }
});

Deno.test("decodeImage() applies a PNG eXIf orientation", () => {
  const png = encodePng({
    width: 3,
    height: 2,
    colorType: 0,
    depth: 8,
    samples: [0, 1, 2, 3, 4, 5],
    exif: tiffWithOrientation(6),
  });
  const { image, info } = decode(png);
  assertEquals(info.orientation, 6);
  assertEquals([image.width, image.height], [2, 3]);
  assertEquals(Array.from({ length: 6 }, (_, i) => image.data[3 * i]), [3, 0, 4, 1, 5, 2]);
});

Deno.test("decodeImage() reports corrupt and truncated JPEGs by kind", () => {
  assertKind(() => decode(DOCK.subarray(0, DOCK.length >> 1)), "image-truncated", "end-of-image");
  assertKind(() => decode(DOCK.subarray(0, 300)), "image-truncated", "header");
  const sos = DOCK.findIndex((v, i) => v === 0xff && DOCK[i + 1] === 0xda);
  const badTable = DOCK.slice();
  badTable[sos + 6] = 0x33; // scan refers to Huffman tables that do not exist
  assertKind(() => decode(badTable), "image-corrupt", "Huffman table");
  const scrambled = DOCK.slice();
  for (let i = sos + 20000; i < sos + 22000; i++) scrambled[i] = (i * 7919) & 0xff;
  assertKind(() => decode(scrambled), "image-corrupt", "Corrupt JPEG data");
  const badMarker = DOCK.slice();
  badMarker.set([0xff, 0x02], sos + 30000);
  assertKind(() => decode(badMarker), "image-corrupt", "marker");
  assertKind(() => decode(new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0, 0])), "image-corrupt");
  // The decoder is still usable after those failures.
  assertEquals(decode(DOCK).image.width, 2250);
});

Deno.test("decodeImage() rejects CMYK, 12-bit and non-image files as unsupported", () => {
  const sof = sofOffset(DOCK);
  const cmyk = DOCK.slice();
  cmyk[sof + 9] = 4;
  assertKind(() => decode(cmyk), "image-unsupported", "4 colour components");
  const twelve = DOCK.slice();
  twelve[sof + 4] = 12;
  assertKind(() => decode(twelve), "image-unsupported", "12-bit");
  assertKind(
    () => decode(new TextEncoder().encode("GIF89a....")),
    "image-unsupported",
    "47 49 46 38",
  );
  assertKind(() => decode(new Uint8Array()), "image-unsupported", "none");
});

Deno.test("decodeImage() reports corrupt and truncated PNGs by kind", () => {
  const rng = new Rng(4);
  const samples = Array.from({ length: 600 }, () => rng.int(256)); // incompressible IDAT
  const png = encodePng({ width: 20, height: 10, colorType: 2, depth: 8, samples });
  assertKind(() => decode(png.subarray(0, png.length - 20)), "image-truncated", "IDAT");
  assertKind(() => decode(png.subarray(0, png.length - 12)), "image-truncated", "IEND");
  const flipped = png.slice();
  flipped[png.length - 30]! ^= 0xff; // inside IDAT: CRC mismatch
  assertKind(() => decode(flipped), "image-corrupt", "PNG does not decode");
  const noIdat = concat([png.subarray(0, 33), png.subarray(png.length - 12)]);
  assertKind(() => decode(noIdat), "image-corrupt", "no IDAT");
  const noPalette = encodePng({ width: 2, height: 1, colorType: 3, depth: 8, samples: [0, 1] });
  assertKind(() => decode(noPalette), "image-corrupt", "no PLTE");
  const badSig = png.slice();
  badSig[5] = 0;
  assertKind(() => decode(badSig), "image-corrupt", "signature");
});

Deno.test("decodeImage() rejects oversized images from the header, before decoding", () => {
  const sof = sofOffset(DOCK);
  const huge = DOCK.slice();
  huge.set([0xea, 0x60, 0xea, 0x60], sof + 5); // 60000 x 60000
  const e = assertKind(() => decode(huge), "image-too-large", "60000x60000");
  assertEquals(e.key, "k");
  assertKind(() => decode(DOCK, 2250 * 1500 - 1), "image-too-large", "3375000 pixels");
  assertEquals(decode(DOCK, 2250 * 1500).image.height, 1500);
  // A PNG whose IHDR claims 100000 x 100000 but holds one pixel: never inflated.
  const png = encodePng({ width: 1, height: 1, colorType: 0, depth: 8, samples: [0] });
  png.set([0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0], 16);
  assertKind(() => decode(png), "image-too-large", "100000x100000");
  assertEquals(readImageInfo(png, where).width, 100000);
});

Deno.test("decodeImage() decodes WebP, drops alpha, and reports bad WebP by kind", () => {
  const rgba = new Uint8ClampedArray(5 * 3 * 4);
  for (let i = 0; i < rgba.length; i++) rgba[i] = i % 4 === 3 ? 40 + 13 * (i >> 2) : (i * 37) & 255;
  const webp = encodeWebp(rgba, 5, 3);
  const { image, info } = decode(webp);
  assertEquals(info, { format: "webp", width: 5, height: 3, orientation: 1 });
  // Lossless and every alpha non-zero, so RGB survives exactly; alpha is dropped.
  const rgb = Array.from(rgba).filter((_, i) => i % 4 !== 3);
  assertEquals(Array.from(image.data), rgb);
  assertKind(() => decode(webp.subarray(0, webp.length - 5)), "image-truncated", "RIFF header");
  const corrupt = webp.slice();
  for (let i = 25; i < corrupt.length; i++) corrupt[i]! ^= 0x5a;
  assertKind(() => decode(corrupt), "image-corrupt", "WebP does not decode");
  const huge = webp.slice();
  // VP8L header: 14-bit width-1 and height-1 after the 0x2f signature.
  const bits = (16383) | (16383 << 14);
  huge.set([
    bits & 255,
    (bits >> 8) & 255,
    (bits >> 16) & 255,
    ((bits >>> 24) & 0x0f) | (huge[24]! & 0xf0),
  ], 21);
  assertKind(() => decode(huge), "image-too-large", "16384x16384");
});

Deno.test("decodeImage() survives random damage to JPEG, PNG and WebP files", () => {
  // Every damaged file either decodes to an image of its header's size or throws a
  // SampleError; nothing else escapes and nothing hangs.
  const rng = new Rng(17);
  const w = 37, h = 29;
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < rgba.length; i++) rgba[i] = i % 4 === 3 ? 255 : rng.int(256);
  const rgb = Array.from(rgba).filter((_, i) => i % 4 !== 3);
  const files = {
    jpeg: encodeJpeg(rgba, w, h),
    png: encodePng({ width: w, height: h, colorType: 2, depth: 8, samples: rgb }),
    webp: encodeWebp(rgba, w, h),
  };
  const kinds = new Map<string, number>();
  for (const [format, original] of Object.entries(files)) {
    assertEquals(decode(original).image.width, w, format);
    for (let t = 0; t < 150; t++) {
      let bytes = original.slice();
      if (t % 3 === 0) bytes = bytes.subarray(0, rng.int(bytes.length));
      const flips = 1 + rng.int(8);
      for (let f = 0; f < flips && bytes.length > 0; f++) {
        bytes[rng.int(bytes.length)] = rng.int(256);
      }
      try {
        const { image, info } = decode(bytes);
        const swap = info.orientation >= 5;
        assertEquals(
          [image.width, image.height],
          swap ? [info.height, info.width] : [info.width, info.height],
        );
      } catch (e) {
        assert(e instanceof SampleError, `${format} damage ${t}: ${e}`);
        kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
      }
    }
  }
  assert((kinds.get("image-corrupt") ?? 0) > 0 && (kinds.get("image-truncated") ?? 0) > 0);
});

Deno.test("rgbaToRgb() drops alpha for every pixel count and alignment", () => {
  const rng = new Rng(11);
  for (let n = 0; n <= 13; n++) {
    for (const offset of [0, 1, 4]) {
      const buf = new Uint8Array(offset + n * 4);
      for (let i = 0; i < buf.length; i++) buf[i] = rng.nextU32() & 255;
      const rgba = buf.subarray(offset);
      const want = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) want.set(rgba.subarray(4 * i, 4 * i + 3), 3 * i);
      assertEquals(rgbaToRgb(rgba, n), want, `n=${n} offset=${offset}`);
    }
  }
  assertThrows(() => rgbaToRgb(new Uint8Array(7), 2), RangeError, "2 RGBA pixels from 7 bytes");
});
