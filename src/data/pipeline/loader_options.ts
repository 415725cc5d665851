/**
 * The data loader's options and their validation (sizes, seeds, rank, shard order).
 *
 * @module
 */

import { cpus } from "node:os";
import type { ShardMode } from "./shards.ts";
import type { SampleOptions } from "./sample.ts";

/** Options of {@link DataLoader.create}. */
export interface LoaderOptions {
  /** Image shard spec (paired layout) or single-layout shard spec (`a/{0..9}.tar::b/x.tar`). */
  images: string | string[];
  /** Text-box shard spec of the paired layout; omit for the single layout (key.jpg + key.json). */
  texts?: string | string[] | undefined;
  /** Source weights (`"1::3"` or `[1, 3]`; resampled shards only). */
  weights?: string | number[] | undefined;
  /** Folder that relative shard paths are resolved against. */
  baseDir?: string | undefined;
  /** Path of tokenizer.json (each worker loads it). */
  tokenizer: string;
  /** Samples per batch. */
  batchSize: number;
  /** Per-sample options. */
  sample: SampleOptions;
  /** Base seed (default 0). */
  seed?: number | undefined;
  /** Shard order (default "shuffled"; "resampled" draws with replacement, "sequential" for eval). */
  shards?: ShardMode | undefined;
  /** Samples in the shuffle buffer (default 5000 as in the reference; 0 keeps stream order). */
  shuffleBuffer?: number | undefined;
  /** This process's rank (default 0). */
  rank?: number | undefined;
  /** Number of processes reading the dataset (default 1). */
  worldSize?: number | undefined;
  /** Decode workers (default min(4, CPU cores)). */
  workers?: number | undefined;
  /** Batches prepared ahead (default 2). */
  prefetch?: number | undefined;
  /** Throw at the first bad sample or shard instead of skipping and counting. */
  strict?: boolean | undefined;
  /** End each epoch after this many batches (required with resampled shards to have epochs). */
  batchesPerEpoch?: number | undefined;
  /** Number of epochs to produce before `next()` returns undefined (default unlimited). */
  epochs?: number | undefined;
  /** Keep an epoch's last partial batch (default false: its samples are dropped and counted). */
  partial?: boolean | undefined;
  /** Problems kept as examples in {@link LoaderStats.examples} (default 10). */
  keepExamples?: number | undefined;
  /** URL of the module exporting `prepareSample` and `SampleError` (default `./sample.ts`). */
  sampleModule?: string | undefined;
  /** URL of the module exporting `loadTokenizer` (default `./tokenizer.ts`). */
  tokenizerModule?: string | undefined;
}

/** Normalised options. */
export interface Settings {
  batchSize: number;
  seed: number;
  rank: number;
  worldSize: number;
  mode: ShardMode;
  shuffleBuffer: number;
  strict: boolean;
  partial: boolean;
  batchesPerEpoch: number;
  epochs: number;
  keepExamples: number;
  window: number;
  sample: SampleOptions;
}

/**
 * Validates the loader's options and fills in the defaults.
 *
 * @param options The caller's options.
 * @returns The settings the loader runs with.
 */
export function normalise(options: LoaderOptions): Settings & { workers: number } {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(`Cannot use ${name} ${v}: need an integer >= ${min}`);
    }
    return v;
  };
  const batchSize = int("batch size", options.batchSize, 1);
  const workers = int("decode workers", options.workers ?? Math.min(4, cpus().length || 1), 1);
  const prefetch = int("prefetch", options.prefetch ?? 2, 1);
  const mode = options.shards ?? "shuffled";
  if (!["resampled", "shuffled", "sequential"].includes(mode)) {
    throw new TypeError(
      `Cannot use shard order "${mode}": expected resampled, shuffled or sequential`,
    );
  }
  const s = options.sample;
  int("image size", s.imageSize, 1);
  int("context length", s.contextLength, 1);
  return {
    batchSize,
    workers,
    seed: int("seed", options.seed ?? 0, -(2 ** 53)),
    rank: int("rank", options.rank ?? 0, 0),
    worldSize: int("world size", options.worldSize ?? 1, 1),
    mode,
    shuffleBuffer: int("shuffle buffer", options.shuffleBuffer ?? 5000, 0),
    strict: options.strict ?? false,
    partial: options.partial ?? false,
    batchesPerEpoch: int("batches per epoch", options.batchesPerEpoch ?? 0, 0),
    epochs: options.epochs === undefined || options.epochs === Infinity
      ? Infinity
      : int("epochs", options.epochs, 0),
    keepExamples: int("examples kept", options.keepExamples ?? 10, 0),
    window: Math.max(prefetch * batchSize, 2 * workers),
    sample: s,
  };
}
