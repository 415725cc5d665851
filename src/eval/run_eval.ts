/**
 * The evaluation researchers report, on a whole evaluation set (used by `ps3 eval` and by
 * training every `log.eval_every` steps):
 *
 * - image->text and text->image retrieval recall@1/5/10 with the global captions: every
 *   image against every global caption of the set (not in-batch);
 * - region grounding of local captions: caption->region recall@1/5 among the region
 *   features of all local captions of the set, pointing accuracy of the top-down selection
 *   at each high-res scale, and the mean selection probability inside vs outside the boxes;
 * - zero-shot top-1/top-5 accuracy on folders of class sub-folders (`zeroshot.ts`).
 *
 * The shards are read through the training loader (sequential order, the evaluation squash
 * resize, no sentence masking, partial last batch kept): first drawing the global caption of
 * every image (`global_caption_prob` 1; bad samples skipped and counted exactly as in
 * training: these are the counts reported), then once per local-caption index (pass k
 * prepares every image that has a local caption k with that caption and its box, through
 * the training path; `local_sample.ts`), until a pass finds none, so every local caption of
 * the set is evaluated once. Images without a global caption are left out of image-text
 * retrieval.
 *
 * @module
 */

import { DataLoader, type LoaderStats } from "../data/pipeline/loader.ts";
import { loadTokenizer } from "../data/formats/tokenizer.ts";
import { shardUnits } from "../data/pipeline/shards.ts";
import { scanShard } from "../data/pipeline/pairing.ts";
import type { DataProblem } from "../data/pipeline/pairing.ts";
import { SampleError } from "../data/formats/sample_error.ts";
import { encodePng } from "../data/formats/png.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import type { Ps3Clip, TrainOptions } from "../model/ps3_clip.ts";
import { heatmapOverlay } from "../encode/heatmap.ts";
import { batchFeatures, textFeatures } from "./features.ts";
import { GroundingAccumulator, type GroundingFigures } from "./grounding.ts";
import {
  chanceRecall,
  imageTextRetrieval,
  recallAtK,
  type RetrievalFigures,
  similarity,
  zeroshotAccuracy,
  zeroshotClassifier,
  type ZeroshotFigures,
} from "./retrieval.ts";
import {
  classPrompts,
  prepareEvalImage,
  readZeroshotSet,
  type ZeroshotSetOptions,
} from "./zeroshot.ts";

/** The per-sample module of the local-caption passes. */
const LOCAL_SAMPLE_MODULE = new URL("./local_sample.ts", import.meta.url).href;

/** Where the evaluation data is and how to read it. */
export interface EvalDataOptions {
  /** Image shards (paired layout) or single-layout shards. */
  images: string;
  /** Text-box shards of the paired layout. */
  texts?: string | undefined;
  /** tokenizer.json. */
  tokenizer: string;
  /** Samples per forward (default 16). */
  batchSize?: number | undefined;
  /** Decode workers (default 2). */
  workers?: number | undefined;
  /** Fail at the first bad sample instead of skipping and counting it. */
  strict?: boolean | undefined;
  /** Largest image accepted (default 100 000 000 pixels). */
  maxPixels?: number | undefined;
  /** Seed of the per-sample caption draw (default 0). */
  seed?: number | undefined;
}

/** A zero-shot folder with its optional class-name and template files. */
export interface ZeroshotSpec extends ZeroshotSetOptions {
  /** The folder of class sub-folders. */
  folder: string;
}

/** Options of {@linkcode evaluateDataset}. */
export interface EvaluateDatasetOptions {
  /** Zero-shot folders. */
  zeroshot?: readonly ZeroshotSpec[] | undefined;
  /** Selection heat maps to draw: the first N local-caption samples (default 0). */
  heatmaps?: number | undefined;
  /** Called as work advances (`phase`, items done, items in the phase). */
  onProgress?: ((phase: string, done: number, total: number) => void) | undefined;
}

/** A selection heat map of one held-out sample. */
export interface EvalHeatmap {
  /** The sample key. */
  key: string;
  /** PNG bytes. */
  png: Uint8Array;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** Caption->region retrieval and grounding figures. */
export interface RegionFigures extends GroundingFigures {
  /** Caption -> region recall@1/5 among all regions of the set. */
  captionToRegion: Record<number, number>;
  /** Recall@k of a random ranking. */
  chance: Record<number, number>;
}

/** Zero-shot figures of one folder. */
export interface ZeroshotReport extends ZeroshotFigures {
  /** The folder. */
  folder: string;
  /** Images skipped, by reason. */
  skipped: Record<string, number>;
}

/** The whole evaluation. */
export interface DatasetEvalReport {
  /** Usable images, their global captions, and their local captions (regions) evaluated. */
  samples: { images: number; global: number; local: number };
  /** Image-text retrieval (null without global captions). */
  retrieval: RetrievalFigures | null;
  /** Region grounding (null without local captions). */
  grounding: RegionFigures | null;
  /** Zero-shot figures per folder. */
  zeroshot: ZeroshotReport[];
  /** Samples skipped by reason (bad data), as in training. */
  skipped: Record<string, number>;
  /** Problems that skip nothing by themselves, by kind. */
  problems: Record<string, number>;
  /** The first problems. */
  examples: DataProblem[];
  /** Heat maps of the first local-caption samples (not in the JSON report). */
  heatmaps: EvalHeatmap[];
}

/**
 * Counts the samples of the image shards (headers only), for progress bars.
 *
 * @param images Image shard spec.
 * @param texts Text-box shard spec (paired layout).
 * @returns Samples found (before any is rejected).
 */
export async function countSamples(images: string, texts?: string | undefined): Promise<number> {
  let n = 0;
  for (const u of shardUnits(images, { texts })) n += (await scanShard(u.image)).samples.length;
  return n;
}

/** Reads every batch of one pass, calling `each` on it. */
async function pass(
  model: Ps3Clip,
  data: EvalDataOptions,
  which: { global: true } | { localIndex: number },
  each: (b: Batch) => Promise<void>,
  onBatch: (stats: LoaderStats) => void,
): Promise<LoaderStats> {
  const m = model.config;
  const local = "localIndex" in which;
  const loader = await DataLoader.create({
    images: data.images,
    texts: data.texts,
    tokenizer: data.tokenizer,
    batchSize: data.batchSize ?? 16,
    sample: {
      imageSize: m.vision.scales[m.vision.scales.length - 1]!,
      train: false,
      globalCaptionProb: local ? 0 : 1,
      sampleNBoxEachImage: 1,
      sentenceMasking: false,
      maxPixels: data.maxPixels ?? 100_000_000,
      contextLength: m.text.context,
      mean: m.preprocess.mean,
      std: m.preprocess.std,
      ...(local ? { localIndex: which.localIndex } : {}),
    },
    sampleModule: local ? LOCAL_SAMPLE_MODULE : undefined,
    seed: data.seed ?? 0,
    shards: "sequential",
    shuffleBuffer: 0,
    workers: data.workers ?? 2,
    // The global pass has counted (or, strict, refused) the bad samples already.
    strict: !local && (data.strict ?? false),
    epochs: 1,
    partial: true,
  });
  try {
    for (let b = await loader.next(); b; b = await loader.next()) {
      await each(b);
      onBatch(loader.stats());
    }
    return loader.stats();
  } finally {
    await loader[Symbol.asyncDispose]();
  }
}

/** Rows of `src` (`[n, d]`) where `keep[i]`, appended to `dst`. */
function pushRows(dst: number[][], src: Float32Array, d: number, keep: (i: number) => boolean) {
  for (let i = 0; i < src.length / d; i++) {
    if (keep(i)) dst.push(Array.from(src.subarray(i * d, (i + 1) * d)));
  }
}

const flat = (rows: number[][]) => Float32Array.from(rows.flat());

/**
 * Evaluates a model on a whole evaluation set and zero-shot folders.
 *
 * @param model The model (full CLIP: the text tower is needed).
 * @param data The evaluation shards and how to read them.
 * @param opts The run's switches (the evaluation uses the training forward's vision path).
 * @param options Zero-shot folders, heat maps, progress.
 * @returns The report.
 * @example
 * ```ts
 * const r = await evaluateDataset(model, {
 *   images: "data/holdout/images/image_{00000..00000}.tar",
 *   texts: "data/holdout/text_boxes/text_box_{00000..00000}.tar",
 *   tokenizer: "data/tokenizer.json",
 * }, trainOptions);
 * console.log(r.retrieval?.imageToText[1]);
 * ```
 */
export async function evaluateDataset(
  model: Ps3Clip,
  data: EvalDataOptions,
  opts: TrainOptions,
  options: EvaluateDatasetOptions = {},
): Promise<DatasetEvalReport> {
  const progress = options.onProgress ?? (() => {});
  const total = await countSamples(data.images, data.texts);

  // Pass 1: global captions -> image-text retrieval.
  const img: number[][] = [], txt: number[][] = [];
  let d = 0, images = 0;
  progress("global captions", 0, total);
  const stats = await pass(model, data, { global: true }, async (b) => {
    const f = await batchFeatures(model, b, opts);
    d = f.dim;
    images += f.n;
    pushRows(img, f.image, d, (i) => b.isGlobal[i] === 1);
    pushRows(txt, f.text, d, (i) => b.isGlobal[i] === 1);
  }, (s) => progress("global captions", s.samples, total));
  const retrieval = img.length ? imageTextRetrieval(flat(img), flat(txt), d) : null;

  // Passes 2, 3, ...: local caption 0, 1, ... of every image that has one -> caption->region
  // retrieval among every region of the set, and grounding.
  const reg: number[][] = [], cap: number[][] = [];
  let acc: GroundingAccumulator | null = null;
  const heatmaps: EvalHeatmap[] = [];
  const wantMaps = options.heatmaps ?? 0;
  for (let li = 0;; li++) {
    const before = reg.length;
    const phase = `local captions #${li + 1}`;
    progress(phase, 0, total);
    await pass(model, data, { localIndex: li }, async (b) => {
      const f = await batchFeatures(model, b, opts);
      acc ??= new GroundingAccumulator(f.grids.length);
      for (let i = 0; i < f.n; i++) {
        if (b.isGlobal[i] === 1) continue;
        const row = (a: Float32Array) => {
          const g = a.length / f.n;
          return a.subarray(i * g, (i + 1) * g);
        };
        acc.add(f.probs.map(row), f.targets.map(row));
        if (heatmaps.length < wantMaps) {
          const last = f.grids.length - 1;
          heatmaps.push(drawHeatmap(b, i, row(f.probs[last]!), f.grids[last]!, model));
        }
      }
      pushRows(reg, f.image, f.dim, (i) => b.isGlobal[i] === 0);
      pushRows(cap, f.text, f.dim, (i) => b.isGlobal[i] === 0);
    }, (s) => progress(phase, s.samples, total));
    if (reg.length === before) break;
  }
  let grounding: RegionFigures | null = null;
  if (acc && reg.length) {
    const n = reg.length;
    const target = Int32Array.from({ length: n }, (_, i) => i);
    grounding = {
      ...(acc as GroundingAccumulator).result(),
      captionToRegion: recallAtK(similarity(flat(cap), flat(reg), reg[0]!.length), n, target, [
        1,
        5,
      ]),
      chance: chanceRecall(n, [1, 5]),
    };
  }

  const zeroshot: ZeroshotReport[] = [];
  for (const spec of options.zeroshot ?? []) {
    zeroshot.push(await evaluateZeroshot(model, spec, data, opts, progress));
  }
  return {
    samples: { images, global: img.length, local: reg.length },
    retrieval,
    grounding,
    zeroshot,
    skipped: stats.skipped,
    problems: stats.problems,
    examples: stats.examples,
    heatmaps,
  };
}

/** The heat map of sample i of a batch over its (denormalised) model input. */
function drawHeatmap(
  b: Batch,
  i: number,
  probs: Float32Array,
  grid: [number, number],
  model: Ps3Clip,
): EvalHeatmap {
  const n = b.keys.length;
  const per = b.images.length / n;
  const s = Math.round(Math.sqrt(per / 3));
  const { mean, std } = model.config.preprocess;
  const rgb = new Uint8Array(s * s * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < s * s; p++) {
      const v = (b.images[i * per + c * s * s + p]! * std[c]! + mean[c]!) * 255;
      rgb[3 * p + c] = Math.min(255, Math.max(0, Math.round(v)));
    }
  }
  // Outline the box (the map is the sample's box map) in white.
  const map = b.boxMaps.subarray(i * s * s, (i + 1) * s * s);
  const pic = heatmapOverlay({ width: s, height: s, data: rgb }, probs, grid);
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const on = map[y * s + x]!;
      const edge = on && (x === 0 || y === 0 || x === s - 1 || y === s - 1 ||
        !map[y * s + x - 1] || !map[y * s + x + 1] || !map[(y - 1) * s + x] ||
        !map[(y + 1) * s + x]);
      if (edge) pic.data.fill(255, 3 * (y * s + x), 3 * (y * s + x) + 3);
    }
  }
  return { key: b.keys[i]!, png: encodePng(pic.data, pic), width: s, height: s };
}

/** Zero-shot accuracy of one folder. */
async function evaluateZeroshot(
  model: Ps3Clip,
  spec: ZeroshotSpec,
  data: EvalDataOptions,
  opts: TrainOptions,
  progress: (phase: string, done: number, total: number) => void,
): Promise<ZeroshotReport> {
  const set = await readZeroshotSet(spec.folder, spec);
  const m = model.config;
  const ctx = m.text.context;
  const tokenizer = await loadTokenizer(data.tokenizer);
  const prompts = classPrompts(set);
  const tokens = new Int32Array(prompts.length * ctx);
  prompts.forEach((p, i) => tokens.set(tokenizer.encode(p, ctx), i * ctx));
  const classFeatures = await textFeatures(model, tokens, ctx);
  const d = classFeatures.length / prompts.length;
  const classifier = zeroshotClassifier(classFeatures, set.classes.length, d);

  const size = m.vision.scales[m.vision.scales.length - 1]!;
  const bs = data.batchSize ?? 16;
  const skipped: Record<string, number> = {};
  const feats: number[][] = [], labels: number[] = [];
  const phase = `zero-shot ${spec.folder}`;
  progress(phase, 0, set.images.length);
  for (let start = 0; start < set.images.length; start += bs) {
    const chunk = set.images.slice(start, start + bs);
    const ok: { pixels: Float32Array; label: number; key: string }[] = [];
    for (const im of chunk) {
      try {
        const bytes = await Deno.readFile(im.path);
        ok.push({
          pixels: prepareEvalImage(bytes, {
            file: im.path,
            size,
            maxPixels: data.maxPixels ?? 100_000_000,
            mean: m.preprocess.mean,
            std: m.preprocess.std,
          }),
          label: im.label,
          key: im.path,
        });
      } catch (e) {
        if (!(e instanceof SampleError) || data.strict) throw e;
        skipped[e.kind] = (skipped[e.kind] ?? 0) + 1;
      }
    }
    if (ok.length) {
      // The global-caption path: whole-image box, low-res pooled feature; the prompt tokens
      // are unused for the pooled feature (an empty caption).
      const n = ok.length;
      const batch: Batch = {
        images: new Float32Array(n * 3 * size * size),
        tokens: new Int32Array(n * ctx),
        boxMaps: new Uint8Array(n * size * size).fill(1),
        isGlobal: new Uint8Array(n).fill(1),
        keys: ok.map((o) => o.key),
        epoch: 0,
        index: 0,
      };
      ok.forEach((o, i) => batch.images.set(o.pixels, i * 3 * size * size));
      const f = await batchFeatures(model, batch, { ...opts, useGlobalCaption: true });
      pushRows(feats, f.image, f.dim, () => true);
      labels.push(...ok.map((o) => o.label));
    }
    progress(phase, Math.min(start + bs, set.images.length), set.images.length);
  }
  if (!feats.length) {
    throw new Error(`Cannot evaluate zero-shot "${spec.folder}": no image could be read`);
  }
  return {
    folder: spec.folder,
    ...zeroshotAccuracy(flat(feats), classifier, labels, d),
    skipped,
  };
}
