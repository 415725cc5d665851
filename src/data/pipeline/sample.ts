/**
 * One training sample from its image bytes and its text-box JSON: the per-sample half of the
 * reference's pipeline (`CombinedDataset_ImageTextBox` then `_preprocess_image_text_box` in
 * `train/src/open_clip_train/data.py`). Synchronous and deterministic given the Rng, so it
 * runs unchanged inside Workers.
 *
 * Order of work: validate the JSON (cheap) and read the image header, so bad samples are
 * rejected before any pixel is decoded; draw the captions; decode, orient, crop and resize the
 * image with its boxes; build the box map; clean and tokenise the caption. Random draws, in
 * this order: global-vs-local and box choice, crop, sentence masking and merging.
 *
 * @module
 */

import type { Rng } from "../../util/rng.ts";
import {
  boxMap,
  buildCaption,
  chooseCaptions,
  clipBoxes,
  parseAnnotation,
  type SampleRepair,
} from "./annotations.ts";
import { randomResizedCropParams, resizedCrop } from "./crop.ts";
import { orientBox } from "../formats/exif.ts";
import { decodeImage, readImageInfo } from "../formats/image.ts";
import type { AnyTokenizer as Tokenizer } from "../formats/tokenizer.ts";

export { SAMPLE_ERROR_KINDS, SampleError, type SampleErrorKind } from "../formats/sample_error.ts";
export type { SampleRepair } from "./annotations.ts";

/** How samples are prepared (reference values in brackets). */
export interface SampleOptions {
  /** Output side sK: the largest PS3 scale [1512 or 3780]. */
  imageSize: number;
  /** Random resized crop (true) or the evaluation squash resize (false). */
  train: boolean;
  /** Probability of the global caption when both kinds exist [0.25]. */
  globalCaptionProb: number;
  /** Local captions (and boxes) drawn per image [1]. */
  sampleNBoxEachImage: number;
  /** Random sentence masking of each caption [on]. */
  sentenceMasking: boolean;
  /** Largest image accepted, in pixels, checked before decoding. */
  maxPixels: number;
  /** Token sequence length [64]. */
  contextLength: number;
  /** Per-channel mean subtracted after scaling to [0, 1] [0.5, 0.5, 0.5]. */
  mean: [number, number, number];
  /** Per-channel divisor [0.5, 0.5, 0.5]. */
  std: [number, number, number];
}

/** The two files of one sample, as paired by the loader. */
export interface SampleInput {
  /** The sample key (`00000001`). */
  key: string;
  /** Image file name in its shard (`00000001.jpg`). */
  imageName: string;
  /** Image bytes. */
  imageBytes: Uint8Array;
  /** Annotation file name in its shard (`00000001.json`). */
  jsonName: string;
  /** Annotation bytes. */
  jsonBytes: Uint8Array;
}

/** A sample ready to batch. */
export interface PreparedSample {
  /** The sample key. */
  key: string;
  /** `[3, S, S]` normalised float32 pixels, channel-major (CHW). */
  image: Float32Array;
  /** `[T]` token ids. */
  tokens: Int32Array;
  /** `[S, S]` bytes, 1 inside a chosen box (all ones for a global caption). */
  boxMap: Uint8Array;
  /** Whether the caption is the global one. */
  isGlobal: boolean;
  /** Non-fatal fixes applied to this sample (clipped boxes, dropped captions). */
  repairs: SampleRepair[];
}

/**
 * Turns one image + annotation pair into model inputs.
 *
 * @param input The sample's key, file names and bytes.
 * @param tokenizer The text tokenizer.
 * @param opts Sizes, probabilities and normalisation.
 * @param rng Random source (the only one used, so equal states give equal samples).
 * @returns The prepared sample.
 * @throws {SampleError} For any problem with the sample's bytes; the message names the key,
 *   the file and the reason.
 *
 * @example
 * ```ts
 * const s = prepareSample(input, tokenizer, {
 *   imageSize: 1512, train: true, globalCaptionProb: 0.25, sampleNBoxEachImage: 1,
 *   sentenceMasking: true, maxPixels: 100_000_000, contextLength: 64,
 *   mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
 * }, new Rng(7));
 * s.image.length; // 3 * 1512 * 1512
 * ```
 */
export function prepareSample(
  input: SampleInput,
  tokenizer: Tokenizer,
  opts: SampleOptions,
  rng: Rng,
): PreparedSample {
  const S = opts.imageSize;
  if (!(Number.isInteger(S) && S >= 1)) {
    throw new RangeError(`Cannot prepare samples of size ${S}: expected a positive integer`);
  }
  const { key } = input;
  const jsonWhere = { key, file: input.jsonName };
  const imageWhere = { key, file: input.imageName };

  const info = readImageInfo(input.imageBytes, imageWhere);
  const annotation = clipBoxes(parseAnnotation(input.jsonBytes, jsonWhere), {
    width: info.width,
    height: info.height,
    ...jsonWhere,
  });
  const choice = chooseCaptions(annotation, rng, opts);

  const { image } = decodeImage(input.imageBytes, {
    file: input.imageName,
    key,
    maxPixels: opts.maxPixels,
  });
  const stored = { orientation: info.orientation, width: info.width, height: info.height };
  const boxes = choice.boxes.map((b) => {
    const [x1, y1, x2, y2] = orientBox([b.x1, b.y1, b.x2, b.y2], stored);
    return { x1, y1, x2, y2, integral: b.integral };
  });
  const crop = opts.train
    ? randomResizedCropParams(image, rng)
    : { left: 0, top: 0, width: image.width, height: image.height };
  const out = resizedCrop(image, boxes, { crop, width: S, height: S });

  const caption = buildCaption(choice.texts, rng, opts);
  return {
    key,
    image: normalize(out.image.data, opts),
    tokens: tokenizer.encode(caption, opts.contextLength),
    boxMap: boxMap(choice.isGlobal ? null : out.boxes, { width: S, height: S }),
    isGlobal: choice.isGlobal,
    repairs: annotation.repairs,
  };
}

/**
 * HWC bytes to normalised CHW float32, with torchvision's float32 arithmetic
 * (`ToTensor`: v / 255, then `Normalize`: (x - mean) / std).
 */
function normalize(
  hwc: Uint8Array,
  opts: { mean: readonly number[]; std: readonly number[] },
): Float32Array {
  const n = hwc.length / 3;
  const out = new Float32Array(hwc.length);
  const f = Math.fround;
  // A lookup per channel (256 possible values), filled in one pass over the bytes.
  const [l0, l1, l2] = [0, 1, 2].map((c) => {
    const m = f(opts.mean[c]!);
    const s = f(opts.std[c]!);
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = f(f(f(v / 255) - m) / s);
    return lut;
  }) as [Float32Array, Float32Array, Float32Array];
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    out[i] = l0[hwc[p]!]!;
    out[n + i] = l1[hwc[p + 1]!]!;
    out[2 * n + i] = l2[hwc[p + 2]!]!;
  }
  return out;
}
