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
import { detach } from "../ops/creation.ts";
import { concat } from "../ops/layout.ts";
import { normalize } from "../ops/norm.ts";
import { constant } from "../nn/init.ts";
import { Mlp } from "../nn/mlp.ts";
import { type GroupFn, ParamBuilder, type ParamRef } from "../nn/module.ts";
import type { ParamSpec, ParamTable } from "../nn/params.ts";
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

/**
 * One micro-batch's view of an accumulated batch (see the trainer): every micro-batch's
 * features from a no-gradient pass, and the batch-wide count of local captions.
 */
export interface AccumContext {
  /** This micro-batch's position. */
  index: number;
  /** Normalised image features of every micro-batch (no gradient). */
  imageFeatures: readonly Tensor[];
  /** Normalised text features of every micro-batch (no gradient). */
  textFeatures: readonly Tensor[];
  /** Samples with local captions in the whole accumulated batch. */
  localCount: number;
}

/**
 * The same value with its gradient scaled: `x * s + detach(x) * (1 - s)`.
 *
 * @param x Input.
 * @param s Gradient scale.
 * @returns x, passing s times the gradient.
 */
function scaleGrad(x: Tensor, s: number): Tensor {
  return add(affine(x, s), affine(detach(x), 1 - s));
}

/** Declares the CLIP model's modules (in PyTorch's `state_dict` order) on a builder. */
function declareClip(b: ParamBuilder, config: ModelConfig, seed: number) {
  const rng = new Rng(seed);
  const logitScale = b.add("logit_scale", [], constant(config.initLogitScale));
  const logitBias = b.add("logit_bias", [], constant(config.initLogitBias));
  const vision = new Ps3VisionEncoder(b, rng, config.vision);
  const text = new TextTransformer(b, "text_model", rng, config.text);
  const c = config.vision.trunk.width;
  const promptProj = new Mlp(b, "text_model.prompt_proj", rng, [config.text.outputDim, c, c], {
    normEps: 1e-5,
  });
  return { logitScale, logitBias, vision, text, promptProj };
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
    const parts = declareClip(b, config, options.seed ?? 0);
    this.logitScale = parts.logitScale;
    this.logitBias = parts.logitBias;
    this.vision = parts.vision;
    this.text = parts.text;
    this.promptProj = parts.promptProj;
    this.params = b.build(options.group ?? referenceGroups(false), {
      chunkBytes: options.chunkBytes,
    });
  }

  /**
   * Every parameter declaration of a model, in PyTorch's `state_dict` order (the order of
   * the reference's Hugging Face checkpoint), without allocating any weights or touching the
   * GPU: the modules are declared on a builder that is never built.
   *
   * @param config Model configuration.
   * @param options `seed`: the initialisers' generator seed (as in the constructor; the
   *   initialisers draw in the order they are called).
   * @returns Name, shape and initialiser of each parameter.
   * @example
   * ```ts
   * for (const s of Ps3Clip.paramSpecs(await loadModelConfig("configs/ps3-1.5k.yaml"))) {
   *   console.log(s.name, s.shape);
   * }
   * ```
   */
  static paramSpecs(
    config: ModelConfig,
    options: { seed?: number | undefined } = {},
  ): readonly Omit<ParamSpec, "decay" | "lrGroup">[] {
    const b = new ParamBuilder();
    declareClip(b, config, options.seed ?? 0);
    return b.specs;
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
      return this.vision.selectionProbsFor(this.#visionInput(batch, opts, prompt, undefined));
    });
  }

  /**
   * The training forward and losses.
   *
   * @param batch Images, tokens, box maps, flags.
   * @param opts The reference's switches and loss weights.
   * @param extra Patches chosen elsewhere per high-res scale (default: GPU top-k), and the
   *   context of a micro-batch of an accumulated batch.
   * @returns Loss terms, features and the vision outputs.
   */
  forwardTrain(
    batch: TrainBatch,
    opts: TrainOptions,
    extra: { selected?: Tensor[] | undefined; accum?: AccumContext | undefined } = {},
  ): TrainOutput {
    const textFeatures = this.encodeText(batch.tokens, opts.checkpoint);
    const prompt = this.promptProj.forward(textFeatures);
    const vision = this.vision.forwardTrain(this.#visionInput(batch, opts, prompt, extra.selected));
    const imageFeatures = normalize(vision.pooled);
    const acc = extra.accum;
    let contrastive: Tensor;
    if (acc) {
      // SigLIP over the whole accumulated batch: this micro-batch's live features in its
      // rows, the other micro-batches' cached (no-gradient) features around them.
      const all = (cached: readonly Tensor[], live: Tensor) =>
        concat(cached.map((t, j) => (j === acc.index ? live : t)), 0);
      contrastive = siglipLoss(
        all(acc.imageFeatures, imageFeatures),
        all(acc.textFeatures, textFeatures),
        scaleGrad(this.logitScale.value, 1 / acc.imageFeatures.length),
        scaleGrad(this.logitBias.value, 1 / acc.imageFeatures.length),
      );
    } else {
      contrastive = siglipLoss(
        imageFeatures,
        textFeatures,
        this.logitScale.value,
        this.logitBias.value,
      );
    }
    const targets = boxTargets(batch.gtMaps, vision.featureSizes.slice(1));
    const nLocal = acc?.localCount;
    const priorBox = affine(
      boxLoss(vision.priorProbs, targets, { isGlobal: batch.isGlobalHost, localTotal: nLocal }),
      opts.priorWeight,
    );
    const posteriorBox = affine(
      boxLoss(vision.posteriorProbs ?? vision.priorProbs, targets, {
        isGlobal: batch.isGlobalHost,
        localTotal: nLocal,
      }),
      opts.posteriorWeight,
    );
    const total = add(add(contrastive, priorBox), posteriorBox);
    return { total, contrastive, priorBox, posteriorBox, imageFeatures, textFeatures, vision };
  }

  /** Gathers the vision encoder's training input from the batch, switches and prompt. */
  #visionInput(
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
