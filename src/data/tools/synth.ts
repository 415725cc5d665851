/**
 * A synthetic PS3 dataset: coloured shapes at known places on muted backgrounds, with a
 * local caption and pixel box per shape and a global caption per image, written as the
 * reference's two paired webdatasets (`images/`, `text_boxes/`) plus held-out shards and a
 * SentencePiece-Unigram `tokenizer.json` whose vocabulary covers every caption word.
 *
 * Everything is a pure function of the seed: the same options write byte-identical files.
 *
 * @module
 */

import { join } from "node:path";
import { TarWriter } from "../formats/tar.ts";
import { deriveRng } from "../pipeline/shards.ts";
import type { Rng } from "../../util/rng.ts";
import { encodePng } from "../formats/png.ts";

const ENC = new TextEncoder();

// ---------------------------------------------------------------------------------------
// Scenes

/** Shape colours with their names. */
export const COLORS: Record<string, [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [240, 210, 40],
  orange: [245, 140, 30],
  purple: [140, 60, 180],
  white: [245, 245, 245],
  black: [20, 20, 20],
};

/** Background colours with their names. */
export const BACKGROUNDS: Record<string, [number, number, number]> = {
  grey: [128, 128, 128],
  "light grey": [190, 190, 190],
  "dark grey": [64, 64, 64],
  beige: [200, 185, 150],
  brown: [110, 80, 60],
};

/** Shape kinds drawn. */
export const SHAPES = ["circle", "square", "triangle", "diamond", "star"] as const;

/** A shape kind. */
export type ShapeKind = typeof SHAPES[number];

/** One drawn shape. */
export interface SceneShape {
  /** Kind. */
  shape: ShapeKind;
  /** Colour name (a key of {@link COLORS}). */
  color: string;
  /** "small" or "large". */
  size: "small" | "large";
  /** Where it lies, in a 3x3 grid of the image ("top left", "center", ...). */
  place: string;
  /** Tight pixel box `[x1, y1, x2, y2]` (x2, y2 exclusive). */
  box: [number, number, number, number];
}

/** A rendered image with its shapes and captions. */
export interface Scene {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** RGB pixels, row-major. */
  pixels: Uint8Array;
  /** Background colour name. */
  background: string;
  /** The shapes, in drawing order. */
  shapes: SceneShape[];
  /** One local caption per shape. */
  text: string[];
  /** The global caption. */
  globalText: string;
}

const ASPECTS = [1, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16];
const NUMBERS = ["one", "two", "three", "four"];
const PLACES = [
  ["top left", "top", "top right"],
  ["left", "center", "right"],
  ["bottom left", "bottom", "bottom right"],
];

const LOCAL_TEMPLATES = [
  "{a} {color} {shape}.",
  "a {size} {color} {shape}.",
  "the {color} {shape}.",
  "there is {a} {color} {shape} here.",
  "a close view of a {size} {color} {shape}.",
  "this part of the image shows {a} {color} {shape} on a {bg} background.",
];

/** Where a shape is, as a phrase, for each cell of a 3x3 grid. */
const AT: Record<string, string> = {
  "top left": "at the top left",
  top: "at the top",
  "top right": "at the top right",
  left: "on the left",
  center: "in the center",
  right: "on the right",
  "bottom left": "at the bottom left",
  bottom: "at the bottom",
  "bottom right": "at the bottom right",
};

const GLOBAL_TEMPLATES = [
  "an image of {count} on a {bg} background: {list}.",
  "{count} on a {bg} background. {list}.",
  "a picture with {list}.",
];

function fill(t: string, v: Record<string, string>): string {
  return t.replace(/\{(\w+)\}/g, (_, k: string) => v[k] ?? "");
}

function pick<T>(rng: Rng, a: readonly T[]): T {
  return a[rng.int(a.length)]!;
}

function shapeCount(n: number): string {
  return `${NUMBERS[n - 1]} shape${n === 1 ? "" : "s"}`;
}

/**
 * Every word the captions can use (lower case, without punctuation): the vocabulary the
 * synthetic tokenizer needs.
 *
 * @returns The words, sorted.
 */
export function captionWords(): string[] {
  const words = new Set<string>();
  const add = (s: string) => {
    for (const w of s.toLowerCase().replace(/[^a-z ]/g, " ").split(/\s+/)) if (w) words.add(w);
  };
  for (const t of [...LOCAL_TEMPLATES, ...GLOBAL_TEMPLATES]) add(t.replace(/\{\w+\}/g, " "));
  for (const s of [...Object.keys(COLORS), ...Object.keys(BACKGROUNDS), ...SHAPES]) add(s);
  for (const s of [...Object.values(AT), ...NUMBERS, "a an small large shape shapes and"]) add(s);
  return [...words].sort();
}

function insidePolygon(px: number, py: number, poly: [number, number][]): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!, [xj, yj] = poly[j]!;
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function shapeTest(
  kind: ShapeKind,
  cx: number,
  cy: number,
  r: number,
): (x: number, y: number) => boolean {
  switch (kind) {
    case "circle":
      return (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
    case "square":
      return (x, y) => Math.abs(x - cx) <= r * 0.85 && Math.abs(y - cy) <= r * 0.85;
    case "diamond":
      return (x, y) => Math.abs(x - cx) / (r * 0.8) + Math.abs(y - cy) / r <= 1;
    case "triangle": {
      const poly: [number, number][] = [[cx, cy - r], [cx - r, cy + r * 0.8], [
        cx + r,
        cy + r * 0.8,
      ]];
      return (x, y) => insidePolygon(x, y, poly);
    }
    case "star": {
      const poly: [number, number][] = [];
      for (let k = 0; k < 10; k++) {
        const a = -Math.PI / 2 + (k * Math.PI) / 5;
        const rr = k % 2 === 0 ? r : r * 0.45;
        poly.push([cx + rr * Math.cos(a), cy + rr * Math.sin(a)]);
      }
      return (x, y) => insidePolygon(x, y, poly);
    }
  }
}

/**
 * Renders one scene.
 *
 * @param rng Randomness (consumed).
 * @param options Image area: the image has about `width * height` pixels and, unless
 *   `fixedSize`, a random aspect ratio among 1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16.
 * @returns The scene.
 * @example
 * ```ts
 * const scene = renderScene(new Rng(1), { width: 160, height: 120 });
 * scene.text[0]; // e.g. "a large red circle."
 * ```
 */
export function renderScene(
  rng: Rng,
  options: { width: number; height: number; fixedSize?: boolean | undefined },
): Scene {
  let { width, height } = options;
  if (!options.fixedSize) {
    const area = width * height;
    const ratio = pick(rng, ASPECTS);
    width = Math.max(16, Math.round(Math.sqrt(area * ratio)));
    height = Math.max(16, Math.round(Math.sqrt(area / ratio)));
  }
  const bgName = pick(rng, Object.keys(BACKGROUNDS));
  const bg = BACKGROUNDS[bgName]!;
  const pixels = new Uint8Array(width * height * 3);
  const tilt = rng.uniform(-20, 20);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const shade = tilt * (y / height - 0.5) + rng.uniform(-6, 6);
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) pixels[o + c] = clampByte(bg[c]! + shade);
    }
  }
  // Shape colours that stand out from this background.
  const colors = Object.keys(COLORS).filter((c) => contrast(COLORS[c]!, bg) > 90);
  const want = 1 + rng.int(4);
  const minSide = Math.min(width, height);
  const shapes: SceneShape[] = [];
  for (let tries = 0; tries < 60 && shapes.length < want; tries++) {
    const large = rng.next() < 0.5;
    const r = minSide * (large ? rng.uniform(0.16, 0.24) : rng.uniform(0.07, 0.12));
    const cx = rng.uniform(r + 1, width - r - 1);
    const cy = rng.uniform(r + 1, height - r - 1);
    const near = shapes.some((s) => {
      const [x1, y1, x2, y2] = s.box;
      return cx + r + 2 > x1 && cx - r - 2 < x2 && cy + r + 2 > y1 && cy - r - 2 < y2;
    });
    if (near || r < 3) continue;
    const shape = pick(rng, SHAPES);
    const color = pick(rng, colors);
    const rgb = COLORS[color]!;
    const inside = shapeTest(shape, cx, cy, r);
    let x1 = width, y1 = height, x2 = -1, y2 = -1;
    for (
      let y = Math.max(0, Math.floor(cy - r));
      y < Math.min(height, Math.ceil(cy + r) + 1);
      y++
    ) {
      for (
        let x = Math.max(0, Math.floor(cx - r));
        x < Math.min(width, Math.ceil(cx + r) + 1);
        x++
      ) {
        if (!inside(x + 0.5, y + 0.5)) continue;
        const o = (y * width + x) * 3;
        pixels[o] = rgb[0];
        pixels[o + 1] = rgb[1];
        pixels[o + 2] = rgb[2];
        x1 = Math.min(x1, x), y1 = Math.min(y1, y), x2 = Math.max(x2, x), y2 = Math.max(y2, y);
      }
    }
    if (x2 < 0) continue;
    const place = PLACES[Math.min(2, Math.floor((3 * cy) / height))]![
      Math.min(2, Math.floor((3 * cx) / width))
    ]!;
    shapes.push({
      shape,
      color,
      size: large ? "large" : "small",
      place,
      box: [x1, y1, x2 + 1, y2 + 1],
    });
  }
  const text = shapes.map((s) =>
    fill(pick(rng, LOCAL_TEMPLATES), {
      a: article(s.color),
      color: s.color,
      shape: s.shape,
      size: s.size,
      bg: bgName,
    })
  );
  const phrases = shapes.map((s) => `${article(s.color)} ${s.color} ${s.shape} ${AT[s.place]}`);
  const list = phrases.length === 1
    ? phrases[0]!
    : `${phrases.slice(0, -1).join(", ")} and ${phrases[phrases.length - 1]}`;
  const globalText = fill(pick(rng, GLOBAL_TEMPLATES), {
    count: shapeCount(shapes.length),
    bg: bgName,
    list,
  });
  return {
    width,
    height,
    pixels,
    background: bgName,
    shapes,
    text,
    globalText: globalText[0]!.toUpperCase() + globalText.slice(1),
  };
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

function clampByte(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

function contrast(a: [number, number, number], b: [number, number, number]): number {
  return Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]);
}

// ---------------------------------------------------------------------------------------
// Tokenizer

/**
 * A Hugging Face `tokenizer.json` with a SentencePiece-Unigram model in the T5/SigLIP layout:
 * ids 0 `<pad>`, 1 `</s>`, 2 `<unk>`, then `▁`, one piece `▁word` per given word, then
 * letters and digits (so any other lower-case word still tokenizes); a Metaspace pre-tokenizer and
 * decoder, a post-processor that appends `</s>`, and padding with `</s>` as SigLIP pads.
 *
 * @param words Words to give whole-word pieces (lower case).
 * @returns The tokenizer.json object (serialise with `JSON.stringify`).
 * @example
 * ```ts
 * const tok = unigramTokenizerJson(["a", "red", "circle"]);
 * tok.model.vocab[0]; // ["<pad>", 0]
 * ```
 */
export function unigramTokenizerJson(
  words: Iterable<string>,
): {
  model: { type: "Unigram"; unk_id: number; vocab: [string, number][]; byte_fallback: boolean };
} & Record<string, unknown> {
  const special = ["<pad>", "</s>", "<unk>"];
  const vocab: [string, number][] = special.map((t) => [t, 0]);
  const seen = new Set<string>(special);
  const add = (piece: string, score: number) => {
    if (!seen.has(piece)) {
      seen.add(piece);
      vocab.push([piece, score]);
    }
  };
  add("\u2581", -6);
  for (const w of [...words].sort()) add(`\u2581${w}`, -2 - 0.001 * w.length);
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") add(c, -10);
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") add(`\u2581${c}`, -9);
  const addedToken = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    // SigLIP pads with "</s>" (id 1), as open_clip's SigLIP tokenizer does.
    padding: {
      strategy: "BatchLongest",
      direction: "Right",
      pad_to_multiple_of: null,
      pad_id: 1,
      pad_type_id: 0,
      pad_token: "</s>",
    },
    added_tokens: special.map((t, i) => addedToken(i, t)),
    normalizer: null,
    pre_tokenizer: {
      type: "Metaspace",
      replacement: "\u2581",
      prepend_scheme: "always",
      split: true,
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
      ],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    decoder: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true },
    model: { type: "Unigram", unk_id: 2, vocab, byte_fallback: false },
  };
}

// ---------------------------------------------------------------------------------------
// Dataset

/** Options of {@link writeSynthDataset}. */
export interface SynthOptions {
  /** Training samples (default 512). */
  count?: number | undefined;
  /** Held-out samples, written to separate shards (default 64; 0 for none). */
  holdout?: number | undefined;
  /** Base image size: area `width * height` (default 256x192). */
  width?: number | undefined;
  /** Base image height (default 192). */
  height?: number | undefined;
  /** Keep every image exactly `width x height` instead of varying the aspect ratio. */
  fixedSize?: boolean | undefined;
  /** Seed (default 0). */
  seed?: number | undefined;
  /** Samples per shard (default 64). */
  shardSize?: number | undefined;
}

/** One split of a written dataset. */
export interface SynthSplit {
  /** Image shard spec (brace notation, relative to the dataset folder). */
  images: string;
  /** Text-box shard spec. */
  texts: string;
  /** Number of samples. */
  samples: number;
  /** Number of shards in each list. */
  shards: number;
}

/** What {@link writeSynthDataset} wrote (also saved as `dataset.json`). */
export interface SynthManifest {
  /** Training split. */
  train: SynthSplit;
  /** Held-out split (undefined when `holdout` is 0). */
  holdout?: SynthSplit | undefined;
  /** Tokenizer file, relative to the dataset folder. */
  tokenizer: string;
  /** Seed used. */
  seed: number;
}

/**
 * Writes a synthetic dataset:
 *
 * ```
 * out/images/image_00000.tar ...        (00000001.png ...)
 * out/text_boxes/text_box_00000.tar ... (00000001.json ...)
 * out/holdout/images/..., out/holdout/text_boxes/...
 * out/tokenizer.json, out/dataset.json, sizes.json in each shard folder
 * ```
 *
 * @param out Output folder (created).
 * @param options Counts, sizes, seed, shard size.
 * @returns The manifest.
 * @example
 * ```ts
 * const m = await writeSynthDataset("runs/synth", { count: 256 });
 * m.train.images; // "images/image_{00000..00003}.tar"
 * ```
 */
export async function writeSynthDataset(
  out: string,
  options: SynthOptions = {},
): Promise<SynthManifest> {
  const count = options.count ?? 512;
  const holdout = options.holdout ?? 64;
  const width = options.width ?? 256;
  const height = options.height ?? 192;
  const seed = options.seed ?? 0;
  const shardSize = options.shardSize ?? 64;
  for (
    const [name, v, min] of [
      ["count", count, 1],
      ["holdout", holdout, 0],
      ["width", width, 16],
      ["height", height, 16],
      ["shard size", shardSize, 1],
    ] as const
  ) {
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(
        `Cannot write a synthetic dataset with ${name} ${v}: need an integer >= ${min}`,
      );
    }
  }
  await Deno.mkdir(out, { recursive: true });
  const split = async (dir: string, n: number, firstKey: number, stream: number) => {
    const imgDir = join(out, dir, "images");
    const txtDir = join(out, dir, "text_boxes");
    await Deno.mkdir(imgDir, { recursive: true });
    await Deno.mkdir(txtDir, { recursive: true });
    const shards = Math.ceil(n / shardSize);
    const sizes: Record<string, number> = {};
    const textSizes: Record<string, number> = {};
    for (let s = 0; s < shards; s++) {
      const id = String(s).padStart(5, "0");
      const images = await TarWriter.create(join(imgDir, `image_${id}.tar`));
      const texts = await TarWriter.create(join(txtDir, `text_box_${id}.tar`));
      try {
        const end = Math.min(n, (s + 1) * shardSize);
        for (let i = s * shardSize; i < end; i++) {
          const key = String(firstKey + i).padStart(8, "0");
          const scene = renderScene(deriveRng([seed, stream, i]), {
            width,
            height,
            fixedSize: options.fixedSize,
          });
          await images.add(`${key}.png`, encodePng(scene.pixels, scene));
          const json = {
            text: scene.text,
            box: scene.shapes.map((x) => x.box),
            global_text: scene.globalText,
          };
          await texts.add(`${key}.json`, ENC.encode(JSON.stringify(json)));
        }
        sizes[`image_${id}.tar`] = end - s * shardSize;
        textSizes[`text_box_${id}.tar`] = end - s * shardSize;
      } finally {
        await images.close();
        await texts.close();
      }
    }
    await Deno.writeTextFile(join(imgDir, "sizes.json"), JSON.stringify(sizes, null, 1) + "\n");
    await Deno.writeTextFile(join(txtDir, "sizes.json"), JSON.stringify(textSizes, null, 1) + "\n");
    const last = String(shards - 1).padStart(5, "0");
    const prefix = dir ? `${dir}/` : "";
    return {
      images: `${prefix}images/image_{00000..${last}}.tar`,
      texts: `${prefix}text_boxes/text_box_{00000..${last}}.tar`,
      samples: n,
      shards,
    };
  };
  const manifest: SynthManifest = {
    train: await split("", count, 1, 0),
    holdout: holdout > 0 ? await split("holdout", holdout, count + 1, 1) : undefined,
    tokenizer: "tokenizer.json",
    seed,
  };
  await Deno.writeTextFile(
    join(out, "tokenizer.json"),
    JSON.stringify(unigramTokenizerJson(captionWords()), null, 1) + "\n",
  );
  await Deno.writeTextFile(join(out, "dataset.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
