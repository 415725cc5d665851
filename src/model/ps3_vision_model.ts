/**
 * The vision tower alone (the PS3 package's `PS3VisionModel`): what a vision-only Hugging
 * Face folder (`ps3 convert --vision-only`) holds, `vision_model.*` tensors and the vision
 * config at the top level of `config.json`. Used for inference; training needs the text
 * tower ({@linkcode Ps3Clip}).
 *
 * @module
 */

import { type ModelKernels, ParamBuilder, SINGLE_GROUP } from "../nn/module.ts";
import type { ParamTable } from "../params/param_table.ts";
import { Rng } from "../util/rng.ts";
import type { ModelConfig } from "./config.ts";
import { Ps3VisionEncoder } from "./ps3_vision.ts";

/** What a vision-only model is configured by: the vision tower, preprocessing and a name. */
export type VisionModelConfig = Pick<ModelConfig, "name" | "vision" | "preprocess">;

/** The PS3 vision encoder bound to its own parameter table (names `vision_model.*`). */
export class Ps3VisionModel {
  /** Configuration. */
  readonly config: VisionModelConfig;
  /** Vision encoder. */
  readonly vision: Ps3VisionEncoder;
  /** The parameters (the vision tower's only). */
  readonly params: ParamTable;

  /**
   * Declares the vision tower's parameters (randomly initialised: load weights for real
   * use).
   *
   * @param config Vision, preprocessing and name.
   * @param options Initialisation seed, gradients and initialisation (`grads: false, init:
   *   false` for inference from a checkpoint), kernel choices.
   * @example
   * ```ts
   * const { config } = await readHfFolderConfig("ps3-1.5k-vision");
   * const model = new Ps3VisionModel(config);
   * await loadSafetensorsInto(model.params, "ps3-1.5k-vision/model.safetensors");
   * ```
   */
  constructor(
    config: VisionModelConfig,
    options: {
      seed?: number | undefined;
      grads?: boolean | undefined;
      init?: boolean | undefined;
      kernels?: ModelKernels | undefined;
    } = {},
  ) {
    this.config = config;
    const b = new ParamBuilder({ kernels: options.kernels });
    this.vision = new Ps3VisionEncoder(b, new Rng(options.seed ?? 0), config.vision);
    this.params = b.build(SINGLE_GROUP, { grads: options.grads, init: options.init });
  }
}
