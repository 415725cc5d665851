/**
 * Where a run's data comes from: the shard paths of the config (writing the synthetic
 * dataset on first use) and the loader options of the training and held-out streams.
 *
 * @module
 */

import { join } from "node:path";
import type { LoaderOptions } from "../data/pipeline/loader.ts";
import { type SynthManifest, writeSynthDataset } from "../data/tools/synth.ts";
import type { RunConfig } from "./config.ts";
import type { RunDataPaths } from "./preflight.ts";

/**
 * The run's data paths; with `data.synthesize`, the synthetic dataset is written first if it
 * is not there yet.
 *
 * @param config The run configuration.
 * @param log Where to say that the dataset is being written.
 * @returns Image and text shards, tokenizer, held-out shards.
 */
export async function dataPaths(
  config: RunConfig,
  log: (s: string) => void,
): Promise<RunDataPaths> {
  const d = config.data;
  if (d.synthesize) {
    const out = d.synthesize.out;
    const manifest = join(out, "dataset.json");
    let m: SynthManifest;
    try {
      m = JSON.parse(await Deno.readTextFile(manifest));
    } catch {
      log(
        `writing the synthetic dataset to ${out} (${d.synthesize.count} + ${d.synthesize.holdout} samples)`,
      );
      m = await writeSynthDataset(out, {
        count: d.synthesize.count,
        holdout: d.synthesize.holdout,
        seed: d.synthesize.seed,
        width: d.synthesize.width,
        height: d.synthesize.height,
        shardSize: d.synthesize.shard_size,
      });
    }
    return {
      images: join(out, m.train.images),
      texts: join(out, m.train.texts),
      tokenizer: d.tokenizer ?? join(out, m.tokenizer),
      evalImages: m.holdout ? join(out, m.holdout.images) : undefined,
      evalTexts: m.holdout ? join(out, m.holdout.texts) : undefined,
    };
  }
  return {
    images: d.images!,
    texts: d.layout === "paired" ? d.text_boxes! : undefined,
    tokenizer: d.tokenizer!,
    evalImages: d.eval_images ?? undefined,
    evalTexts: d.eval_text_boxes ?? undefined,
  };
}

/**
 * The loader options of the training stream (`train`) or the held-out one.
 *
 * @param config The run configuration.
 * @param paths The run's data paths.
 * @param train Whether the training stream (shuffled, augmented) or the held-out one.
 * @param split This rank and the number of ranks of a data-parallel run: the training
 *   stream's shards (or resampled draws) are split over the ranks, and each rank's epoch
 *   holds its share of `samples_per_epoch`.
 * @returns The options.
 */
export function loaderOptions(
  config: RunConfig,
  paths: RunDataPaths,
  train: boolean,
  split: { rank: number; size: number } = { rank: 0, size: 1 },
): LoaderOptions {
  const m = config.resolvedModel, d = config.data, t = config.train;
  const sk = m.vision.scales[m.vision.scales.length - 1]!;
  return {
    images: train ? paths.images : paths.evalImages!,
    texts: train ? paths.texts : paths.evalTexts,
    weights: train ? d.weights ?? undefined : undefined,
    tokenizer: paths.tokenizer,
    batchSize: t.batch_size,
    sample: {
      imageSize: sk,
      train,
      globalCaptionProb: d.global_caption_prob,
      sampleNBoxEachImage: d.sample_n_box_each_image,
      sentenceMasking: train && d.sentence_masking,
      maxPixels: d.max_pixels,
      contextLength: m.text.context,
      mean: m.preprocess.mean,
      std: m.preprocess.std,
    },
    seed: t.seed,
    shards: train ? d.shards : "sequential",
    shuffleBuffer: train ? d.shuffle_buffer : 0,
    workers: d.workers,
    prefetch: d.prefetch,
    strict: d.strict,
    batchesPerEpoch: train
      ? Math.floor(t.samples_per_epoch / (t.batch_size * split.size))
      : undefined,
    ...(train && split.size > 1 ? { rank: split.rank, worldSize: split.size } : {}),
    epochs: train ? undefined : 1,
  };
}
