import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import type { RgbImage } from "../../src/data/formats/image.ts";
import {
  bicubicKernel,
  bicubicWeights,
  type CropRect,
  resizeBicubic,
} from "../../src/data/pipeline/resize.ts";
import { Rng } from "../../src/util/rng.ts";
import { decodeImage } from "../../src/data/formats/image.ts";
import { instantiateResample, resampleModuleBytes } from "../../src/data/pipeline/resample_wasm.ts";
import { assertThrows, DOCK_JPG } from "./sample_fixtures.ts";

function randomImage(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 255;
  return { width, height, data };
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Independent float64 reference of the formula (not the module's code): per output pixel i,
 * center c = (i + 0.5) * in/out, support 2 * max(in/out, 1), taps j in
 * [round(c - support), round(c + support)) clipped to the input, weight
 * K((j + 0.5 - c) / max(in/out, 1)) with the a = -0.5 Keys cubic, normalised; horizontal
 * pass rounded to 8 bits, then vertical pass rounded to 8 bits (no fixed point).
 */
function referenceResize(img: RgbImage, crop: CropRect, outW: number, outH: number): Uint8Array {
  const keys = (x: number) => {
    const t = Math.abs(x);
    if (t < 1) return 1.5 * t ** 3 - 2.5 * t ** 2 + 1;
    if (t < 2) return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2;
    return 0;
  };
  const taps = (inSize: number, outSize: number) =>
    Array.from({ length: outSize }, (_, i) => {
      const scale = inSize / outSize;
      const fs = Math.max(scale, 1);
      const c = (i + 0.5) * scale;
      const lo = Math.max(Math.trunc(c - 2 * fs + 0.5), 0);
      const hi = Math.min(Math.trunc(c + 2 * fs + 0.5), inSize);
      const w: [number, number][] = [];
      for (let j = lo; j < hi; j++) w.push([j, keys((j + 0.5 - c) / fs)]);
      const sum = w.reduce((s, [, v]) => s + v, 0);
      return w.map(([j, v]) => [j, v / sum] as [number, number]);
    });
  const round8 = (v: number) => Math.min(255, Math.max(0, Math.floor(v + 0.5)));
  const hx = taps(crop.width, outW);
  const vy = taps(crop.height, outH);
  const mid = new Float64Array(crop.height * outW * 3);
  for (let y = 0; y < crop.height; y++) {
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (const [j, w] of hx[x]!) {
          s += w * img.data[((crop.top + y) * img.width + crop.left + j) * 3 + c]!;
        }
        mid[(y * outW + x) * 3 + c] = outW === crop.width ? s : round8(s);
      }
    }
  }
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW * 3; x++) {
      let s = 0;
      for (const [j, w] of vy[y]!) s += w * mid[j * outW * 3 + x]!;
      out[y * outW * 3 + x] = outH === crop.height ? mid[y * outW * 3 + x]! : round8(s);
    }
  }
  return out;
}

Deno.test("bicubicKernel() is the a = -0.5 Keys cubic at hand-computed points", () => {
  assertEquals(
    [0, 0.25, 0.5, 1, 1.25, 1.5, 2, 2.5].map((x) => bicubicKernel(x) + 0), // + 0: -0 to 0
    [1, 0.8671875, 0.5625, 0, -0.0703125, -0.0625, 0, 0],
  );
  assertEquals(bicubicKernel(-0.5), 0.5625);
});

Deno.test("bicubicWeights() scales the support by the downscale factor (4 -> 2)", () => {
  // Output 0: center 1, support 4, taps 0..3 at distances (x + 0.5 - 1) / 2.
  const w = bicubicWeights(4, 2);
  const raw = [0.8671875, 0.8671875, 0.2265625, -0.0703125];
  const sum = raw.reduce((a, b) => a + b);
  assertEquals(Array.from(w.bounds), [0, 4, 0, 4]);
  assertEquals(w.ksize, 9);
  assertEquals(Array.from(w.weights.subarray(0, 4)), raw.map((v) => v / sum));
  assertEquals(Array.from(w.weights.subarray(9, 13)), raw.reverse().map((v) => v / sum));
});

Deno.test("bicubicWeights() keeps support 2 when enlarging (2 -> 4) and renormalises edges", () => {
  const w = bicubicWeights(2, 4);
  // Output 0: center 0.25, taps 0 and 1 at distances 0.25 and 1.25.
  const sum = 0.8671875 - 0.0703125;
  assertEquals(Array.from(w.bounds.subarray(0, 2)), [0, 2]);
  assertEquals(Array.from(w.weights.subarray(0, 2)), [0.8671875 / sum, -0.0703125 / sum]);
});

Deno.test("resizeBicubic() gives hand-computed pixels for 4x1 -> 2x1 and 2x1 -> 4x1", () => {
  const row = (v: number[]) => ({
    width: v.length,
    height: 1,
    data: new Uint8Array(v.flatMap((x) => [x, x, x])),
  });
  // (0*.8671875 + 100*.8671875 + 200*.2265625 - 255*.0703125) / 1.890625 = 60.35
  // (0*-.0703125 + 100*.2265625 + 200*.8671875 + 255*.8671875) / 1.890625 = 220.68
  assertEquals(
    Array.from(resizeBicubic(row([0, 100, 200, 255]), { width: 2, height: 1 }).data),
    [60, 60, 60, 221, 221, 221],
  );
  // Enlarging [100, 200]: (100*.8671875 - 200*.0703125)/.796875 = 91.18, mirrored 208.82;
  // the middle pixels: center 0.75 and 1.25.
  const up = resizeBicubic(row([100, 200]), { width: 4, height: 1 }).data;
  assertEquals([up[0], up[9]], [91, 209]);
});

for (const engine of ["simd", "js"] as const) {
  Deno.test(`resizeBicubic() (${engine}) matches the float64 formula within 1 level on random images`, () => {
    const cases: [number, number, number, number, CropRect | null][] = [
      [37, 23, 16, 29, null],
      [41, 19, 83, 7, null],
      [120, 90, 61, 61, { left: 7, top: 3, width: 101, height: 80 }],
      [33, 33, 33, 12, null],
      [9, 200, 30, 41, { left: 1, top: 50, width: 8, height: 121 }],
    ];
    for (const [w, h, ow, oh, crop] of cases) {
      const img = randomImage(w, h, w * 1000 + h);
      const c = crop ?? { left: 0, top: 0, width: w, height: h };
      const got = resizeBicubic(img, { width: ow, height: oh, crop: c, engine }).data;
      const want = referenceResize(img, c, ow, oh);
      let off = 0;
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i]! - want[i]!);
        // PIL's 22-bit fixed-point weights move sums by < 1e-3, which flips a rounding only
        // when the float result is within 1e-3 of a half: rare, and never by more than 1.
        assert(d <= 1, `${w}x${h}->${ow}x${oh} pixel ${i}: ${got[i]} vs ${want[i]}`);
        off += d;
      }
      assert(off <= got.length * 0.001, `${off} of ${got.length} values differ by 1`);
    }
  });

  Deno.test(`resizeBicubic() (${engine}) is bit-exact with Pillow 9.4 Image.resize(BICUBIC)`, async () => {
    // Digests of Pillow 9.4.0's `Image.fromarray(a).crop(box).resize((ow, oh), BICUBIC)` on the
    // same Rng-generated inputs (computed once with Debian's python3-pil).
    const cases: [number, number, number, number, number, CropRect | null, string][] = [
      [1, 97, 61, 40, 23, null, "2507008b159a5d410d5c0a8b16c1bcf2de86e3a74c4da19964fa36d975eb5db5"],
      [
        2,
        53,
        71,
        128,
        90,
        null,
        "e634d5747d1db37874a8cd1fdc7902610ad9eca8ae2b0192ee2d872eae37c44d",
      ],
      [
        3,
        120,
        80,
        67,
        67,
        { left: 9, top: 4, width: 103, height: 71 },
        "4f5567707a226aaae2fc9e9e1626aff2618c87a6b2fa8284e8d3cef35f88cf23",
      ],
      [4, 64, 64, 64, 31, null, "f836c63bf8f9112ee39cbd92b3b76f0387f1aacecb1f6acb1c2f82379c3d9dd4"],
      [
        5,
        31,
        200,
        7,
        333,
        { left: 2, top: 50, width: 29, height: 141 },
        "9b9622c6945fe2c0f9900a85c45d17a3984c4f118d5016251fa495273d55ae01",
      ],
    ];
    for (const [seed, w, h, ow, oh, crop, digest] of cases) {
      const rng = new Rng(seed);
      const data = new Uint8Array(w * h * 3);
      for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 255;
      const out = resizeBicubic({ width: w, height: h, data }, {
        width: ow,
        height: oh,
        crop: crop ?? undefined,
        engine,
      });
      assertEquals(await sha256(out.data), digest, `case ${seed}`);
    }
  });

  Deno.test(`resizeBicubic() (${engine}) is bit-exact with Pillow 12.3 on the photo at loader sizes`, async () => {
    // Digests of `numpy.asarray(Image.open("dock.jpg").convert("RGB").crop(box)
    // .resize((w, h), Image.BICUBIC))`, Pillow 12.3.0: a training crop enlarged along y (the
    // unrolled 4-tap vertical pass), the evaluation squash, a 378 downscale (longer taps).
    const { image } = decodeImage(await Deno.readFile(DOCK_JPG), {
      file: "dock.jpg",
      maxPixels: 1e8,
    });
    const cases: [CropRect, [number, number], string][] = [
      [
        { left: 50, top: 30, width: 2100, height: 1420 },
        [1512, 1512],
        "ba74d3b11b9fd11b574159b1885718f18ecdf475b7e0f1ac8f79b445f635cd2d",
      ],
      [
        { left: 0, top: 0, width: 2250, height: 1500 },
        [1512, 1512],
        "f8152642562e67303a4387501e8404c8138e01535bd17e87ce30b7eb9af90c02",
      ],
      [
        { left: 101, top: 7, width: 2100, height: 1490 },
        [378, 378],
        "6344070aef1b111a1197705214c887026c21691c7647a57664abccb6b0352778",
      ],
      // Only the height changes (vertical pass on the source), then only the width.
      [
        { left: 3, top: 5, width: 2100, height: 1490 },
        [2100, 700],
        "ccf357e848502e28a45873ca16573abee05964433d34c3e4df08151cde9b6e95",
      ],
      [
        { left: 3, top: 5, width: 2100, height: 1490 },
        [999, 1490],
        "9fce77e44d4162640477bf7b98e67b0a00b97895e764df746c87775a237be067",
      ],
    ];
    for (const [crop, [width, height], digest] of cases) {
      const out = resizeBicubic(image, { width, height, crop, engine });
      assertEquals(await sha256(out.data), digest, JSON.stringify(crop));
    }
  });
}

Deno.test("instantiateResample() gives the SIMD module here, so the simd tests run it", () => {
  assert(WebAssembly.validate(resampleModuleBytes()));
  assert(instantiateResample() !== null);
});

Deno.test("resizeBicubic() simd and js engines give the same bytes on odd sizes in turn", () => {
  // Alternating large and tiny resizes reuse the module's memory with stale slack bytes.
  const rng = new Rng(17);
  for (let i = 0; i < 60; i++) {
    const big = i % 3 === 0;
    const w = 1 + rng.int(big ? 300 : 9), h = 1 + rng.int(big ? 200 : 9);
    const img = randomImage(w, h, 100 + i);
    const cw = 1 + rng.int(w), ch = 1 + rng.int(h);
    const crop = { left: rng.int(w - cw + 1), top: rng.int(h - ch + 1), width: cw, height: ch };
    const size = { width: 1 + rng.int(big ? 400 : 20), height: 1 + rng.int(big ? 300 : 20), crop };
    const a = resizeBicubic(img, { ...size, engine: "simd" }).data;
    const b = resizeBicubic(img, { ...size, engine: "js" }).data;
    assertEquals(a, b, `${w}x${h} ${JSON.stringify(size)}`);
  }
});

Deno.test("resizeBicubic() copies when the size does not change, cropping exactly", () => {
  const img = randomImage(13, 11, 5);
  assertEquals(resizeBicubic(img, { width: 13, height: 11 }).data, img.data);
  const crop = { left: 3, top: 2, width: 6, height: 5 };
  const out = resizeBicubic(img, { width: 6, height: 5, crop });
  for (let y = 0; y < 5; y++) {
    const s = ((y + 2) * 13 + 3) * 3;
    assertEquals(out.data.subarray(y * 18, y * 18 + 18), img.data.subarray(s, s + 18));
  }
});

Deno.test("resizeBicubic() rejects crops outside the image and empty sizes", () => {
  const img = randomImage(8, 8, 1);
  assertThrows(
    () =>
      resizeBicubic(img, { width: 4, height: 4, crop: { left: 4, top: 0, width: 5, height: 8 } }),
    RangeError,
    "from a 8x8 image",
  );
  assertThrows(() => resizeBicubic(img, { width: 0, height: 4 }), RangeError, "0x4");
});
