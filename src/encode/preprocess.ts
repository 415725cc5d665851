/**
 * Inference preprocessing, as the PS3 package's `PS3ImageProcessor.preprocess`
 * (`ps3/image_processing_ps3.py`) runs it on a PIL image: torchvision's
 * `Resize(image_size, interpolation=BICUBIC)` with the tuple `image_size` = (h, w) from
 * `preprocessor_config.json` (a "squash" to exactly h x w, whatever the aspect ratio; on a PIL
 * image that is Pillow's antialiased bicubic, bit-exact in `src/data/pipeline/resize.ts`), then
 * `convert("RGB")`, `ToTensor` (v / 255) and `Normalize(mean, std)`. For the released models
 * image_size is the largest PS3 scale and mean = std = 0.5.
 *
 * One addition the package does not have: `keep-aspect` resizes the long side to the
 * processor's size and keeps the aspect ratio, so the model's high-res scales get the
 * non-square grids its `image_size_scale_i` computes for that aspect ratio (the low-res scale
 * is a square in both modes).
 *
 * Differences from the package: EXIF orientation is applied (PIL's `Image.open` ignores it;
 * see `src/data/formats/image.ts`); transparent images are resized after dropping alpha (Pillow
 * resizes RGBA premultiplied); palette images are resized as RGB (Pillow resizes mode "P"
 * with nearest-neighbour).
 *
 * @module
 */

import { join } from "node:path";
import type { RgbImage } from "../data/formats/image.ts";
import { resizeBicubic } from "../data/pipeline/resize.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Size } from "../model/scales.ts";

/** The processor defaults when `preprocessor_config.json` omits mean / std (OpenAI CLIP). */
const OPENAI_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** How an image is brought to the model's input size. */
export type ResizeMode = "squash" | "keep-aspect";

/** The inference preprocessing of a model. */
export interface Preprocessing {
  /** The processor's `image_size` [h, w]: the squash target. */
  imageSize: Size;
  /** Per-channel mean subtracted after scaling to [0, 1]. */
  mean: [number, number, number];
  /** Per-channel divisor. */
  std: [number, number, number];
  /** Where these values came from (a file or the model config), for the summary. */
  source: string;
}

/**
 * The preprocessing of a model without a `preprocessor_config.json` (a training
 * checkpoint): the largest scale, and the model config's mean and std.
 *
 * @param config The model configuration.
 * @returns The preprocessing.
 */
export function configPreprocessing(
  config: Pick<ModelConfig, "vision" | "preprocess">,
): Preprocessing {
  const s = config.vision.scales[config.vision.scales.length - 1]!;
  return {
    imageSize: [s, s],
    mean: [...config.preprocess.mean],
    std: [...config.preprocess.std],
    source: "model config",
  };
}

/**
 * Reads a Hugging Face folder's `preprocessor_config.json` as `PS3ImageProcessor` reads it
 * (`image_size` an int or [h, w]; mean and std a number or three, defaulting to OpenAI
 * CLIP's; interpolation "bicubic" or "random", which the processor also resizes bicubic).
 *
 * @param folder The Hugging Face folder.
 * @param config The model configuration, used when the folder has no such file.
 * @returns The preprocessing.
 * @throws {SyntaxError} For a malformed file or a field the processor would reject, naming it.
 */
export async function readPreprocessing(
  folder: string,
  config: Pick<ModelConfig, "vision" | "preprocess">,
): Promise<Preprocessing> {
  const path = join(folder, "preprocessor_config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return configPreprocessing(config);
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    raw = v;
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${path}": ${(e as Error).message}`);
  }
  const bad = (field: string, why: string) =>
    new SyntaxError(`Cannot use "${path}": ${field} ${why}`);
  const positive = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1;
  const size = raw.image_size;
  let imageSize: Size;
  if (positive(size)) imageSize = [size as number, size as number];
  else if (Array.isArray(size) && size.length === 2 && size.every(positive)) {
    imageSize = [size[0], size[1]];
  } else {throw bad(
      "image_size",
      `must be a positive integer or [h, w], got ${JSON.stringify(size)}`,
    );}
  const triple = (field: "mean" | "std", fallback: [number, number, number]) => {
    const v = raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "number") return [v, v, v] as [number, number, number];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number")) {
      return [v[0], v[1], v[2]] as [number, number, number];
    }
    throw bad(field, `must be a number or three numbers, got ${JSON.stringify(v)}`);
  };
  const mean = triple("mean", OPENAI_MEAN);
  const std = triple("std", OPENAI_STD);
  if (std.some((s) => s === 0)) throw bad("std", "has a zero entry");
  const interp = raw.interpolation ?? "bicubic";
  if (interp !== "bicubic" && interp !== "random") {
    throw bad(
      "interpolation",
      `is ${JSON.stringify(interp)}; only "bicubic" (and "random", which the processor ` +
        "resizes bicubic at inference) is implemented",
    );
  }
  const mode = raw.resize_mode ?? "squash";
  if (mode !== "squash") {
    throw bad("resize_mode", `is ${JSON.stringify(mode)}; the PS3 processor only has "squash"`);
  }
  return { imageSize, mean, std, source: path };
}

/**
 * The model input size for an image: the processor's size ("squash"), or the largest size of
 * the same aspect ratio that fits it ("keep-aspect"; sides rounded, at least 1 pixel).
 *
 * @param image Width and height of the (oriented) image.
 * @param options The processor's size and the mode.
 * @returns [h, w].
 *
 * @example
 * ```ts
 * modelInputSize({ width: 2250, height: 1500 }, { imageSize: [3780, 3780], mode: "keep-aspect" });
 * // [2520, 3780]
 * ```
 */
export function modelInputSize(
  image: { width: number; height: number },
  options: { imageSize: Size; mode: ResizeMode },
): Size {
  const [th, tw] = options.imageSize;
  if (options.mode === "squash") return [th, tw];
  const scale = Math.min(th / image.height, tw / image.width);
  return [
    Math.min(th, Math.max(1, Math.round(image.height * scale))),
    Math.min(tw, Math.max(1, Math.round(image.width * scale))),
  ];
}

/** A preprocessed image on the host. */
export interface ModelInput {
  /** [1, 3, h, w] float32, normalised, channel-major. */
  data: Float32Array<ArrayBuffer>;
  /** [1, 3, h, w]. */
  shape: [1, 3, number, number];
}

/**
 * Resizes (Pillow's antialiased bicubic) and normalises an image with torchvision's float32
 * arithmetic: `(v / 255 - mean) / std`.
 *
 * @param image The RGB image.
 * @param options The input size [h, w], mean and std.
 * @returns The model input.
 *
 * @example
 * ```ts
 * const x = preprocessImage(image, { size: [1512, 1512], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
 * x.shape; // [1, 3, 1512, 1512]
 * ```
 */
export function preprocessImage(
  image: RgbImage,
  options: { size: Size; mean: readonly number[]; std: readonly number[] },
): ModelInput {
  const [h, w] = options.size;
  const resized = resizeBicubic(image, { width: w, height: h });
  const n = h * w;
  const out = new Float32Array(3 * n);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(options.mean[c]!), s = f(options.std[c]!);
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = f(f(f(v / 255) - m) / s);
    const o = c * n;
    for (let i = 0; i < n; i++) out[o + i] = lut[resized.data[3 * i + c]!]!;
  }
  return { data: out, shape: [1, 3, h, w] };
}
