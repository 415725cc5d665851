/**
 * The whole-set evaluation of `ps3 eval` run on a training run's held-out shards (at each
 * `log.eval_every`, with `log.eval_full`).
 *
 * @module
 */

import type { Ps3Clip, TrainOptions } from "../model/ps3_clip.ts";
import { type DatasetEvalReport, evaluateDataset } from "../eval/run_eval.ts";
import type { RunConfig } from "./config.ts";
import type { RunDataPaths } from "./preflight.ts";

/**
 * Evaluates the model on every held-out sample of a run (and its zero-shot folders).
 *
 * @param model The model being trained.
 * @param config The run configuration (`log.eval_full`, `log.eval_heatmaps`, `log.zeroshot`,
 *   workers, seed, strictness).
 * @param paths The run's data paths (held-out shards, tokenizer).
 * @param opts The training switches.
 * @param groupSize Samples per forward: the trainer's sample-group size (`./groups.ts`), so
 *   that every tensor fits the device's largest buffer (the figures pool every sample's
 *   features, so the batching does not change them).
 * @returns The report, or null when `log.eval_full` is off or there are no held-out shards.
 */
export async function evaluateWholeSet(
  model: Ps3Clip,
  config: RunConfig,
  paths: RunDataPaths,
  opts: TrainOptions,
  groupSize: number,
): Promise<DatasetEvalReport | null> {
  if (!config.log.eval_full || !paths.evalImages) return null;
  return await evaluateDataset(
    model,
    {
      images: paths.evalImages,
      texts: paths.evalTexts,
      tokenizer: paths.tokenizer,
      batchSize: groupSize,
      workers: config.data.workers,
      strict: config.data.strict,
      maxPixels: config.data.max_pixels,
      seed: config.train.seed,
    },
    opts,
    {
      zeroshot: config.log.zeroshot.map((folder) => ({ folder })),
      heatmaps: config.log.eval_heatmaps,
    },
  );
}
