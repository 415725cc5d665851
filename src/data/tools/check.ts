/**
 * Dataset validation without training: every sample goes through the loader and the real
 * per-sample path (decode, crop/resize, annotation and box checks, caption cleaning and
 * tokenization), in stream order, and every problem is counted.
 *
 * @module
 */

import { join } from "node:path";
import { DataLoader, type LoaderStats } from "../pipeline/loader.ts";
import type { DataProblem } from "../pipeline/pairing.ts";
import { unigramTokenizerJson } from "./synth.ts";

/** Options of {@link checkDataset}. */
export interface CheckOptions {
  /** Text-box shards of the paired layout (omit for the single layout). */
  texts?: string | undefined;
  /** tokenizer.json; without it captions are cleaned and tokenized with a letters-only
   * stand-in, so everything but the vocabulary is checked. */
  tokenizer?: string | undefined;
  /** Folder relative shard paths are resolved against. */
  baseDir?: string | undefined;
  /** Decode workers (default min(4, cores)). */
  workers?: number | undefined;
  /** Side of the resized images (default 64: small, since only validity matters). */
  imageSize?: number | undefined;
  /** Largest image accepted, in pixels (default 178956970, Pillow's limit). */
  maxPixels?: number | undefined;
  /** Token sequence length (default 64). */
  contextLength?: number | undefined;
  /** Problems kept as examples (default 10). */
  keepExamples?: number | undefined;
  /** Called with the counters after each batch. */
  onProgress?: ((stats: LoaderStats) => void) | undefined;
}

/** Result of {@link checkDataset}. */
export interface CheckReport {
  /** Shard units (image shards, each with its text-box shard when paired). */
  shards: number;
  /** Samples found (usable + skipped). */
  found: number;
  /** Samples that prepared successfully. */
  usable: number;
  /** Whether a real tokenizer was used. */
  tokenizerChecked: boolean;
  /** Samples skipped, by reason. */
  skipped: Record<string, number>;
  /** Problems that skip nothing by themselves (key mismatches, broken shards), by kind. */
  problems: Record<string, number>;
  /** Fixes applied to usable samples (e.g. clipped boxes), by kind. */
  repaired: Record<string, number>;
  /** The first problems. */
  examples: DataProblem[];
}

/**
 * Reads every sample of a dataset through the real per-sample path and counts problems.
 *
 * @param images Image shard spec (or single-layout shards).
 * @param options Text-box shards, tokenizer, workers.
 * @returns The report.
 * @example
 * ```ts
 * const r = await checkDataset("data/images/image_{00000..00009}.tar", {
 *   texts: "data/text_boxes/text_box_{00000..00009}.tar",
 * });
 * console.log(`${r.usable} of ${r.found} samples usable`, r.skipped);
 * ```
 */
export async function checkDataset(
  images: string,
  options: CheckOptions = {},
): Promise<CheckReport> {
  let tmp: string | undefined;
  let tokenizer = options.tokenizer;
  if (tokenizer === undefined) {
    tmp = await Deno.makeTempDir({ prefix: "ps3_check_" });
    tokenizer = join(tmp, "tokenizer.json");
    await Deno.writeTextFile(tokenizer, JSON.stringify(unigramTokenizerJson([])));
  }
  try {
    await using loader = await DataLoader.create({
      images,
      texts: options.texts,
      baseDir: options.baseDir,
      tokenizer,
      batchSize: 16,
      workers: options.workers,
      prefetch: 4,
      shards: "sequential",
      shuffleBuffer: 0,
      epochs: 1,
      partial: true,
      keepExamples: options.keepExamples ?? 10,
      sample: {
        imageSize: options.imageSize ?? 64,
        train: false,
        globalCaptionProb: 0,
        sampleNBoxEachImage: 1,
        sentenceMasking: false,
        maxPixels: options.maxPixels ?? 178956970,
        contextLength: options.contextLength ?? 64,
        mean: [0.5, 0.5, 0.5],
        std: [0.5, 0.5, 0.5],
      },
    });
    while (await loader.next()) options.onProgress?.(loader.stats());
    const s = loader.stats();
    const skipped = Object.values(s.skipped).reduce((a, b) => a + b, 0);
    return {
      shards: loader.units.length,
      found: s.yielded + skipped,
      usable: s.yielded,
      tokenizerChecked: options.tokenizer !== undefined,
      skipped: s.skipped,
      problems: s.problems,
      repaired: s.repaired,
      examples: s.examples,
    };
  } finally {
    if (tmp) await Deno.remove(tmp, { recursive: true });
  }
}
