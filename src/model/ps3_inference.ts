/**
 * PS3 inference as the released package runs it (PS3VisionModel with output_hidden_states):
 * the low-res pass, bottom-up (prior prompt) or top-down (given prompt) selection
 * probabilities, then `num_look_close` rounds of selection + high-res encoding, each over
 * patches not selected before and each attending to the low-res cache plus its own tokens,
 * or `num_token_look_close` tokens (last round partial). The high-res features of all rounds
 * are put back in raster order per scale after the low-res tokens.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { tidy } from "../autograd/scope.ts";
import { gpu } from "../gpu/runtime.ts";
import type { KvCache } from "../nn/vit_block.ts";
import { add, affine, broadcastTo, mul } from "../ops/elementwise.ts";
import { zeros } from "../ops/creation.ts";
import { concat, slice } from "../ops/layout.ts";
import { gatherRows, inverseIndex, scatterValue } from "../ops/gather.ts";
import { topkIndices } from "../ops/topk.ts";
import { reshape } from "../ops/shape.ts";
import { cast } from "../ops/cast.ts";
import type { Ps3VisionEncoder } from "./ps3_vision.ts";
import { scaleBudgets, selectCounts, type Size } from "./scales.ts";

/** How much to look close: rounds (a count or "all") or a number of tokens. */
export type LookClose = { rounds: number | "all" } | { tokens: number | "all" };

/**
 * Parses `n`, `all` or `tokens:N` (the CLI forms of num_look_close / num_token_look_close).
 *
 * @param text The argument.
 * @returns The parsed request.
 */
export function parseLookClose(text: string): LookClose {
  if (text === "all") return { rounds: "all" };
  const m = /^tokens:(\d+|all)$/.exec(text);
  if (m) return { tokens: m[1] === "all" ? "all" : Number(m[1]) };
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(
      `Cannot look close "${text}" times: give a count >= 0, "all" or "tokens:N"`,
    );
  }
  return { rounds: n };
}

/** Options of {@linkcode encodeImage}. */
export interface EncodeOptions {
  /** Rounds or tokens of high-res encoding. */
  numLookClose: LookClose;
  /** Top-down prompt [B, C] (e.g. prompt_proj of a caption's features), or null. */
  prompt: Tensor | null;
  /** Patches chosen elsewhere, per round per high-res scale [B, k] i32 (must follow the
   * plan of {@linkcode planRounds}); by default the GPU top-k over unselected patches. */
  selections?: Tensor[][] | undefined;
}

/** What {@linkcode encodeImage} returns. */
export interface EncodeOutput {
  /** Low-res tokens then the selected high-res tokens per scale in raster order [B, N, C]
   * (last block outputs, before the final norm). */
  lastHiddenState: Tensor;
  /** Selection probabilities per high-res scale [B, gh, gw]. */
  selectionProbs: Tensor[];
  /** Patches encoded per high-res scale [B, gh, gw] (0/1). */
  selectionMaps: Tensor[];
  /** Feature maps per scale [B, gh, gw, C] (scale 0 complete; zeros where not encoded). */
  featureMaps: Tensor[];
  /** Tokens encoded per high-res scale (the same for every sample). */
  tokenCounts: number[];
  /** Feature grids per scale (scale 0 first). */
  featureSizes: Size[];
  /** Rounds of high-res encoding run. */
  rounds: number;
}

/**
 * Plans the rounds: tokens per high-res scale in each round (the reference's budgets,
 * spill-over over the patches still unselected, and the partial last round of a token
 * request).
 *
 * @param budgets Per-scale budgets.
 * @param candidates Patches per high-res scale.
 * @param look The request.
 * @returns Counts per round per scale.
 */
export function planRounds(
  budgets: readonly number[],
  candidates: readonly number[],
  look: LookClose,
): number[][] {
  const total = budgets.reduce((a, b) => a + b, 0);
  const maxTokens = candidates.reduce((a, b) => a + b, 0);
  let rounds: number, lastTokens: number | null = null;
  if ("rounds" in look) {
    const all = Math.ceil(maxTokens / total);
    rounds = look.rounds === "all" ? all : Math.min(look.rounds, all);
  } else {
    const m = look.tokens === "all" ? maxTokens : Math.min(look.tokens, maxTokens);
    if (m === 0) return [];
    rounds = Math.ceil(m / total);
    lastTokens = m % total || total;
  }
  const remaining = [...candidates];
  const plan: number[][] = [];
  for (let r = 0; r < rounds; r++) {
    const want = lastTokens !== null && r === rounds - 1
      ? scaleBudgets(budgets, lastTokens)
      : [...budgets];
    const counts = selectCounts(want, remaining);
    counts.forEach((c, i) => remaining[i]! -= c);
    plan.push(counts);
  }
  return plan;
}

/**
 * Encodes images for inference (no gradients are needed; call inside `noGrad`). Each block
 * and each stage runs in its own `tidy` scope, so its intermediate tensors go back to the
 * pool as soon as it has been recorded: the peak is one block's working set on top of the
 * low-res cache, not the activations of the whole network. The pool's free buffers go back to
 * the device between the low-res and selection stages and the high-res pass, whose sizes
 * differ, so the pool holds one pass's buffers, not both.
 *
 * @param vision The vision encoder.
 * @param images [B, 3, H, W], normalised, any size and aspect ratio.
 * @param options Rounds or tokens, and an optional prompt.
 * @returns Hidden states, selection probabilities and maps, feature maps.
 */
export function encodeImage(
  vision: Ps3VisionEncoder,
  images: Tensor,
  options: EncodeOptions,
): EncodeOutput {
  const [batch, , h, w] = images.shape as [number, number, number, number];
  const c = vision.width;
  const sizes = vision.featureSizes([h, w]);
  const grids = sizes.slice(1);
  const low = lowResBlocks(vision, images);
  const probs = tidy(() => {
    const feats = vision.selectionFeatures(low.hidden);
    const conv = vision.convFeatures(images);
    const q = options.prompt ??
      broadcastTo(reshape(vision.priorPrompt.value, [1, c]), [batch, c]);
    return vision.selectionProbs(feats, conv, q, sizes);
  });
  // The high-res pass allocates sizes of its own (M selected tokens, not N0): the free buffers
  // of the low-res pass, the selection MLP and the ConvNet would stay cached beside them.
  gpu().trimPool();
  const plan = planRounds(
    vision.config.budgets,
    grids.map(([a, b]) => a * b),
    options.numLookClose,
  );
  if (options.selections && options.selections.length !== plan.length) {
    throw new RangeError(
      `encodeImage(): ${options.selections.length} rounds of selections given, the plan has ${plan.length}`,
    );
  }
  // The features returned are f32: trunk outputs are cast from the activation dtype.
  const lowLast = cast(low.hidden[low.hidden.length - 1]!, "f32");
  const [g0h, g0w] = sizes[0]!;
  // Per scale: indices and features of every round.
  const idxRounds: Tensor[][] = grids.map(() => []);
  const featRounds: Tensor[][] = grids.map(() => []);
  const taken: Tensor[] = grids.map(([gh, gw]) => zeros([batch, gh * gw]));
  plan.forEach((counts, r) => {
    const given = options.selections?.[r];
    const idx = given ??
      probs.map((p, i) => tidy(() => topkIndices(maskTaken(p, taken[i]!), counts[i]!)));
    const out = highResLast(
      vision,
      tidy(() => vision.embedHighRes(images, idx, sizes)),
      low.cache,
    );
    const last = cast(out, "f32");
    let start = 0;
    idx.forEach((ix, i) => {
      const k = counts[i]!;
      if (k === 0) return;
      idxRounds[i]!.push(ix);
      featRounds[i]!.push(sliceTokens(last, start, k));
      start += k;
      const before = taken[i]!;
      taken[i] = scatterValue(before, ix, { value: 1 });
      before.dispose();
    });
  });
  const tokenCounts = grids.map((_, i) => plan.reduce((a, r) => a + r[i]!, 0));
  const highParts: Tensor[] = [];
  const featureMaps: Tensor[] = [reshape(lowLast, [batch, g0h, g0w, c])];
  grids.forEach(([gh, gw], i) => {
    const n = gh * gw;
    if (tokenCounts[i] === 0) {
      featureMaps.push(zeros([batch, gh, gw, c]));
      return;
    }
    const allIdx = cat(idxRounds[i]!, 1);
    const allFeat = cat(featRounds[i]!, 1);
    const inv = inverseIndex(allIdx, n);
    // Raster order: the selected positions sorted, then each one's row in the round outputs.
    const sorted = topkIndices(taken[i]!, tokenCounts[i]!);
    const order = reshape(gatherRows(inv.view([batch, n, 1]), sorted), [batch, tokenCounts[i]!]);
    highParts.push(gatherRows(allFeat, order));
    featureMaps.push(reshape(gatherRows(allFeat, inv), [batch, gh, gw, c]));
  });
  const lastHiddenState = highParts.length === 0 ? lowLast : concat([lowLast, ...highParts], 1);
  return {
    lastHiddenState,
    selectionProbs: probs.map((p, i) => reshape(p, [batch, ...grids[i]!])),
    selectionMaps: taken.map((t, i) => reshape(t, [batch, ...grids[i]!])),
    featureMaps,
    tokenCounts,
    featureSizes: sizes,
    rounds: plan.length,
  };
}

/**
 * The low-res blocks of inference, each in its own scope: the embedded tokens, then every
 * block's output and keys and values (the selection features and the high-res passes need
 * them); everything else a block makes is freed when it has been recorded.
 *
 * @param vision The vision encoder.
 * @param images [B, 3, H, W].
 * @returns Block outputs and the KV cache, per block.
 */
function lowResBlocks(
  vision: Ps3VisionEncoder,
  images: Tensor,
): { hidden: Tensor[]; cache: KvCache[] } {
  const embedded = tidy(() => vision.embedLowRes(images));
  let x = embedded;
  const hidden: Tensor[] = [];
  const cache: KvCache[] = [];
  for (const blk of vision.blocks) {
    const o = tidy(() => blk.forward(x, null));
    hidden.push(o.x);
    cache.push(o.kv);
    x = o.x;
  }
  embedded.dispose();
  return { hidden, cache };
}

/**
 * The high-res blocks of inference over the selected tokens, each in its own scope and each
 * freeing the previous block's output: only the last block's output (before the final norm)
 * is returned. Disposes `tokens`.
 *
 * @param vision The vision encoder.
 * @param tokens [B, M, C] embedded high-res tokens.
 * @param cache The low-res keys and values per block.
 * @returns The last block's output [B, M, C].
 */
function highResLast(vision: Ps3VisionEncoder, tokens: Tensor, cache: readonly KvCache[]): Tensor {
  let x = tokens;
  vision.blocks.forEach((blk, i) => {
    const y = tidy(() => blk.forward(x, cache[i]!).x);
    x.dispose();
    x = y;
  });
  return x;
}

/**
 * The selection probabilities of inference (bottom-up without a prompt), without the
 * high-res passes: for choosing the patches elsewhere.
 *
 * @param vision The vision encoder.
 * @param images [B, 3, H, W].
 * @param prompt Top-down prompt or null.
 * @returns Probabilities per high-res scale [B, gh * gw].
 */
export function inferenceProbs(
  vision: Ps3VisionEncoder,
  images: Tensor,
  prompt: Tensor | null,
): Tensor[] {
  const [batch, , h, w] = images.shape as [number, number, number, number];
  const c = vision.width;
  const sizes = vision.featureSizes([h, w]);
  const low = vision.lowRes(images, false);
  const q = prompt ?? broadcastTo(reshape(vision.priorPrompt.value, [1, c]), [batch, c]);
  return vision.selectionProbs(
    vision.selectionFeatures(low.hidden),
    vision.convFeatures(images),
    q,
    sizes,
  );
}

/**
 * Chooses every round's patches on the host with a top-k rule (e.g. PyTorch's tie-breaking):
 * each round takes its counts from the patches not yet chosen (the reference sets their
 * probability to -1 and takes the top k).
 *
 * @param probs Host probabilities per high-res scale, [B * N] each.
 * @param batch B.
 * @param plan Counts per round per scale ({@linkcode planRounds}).
 * @param topk The rule: indices of the k largest of one row.
 * @returns Indices per round per scale, [B * k] each.
 */
export function planSelections(
  probs: readonly Float32Array[],
  batch: number,
  plan: readonly number[][],
  topk: (row: ArrayLike<number>, k: number) => number[],
): Int32Array[][] {
  const work = probs.map((p) => Float64Array.from(p));
  return plan.map((counts) =>
    counts.map((k, i) => {
      const all = work[i]!;
      const n = all.length / batch;
      const out = new Int32Array(batch * k);
      for (let b = 0; b < batch; b++) {
        const row = all.subarray(b * n, (b + 1) * n);
        const idx = topk(row, k);
        out.set(idx, b * k);
        for (const j of idx) row[j] = -1;
      }
      return out;
    })
  );
}

/** Probabilities with already-encoded patches set to -1: `p * (1 - t) - t`, t in {0, 1}
 * (the reference's exclusion of previously selected patches). */
function maskTaken(p: Tensor, taken: Tensor): Tensor {
  return add(mul(p, affine(taken, -1, 1)), affine(taken, -1, 0));
}

function sliceTokens(x: Tensor, start: number, k: number): Tensor {
  return slice(x, { axis: 1, start, end: start + k });
}

function cat(parts: Tensor[], axis: number): Tensor {
  return parts.length === 1 ? parts[0]! : concat(parts, axis);
}
