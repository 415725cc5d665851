/**
 * Host batches (from the data loader) to GPU batches, whole or split into micro-batches.
 *
 * @module
 */

import type { Batch } from "../data/pipeline/loader.ts";
import { tensor } from "../ops/creation.ts";
import type { TrainBatch } from "../model/ps3_clip.ts";

/**
 * Uploads samples [start, end) of a host batch.
 *
 * @param b The host batch.
 * @param range Sample range (default all).
 * @returns The GPU batch (tensors belong to the caller's scope).
 */
export function uploadBatch(
  b: Batch,
  range: { start: number; end: number } = { start: 0, end: b.keys.length },
): TrainBatch {
  const n = b.keys.length;
  const { start, end } = range;
  const m = end - start;
  const img = b.images.length / n, tok = b.tokens.length / n, map = b.boxMaps.length / n;
  const s = Math.round(Math.sqrt(map));
  const t = tok;
  const isGlobal = b.isGlobal.subarray(start, end);
  return {
    images: tensor(b.images.subarray(start * img, end * img), [m, 3, s, s], "f32", "the images"),
    tokens: tensor(b.tokens.subarray(start * tok, end * tok), [m, t], "i32"),
    gtMaps: tensor(
      Float32Array.from(b.boxMaps.subarray(start * map, end * map)),
      [m, s, s],
      "f32",
      "the box maps",
    ),
    isGlobal: tensor(Float32Array.from(isGlobal), [m, 1]),
    isGlobalHost: Uint8Array.from(isGlobal),
  };
}
