/**
 * The PS3 CLIP model (open_clip CustomTextCLIP with PS3): vision encoder, text tower,
 * prompt projection, logit scale and bias, and the training forward that returns the
 * SigLIP loss and the prior / posterior box-supervision losses separately.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { noGrad } from "../autograd/tape.ts";
import { add, affine } from "../ops/elementwise.ts";
import { normalize } from "../ops/norm.ts";
import { constant } from "../nn/init.ts";
import { Mlp } from "../nn/mlp.ts";
import { type GroupFn, ParamBuilder, type ParamRef } from "../nn/module.ts";
import type { ParamTable } from "../nn/params.ts";
import { TextTransformer } from "../nn/text_transformer.ts";
import { boxLoss, boxTargets } from "../loss/box.ts";
import { siglipLoss } from "../loss/siglip.ts";
import type { ModelConfig } from "./config.ts";
import { Ps3VisionEncoder, type VisionTrainInput, type VisionTrainOutput } from "./ps3_vision.ts";
import { Rng } from "../util/rng.ts";

/** A training batch on the GPU. */
export interface TrainBatch {
  /** Images [B, 3, S, S], normalised. */
  images: Tensor;
  /** Token ids [B, T] i32. */
  tokens: Tensor;
  /** Box maps [B, S, S] (1 inside a chosen box). */
  gtMaps: Tensor;
  /** Global-caption flags [B, 1] (f32 0/1) on the GPU. */
  isGlobal: Tensor;
  /** The same flags on the host (the box loss counts local samples). */
  isGlobalHost: ArrayLike<number>;
}

/** Switches of the training forward (the reference script's flags). */
export interface TrainOptions {
  /** Force gt patches into the selection (select_w_gt). */
  selectWithGt: boolean;
  /** Pool only tokens inside boxes (pool_gt_token_only). */
  poolGtOnly: boolean;
  /** Use the low-res pooled feature for global captions (use_global_caption). */
  useGlobalCaption: boolean;
  /** Weight of the prior box loss. */
  priorWeight: number;
  /** Weight of the posterior box loss. */
  posteriorWeight: number;
  /** Recompute activations per block in the backward pass. */
  checkpoint: boolean;
}

/** The training forward's results. */
export interface TrainOutput {
  /** Weighted total loss (scalar). */
  total: Tensor;
  /** SigLIP loss. */
  contrastive: Tensor;
  /** Weighted prior box loss. */
  priorBox: Tensor;
  /** Weighted posterior box loss. */
  posteriorBox: Tensor;
  /** Normalised image features [B, E]. */
  imageFeatures: Tensor;
  /** Normalised text features [B, E]. */
  textFeatures: Tensor;
  /** The vision encoder's outputs (probabilities, selection). */
  vision: VisionTrainOutput;
}

/** The PS3 CLIP model bound to its parameter table. */
export class Ps3Clip {
  /** Configuration. */
  readonly config: ModelConfig;
  /** Vision encoder. */
  readonly vision: Ps3VisionEncoder;
  /** Text tower. */
  readonly text: TextTransformer;
  /** Text features -> vision prompt (CustomTextCLIP.prompt_proj, saved as text_model.prompt_proj). */
  readonly promptProj: Mlp;
  /** Log temperature (scalar). */
  readonly logitScale: ParamRef;
  /** Logit bias (scalar). */
  readonly logitBias: ParamRef;
  /** The parameters. */
  readonly params: ParamTable;

  /**
   * Declares every parameter and builds the table.
   *
   * @param config Model configuration.
   * @param options Initialisation seed, optimizer groups, table buffer size.
   */
  constructor(
    config: ModelConfig,
    options: {
      seed?: number | undefined;
      group?: GroupFn | undefined;
      chunkBytes?: number | undefined;
    } = {},
  ) {
    this.config = config;
    const b = new ParamBuilder();
    const rng = new Rng(options.seed ?? 0);
    this.logitScale = b.add("logit_scale", [], constant(config.initLogitScale));
    this.logitBias = b.add("logit_bias", [], constant(config.initLogitBias));
    this.vision = new Ps3VisionEncoder(b, rng, config.vision);
    this.text = new TextTransformer(b, "text_model", rng, config.text);
    const c = config.vision.trunk.width;
    this.promptProj = new Mlp(b, "text_model.prompt_proj", rng, [config.text.outputDim, c, c], {
      normEps: 1e-5,
    });
    this.params = b.build(options.group ?? referenceGroups(false), {
      chunkBytes: options.chunkBytes,
    });
  }

  /**
   * Text features, normalised.
   *
   * @param tokens [B, T] i32.
   * @param ckpt Recompute block activations in the backward pass.
   * @returns [B, E].
   */
  encodeText(tokens: Tensor, ckpt = false): Tensor {
    return normalize(this.text.forward(tokens, { checkpoint: ckpt }));
  }

  /**
   * The probabilities the training forward's selection would use, without gradients (for
   * choosing the patches elsewhere, e.g. with PyTorch's tie-breaking).
   *
   * @param batch Images, tokens, box maps, flags.
   * @param opts The reference's switches.
   * @returns Probabilities per high-res scale [B, gh * gw].
   */
  selectionProbs(batch: TrainBatch, opts: TrainOptions): Tensor[] {
    return noGrad(() => {
      const prompt = this.promptProj.forward(this.encodeText(batch.tokens));
      return this.vision.selectionProbsFor(this.visionInput(batch, opts, prompt, undefined));
    });
  }

  /**
   * The training forward and losses.
   *
   * @param batch Images, tokens, box maps, flags.
   * @param opts The reference's switches and loss weights.
   * @param selected Patches chosen elsewhere per high-res scale (default: GPU top-k).
   * @returns Loss terms, features and the vision outputs.
   */
  forwardTrain(batch: TrainBatch, opts: TrainOptions, selected?: Tensor[]): TrainOutput {
    const textFeatures = this.encodeText(batch.tokens, opts.checkpoint);
    const prompt = this.promptProj.forward(textFeatures);
    const vision = this.vision.forwardTrain(this.visionInput(batch, opts, prompt, selected));
    const imageFeatures = normalize(vision.pooled);
    const contrastive = siglipLoss(
      imageFeatures,
      textFeatures,
      this.logitScale.value,
      this.logitBias.value,
    );
    const targets = boxTargets(batch.gtMaps, vision.featureSizes.slice(1));
    const priorBox = affine(
      boxLoss(vision.priorProbs, targets, batch.isGlobalHost),
      opts.priorWeight,
    );
    const posteriorBox = affine(
      boxLoss(vision.posteriorProbs ?? vision.priorProbs, targets, batch.isGlobalHost),
      opts.posteriorWeight,
    );
    const total = add(add(contrastive, priorBox), posteriorBox);
    return { total, contrastive, priorBox, posteriorBox, imageFeatures, textFeatures, vision };
  }

  private visionInput(
    batch: TrainBatch,
    opts: TrainOptions,
    prompt: Tensor,
    selected: Tensor[] | undefined,
  ): VisionTrainInput {
    return {
      images: batch.images,
      prompt,
      gtMaps: batch.gtMaps,
      selectWithGt: opts.selectWithGt,
      poolGtOnly: opts.poolGtOnly,
      isGlobal: opts.useGlobalCaption ? batch.isGlobal : null,
      checkpoint: opts.checkpoint,
      selected,
    };
  }
}

/**
 * The open_clip name of a Hugging Face parameter name (the converter's renaming reversed).
 *
 * @param hf Hugging Face name.
 * @returns open_clip name.
 */
export function openClipName(hf: string): string {
  if (hf.startsWith("text_model.prompt_proj.")) {
    return hf.replace("text_model.prompt_proj.", "prompt_proj.");
  }
  if (hf.startsWith("vision_model.")) return "visual." + hf.slice("vision_model.".length);
  if (hf.startsWith("text_model.")) return "text." + hf.slice("text_model.".length);
  return hf;
}

const SELECTION_PREFIXES = [
  "prompt_proj",
  "visual.selection_feature_proj",
  "visual.prior_prompt",
  "visual.highres_selection_feature_module",
  "visual.prompt_proj_for_highres",
];

/**
 * The reference's AdamW parameter groups (open_clip main.py): no weight decay for 1-d
 * parameters, norms ("bn"/"ln"), biases and logit_scale; with a separate token-selection
 * learning rate, the token-selection parameters form their own group without decay.
 *
 * @param separateSelectionLr Whether a token-selection learning rate is set.
 * @returns The group function.
 */
export function referenceGroups(separateSelectionLr: boolean): GroupFn {
  return (hf, shape) => {
    const n = openClipName(hf);
    if (separateSelectionLr && SELECTION_PREFIXES.some((p) => n.includes(p))) {
      return { decay: false, lrGroup: "selection" };
    }
    const exclude = shape.length < 2 || n.includes("bn") || n.includes("ln") ||
      n.includes("bias") ||
      n.includes("logit_scale");
    return { decay: !exclude, lrGroup: "base" };
  };
}
