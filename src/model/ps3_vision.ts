/**
 * The PS3 vision encoder: a SigLIP ViT that encodes a low-res view, scores every high-res
 * patch (bottom-up from a learned prior prompt, top-down from a caption), selects a fixed
 * budget of patches per sample on the GPU, and encodes only those, attending to the low-res
 * key/value cache. Parameter names are the Hugging Face names of the reference
 * (`vision_model.*`).
 *
 * Layouts: images [B, 3, H, W] (normalised); tokens [B, N, C]; probability maps
 * [B, gh * gw] in raster order; selected indices [B, k] i32 in ascending (raster) order.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { checkpoint } from "../autograd/checkpoint.ts";
import { noGrad } from "../autograd/tape.ts";
import {
  add,
  affine,
  broadcastTo,
  clamp,
  maximum,
  mul,
  sigmoid,
  unary,
} from "../ops/elementwise.ts";
import { concat, slice } from "../ops/layout.ts";
import { matmul } from "../ops/matmul.ts";
import { cast } from "../ops/cast.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import { normalize } from "../ops/norm.ts";
import { sum } from "../ops/reduce.ts";
import { reshape } from "../ops/shape.ts";
import { gatherPatches, patchify } from "../ops/patch.ts";
import { gatherRows } from "../ops/gather.ts";
import { topkIndices } from "../ops/topk.ts";
import { resizeArea, resizeBicubic, resizeBicubicAA, resizeNearest } from "../ops/resize.ts";
import { adaptiveMaxPool } from "../ops/pool.ts";
import { AttentionPool } from "../nn/attention_pool.ts";
import { ShallowConvNet } from "../nn/convnet.ts";
import { LayerNorm, Linear } from "../nn/linear.ts";
import { Mlp } from "../nn/mlp.ts";
import type { ModelKernels, ParamBuilder, ParamRef } from "../nn/module.ts";
import { type KvCache, VitBlock } from "../nn/vit_block.ts";
import { normal, torchDefault, truncNormal, zeros } from "../nn/init.ts";
import type { VisionConfig } from "./config.ts";
import { featureSize, imageSize, selectCounts, type Size } from "./scales.ts";
import type { Rng } from "../util/rng.ts";

/** Inputs of the training forward. */
export interface VisionTrainInput {
  /** Images [B, 3, H, W], normalised. */
  images: Tensor;
  /** Top-down prompt [B, C] (prompt_proj of the text features), or null for bottom-up. */
  prompt: Tensor | null;
  /** Ground-truth box maps [B, H, W] (1 inside a box), or null. */
  gtMaps: Tensor | null;
  /** Force the gt patches into the selection (the reference's select_w_gt). */
  selectWithGt: boolean;
  /** Pool only high-res tokens inside the boxes (pool_gt_token_only). */
  poolGtOnly: boolean;
  /** Global-caption flags [B, 1] (1 = use the low-res pooled feature), or null. */
  isGlobal: Tensor | null;
  /** Recompute block activations in the backward pass. */
  checkpoint: boolean;
  /** Selected indices per high-res scale [B, k_i] i32 chosen elsewhere (e.g. with PyTorch's
   * tie-breaking, by debug-step); by default the GPU top-k of the selection probabilities. */
  selected?: Tensor[] | undefined;
}

/** Outputs of the training forward. */
export interface VisionTrainOutput {
  /** Pooled image features [B, C] (not normalised). */
  pooled: Tensor;
  /** Low-res pooled features [B, C]. */
  lowResPooled: Tensor;
  /** Bottom-up probabilities per high-res scale [B, gh * gw]. */
  priorProbs: Tensor[];
  /** Top-down probabilities per high-res scale, or null without a prompt. */
  posteriorProbs: Tensor[] | null;
  /** Probabilities the selection used (after the gt override) per high-res scale. */
  selectProbs: Tensor[];
  /** Selected patch indices per high-res scale [B, k_i] i32, ascending. */
  selected: Tensor[];
  /** Feature grid [rows, cols] of every scale (scale 0 first). */
  featureSizes: Size[];
}

/** What the low-res pass keeps. */
export interface LowResState {
  /** Output of every block [B, N0, C] (before the final norm). */
  hidden: Tensor[];
  /** Keys and values of every block. */
  cache: KvCache[];
  /** Pooled low-res features [B, C]. */
  pooled: Tensor;
}

/** The PS3 vision encoder. */
export class Ps3VisionEncoder {
  /** Configuration. */
  readonly config: VisionConfig;
  /** The model's kernel choices. */
  readonly kernels: ModelKernels;
  /** Patch embedding weight [C, 3, p, p]. */
  readonly patchWeight: ParamRef;
  /** Patch embedding bias [C]. */
  readonly patchBias: ParamRef;
  /** Base position table [1, G*G, C]. */
  readonly posEmbed: ParamRef;
  /** Blocks. */
  readonly blocks: VitBlock[];
  /** Final norm. */
  readonly norm: LayerNorm;
  /** MAP head. */
  readonly pool: AttentionPool;
  /** Selection feature projection. */
  readonly selectionProj: Mlp;
  /** Bottom-up prompt [C]. */
  readonly priorPrompt: ParamRef;
  /** Per-scale position residuals [1, G_i^2, C], or none. */
  readonly posResidual: ParamRef[];
  /** The high-res selection ConvNet, or null. */
  readonly convNet: ShallowConvNet | null;
  /** Prompt projection for the ConvNet features, or null. */
  readonly promptProjHighres: Linear | null;

  /**
   * Declares the parameters.
   *
   * @param b Parameter builder.
   * @param rng Generator for initialisation.
   * @param config Vision configuration.
   */
  constructor(b: ParamBuilder, rng: Rng, config: VisionConfig) {
    this.config = config;
    this.kernels = b.kernels;
    const t = config.trunk;
    const c = t.width, p = t.patch;
    const pre = "vision_model";
    const fan = 3 * p * p;
    // Declared in PyTorch's state_dict order (a module's own parameters before its
    // submodules'), which `ps3 convert --list-keys` prints.
    this.priorPrompt = b.add(`${pre}.prior_prompt`, [c], normal(rng, 1));
    this.posEmbed = b.add(
      `${pre}.trunk.pos_embed`,
      [1, t.posGrid * t.posGrid, c],
      truncNormal(rng, 0.02),
    );
    this.patchWeight = b.add(
      `${pre}.trunk.patch_embed.proj.weight`,
      [c, 3, p, p],
      torchDefault(rng, fan),
    );
    this.patchBias = b.add(`${pre}.trunk.patch_embed.proj.bias`, [c], torchDefault(rng, fan));
    const lin = { weight: truncNormal(rng, 0.02), bias: zeros };
    this.blocks = [...Array(t.depth).keys()].map((i) =>
      new VitBlock(b, `${pre}.trunk.blocks.${i}`, rng, t, lin, t.act ?? "gelu")
    );
    this.norm = new LayerNorm(b, `${pre}.trunk.norm`, c, t.eps);
    this.pool = new AttentionPool(
      b,
      `${pre}.trunk.attn_pool`,
      rng,
      { width: c, heads: t.heads, mlpHidden: t.mlpHidden, eps: t.eps },
      { latent: truncNormal(rng, c ** -0.5), ...lin },
      config.poolAct,
    );
    const nl = config.selectLayers.length, k = config.scales.length - 1;
    this.selectionProj = new Mlp(b, `${pre}.selection_feature_proj`, rng, [nl * c, nl * c, k * c], {
      normEps: 1e-5,
    });
    this.posResidual = config.separatePosEmb
      ? config.scales.slice(1).map((s, i) => {
        const g = Math.floor(s / p);
        return b.add(`${pre}.pos_emb_residual.${i}`, [1, g * g, c], zeros);
      })
      : [];
    if (config.conv) {
      this.convNet = new ShallowConvNet(
        b,
        `${pre}.highres_selection_feature_module`,
        rng,
        config.conv,
      );
      this.promptProjHighres = new Linear(
        b,
        `${pre}.prompt_proj_for_highres`,
        rng,
        c,
        config.conv.out * k,
      );
    } else {
      this.convNet = null;
      this.promptProjHighres = null;
    }
  }

  /** Trunk width C. */
  get width(): number {
    return this.config.trunk.width;
  }

  /**
   * Feature grids of every scale for an input size.
   *
   * @param input [h, w] of the input image.
   * @returns [rows, cols] per scale (scale 0 first).
   */
  featureSizes(input: Size): Size[] {
    const { scales, trunk } = this.config;
    return scales.map((_, i) => featureSize(scales, trunk.patch, input, i));
  }

  /**
   * Tokens selected per high-res scale for an input size (budgets with spill-over).
   *
   * @param input [h, w].
   * @param budgets Budgets per high-res scale (default the configured ones).
   * @returns Counts per high-res scale.
   */
  selectCounts(input: Size, budgets: readonly number[] = this.config.budgets): number[] {
    const fs = this.featureSizes(input).slice(1);
    return selectCounts(budgets, fs.map(([h, w]) => h * w));
  }

  /**
   * Resizes images with PyTorch's bicubic (a = -0.75, no antialias).
   *
   * @param images [B, 3, H, W].
   * @param size Target [h, w].
   * @returns [B, 3, h, w] (the input itself when the size matches).
   */
  resizeImages(images: Tensor, size: Size): Tensor {
    const [b, ch, h, w] = images.shape as [number, number, number, number];
    if (h === size[0] && w === size[1]) return images;
    const y = resizeBicubic(images.view([b * ch, h, w, 1]), size);
    return y.view([b, ch, size[0], size[1]]);
  }

  /**
   * The base position table for a feature grid: the learned grid resized (antialiased
   * bicubic) to a square of the longer side and cropped to the top-left rows x cols, as
   * timm's resample_abs_pos_embed in the reference; unchanged when the grid matches.
   *
   * @param grid [rows, cols].
   * @returns [rows * cols, C].
   */
  posTable(grid: Size): Tensor {
    const g = this.config.trunk.posGrid, c = this.width;
    const [gh, gw] = grid;
    const pos = this.posEmbed.value;
    if (gh === g && gw === g) return reshape(pos, [g * g, c]);
    const m = Math.max(gh, gw);
    let t = resizeBicubicAA(reshape(pos, [1, g, g, c]), [m, m]);
    if (gh < m) t = slice(t, { axis: 1, start: 0, end: gh });
    if (gw < m) t = slice(t, { axis: 2, start: 0, end: gw });
    return reshape(t, [gh * gw, c]);
  }

  /**
   * Embeds whole images at scale 0 (patch embedding + position table).
   *
   * @param images [B, 3, H, W].
   * @returns Low-res tokens [B, N0, C].
   */
  embedLowRes(images: Tensor): Tensor {
    const { scales, trunk } = this.config;
    const x0 = this.resizeImages(images, [scales[0]!, scales[0]!]);
    const g0 = scales[0]! / trunk.patch;
    // The image is f32; the trunk input is stored in the activation dtype from here (the
    // patch embedding's store), the f32 position table added in f32 arithmetic.
    const tokens = matmul(patchify(x0, trunk.patch), this.patchMatrix(), {
      transB: true,
      bias: this.patchBias.value,
      kernel: this.kernels.matmul,
      dtype: this.activations,
    });
    return add(tokens, this.posTable([g0, g0]));
  }

  /** Storage of the trunk's activations (see `ModelKernels.activations`). */
  get activations(): FloatDType {
    return this.kernels.activations ?? "f32";
  }

  /** The patch-embedding weight as a [C, 3*p*p] matrix. */
  patchMatrix(): Tensor {
    const p = this.config.trunk.patch;
    return reshape(this.patchWeight.value, [this.width, 3 * p * p]);
  }

  /**
   * Runs the low-res pass.
   *
   * @param images [B, 3, H, W].
   * @param ckpt Recompute block activations in the backward pass.
   * @returns Hidden states, KV cache and pooled features.
   */
  lowRes(images: Tensor, ckpt: boolean): LowResState {
    let x = this.embedLowRes(images);
    const hidden: Tensor[] = [];
    const cache: KvCache[] = [];
    for (const blk of this.blocks) {
      const run = (h: Tensor) => {
        const o = blk.forward(h, null);
        return [o.x, o.kv.k, o.kv.v];
      };
      const [y, k, v] = (ckpt ? checkpoint(run, [x]) : run(x)) as [Tensor, Tensor, Tensor];
      x = y;
      hidden.push(y);
      cache.push({ k, v });
    }
    // The pooled features are f32: the attention pool runs on the f32 cast of the normed trunk.
    const pooled = this.pool.forward(cast(this.norm.forward(x), "f32"), null);
    return { hidden, cache, pooled };
  }

  /**
   * Selection probabilities of scale 0's grid for a prompt, resized (nearest) to every
   * high-res grid: cos(selection feature, q), averaged with the max-pooled ConvNet
   * similarity, times 5, clamped to [-10, 10], through a sigmoid. Every scale uses the first
   * scale's channel, as the reference does.
   *
   * @param features Normalised selection features of channel 0 [B, N0, C].
   * @param convFeatures Normalised ConvNet features [B, Hc, Wc, out], or null.
   * @param q Prompt [B, C].
   * @param sizes Feature grids (scale 0 first).
   * @returns Probabilities per high-res scale [B, gh * gw].
   */
  selectionProbs(
    features: Tensor,
    convFeatures: Tensor | null,
    q: Tensor,
    sizes: Size[],
  ): Tensor[] {
    const [batch, n0] = features.shape as [number, number];
    const c = this.width;
    const [g0h, g0w] = sizes[0]!;
    const qn = reshape(normalize(q), [batch, 1, c]);
    let logits = sum(mul(features, qn), -1); // [B, N0]
    if (convFeatures && this.promptProjHighres) {
      const [, hc, wc, od] = convFeatures.shape as [number, number, number, number];
      const hp = slice(this.promptProjHighres.forward(q), { axis: -1, start: 0, end: od });
      const hpn = reshape(normalize(hp), [batch, 1, 1, od]);
      const hl = reshape(sum(mul(convFeatures, hpn), -1, true), [batch, hc, wc, 1]);
      const pooled = reshape(adaptiveMaxPool(hl, [g0h, g0w]), [batch, n0]);
      logits = affine(add(logits, pooled), 0.5);
    }
    const prob = reshape(sigmoid(clamp(affine(logits, 5), -10, 10)), [batch, g0h, g0w, 1]);
    return sizes.slice(1).map(([gh, gw]) => {
      const r = gh === g0h && gw === g0w ? prob : resizeNearest(prob, [gh, gw]);
      return reshape(r, [batch, gh * gw]);
    });
  }

  /**
   * The ground-truth patch masks used to force the selection: the box map area-resized to
   * scale 1's grid, then nearest-resized to each grid, > 0.
   *
   * @param gtMaps [B, H, W].
   * @param sizes Feature grids (scale 0 first).
   * @returns Per high-res scale [B, gh * gw] of 0/1.
   */
  gtSelectMasks(gtMaps: Tensor, sizes: Size[]): Tensor[] {
    return noGrad(() => {
      const [b, h, w] = gtMaps.shape as [number, number, number];
      const g1 = resizeArea(gtMaps.view([b, h, w, 1]), sizes[1]!);
      return sizes.slice(1).map(([gh, gw]) => {
        const m = resizeNearest(g1, [gh, gw]);
        return unary("greaterThan", m.view([b, gh * gw]), 0);
      });
    });
  }

  /**
   * The probabilities the selection uses: with select_w_gt, 1 on the ground-truth patches.
   *
   * @param probs Prior or posterior probabilities per high-res scale.
   * @param input The gt maps and the switch.
   * @param sizes Feature grids.
   * @returns Probabilities per high-res scale (no gradient).
   */
  overrideWithGt(
    probs: readonly Tensor[],
    input: Pick<VisionTrainInput, "gtMaps" | "selectWithGt">,
    sizes: Size[],
  ): Tensor[] {
    return noGrad(() => {
      if (!input.selectWithGt || !input.gtMaps) return probs.map((p) => p.alias(p.shape));
      const gt = this.gtSelectMasks(input.gtMaps, sizes);
      return probs.map((p, i) => maximum(p, gt[i]!));
    });
  }

  /**
   * Just the probabilities the training selection would use (the low-res pass, selection
   * features, prior or posterior, gt override), without gradients.
   *
   * @param input As for {@linkcode Ps3VisionEncoder.forwardTrain}.
   * @returns Probabilities per high-res scale [B, gh * gw].
   */
  selectionProbsFor(input: VisionTrainInput): Tensor[] {
    return noGrad(() => {
      const { images } = input;
      const [batch, , h, w] = images.shape as [number, number, number, number];
      const sizes = this.featureSizes([h, w]);
      const low = this.lowRes(images, false);
      const feats = this.selectionFeatures(low.hidden);
      const conv = this.convFeatures(images);
      const q = input.prompt ??
        broadcastTo(reshape(this.priorPrompt.value, [1, this.width]), [batch, this.width]);
      return this.overrideWithGt(this.selectionProbs(feats, conv, q, sizes), input, sizes);
    });
  }

  /**
   * Encodes the selected high-res patches: each scale's image resized, only the selected
   * patches embedded with the shared patch weights, plus the base position table resized to
   * that grid and the scale's own residual, concatenated over scales.
   *
   * @param images [B, 3, H, W].
   * @param selected Indices per high-res scale [B, k_i].
   * @param sizes Feature grids (scale 0 first).
   * @returns High-res tokens [B, sum k_i, C].
   */
  embedHighRes(images: Tensor, selected: readonly Tensor[], sizes: Size[]): Tensor {
    const { scales, trunk } = this.config;
    const [hIn, wIn] = images.shape.slice(2) as [number, number];
    const w = this.patchMatrix();
    const parts: Tensor[] = [];
    selected.forEach((idx, i) => {
      if (idx.shape[1] === 0) return;
      const grid = sizes[i + 1]!;
      const img = this.resizeImages(images, imageSize(scales, trunk.patch, [hIn, wIn], i + 1));
      const tokens = matmul(gatherPatches(img, { patch: trunk.patch, index: idx }), w, {
        transB: true,
        bias: this.patchBias.value,
        kernel: this.kernels.matmul,
        dtype: this.activations,
      });
      // Gather the selected rows of each table, then add: the full tables of the 4K scale
      // (72900 x 1152) exceed one storage binding on some adapters.
      let pos = gatherRows(this.posTable(grid), idx);
      const res = this.posResidual[i];
      if (res) pos = add(pos, gatherRows(this.residualTable(res, grid), idx));
      parts.push(add(tokens, pos));
    });
    return parts.length === 1 ? parts[0]! : concat(parts, 1);
  }

  /** A scale's residual table cropped to the top-left grid: [rows * cols, C]. */
  residualTable(res: ParamRef, grid: Size): Tensor {
    const c = this.width;
    const g = Math.round(Math.sqrt(res.shape[1]!));
    const [gh, gw] = grid;
    if (gh === g && gw === g) return reshape(res.value, [g * g, c]);
    let t = reshape(res.value, [g, g, c]);
    if (gh < g) t = slice(t, { axis: 0, start: 0, end: gh });
    if (gw < g) t = slice(t, { axis: 1, start: 0, end: gw });
    return reshape(t, [gh * gw, c]);
  }

  /**
   * Runs the high-res blocks over the selected tokens, each attending to its block's
   * low-res cache, then the final norm.
   *
   * @param tokens [B, M, C].
   * @param cache Low-res keys and values per block.
   * @param ckpt Recompute block activations in the backward pass.
   * @returns Every block's output (the last is before the final norm) and the normed last.
   */
  highRes(
    tokens: Tensor,
    cache: readonly KvCache[],
    ckpt: boolean,
  ): { hidden: Tensor[]; normed: Tensor } {
    let x = tokens;
    const hidden: Tensor[] = [];
    this.blocks.forEach((blk, i) => {
      const kv = cache[i]!;
      const run = (h: Tensor, k: Tensor, v: Tensor) => [blk.forward(h, { k, v }).x];
      x = (ckpt ? checkpoint(run, [x, kv.k, kv.v]) : run(x, kv.k, kv.v))[0]!;
      hidden.push(x);
    });
    return { hidden, normed: this.norm.forward(x) };
  }

  /**
   * The pooling mask of pool_gt_token_only: each selected token's box coverage (box map
   * area-resized to its scale's grid) non-zero; a sample with none attends to all.
   *
   * @param gtMaps [B, H, W].
   * @param selected Indices per high-res scale.
   * @param sizes Feature grids.
   * @returns [B, M] of 0/1.
   */
  poolMask(gtMaps: Tensor, selected: readonly Tensor[], sizes: Size[]): Tensor {
    return noGrad(() => {
      const [b, h, w] = gtMaps.shape as [number, number, number];
      const parts = selected.map((idx, i) => {
        const [gh, gw] = sizes[i + 1]!;
        const cover = resizeArea(gtMaps.view([b, h, w, 1]), [gh, gw]).view([b, gh * gw, 1]);
        return gatherRows(cover, idx).view([b, idx.shape[1]!]);
      }).filter((t) => t.size > 0);
      const all = parts.length === 1 ? parts[0]! : concat(parts, 1);
      const mask = unary("greaterThan", all, 0);
      const none = unary("equalTo", sum(mask, -1, true), 0);
      return maximum(mask, none);
    });
  }

  /**
   * Normalised selection features of channel 0: the selected blocks' outputs concatenated
   * along channels, through selection_feature_proj.
   *
   * @param hidden Low-res block outputs.
   * @returns [B, N0, C].
   */
  selectionFeatures(hidden: readonly Tensor[]): Tensor {
    // The selection MLP runs on the block outputs in the activation dtype (f16 with
    // `train.precision: f16`, as under the reference's AMP autocast); its fc2 sums in f32 and
    // stores f32: the features feed the selection logits, which stay f32 from here.
    const parts = this.config.selectLayers.map((l) => hidden[l]!);
    const f = this.selectionProj.forward(parts.length === 1 ? parts[0]! : concat(parts, -1), {
      dtype: "f32",
    });
    return normalize(slice(f, { axis: -1, start: 0, end: this.width }));
  }

  /**
   * The ConvNet features of the image resized to the ConvNet's input size, normalised.
   *
   * @param images [B, 3, H, W].
   * @returns [B, Hc, Wc, out], or null without the ConvNet.
   */
  convFeatures(images: Tensor): Tensor | null {
    const conv = this.config.conv;
    if (!this.convNet || !conv) return null;
    const x = this.resizeImages(images, [conv.inputSize, conv.inputSize]);
    return normalize(this.convNet.forward(x));
  }

  /**
   * The training forward: low-res pass, selection (with the gt override when asked), the
   * high-res pass over the selected patches, pooling, and the global-caption switch.
   *
   * @param input Images, prompt, boxes, flags.
   * @returns Pooled features and everything the losses and tools need.
   */
  forwardTrain(input: VisionTrainInput): VisionTrainOutput {
    const { images } = input;
    const [batch, , h, w] = images.shape as [number, number, number, number];
    const sizes = this.featureSizes([h, w]);
    const low = this.lowRes(images, input.checkpoint);
    const feats = this.selectionFeatures(low.hidden);
    const conv = this.convFeatures(images);
    const prior = broadcastTo(reshape(this.priorPrompt.value, [1, this.width]), [
      batch,
      this.width,
    ]);
    const priorProbs = this.selectionProbs(feats, conv, prior, sizes);
    const posteriorProbs = input.prompt
      ? this.selectionProbs(feats, conv, input.prompt, sizes)
      : null;
    const counts = this.selectCounts([h, w]);
    const selectProbs = this.overrideWithGt(posteriorProbs ?? priorProbs, input, sizes);
    const selected = input.selected ??
      noGrad(() => selectProbs.map((p, i) => topkIndices(p, counts[i]!)));
    const tokens = this.embedHighRes(images, selected, sizes);
    const high = this.highRes(tokens, low.cache, input.checkpoint);
    const mask = input.poolGtOnly && input.gtMaps
      ? this.poolMask(input.gtMaps, selected, sizes)
      : null;
    // The pooled features are f32: the attention pool runs on the f32 cast of the normed trunk.
    let pooled = this.pool.forward(cast(high.normed, "f32"), mask);
    if (input.isGlobal) {
      const g = input.isGlobal;
      pooled = add(mul(low.pooled, g), mul(pooled, affine(g, -1, 1)));
    }
    return {
      pooled,
      lowResPooled: low.pooled,
      priorProbs,
      posteriorProbs,
      selectProbs,
      selected,
      featureSizes: sizes,
    };
  }
}
