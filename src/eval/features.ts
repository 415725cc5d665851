/**
 * Features the evaluation needs from one host batch, computed with the model's public parts
 * (text tower, prompt projection, vision encoder) without gradients and read back to the
 * host: normalised image (or region) features, normalised text features, the top-down
 * selection probabilities per high-res scale and the box targets on the same grids.
 *
 * @module
 */

import { tidy } from "../autograd/scope.ts";
import { noGrad } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";
import { tensor } from "../ops/creation.ts";
import { normalize } from "../ops/norm.ts";
import { boxTargets } from "../loss/box.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import type { Ps3Clip, TrainOptions } from "../model/ps3_clip.ts";
import type { Size } from "../model/scales.ts";
import { uploadBatch } from "./batch.ts";

/** Host features of one batch. */
export interface BatchFeatures {
  /** Samples. */
  n: number;
  /** Feature size. */
  dim: number;
  /** Normalised pooled image features `[n, dim]` (the region's, for a local caption). */
  image: Float32Array;
  /** Normalised text features `[n, dim]`. */
  text: Float32Array;
  /** Top-down (posterior) selection probabilities per high-res scale, `[n, g_s]` each. */
  probs: Float32Array[];
  /** Box targets per high-res scale (1 where the box covers the patch), `[n, g_s]` each. */
  targets: Float32Array[];
  /** Grid [rows, cols] of each high-res scale. */
  grids: Size[];
}

/**
 * Runs the training forward's vision path (same switches: selection with the ground truth,
 * pooling of the box tokens, the low-res feature for global captions) on a batch, without
 * gradients, and reads the features back.
 *
 * @param model The model.
 * @param batch A host batch from the loader.
 * @param opts The run's switches (`checkpoint` is ignored).
 * @returns The host features.
 */
export async function batchFeatures(
  model: Ps3Clip,
  batch: Batch,
  opts: TrainOptions,
): Promise<BatchFeatures> {
  const n = batch.keys.length;
  let grids: Size[] = [];
  const ts: Tensor[] = tidy(() =>
    noGrad(() => {
      const tb = uploadBatch(batch);
      const text = model.encodeText(tb.tokens);
      const v = model.vision.forwardTrain({
        images: tb.images,
        prompt: model.promptProj.forward(text),
        gtMaps: tb.gtMaps,
        selectWithGt: opts.selectWithGt,
        poolGtOnly: opts.poolGtOnly,
        isGlobal: opts.useGlobalCaption ? tb.isGlobal : null,
        checkpoint: false,
      });
      grids = v.featureSizes.slice(1);
      const probs = v.posteriorProbs ?? v.priorProbs;
      return [normalize(v.pooled), text, ...probs, ...boxTargets(tb.gtMaps, grids)];
    })
  );
  try {
    const host = (await gpu().read(ts)).map((b) => new Float32Array(b));
    const k = grids.length;
    return {
      n,
      dim: host[0]!.length / n,
      image: host[0]!,
      text: host[1]!,
      probs: host.slice(2, 2 + k),
      targets: host.slice(2 + k, 2 + 2 * k),
      grids,
    };
  } finally {
    for (const t of ts) t.dispose();
  }
}

/**
 * Normalised text features of token rows, in chunks.
 *
 * @param model The model.
 * @param tokens `[rows, context]` token ids.
 * @param context Token sequence length.
 * @param chunk Rows per forward (default 64).
 * @returns `[rows, dim]`.
 */
export async function textFeatures(
  model: Ps3Clip,
  tokens: Int32Array,
  context: number,
  chunk = 64,
): Promise<Float32Array> {
  const rows = tokens.length / context;
  const parts: Float32Array[] = [];
  for (let r = 0; r < rows; r += chunk) {
    const m = Math.min(chunk, rows - r);
    const t = tidy(() =>
      noGrad(() =>
        model.encodeText(tensor(tokens.slice(r * context, (r + m) * context), [m, context], "i32"))
      )
    );
    try {
      parts.push(new Float32Array((await gpu().read([t]))[0]!));
    } finally {
      t.dispose();
    }
  }
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
