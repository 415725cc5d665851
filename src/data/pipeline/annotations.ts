/**
 * Text-box annotations: the JSON of one sample (`{"text": [...], "box": [[x1, y1, x2, y2],
 * ...], "global_text": "..."}`), validated with zod; the reference's choice between the global
 * caption and n local captions; its caption cleanup (keyword filter, sentence masking,
 * sentence merging); and the box map.
 *
 * What the reference does is in `train/src/open_clip_train/data.py` (`filter_keywords`,
 * `sentence_masking`, `sentence_merging`, `CombinedDataset_ImageTextBox`,
 * `_preprocess_image_text_box`). Policy for bad input, decided from the bytes alone so the
 * same sample is always kept or always rejected:
 *
 * - JSON that does not parse, is not an object, or has wrong types: `json-invalid`; `null`
 *   counts as an absent field.
 * - Neither `text` nor `global_text`, or `text` without `box`: `json-missing-field`.
 * - `text` and `box` of different lengths: `box-count-mismatch`.
 * - A box that is not four finite numbers, or has x2 <= x1 or y2 <= y1: `box-invalid`.
 * - A box partly outside the image is clipped to it (repair `box-clipped`, what the
 *   reference's crop clamp does anyway); one with no overlap is `box-out-of-range`.
 * - A caption equal to `"[Error] No caption found!"` or empty after cleaning is dropped with
 *   its box (repairs `caption-error-marker-dropped`, `caption-empty-dropped`); a sample left
 *   without any caption is `caption-error-marker` (when a marker was among them) or
 *   `caption-empty`. (The reference means to drop marker samples, but its filter compares
 *   the already tokenised text with the marker string, so it never fires.)
 * - Captions are trimmed (a trailing space would otherwise make an empty "sentence" that
 *   sentence masking can pick alone).
 *
 * @module
 */

import { z } from "npm:zod@4.6.7";
import type { Rng } from "../../util/rng.ts";
import { SampleError, type SampleWhere } from "../formats/sample_error.ts";
import { basicClean, canonicalizeText } from "../formats/tokenizer.ts";

/** The captioner's failure marker; samples carrying it are not trained on. */
export const ERROR_CAPTION = "[Error] No caption found!";

/**
 * A box `[x1, y1, x2, y2]` in pixels (continuous coordinates, x to the right, y down).
 * `integral` records that the JSON gave four integers: the reference then holds the box in an
 * int64 tensor, so its resized coordinates are truncated to integers.
 */
export interface Box {
  /** Left. */
  x1: number;
  /** Top. */
  y1: number;
  /** Right. */
  x2: number;
  /** Bottom. */
  y2: number;
  /** Whether the coordinates are integers (int64 in the reference). */
  integral: boolean;
}

/** A local caption and its box. */
export interface LocalCaption {
  /** The caption (trimmed). */
  text: string;
  /** Its box, in the stored pixel grid of the image. */
  box: Box;
}

/** Non-fatal fixes applied to a sample, counted by the loader. */
export type SampleRepair =
  | "box-clipped"
  | "caption-empty-dropped"
  | "caption-error-marker-dropped";

/** A validated annotation. */
export interface Annotation {
  /** Usable local captions with their boxes. */
  local: LocalCaption[];
  /** The usable global caption, or null. */
  global: string | null;
  /** Fixes applied, one entry per fix. */
  repairs: SampleRepair[];
}

const AnnotationJson = z.looseObject({
  text: z.array(z.string()).nullish(),
  box: z.array(z.unknown()).nullish(),
  global_text: z.string().nullish(),
});

const BoxJson = z.tuple([z.number(), z.number(), z.number(), z.number()]);

/**
 * Parses and validates one annotation JSON.
 *
 * @param bytes The `.json` file's bytes.
 * @param where The sample key and file name, for errors.
 * @returns The usable captions and boxes.
 * @throws {SampleError} `json-invalid`, `json-missing-field`, `box-count-mismatch`,
 *   `box-invalid`, `caption-empty` or `caption-error-marker`.
 *
 * @example
 * ```ts
 * const json = '{"text": ["A dog."], "box": [[0, 0, 10, 10]], "global_text": "A park."}';
 * const a = parseAnnotation(new TextEncoder().encode(json), { key: "k", file: "k.json" });
 * a.local.length; // 1
 * ```
 */
export function parseAnnotation(bytes: Uint8Array, where: SampleWhere): Annotation {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    const why = e instanceof SyntaxError ? e.message : "not valid UTF-8";
    throw new SampleError("json-invalid", `annotation is not JSON: ${why}`, where);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new SampleError(
      "json-invalid",
      `annotation is ${Array.isArray(raw) ? "an array" : typeof raw}, not an object`,
      where,
    );
  }
  const parsed = AnnotationJson.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SampleError(
      "json-invalid",
      `field "${issue.path.join(".")}" is malformed: ${issue.message}`,
      where,
    );
  }
  const { text, box, global_text } = parsed.data;
  if (text == null && global_text == null) {
    throw new SampleError(
      "json-missing-field",
      'annotation has neither "text" nor "global_text"',
      where,
    );
  }
  if (text != null && box == null) {
    throw new SampleError("json-missing-field", 'annotation has "text" but no "box"', where);
  }
  const texts = text ?? [];
  const boxes = box ?? [];
  if (texts.length !== boxes.length) {
    throw new SampleError(
      "box-count-mismatch",
      `annotation has ${texts.length} captions but ${boxes.length} boxes`,
      where,
    );
  }
  const repairs: SampleRepair[] = [];
  let markers = 0;
  const usable = (caption: string): string | null => {
    const t = caption.trim();
    if (t === ERROR_CAPTION) {
      markers++;
      repairs.push("caption-error-marker-dropped");
      return null;
    }
    if (canonicalizeText(basicClean(filterKeywords(t))) === "") {
      repairs.push("caption-empty-dropped");
      return null;
    }
    return t;
  };
  const local: LocalCaption[] = [];
  for (let i = 0; i < boxes.length; i++) {
    const b = validBox(boxes[i], i, where);
    const t = usable(texts[i]!);
    if (t !== null) local.push({ text: t, box: b });
  }
  const global = global_text == null ? null : usable(global_text);
  if (local.length === 0 && global === null) {
    throw markers > 0
      ? new SampleError(
        "caption-error-marker",
        `every caption is empty or the error marker "${ERROR_CAPTION}"`,
        where,
      )
      : new SampleError("caption-empty", "every caption is empty after cleaning", where);
  }
  return { local, global, repairs };
}

function validBox(value: unknown, i: number, where: SampleWhere): Box {
  const r = BoxJson.safeParse(value);
  if (!r.success) {
    throw new SampleError(
      "box-invalid",
      `box ${i} is ${JSON.stringify(value)}, not four finite numbers`,
      where,
    );
  }
  const [x1, y1, x2, y2] = r.data;
  if (x2 < x1 || y2 < y1) {
    throw new SampleError("box-invalid", `box ${i} [${r.data}] is inverted`, where);
  }
  if (x2 === x1 || y2 === y1) {
    throw new SampleError("box-invalid", `box ${i} [${r.data}] has no area`, where);
  }
  return { x1, y1, x2, y2, integral: r.data.every(Number.isInteger) };
}

/**
 * Clips every box to the image, counting the boxes changed.
 *
 * @param annotation A parsed annotation (boxes in the stored pixel grid).
 * @param image The stored image size, and the sample for errors.
 * @returns A new annotation with clipped boxes and `box-clipped` repairs.
 * @throws {SampleError} `box-out-of-range` for a box with no overlap with the image.
 *
 * @example
 * ```ts
 * const a = { local: [{ text: "x", box: { x1: -5, y1: 0, x2: 50, y2: 9, integral: true } }],
 *   global: null, repairs: [] };
 * clipBoxes(a, { width: 40, height: 30, key: "k", file: "k.json" }).local[0]!.box.x2; // 40
 * ```
 */
export function clipBoxes(
  annotation: Annotation,
  image: { width: number; height: number } & SampleWhere,
): Annotation {
  const { width: w, height: h } = image;
  const repairs = [...annotation.repairs];
  const local = annotation.local.map(({ text, box }, i) => {
    const { x1, y1, x2, y2 } = box;
    if (x1 >= w || y1 >= h || x2 <= 0 || y2 <= 0) {
      throw new SampleError(
        "box-out-of-range",
        `box ${i} [${x1},${y1},${x2},${y2}] lies outside the ${w}x${h} image`,
        image,
      );
    }
    if (x1 >= 0 && y1 >= 0 && x2 <= w && y2 <= h) return { text, box };
    repairs.push("box-clipped");
    const c = {
      x1: Math.max(x1, 0),
      y1: Math.max(y1, 0),
      x2: Math.min(x2, w),
      y2: Math.min(y2, h),
      integral: box.integral,
    };
    return { text, box: c };
  });
  return { local, global: annotation.global, repairs };
}

/** Options of {@link chooseCaptions}. */
export interface ChooseOptions {
  /** Probability of the global caption when both kinds exist (reference: 0.25). */
  globalCaptionProb: number;
  /** Local captions drawn per image (reference `sample_n_box_each_image`, default 1). */
  sampleNBoxEachImage: number;
}

/** The captions drawn for one training sample. */
export interface CaptionChoice {
  /** Whether the global caption was drawn (its box is the whole image). */
  isGlobal: boolean;
  /** The caption texts, in draw order. */
  texts: string[];
  /** Their boxes, in the same order (empty for the global caption). */
  boxes: Box[];
}

/**
 * Draws the captions of a sample as `CombinedDataset_ImageTextBox` does: the global caption
 * with probability `globalCaptionProb` when both kinds exist (the only one when only one
 * exists), else `min(n, count)` distinct local captions in random order.
 *
 * @param annotation A validated annotation.
 * @param rng Random source.
 * @param options Probability and count.
 * @returns The drawn captions and boxes.
 *
 * @example
 * ```ts
 * const pick = chooseCaptions(annotation, new Rng(1), {
 *   globalCaptionProb: 0.25,
 *   sampleNBoxEachImage: 1,
 * });
 * ```
 */
export function chooseCaptions(
  annotation: Annotation,
  rng: Rng,
  options: ChooseOptions,
): CaptionChoice {
  const { local, global } = annotation;
  const useGlobal = global !== null &&
    (local.length === 0 || rng.next() < options.globalCaptionProb);
  if (useGlobal) return { isGlobal: true, texts: [global], boxes: [] };
  const ids = sampleIndices(local.length, Math.min(options.sampleNBoxEachImage, local.length), rng);
  return {
    isGlobal: false,
    texts: ids.map((i) => local[i]!.text),
    boxes: ids.map((i) => local[i]!.box),
  };
}

/** `random.sample(range(n), k)`: k distinct indices in draw order (partial Fisher-Yates). */
function sampleIndices(n: number, k: number, rng: Rng): number[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(n - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/** Inclusive `random.randint(lo, hi)`. */
function randint(lo: number, hi: number, rng: Rng): number {
  return lo + rng.int(hi - lo + 1);
}

/**
 * The reference's `filter_keywords`: removes the phrases "The second image is a close-up of"
 * and "The image is a close-up of", then drops the last sentence when it contains both
 * "text" and "visible" (case-sensitive substrings, as in the reference) and is not the only
 * one.
 *
 * @param text A caption.
 * @returns The filtered caption.
 *
 * @example
 * ```ts
 * filterKeywords("The image is a close-up of a boat. No text is visible.");
 * // " a boat."
 * ```
 */
export function filterKeywords(text: string): string {
  const t = text.replaceAll("The second image is a close-up of", "")
    .replaceAll("The image is a close-up of", "");
  let sentences = splitSentences(t);
  const last = sentences[sentences.length - 1]!;
  if (last.includes("text") && last.includes("visible") && sentences.length > 1) {
    sentences = sentences.slice(0, -1);
  }
  return sentences.join(" ");
}

/**
 * Splits after `.`, `!` or `?` followed by one or more spaces (the reference's
 * `re.split(r'(?<=[.!?]) +', text)`; other whitespace does not split).
 *
 * @param text Text.
 * @returns At least one sentence (possibly empty strings, as Python returns).
 *
 * @example
 * ```ts
 * splitSentences("A boat. A dock!  Sky?"); // ["A boat.", "A dock!", "Sky?"]
 * ```
 */
export function splitSentences(text: string): string[] {
  return text.split(/(?<=[.!?]) +/);
}

/**
 * The reference's `sentence_masking`: keeps a random run of sentences, starting at one of
 * the first three (start in [0, min(n - 1, 2)]), of random length in [1, max(n - start, 1)].
 *
 * @param text A caption.
 * @param rng Random source.
 * @returns The kept sentences joined by spaces.
 *
 * @example
 * ```ts
 * maskSentences("A. B. C.", new Rng(3)); // e.g. "B. C."
 * ```
 */
export function maskSentences(text: string, rng: Rng): string {
  const s = splitSentences(text);
  const start = randint(0, Math.min(s.length - 1, 2), rng);
  const count = randint(Math.min(s.length, 1), Math.max(s.length - start, 1), rng);
  return s.slice(start, start + count).join(" ");
}

/**
 * The reference's `sentence_merging`: pools the sentences of all captions and keeps
 * `floor(total / captions)` of them, drawn at random and kept in their original order.
 *
 * @param texts The captions (at least one).
 * @param rng Random source.
 * @returns The kept sentences joined by spaces.
 *
 * @example
 * ```ts
 * mergeSentences(["A. B.", "C. D."], new Rng(0)); // two of A., B., C., D. in order
 * ```
 */
export function mergeSentences(texts: readonly string[], rng: Rng): string {
  if (texts.length === 0) throw new RangeError("Cannot merge zero captions");
  const all = texts.flatMap(splitSentences);
  const keep = sampleIndices(all.length, Math.floor(all.length / texts.length), rng);
  return keep.sort((a, b) => a - b).map((i) => all[i]!).join(" ");
}

/**
 * The whole caption pipeline of the reference: `sentence_merging([sentence_masking(
 * filter_keywords(t)) for t in texts])`, masking only when enabled.
 *
 * @param texts The drawn captions.
 * @param rng Random source.
 * @param options Whether sentence masking is on (reference `--sentence_masking`).
 * @returns The caption to tokenise.
 *
 * @example
 * ```ts
 * buildCaption(["The image is a close-up of a boat."], new Rng(0), { sentenceMasking: true });
 * // " a boat."
 * ```
 */
export function buildCaption(
  texts: readonly string[],
  rng: Rng,
  options: { sentenceMasking: boolean },
): string {
  const cleaned = texts.map((t) => {
    const f = filterKeywords(t);
    return options.sentenceMasking ? maskSentences(f, rng) : f;
  });
  return mergeSentences(cleaned, rng);
}

/**
 * The box map of `_preprocess_image_text_box`: 1 on rows `floor(y1)..ceil(y2)` and columns
 * `floor(x1)..ceil(x2)` inclusive (clamped to the map) of every box, in output pixel
 * coordinates; all ones for a global caption (its box is the whole image).
 *
 * @param boxes Boxes in output pixels, or null for a global caption.
 * @param size The map's width and height.
 * @returns `[height, width]` bytes, row-major.
 *
 * @example
 * ```ts
 * const m = boxMap([{ x1: 0.5, y1: 1, x2: 1.2, y2: 1, integral: false }], { width: 4, height: 3 });
 * // row 1, columns 0..2 are 1
 * ```
 */
export function boxMap(
  boxes: readonly Box[] | null,
  size: { width: number; height: number },
): Uint8Array {
  const { width: w, height: h } = size;
  const map = new Uint8Array(w * h);
  if (boxes === null) return map.fill(1);
  for (const b of boxes) {
    const r0 = Math.max(Math.floor(b.y1), 0);
    const r1 = Math.min(Math.ceil(b.y2), h - 1);
    const c0 = Math.max(Math.floor(b.x1), 0);
    const c1 = Math.min(Math.ceil(b.x2), w - 1);
    for (let r = r0; r <= r1; r++) map.fill(1, r * w + c0, r * w + c1 + 1);
  }
  return map;
}
