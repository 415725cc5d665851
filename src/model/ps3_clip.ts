/**
 * The PS3 CLIP model (open_clip CustomTextCLIP with PS3): vision encoder, text tower,
 * prompt projection, logit scale and bias. The training forward returns what the model
 * computes (normalised features, selection probabilities, logit scale and bias); the losses
 * are `src/loss/`'s, assembled with the model by the trainer.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { noGrad } from "../autograd/tape.ts";
import { normalize } from "../ops/norm.ts";
import { concat } from "../ops/layout.ts";
import { constant } from "../nn/init.ts";
import { Mlp } from "../nn/mlp.ts";
import {
  type GroupFn,
  type ModelKernels,
  ParamBuilder,
  type ParamRef,
  SINGLE_GROUP,
} from "../nn/module.ts";
import type { ParamSpec, ParamTable } from "../params/param_table.ts";
import { TextTransformer } from "../nn/text_transformer.ts";
import type { ModelConfig } from "./config.ts";
import { Ps3VisionEncoder, type VisionTrainInput, type VisionTrainOutput } from "./ps3_vision.ts";
import type { Size } from "./scales.ts";
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
  /** Recompute activations per block in the backward pass. */
  checkpoint: boolean;
}

/** The training forward's results: everything the losses and evaluations read. */
export interface TrainOutput {
  /** Normalised image features [B, E]. */
  imageFeatures: Tensor;
  /** Normalised text features [B, E]. */
  textFeatures: Tensor;
  /** Log temperature (the scalar parameter). */
  logitScale: Tensor;
  /** Logit bias (the scalar parameter). */
  logitBias: Tensor;
  /** Bottom-up probabilities per high-res scale [B, gh * gw]. */
  priorProbs: Tensor[];
  /** Top-down probabilities per high-res scale, or null when the prompt is not used. */
  posteriorProbs: Tensor[] | null;
  /** Feature grids of the high-res scales, in the probabilities' order. */
  highresGrids: Size[];
  /** The vision encoder's outputs (pooled features, selection). */
  vision: VisionTrainOutput;
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
   * @param options Initialisation seed, optimizer groups (default one group: they matter only
   *   to an optimizer), table buffer size, gradients and initialisation (`grads: false,
   *   init: false` for inference from a checkpoint, see `ParamTableOptions`), and
   *   the kernel choices of the model's ops (float16 compute:
   *   `{ matmul: { variant: "tiled-f16" } }`).
   */
  constructor(
    config: ModelConfig,
    options: {
      seed?: number | undefined;
      group?: GroupFn | undefined;
      chunkBytes?: number | undefined;
      grads?: boolean | undefined;
      init?: boolean | undefined;
      kernels?: ModelKernels | undefined;
    } = {},
  ) {
    this.config = config;
    const b = new ParamBuilder({ kernels: options.kernels });
    const parts = declareClip(b, config, options.seed ?? 0);
    this.logitScale = parts.logitScale;
    this.logitBias = parts.logitBias;
    this.vision = parts.vision;
    this.text = parts.text;
    this.promptProj = parts.promptProj;
    this.params = b.build(options.group ?? SINGLE_GROUP, {
      chunkBytes: options.chunkBytes,
      grads: options.grads,
      init: options.init,
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
   * The training forward: text features, the prompt, the vision encoder with selection,
   * and the normalised features (the losses are computed from the result by `src/loss/`).
   *
   * @param batch Images, tokens, box maps, flags.
   * @param opts The reference's switches.
   * @param extra Patches chosen elsewhere per high-res scale (default: GPU top-k).
   * @returns Features, probabilities, logit scale and bias, and the vision outputs.
   */
  forwardTrain(
    batch: TrainBatch,
    opts: TrainOptions,
    extra: { selected?: Tensor[] | undefined } = {},
  ): TrainOutput {
    const textFeatures = this.encodeText(batch.tokens, opts.checkpoint);
    const prompt = this.promptProj.forward(textFeatures);
    const vision = this.vision.forwardTrain(this.#visionInput(batch, opts, prompt, extra.selected));
    return {
      imageFeatures: normalize(vision.pooled),
      textFeatures,
      logitScale: this.logitScale.value,
      logitBias: this.logitBias.value,
      priorProbs: vision.priorProbs,
      posteriorProbs: vision.posteriorProbs,
      highresGrids: vision.featureSizes.slice(1),
      vision,
    };
  }

  /**
   * The training forward of a micro-batch split into sample groups (see
   * `src/train/groups.ts`): {@linkcode Ps3Clip.forwardTrain} per group, the per-sample
   * outputs concatenated in sample order, so that the losses see the whole micro-batch. Every
   * op of the forward works per sample, so the concatenated outputs are those of the unsplit
   * batch, bit for bit; one group is the unsplit forward itself.
   *
   * @param groups Consecutive groups of the micro-batch, each a GPU batch.
   * @param opts The reference's switches.
   * @returns The whole micro-batch's outputs.
   */
  forwardTrainGroups(groups: readonly TrainBatch[], opts: TrainOptions): TrainOutput {
    const outs = groups.map((g) => this.forwardTrain(g, opts));
    return outs.length === 1 ? outs[0]! : concatOutputs(outs);
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

/** Rows of several groups' tensors joined along the batch axis. */
function rows(ts: readonly Tensor[]): Tensor {
  return concat(ts, 0);
}

/** Per-scale tensors of several groups joined along the batch axis, scale by scale. */
function rowsPerScale(parts: readonly (readonly Tensor[])[]): Tensor[] {
  return parts[0]!.map((_, i) => rows(parts.map((p) => p[i]!)));
}

/**
 * The training outputs of consecutive sample groups as one micro-batch's: every per-sample
 * output concatenated along the batch axis (logit scale and bias, the parameters, and the
 * grids are the same in every group).
 *
 * @param outs The groups' outputs, in sample order.
 * @returns The joined outputs.
 */
function concatOutputs(outs: readonly TrainOutput[]): TrainOutput {
  const first = outs[0]!;
  const posterior = first.posteriorProbs ? rowsPerScale(outs.map((o) => o.posteriorProbs!)) : null;
  const priorProbs = rowsPerScale(outs.map((o) => o.priorProbs));
  const vision = outs.map((o) => o.vision);
  return {
    imageFeatures: rows(outs.map((o) => o.imageFeatures)),
    textFeatures: rows(outs.map((o) => o.textFeatures)),
    logitScale: first.logitScale,
    logitBias: first.logitBias,
    priorProbs,
    posteriorProbs: posterior,
    highresGrids: first.highresGrids,
    vision: {
      pooled: rows(vision.map((x) => x.pooled)),
      lowResPooled: rows(vision.map((x) => x.lowResPooled)),
      priorProbs,
      posteriorProbs: posterior,
      selectProbs: rowsPerScale(vision.map((x) => x.selectProbs)),
      selected: rowsPerScale(vision.map((x) => x.selected)),
      featureSizes: first.vision.featureSizes,
    },
  };
}
