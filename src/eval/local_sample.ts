/**
 * The per-sample module of the evaluation's local-caption passes (the loader's
 * `sampleModule`): pass `localIndex` prepares the image with its local caption number
 * `localIndex` and that caption's box, through the training path (`data/sample.ts`), so
 * that over all passes every local caption of the set is evaluated once. An image with
 * fewer local captions is rejected before anything is decoded; those rejections are not
 * reported (the global pass counts the set's bad samples).
 *
 * @module
 */

import {
  type PreparedSample,
  prepareSample as prepareTrainingSample,
  type SampleInput,
  type SampleOptions,
} from "../data/pipeline/sample.ts";
import { SampleError } from "../data/formats/sample_error.ts";
import type { Tokenizer } from "../data/formats/tokenizer.ts";
import type { Rng } from "../util/rng.ts";

export { SampleError };

/** Sample options with the local caption to prepare. */
export interface LocalSampleOptions extends SampleOptions {
  /** Index of the local caption (in the annotation's `text` list). */
  localIndex: number;
}

/**
 * Prepares the image with one of its local captions.
 *
 * @param input The sample's files.
 * @param tokenizer The tokenizer.
 * @param opts Sample options with `localIndex`.
 * @param rng The sample's generator.
 * @returns The sample (its caption is local caption `localIndex`, its box map that box).
 * @throws {SampleError} Bad bytes (as in training), or no local caption `localIndex`.
 */
export function prepareSample(
  input: SampleInput,
  tokenizer: Tokenizer,
  opts: SampleOptions,
  rng: Rng,
): PreparedSample {
  const index = (opts as LocalSampleOptions).localIndex;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(input.jsonBytes));
  } catch {
    // The training path reports the bad JSON with its kind.
    return prepareTrainingSample(input, tokenizer, opts, rng);
  }
  const ann = (json ?? {}) as { text?: unknown; box?: unknown };
  const text = Array.isArray(ann.text) ? ann.text : [];
  const box = Array.isArray(ann.box) ? ann.box : [];
  if (index >= text.length) {
    throw new SampleError("json-missing-field", `no local caption ${index}`, {
      key: input.key,
      file: input.jsonName,
    });
  }
  const one = new TextEncoder().encode(JSON.stringify({ text: [text[index]], box: [box[index]] }));
  return prepareTrainingSample({ ...input, jsonBytes: one }, tokenizer, {
    ...opts,
    globalCaptionProb: 0,
    sampleNBoxEachImage: 1,
  }, rng);
}
