/**
 * Feature extraction and selection pictures from a PS3 model, as a library call: load a
 * Hugging Face folder or a training checkpoint, then encode images (bytes or decoded RGB)
 * bottom-up or top-down, getting back the features, the selection probabilities and maps,
 * PNG pictures of them over the photo, and a summary. {@linkcode writeEncoding} saves one
 * result as files (`ps3 encode`).
 *
 * The model runs as the PS3 package's `PS3VisionModel(pixel_values, num_look_close |
 * num_token_look_close, prompt)` with output_hidden_states (`encodeImage` of
 * `src/model/ps3_inference.ts`); a text prompt becomes `prompt_proj(normalize(text tower))`
 * as the package's `PS3TextModel(...).prompt`. The selection's top-k runs on the GPU (ties,
 * which come in blocks, go to the lower patch index).
 *
 * @module
 */

import { join } from "node:path";
import { gpu } from "../gpu/runtime.ts";
import { tidy } from "../autograd/scope.ts";
import { noGrad } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { tensor } from "../ops/creation.ts";
import { permute } from "../ops/layout.ts";
import { writeFileAtomic } from "../checkpoint/atomic.ts";
import { loadSafetensorsInto, readHfFolderConfig } from "../checkpoint/hf.ts";
import { writeSafetensors, type WriteTensor } from "../checkpoint/safetensors.ts";
import { readTrainState } from "../checkpoint/train_checkpoint.ts";
import { decodeImage, type RgbImage } from "../data/formats/image.ts";
import { encodePng } from "../data/formats/png.ts";
import { type AnyTokenizer as Tokenizer, loadTokenizer } from "../data/formats/tokenizer.ts";
import { resolveModelConfig } from "../model/config.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { Ps3VisionModel } from "../model/ps3_vision_model.ts";
import { encodeImage, type LookClose } from "../model/ps3_inference.ts";
import type { Size } from "../model/scales.ts";
import {
  displayImage,
  type DisplayOptions,
  displaySize,
  type HeatmapOptions,
  heatmapOverlay,
  selectionOverlay,
} from "./heatmap.ts";
import {
  configPreprocessing,
  modelInputSize,
  preprocessImage,
  type Preprocessing,
  readPreprocessing,
  type ResizeMode,
} from "./preprocess.ts";

/** Models loaded for inference: no gradient buffers, and no initialisation of the values the
 * checkpoint is about to overwrite. */
const INFERENCE_TABLE = { grads: false, init: false } as const;

/** Pillow's decompression-bomb limit (`2 * Image.MAX_IMAGE_PIXELS`): larger images fail. */
const DEFAULT_MAX_PIXELS = 178_956_970;

/** A host array with its shape. */
export interface EncodedArray<
  T extends Float32Array<ArrayBuffer> | Uint8Array<ArrayBuffer> = Float32Array<ArrayBuffer>,
> {
  /** Values, row-major. */
  data: T;
  /** Dimensions. */
  shape: number[];
}

/** Options of {@linkcode Ps3Encoder.encode}. */
export interface Ps3EncodeOptions {
  /** The image's name, for messages and the summary (default "image"). */
  file?: string | undefined;
  /** Rounds or tokens of high-res encoding (default one round). */
  numLookClose?: LookClose | undefined;
  /** Top-down prompt: a text (needs a tokenizer) or a prompt vector of the vision width;
   * bottom-up when absent. */
  prompt?: string | Float32Array | null | undefined;
  /** "squash" (the PS3 processor, default) or "keep-aspect". */
  resize?: ResizeMode | undefined;
  /** Size of the pictures. */
  display?: DisplayOptions | undefined;
  /** Smoothing and opacity of the heat maps. */
  heatmap?: HeatmapOptions | undefined;
  /** Largest image accepted, in pixels (default Pillow's limit, 178956970). */
  maxPixels?: number | undefined;
}

/** One scale's line of the summary. */
export interface ScaleSummary {
  /** Scale index (0 = low-res). */
  index: number;
  /** The scale's side s_i in pixels. */
  scale: number;
  /** Feature grid [rows, cols]. */
  grid: Size;
  /** Patches of the grid. */
  patches: number;
  /** Tokens encoded at this scale (all of them at scale 0). */
  tokens: number;
  /** Smallest and largest selection probability (high-res scales only). */
  probRange: [number, number] | null;
}

/** What one encoding did (also saved as `summary.json`). */
export interface Ps3EncodingSummary {
  /** The image's name. */
  file: string;
  /** Model name and where it was loaded from. */
  model: { name: string; source: string };
  /** The GPU adapter. */
  adapter: string;
  /** The photo's size after EXIF orientation [h, w]. */
  imageSize: Size;
  /** The model input [h, w]. */
  inputSize: Size;
  /** Resize mode, the processor size, mean and std, and where they came from. */
  preprocessing: Preprocessing & { resize: ResizeMode };
  /** Bottom-up (prior prompt) or top-down (given prompt). */
  selection: "bottom-up" | "top-down";
  /** The text prompt, "(vector)" for a given vector, or null. */
  prompt: string | null;
  /** The request: "n", "all", "tokens:N" or "tokens:all". */
  lookClose: string;
  /** Rounds of high-res encoding run. */
  rounds: number;
  /** Per scale, low-res first. */
  scales: ScaleSummary[];
  /** Rows of last_hidden_state. */
  tokens: number;
  /** Size of the pictures [h, w]. */
  displaySize: Size;
  /** Milliseconds: decoding, preprocessing, the model (with the read-back), drawing. */
  ms: { decode: number; preprocess: number; model: number; draw: number };
  /** Memory of this encoding. */
  memory: EncodingMemory;
}

/** Memory figures of one encoding (bytes). */
export interface EncodingMemory {
  /** The model's parameter table on the device (values only for a loaded model). */
  params: number;
  /** Highest bytes of the device's buffer pool in use during the model run (activations,
   * cache, outputs; the parameters are not pooled). */
  devicePeak: number;
  /** Bytes the pool holds after the run, in use or cached free for reuse. */
  devicePool: number;
  /** The process' peak resident memory so far (Linux `VmHWM`), or null where unknown. On a
   * software adapter the device memory is process memory. */
  processPeak: number | null;
}

/**
 * The process' peak resident memory so far, from `/proc/self/status` (Linux).
 *
 * @returns Bytes, or null where the file is missing or unreadable.
 */
function processPeakBytes(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The result of {@linkcode Ps3Encoder.encode}. */
export interface Ps3Encoding {
  /** [1, N, C]: low-res tokens, then each high-res scale's encoded tokens in raster order
   * (last block outputs, before the final norm, as the package's last_hidden_state). */
  lastHiddenState: EncodedArray;
  /** Per scale [1, C, gh, gw] (the package's format_features_into_feature_maps layout;
   * zeros where a patch was not encoded). */
  featureMaps: EncodedArray[];
  /** Per high-res scale [1, gh, gw]. */
  selectionProbs: EncodedArray[];
  /** Per high-res scale [1, gh, gw], 1 where the patch was encoded. */
  selectionMaps: EncodedArray<Uint8Array<ArrayBuffer>>[];
  /** Per high-res scale: PNG of the probability as a heat map over the photo. */
  heatmapPngs: Uint8Array[];
  /** Per high-res scale: PNG marking the encoded patches. */
  selectionPngs: Uint8Array[];
  /** What was done. */
  summary: Ps3EncodingSummary;
}

/** Options of {@linkcode Ps3Encoder.load}. */
export interface LoadEncoderOptions {
  /** A `tokenizer.json` for text prompts (default: the model folder's, if it has one). */
  tokenizer?: string | undefined;
  /** Load only the vision tower of a full model, for bottom-up selection or prompt vectors:
   * the text tower's weights stay on disk (for PS3-1.5K-SigLIP, 45% of the model). */
  visionOnly?: boolean | undefined;
}

/**
 * The request as the CLI writes it.
 *
 * @param look Rounds or tokens.
 * @returns "n", "all", "tokens:N" or "tokens:all".
 */
export function lookCloseText(look: LookClose): string {
  return "rounds" in look ? String(look.rounds) : `tokens:${look.tokens}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** A PS3 model ready to encode images. */
export class Ps3Encoder {
  /** The model: the whole PS3 model, or the vision tower of a vision-only folder. */
  readonly model: Ps3Clip | Ps3VisionModel;
  /** The inference preprocessing. */
  readonly preprocessing: Preprocessing;
  /** The tokenizer for text prompts, or null. */
  readonly tokenizer: Tokenizer | null;
  /** Where the model came from (for the summary). */
  readonly source: string;

  /**
   * Wraps a model already in memory.
   *
   * @param model The model (its parameters on the GPU); text prompts need the whole model.
   * @param options Preprocessing (default: the model config's), tokenizer, source name.
   */
  constructor(
    model: Ps3Clip | Ps3VisionModel,
    options: {
      preprocessing?: Preprocessing | undefined;
      tokenizer?: Tokenizer | null | undefined;
      source?: string | undefined;
    } = {},
  ) {
    this.model = model;
    this.preprocessing = options.preprocessing ?? configPreprocessing(model.config);
    this.tokenizer = options.tokenizer ?? null;
    this.source = options.source ?? "memory";
    const vocab = model instanceof Ps3Clip ? model.config.text.vocab : Infinity;
    if (this.tokenizer && this.tokenizer.vocabSize > vocab) {
      throw new RangeError(
        `Cannot use a tokenizer of ${this.tokenizer.vocabSize} pieces with a text tower of ` +
          `${vocab} embeddings`,
      );
    }
  }

  /**
   * Loads a Hugging Face PS3 folder (`config.json`, `model.safetensors`,
   * `preprocessor_config.json`) or a training checkpoint folder (`state.json` with the model
   * config, `model.safetensors`, `COMPLETE`). Call `initGpu()` first.
   *
   * @param path The folder.
   * @param options A tokenizer for text prompts.
   * @returns The encoder.
   *
   * @example
   * ```ts
   * await initGpu();
   * const enc = await Ps3Encoder.load("PS3-1.5K-SigLIP", { tokenizer: "tokenizer.json" });
   * const out = await enc.encode(Deno.readFileSync("dock.jpg"), { prompt: "a boat" });
   * out.summary.tokens; // 729 + 2560
   * ```
   */
  static async load(path: string, options: LoadEncoderOptions = {}): Promise<Ps3Encoder> {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch (e) {
      throw new Error(`Cannot load model "${path}": ${(e as Error).message}`);
    }
    if (!stat.isDirectory) {
      throw new Error(
        `Cannot load model "${path}": not a folder (give a Hugging Face PS3 folder or a ` +
          "training checkpoint folder)",
      );
    }
    let model: Ps3Clip | Ps3VisionModel, preprocessing: Preprocessing, source: string;
    if (await exists(join(path, "state.json"))) {
      if (!await exists(join(path, "COMPLETE"))) {
        throw new Error(`Cannot load checkpoint "${path}": it is incomplete (no COMPLETE marker)`);
      }
      const state = await readTrainState(path);
      const config = resolveModelConfig(state.modelConfig, `modelConfig of "${path}/state.json"`);
      model = options.visionOnly
        ? new Ps3VisionModel(config, INFERENCE_TABLE)
        : new Ps3Clip(config, INFERENCE_TABLE);
      preprocessing = configPreprocessing(config);
      source = `training checkpoint "${path}" (step ${state.step})`;
    } else if (await exists(join(path, "config.json"))) {
      const hf = await readHfFolderConfig(path);
      model = hf.kind === "full" && !options.visionOnly
        ? new Ps3Clip(hf.config, INFERENCE_TABLE)
        : new Ps3VisionModel(hf.config, INFERENCE_TABLE);
      preprocessing = await readPreprocessing(path, hf.config);
      source = `Hugging Face ${hf.kind === "vision" ? "vision-only " : ""}folder "${path}"`;
    } else {
      throw new Error(
        `Cannot load model "${path}": it has neither config.json (a Hugging Face folder) nor ` +
          "state.json (a training checkpoint)",
      );
    }
    // The PS3 package's PS3Model has no logit scale / bias (the reference converter writes
    // them); inference does not use them, but they get their initial values as before.
    const textSkipped = options.visionOnly === true && model instanceof Ps3VisionModel;
    const report = await loadSafetensorsInto(model.params, join(path, "model.safetensors"), {
      optional: new Set(["logit_scale", "logit_bias"]),
      ignore: (name) => textSkipped && !name.startsWith("vision_model."),
    });
    if (textSkipped) source += " (vision tower only)";
    model.params.initialize(report.missing);
    const tokPath = options.tokenizer ??
      (await exists(join(path, "tokenizer.json")) ? join(path, "tokenizer.json") : undefined);
    const tokenizer = tokPath === undefined ? null : await loadTokenizer(tokPath);
    return new Ps3Encoder(model, { preprocessing, tokenizer, source });
  }

  /**
   * The top-down prompt of a text, as the PS3 package's `PS3TextModel(tokens).prompt`:
   * tokenised, through the text tower, L2-normalised, through prompt_proj.
   *
   * @param text The prompt.
   * @returns The prompt vector (vision width).
   */
  async promptVector(text: string): Promise<Float32Array> {
    const model = this.model;
    if (!(model instanceof Ps3Clip)) {
      throw new Error(
        `Cannot encode the prompt "${text}": the model (${this.source}) is vision-only, with ` +
          "no text tower; use the full model folder, or pass a prompt vector to encode()",
      );
    }
    if (!this.tokenizer) {
      throw new Error(
        `Cannot encode the prompt "${text}": no tokenizer (give a tokenizer.json; the model ` +
          "folder has none)",
      );
    }
    const ctx = model.config.text.context;
    const ids = this.tokenizer.encode(text, ctx);
    const q = tidy(() =>
      noGrad(() => model.promptProj.forward(model.encodeText(tensor(ids, [1, ctx], "i32"))))
    );
    try {
      const [bytes] = await gpu().read([q]);
      return new Float32Array(bytes!, 0, model.vision.width).slice();
    } finally {
      q.dispose();
    }
  }

  /**
   * Encodes one image: decode (EXIF applied), preprocess as the PS3 processor, run the
   * model, read back the features and selection, and draw the pictures. Each block's
   * intermediates are freed as it is recorded; the pool's free buffers go back to the device
   * before the encoding and between its passes. `summary.memory` has the
   * device peak of the run and the process peak.
   *
   * @param input Encoded bytes (JPEG, PNG, WebP) or a decoded RGB image.
   * @param options Rounds, prompt, resize mode, picture size.
   * @returns Arrays, PNG bytes and the summary.
   * @throws {SampleError} For unreadable images, naming the file.
   *
   * @example
   * ```ts
   * const out = await enc.encode(bytes, { file: "dock.jpg", numLookClose: { rounds: "all" } });
   * out.lastHiddenState.shape; // [1, 88209, 1152] for PS3-4K
   * ```
   */
  async encode(input: Uint8Array | RgbImage, options: Ps3EncodeOptions = {}): Promise<Ps3Encoding> {
    const file = options.file ?? "image";
    const look = options.numLookClose ?? { rounds: 1 };
    const mode = options.resize ?? "squash";
    const vision = this.model.vision;
    const c = vision.width;
    let t = performance.now();
    const lap = () => {
      const now = performance.now(), d = now - t;
      t = now;
      return Math.round(d * 10) / 10;
    };
    const image = input instanceof Uint8Array
      ? decodeImage(input, { file, maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS }).image
      : input;
    const decodeMs = lap();
    const pre = this.preprocessing;
    const inputSize = modelInputSize(image, { imageSize: pre.imageSize, mode });
    const x = preprocessImage(image, { size: inputSize, mean: pre.mean, std: pre.std });
    const preprocessMs = lap();
    // The free buffers of the last encoding's high-res pass would stay cached beside this
    // one's low-res pass (other sizes): they go back to the device first, and `encodeImage`
    // trims again between its passes, so the pool holds one pass's buffers at a time.
    gpu().trimPool();

    let promptVec: Float32Array | null = null;
    if (typeof options.prompt === "string") promptVec = await this.promptVector(options.prompt);
    else if (options.prompt) {
      if (options.prompt.length !== c) {
        throw new RangeError(
          `Cannot use a prompt vector of ${options.prompt.length} values: the model's vision ` +
            `width is ${c}`,
        );
      }
      promptVec = options.prompt;
    }
    gpu().pool.resetPeak();
    const out = tidy(() =>
      noGrad(() => {
        const images = tensor(x.data, x.shape);
        const prompt = promptVec ? tensor(promptVec, [1, c]) : null;
        const r = encodeImage(vision, images, { numLookClose: look, prompt });
        return { ...r, featureMaps: r.featureMaps.map((m) => permute(m, [0, 3, 1, 2])) };
      })
    );
    const outTensors: Tensor[] = [
      out.lastHiddenState,
      ...out.featureMaps,
      ...out.selectionProbs,
      ...out.selectionMaps,
    ];
    let host: ArrayBuffer[];
    try {
      host = await gpu().read(outTensors);
    } finally {
      for (const o of new Set(outTensors)) o.dispose();
    }
    const arrays = outTensors.map((o, i) => ({
      data: new Float32Array(host[i]!, 0, o.size),
      shape: [...o.shape],
    }));
    const modelMs = lap();
    const pool = gpu().memory();
    const memory: EncodingMemory = {
      params: this.model.params.bytes(),
      devicePeak: pool.peakInUseBytes,
      devicePool: pool.allocatedBytes,
      processPeak: processPeakBytes(),
    };

    const k = out.selectionProbs.length;
    const lastHiddenState = arrays[0]!;
    const featureMaps = arrays.slice(1, 2 + k);
    const selectionProbs = arrays.slice(2 + k, 2 + 2 * k);
    const selectionMaps = arrays.slice(2 + 2 * k).map((a) => ({
      data: Uint8Array.from(a.data),
      shape: a.shape,
    }));
    const grids = out.featureSizes;
    const shown = displaySize(image, options.display);
    const picture = displayImage(image, shown);
    const png = (im: RgbImage) => encodePng(im.data, im);
    const heatmapPngs = selectionProbs.map((p, i) =>
      png(heatmapOverlay(picture, p.data, grids[i + 1]!, options.heatmap))
    );
    const selectionPngs = selectionMaps.map((m, i) =>
      png(selectionOverlay(picture, m.data, grids[i + 1]!))
    );
    const drawMs = lap();

    const scales = vision.config.scales;
    const range = (a: Float32Array): [number, number] => {
      let lo = Infinity, hi = -Infinity;
      for (const v of a) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      return [lo, hi];
    };
    const summary: Ps3EncodingSummary = {
      file,
      model: { name: this.model.config.name, source: this.source },
      adapter: gpu().info.description,
      imageSize: [image.height, image.width],
      inputSize,
      preprocessing: { ...pre, resize: mode },
      selection: promptVec ? "top-down" : "bottom-up",
      prompt: typeof options.prompt === "string" ? options.prompt : promptVec ? "(vector)" : null,
      lookClose: lookCloseText(look),
      rounds: out.rounds,
      scales: grids.map((g, i) => ({
        index: i,
        scale: scales[i]!,
        grid: g,
        patches: g[0] * g[1],
        tokens: i === 0 ? g[0] * g[1] : out.tokenCounts[i - 1]!,
        probRange: i === 0 ? null : range(selectionProbs[i - 1]!.data),
      })),
      tokens: lastHiddenState.shape[1]!,
      displaySize: shown,
      ms: { decode: decodeMs, preprocess: preprocessMs, model: modelMs, draw: drawMs },
      memory,
    };
    return {
      lastHiddenState,
      featureMaps,
      selectionProbs,
      selectionMaps,
      heatmapPngs,
      selectionPngs,
      summary,
    };
  }
}

/** The files {@linkcode writeEncoding} writes for a model with high-res scales 1..K. */
export const ENCODING_FILES = {
  features: "features.safetensors",
  summary: "summary.json",
  heatmap: (scale: number) => `selection_prob_scale_${scale}.png`,
  selection: (scale: number) => `selected_patches_scale_${scale}.png`,
} as const;

/**
 * Writes one encoding as files: `features.safetensors` (`last_hidden_state`,
 * `feature_maps.<i>` for every scale i, `selection_probs.<i>` and `selection_maps.<i>` (U8)
 * for the high-res scales i >= 1), `selection_prob_scale_<i>.png`,
 * `selected_patches_scale_<i>.png` and `summary.json`.
 *
 * @param folder The output folder (created).
 * @param encoding The result of {@linkcode Ps3Encoder.encode}.
 * @returns The paths written.
 *
 * @example
 * ```ts
 * await writeEncoding("out/dock", await enc.encode(bytes, { file: "dock.jpg" }));
 * ```
 */
export async function writeEncoding(folder: string, encoding: Ps3Encoding): Promise<string[]> {
  await Deno.mkdir(folder, { recursive: true });
  const s = encoding.summary;
  const tensors: WriteTensor[] = [
    { name: "last_hidden_state", dtype: "F32", ...encoding.lastHiddenState },
    ...encoding.featureMaps.map((a, i): WriteTensor => ({
      name: `feature_maps.${i}`,
      dtype: "F32",
      ...a,
    })),
    ...encoding.selectionProbs.map((a, i): WriteTensor => ({
      name: `selection_probs.${i + 1}`,
      dtype: "F32",
      ...a,
    })),
    ...encoding.selectionMaps.map((a, i): WriteTensor => ({
      name: `selection_maps.${i + 1}`,
      dtype: "U8",
      ...a,
    })),
  ];
  const written: string[] = [];
  const features = join(folder, ENCODING_FILES.features);
  await writeSafetensors(features, tensors, {
    metadata: {
      format: "pt",
      model: s.model.name,
      selection: s.selection,
      look_close: s.lookClose,
      adapter: s.adapter,
    },
  });
  written.push(features);
  for (const [i, bytes] of encoding.heatmapPngs.entries()) {
    const p = join(folder, ENCODING_FILES.heatmap(i + 1));
    await writeFileAtomic(p, bytes);
    written.push(p);
  }
  for (const [i, bytes] of encoding.selectionPngs.entries()) {
    const p = join(folder, ENCODING_FILES.selection(i + 1));
    await writeFileAtomic(p, bytes);
    written.push(p);
  }
  const summary = join(folder, ENCODING_FILES.summary);
  await writeFileAtomic(summary, JSON.stringify(s, null, 2) + "\n");
  written.push(summary);
  return written;
}
