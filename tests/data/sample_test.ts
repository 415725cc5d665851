import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { filterKeywords } from "../../src/data/pipeline/annotations.ts";
import {
  type PreparedSample,
  prepareSample,
  type SampleOptions,
} from "../../src/data/pipeline/sample.ts";
import { Tokenizer } from "../../src/data/formats/tokenizer.ts";
import { Rng } from "../../src/util/rng.ts";
import {
  assertKind,
  DOCK_JPG,
  encodePng,
  letterTokenizerJson,
  tiffWithOrientation,
  withJpegExif,
} from "./sample_fixtures.ts";

const DOCK = Deno.readFileSync(DOCK_JPG);
const tok = Tokenizer.fromJson(letterTokenizerJson());
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

const OPTS: SampleOptions = {
  imageSize: 378,
  train: true,
  globalCaptionProb: 0,
  sampleNBoxEachImage: 1,
  sentenceMasking: false,
  maxPixels: 50_000_000,
  contextLength: 16,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

/** A box around the green hull of the photo, in its stored pixels. */
const HULL = {
  text: ["The image is a close-up of a green boat. No text is visible."],
  box: [[700, 880, 1500, 1100]],
  global_text: "A harbour.",
};

function input(jsonBytes: Uint8Array, imageBytes: Uint8Array = DOCK) {
  return {
    key: "00000042",
    imageName: "00000042.jpg",
    imageBytes,
    jsonName: "00000042.json",
    jsonBytes,
  };
}

/** Undoes (v / 255 - 0.5) / 0.5 and returns HWC bytes. */
function bytesOf(s: PreparedSample, size: number): Uint8Array {
  const n = size * size;
  const out = new Uint8Array(n * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      out[i * 3 + c] = Math.round((s.image[c * n + i]! * 0.5 + 0.5) * 255);
    }
  }
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The rows and columns where the map is 1, as [r0, r1, c0, c1], checking it is a rectangle. */
function rectOf(map: Uint8Array, size: number): [number, number, number, number] {
  let r0 = size, r1 = -1, c0 = size, c1 = -1, ones = 0;
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      if (!map[r * size + c]) continue;
      ones++;
      [r0, r1, c0, c1] = [Math.min(r0, r), Math.max(r1, r), Math.min(c0, c), Math.max(c1, c)];
    }
  }
  assertEquals(ones, (r1 - r0 + 1) * (c1 - c0 + 1), "box map is not one rectangle");
  return [r0, r1, c0, c1];
}

Deno.test("prepareSample() crops and resizes the real photo with its box as the reference", async () => {
  const s = prepareSample(input(enc(HULL)), tok, OPTS, new Rng(1));
  assertEquals([s.key, s.isGlobal, s.image.length, s.boxMap.length], [
    "00000042",
    false,
    3 * 378 * 378,
    378 * 378,
  ]);
  // A 3:2 photo always takes torchvision's fallback crop: 2000x1500 at (125, 0). Pillow 9.4:
  // Image.open(dock).convert("RGB").crop((125, 0, 2125, 1500)).resize((378, 378), BICUBIC).
  assertEquals(
    await sha256(bytesOf(s, 378)),
    "170ddabb259e67bbb576e03a0ac6307e65e5528cfd2d57abfe8c95a49db01a7e",
  );
  // Box (700, 880, 1500, 1100): x -> trunc((x - 125) * f32(378/2000)), y -> trunc(y * f32(378/1500))
  // = (108, 221, 259, 277); the map covers rows 221..277 and columns 108..259.
  assertEquals(rectOf(s.boxMap, 378), [221, 277, 108, 259]);
  // Content: the box centre is the green hull, the top-left is blue sky.
  const px = (x: number, y: number) => [0, 1, 2].map((c) => s.image[c * 378 * 378 + y * 378 + x]!);
  const [r, g, b] = px(183, 249);
  assert(g! > r! + 0.5 && g! > b! + 0.5, `hull pixel ${[r, g, b]}`);
  const [sr, , sb] = px(20, 10);
  assert(sb! > sr! + 0.2, `sky pixel ${px(20, 10)}`);
  // Tokens: the filtered caption, "</s>", padding.
  assertEquals(Array.from(s.tokens), Array.from(tok.encode(filterKeywords(HULL.text[0]!), 16)));
  assertEquals(Array.from(s.tokens.slice(0, 5)), [45, 41, 40, 1, 0]); // ▁a ▁green ▁boat </s> <pad>
});

Deno.test("prepareSample() squash-resizes the whole image for evaluation", async () => {
  const s = prepareSample(input(enc(HULL)), tok, { ...OPTS, train: false }, new Rng(1));
  // Pillow 9.4: Image.open(dock).convert("RGB").resize((378, 378), BICUBIC).
  assertEquals(
    await sha256(bytesOf(s, 378)),
    "b45b4704b50705837189c1be41c77b8b082845037b30c5964ec53360730460b2",
  );
  assertEquals(rectOf(s.boxMap, 378), [221, 277, 117, 252]);
});

Deno.test("prepareSample() rotates image and boxes by the EXIF orientation together", async () => {
  const rotated = withJpegExif(DOCK, tiffWithOrientation(6));
  const s = prepareSample(input(enc(HULL), rotated), tok, { ...OPTS, train: false }, new Rng(1));
  // Pillow 9.4: ...convert("RGB").transpose(ROTATE_270).resize((378, 378), BICUBIC), which is
  // what ImageOps.exif_transpose does for orientation 6.
  assertEquals(
    await sha256(bytesOf(s, 378)),
    "56807a5777a9fb6ccf169e46e3e50662f80ac130a1d352dfd516f716a89fd675",
  );
  // Stored box (700, 880, 1500, 1100) is displayed at x 400..620, y 700..1500 of 1500x2250.
  assertEquals(rectOf(s.boxMap, 378), [117, 252, 100, 156]);
});

Deno.test("prepareSample() uses the whole image as the global caption's box", () => {
  const s = prepareSample(input(enc(HULL)), tok, { ...OPTS, globalCaptionProb: 1 }, new Rng(3));
  assert(s.isGlobal);
  assert(s.boxMap.every((v) => v === 1));
  assertEquals(Array.from(s.tokens), Array.from(tok.encode("A harbour.", 16)));
});

Deno.test("prepareSample() is deterministic given the Rng and varies with it", () => {
  const rng = new Rng(0);
  const samples = Array.from({ length: 40 * 36 }, () => rng.int(256));
  // Nearly square, so the random crop varies (a 3:2 image always takes the fallback).
  const png = encodePng({ width: 40, height: 36, colorType: 0, depth: 8, samples });
  const json = enc({
    text: ["A boat. The dock. The sky. A harbour.", "Green. A. B."],
    box: [[1, 1, 20, 20], [10, 5, 39, 35]],
    global_text: "The sky.",
  });
  const opts = { ...OPTS, imageSize: 24, sentenceMasking: true, globalCaptionProb: 0.3 };
  const run = (seed: number) => prepareSample(input(json, png), tok, opts, new Rng(seed));
  assertEquals(run(7), run(7));
  const distinct = new Set(
    Array.from({ length: 20 }, (_, i) => {
      const s = run(i);
      return `${s.tokens.join(",")}|${s.boxMap.join("")}|${s.image.slice(0, 50).join(",")}`;
    }),
  );
  assert(distinct.size >= 15, `only ${distinct.size} distinct samples of 20 seeds`);
});

Deno.test("prepareSample() errors name the sample key, the file and the reason", () => {
  const e = assertKind(
    () => prepareSample(input(enc(HULL), DOCK.subarray(0, 5000)), tok, OPTS, new Rng(0)),
    "image-truncated",
  );
  assert(e.message.startsWith('Cannot use sample "00000042" (00000042.jpg): '), e.message);
  const j = assertKind(
    () => prepareSample(input(enc({ text: ["a"], box: [[5, 5, 1, 1]] })), tok, OPTS, new Rng(0)),
    "box-invalid",
  );
  assertEquals([j.key, j.file], ["00000042", "00000042.json"]);
  assertKind(
    () =>
      prepareSample(input(enc({ text: ["a"], box: [[3000, 0, 3100, 10]] })), tok, OPTS, new Rng(0)),
    "box-out-of-range",
    "2250x1500",
  );
  assertKind(
    () => prepareSample(input(enc(HULL)), tok, { ...OPTS, maxPixels: 1_000_000 }, new Rng(0)),
    "image-too-large",
  );
});

Deno.test("prepareSample() reports repairs: clipped boxes and dropped captions", () => {
  const json = enc({
    text: ["A boat.", "[Error] No caption found!"],
    box: [[-10, 0, 2300, 100], [0, 0, 5, 5]],
  });
  const s = prepareSample(input(json), tok, { ...OPTS, train: false }, new Rng(0));
  assertEquals(s.repairs.sort(), ["box-clipped", "caption-error-marker-dropped"]);
  // The clipped box spans the full width: columns 0..377, rows 0..trunc(100 * 0.252) = 25.
  assertEquals(rectOf(s.boxMap, 378), [0, 25, 0, 377]);
});
