/**
 * Model configurations: the YAML / JSON schema (field names as in the reference's open_clip
 * model configs and the Hugging Face `config.json`, so one parser reads both), validation
 * with zod, and the resolved sizes every module is built from.
 *
 * @module
 */

import { z } from "npm:zod@4.6.7";
import { parse as parseYaml } from "npm:yaml@2.9.1";
import type { TextConfig } from "../nn/text_transformer.ts";

export type { TextConfig };

/**
 * Trunk shapes of the timm SigLIP / SigLIP2 models (timm 1.0.29's `vision_transformer.py`
 * definitions: the MAP-pool variants; see docs/SIGLIP2.md).
 */
export const KNOWN_TRUNKS: Readonly<
  Record<
    string,
    {
      embed_dim: number;
      depth: number;
      num_heads: number;
      mlp_ratio: number;
      patch_size: number;
      img_size: number;
      /** timm `act_layer` of the trunk's MLPs and MAP pool (exact GELU when absent). */
      act?: "gelu_tanh";
    }
  >
> = {
  vit_so400m_patch14_siglip_384: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 14,
    img_size: 384,
  },
  vit_so400m_patch14_siglip_224: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 14,
    img_size: 224,
  },
  vit_so400m_patch14_siglip_378: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 14,
    img_size: 378,
  },
  vit_so400m_patch16_siglip_256: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 16,
    img_size: 256,
    act: "gelu_tanh",
  },
  vit_so400m_patch16_siglip_384: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 16,
    img_size: 384,
    act: "gelu_tanh",
  },
  vit_so400m_patch16_siglip_512: {
    embed_dim: 1152,
    depth: 27,
    num_heads: 16,
    mlp_ratio: 3.7362,
    patch_size: 16,
    img_size: 512,
    act: "gelu_tanh",
  },
  vit_giantopt_patch16_siglip_256: {
    embed_dim: 1536,
    depth: 40,
    num_heads: 16,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 256,
    act: "gelu_tanh",
  },
  vit_giantopt_patch16_siglip_384: {
    embed_dim: 1536,
    depth: 40,
    num_heads: 16,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 384,
    act: "gelu_tanh",
  },
  vit_large_patch16_siglip_512: {
    embed_dim: 1024,
    depth: 24,
    num_heads: 16,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 512,
    act: "gelu_tanh",
  },
  vit_base_patch32_siglip_256: {
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    mlp_ratio: 4,
    patch_size: 32,
    img_size: 256,
    act: "gelu_tanh",
  },
  vit_large_patch16_siglip_256: {
    embed_dim: 1024,
    depth: 24,
    num_heads: 16,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 256,
  },
  vit_large_patch16_siglip_384: {
    embed_dim: 1024,
    depth: 24,
    num_heads: 16,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 384,
  },
  vit_base_patch16_siglip_224: {
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 224,
  },
  vit_base_patch16_siglip_256: {
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 256,
  },
  vit_base_patch16_siglip_384: {
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 384,
  },
  vit_base_patch16_siglip_512: {
    embed_dim: 768,
    depth: 12,
    num_heads: 12,
    mlp_ratio: 4,
    patch_size: 16,
    img_size: 512,
  },
};

/**
 * Vision tower fields as given (`vision_cfg` of open_clip; `vision_config` of the HF config),
 * validated, with defaults filled in.
 */
export interface VisionConfigInput {
  /** timm model name; sets the trunk shape unless the explicit fields below override it. */
  model_name?: string | undefined;
  /** Trunk width (explicit override of model_name). */
  embed_dim?: number | undefined;
  /** Number of transformer blocks. */
  depth?: number | undefined;
  /** Attention heads. */
  num_heads?: number | undefined;
  /** MLP hidden size = int(width * mlp_ratio). */
  mlp_ratio?: number | undefined;
  /** Patch size p. */
  patch_size?: number | undefined;
  /** timm img_size: the position table is a (img_size // p)^2 grid (null: the trunk's). */
  img_size?: number | null | undefined;
  /** timm `act_layer` of the trunk's MLPs (explicit override of model_name). */
  act_layer?: "gelu" | "gelu_tanh" | undefined;
  /** Same as the trunk width in the reference configs (informational). */
  hidden_size?: number | undefined;
  /** Pooling: only "map" (attention pool) is supported (default). */
  pool: "map";
  /** Must be true (the default): ps3 builds PS3 models only. */
  ps3: true;
  /** Scales s0 < s1 < ... (pixels, at least two); s_i / s0 integer. */
  ps3_scales: number[];
  /** Blocks whose outputs feed the selection features (at least one). */
  select_based_on_layer: number[];
  /** Reference field, unused by the selection (kept for round trips; default 1). */
  min_select_num: number;
  /** High-res tokens selected per sample. */
  max_select_num: number;
  /** Explicit per-scale budgets (else split by pixel count as the reference does). */
  max_select_num_each_scale?: number[] | null | undefined;
  /** Per-scale position-embedding residual tables (default true). */
  separate_pos_emb: boolean;
  /** The high-res selection ConvNet (default true). */
  highres_selection_feature: boolean;
  /** ConvNet width (default 512). */
  highres_selection_module_hidden_dim: number;
  /** ConvNet output channels (default 512). */
  highres_selection_module_out_dim: number;
  /** ConvNeXt blocks (default 3). */
  highres_selection_module_depth: number;
  /** Stem kernel = stride (default 28). */
  highres_selection_module_kernel_size: number;
  /** Side the image is resized to for the ConvNet (default 1512, a constant in the reference). */
  highres_selection_input_size: number;
  /** Activation of the MAP pool's MLP (default: the trunk's act_layer, as timm passes it; older
   * timm used tanh GELU). */
  pool_act?: "gelu" | "gelu_tanh" | undefined;
  /** LayerNorm eps of the trunk (default 1e-6). */
  norm_eps: number;
  /** Reference field, accepted and ignored. */
  dynamic_img_size?: boolean | undefined;
  /** Reference field, accepted and ignored (must be false when given). */
  radio?: false | undefined;
  /** Reference field, accepted and ignored (must be null when given). */
  drop_path?: null | undefined;
  /** Reference field, accepted and ignored (must be null when given). */
  patch_drop?: null | undefined;
  /** Reference field, accepted and ignored. */
  pretrained?: boolean | undefined;
  /** Reference field, accepted and ignored (must be null when given). */
  class_token?: null | undefined;
  /** Reference field, accepted and ignored. */
  final_norm?: boolean | undefined;
  /** Reference field, accepted and ignored. */
  drop?: number | undefined;
  /** HF config field, accepted and ignored. */
  architectures?: string[] | undefined;
  /** HF config field, accepted and ignored. */
  model_type?: string | undefined;
}

/** Text tower fields as given (`text_cfg` / `text_config`), validated, defaults filled in. */
export interface TextConfigInput {
  /** Tokens per caption. */
  context_length: number;
  /** Vocabulary size. */
  vocab_size: number;
  /** Width. */
  width: number;
  /** Attention heads. */
  heads: number;
  /** Blocks. */
  layers: number;
  /** MLP hidden = int(width * mlp_ratio) (default 4). */
  mlp_ratio: number;
  /** Must be true (the default): SigLIP text towers attend both ways. */
  no_causal_mask: true;
  /** Must be true (the default): the projection is a Linear with bias. */
  proj_bias: true;
  /** Must be "last" (the default): pooling takes the last position. */
  pool_type: "last";
  /** LayerNorm options (default eps 1e-6). */
  norm_kwargs: { eps: number };
  /** Tokenizer source of the reference (informational; ps3 loads a local tokenizer.json). */
  hf_tokenizer_name?: string | undefined;
  /** Tokenizer options of the reference. */
  tokenizer_kwargs?: { clean?: string | undefined } | undefined;
  /** Output (embedding) width; defaults to the model's embed_dim. */
  output_dim?: number | undefined;
  /** prompt_proj width; defaults to the vision width. */
  prompt_proj_dim?: number | undefined;
  /** Padding id (unused by "last" pooling; default 0). */
  pad_id: number;
  /** Reference field, accepted and ignored (must be false when given). */
  embed_cls?: false | undefined;
  /** Reference field, accepted and ignored (must be null when given). */
  ls_init_value?: null | undefined;
  /** Reference field, accepted and ignored (must be false when given). */
  output_tokens?: false | undefined;
  /** Keyword arguments of the text MLPs' `nn.GELU` (SigLIP2: `{approximate: "tanh"}`). */
  act_kwargs?: { approximate?: "none" | "tanh" | undefined } | undefined;
  /** Reference field, accepted and ignored (must be false when given). */
  final_ln_after_pool?: false | undefined;
  /** HF config field, accepted and ignored. */
  architectures?: string[] | undefined;
  /** HF config field, accepted and ignored. */
  model_type?: string | undefined;
}

/** Preprocessing of the reference (`preprocess_cfg`), validated, defaults filled in. */
export interface PreprocessConfigInput {
  /** Per-channel mean subtracted from [0, 1] pixels (default 0.5 each). */
  mean: [number, number, number];
  /** Per-channel divisor (default 0.5 each). */
  std: [number, number, number];
  /** Resampling filter: only "bicubic" (the default). */
  interpolation: "bicubic";
  /** Resize mode: only "squash" (the default). */
  resize_mode: "squash";
}

/**
 * SigLIP's preprocessing (mean and std 0.5, bicubic, squash): the default of `preprocess_cfg`
 * and of a vision-only Hugging Face folder.
 *
 * @returns A fresh copy.
 */
export function siglipPreprocess(): PreprocessConfigInput {
  return {
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    interpolation: "bicubic",
    resize_mode: "squash",
  };
}

/** A whole PS3 CLIP model config (the open_clip JSON layout), validated, defaults filled in. */
export interface ModelConfigInput {
  /** Name for messages and the converted config (default "PS3"). */
  name: string;
  /** Joint embedding width. */
  embed_dim: number;
  /** Initial logit scale (default ln 10, SigLIP's). */
  init_logit_scale: number;
  /** Initial logit bias (default -10, SigLIP's). */
  init_logit_bias: number;
  /** open_clip flag: must be true (the default; always a custom text tower here). */
  custom_text: true;
  /** Vision tower. */
  vision_cfg: VisionConfigInput;
  /** Text tower. */
  text_cfg: TextConfigInput;
  /** Preprocessing (mean / std / interpolation / resize mode). */
  preprocess_cfg: PreprocessConfigInput;
}

const posInt = z.number().int().positive();

/** Validates {@linkcode VisionConfigInput} (unknown keys rejected). */
const VisionConfigObject = z.object({
  model_name: z.string().optional(),
  embed_dim: posInt.optional(),
  depth: posInt.optional(),
  num_heads: posInt.optional(),
  mlp_ratio: z.number().positive().optional(),
  patch_size: posInt.optional(),
  img_size: posInt.nullish(),
  act_layer: z.enum(["gelu", "gelu_tanh"]).optional(),
  hidden_size: posInt.optional(),
  pool: z.literal("map").default("map"),
  ps3: z.literal(true).default(true),
  ps3_scales: z.array(posInt).min(2),
  select_based_on_layer: z.array(z.number().int().nonnegative()).min(1),
  min_select_num: z.number().int().nonnegative().default(1),
  max_select_num: posInt,
  max_select_num_each_scale: z.array(posInt).nullish(),
  separate_pos_emb: z.boolean().default(true),
  highres_selection_feature: z.boolean().default(true),
  highres_selection_module_hidden_dim: posInt.default(512),
  highres_selection_module_out_dim: posInt.default(512),
  highres_selection_module_depth: z.number().int().nonnegative().default(3),
  highres_selection_module_kernel_size: posInt.default(28),
  highres_selection_input_size: posInt.default(1512),
  pool_act: z.enum(["gelu", "gelu_tanh"]).optional(),
  norm_eps: z.number().positive().default(1e-6),
  dynamic_img_size: z.boolean().optional(),
  radio: z.literal(false).optional(),
  drop_path: z.null().optional(),
  patch_drop: z.null().optional(),
  pretrained: z.boolean().optional(),
  class_token: z.null().optional(),
  final_norm: z.boolean().optional(),
  drop: z.number().optional(),
  architectures: z.array(z.string()).optional(),
  model_type: z.string().optional(),
}).strict();
const VisionConfigSchema: z.ZodType<VisionConfigInput> = VisionConfigObject;

/** Every field a vision config may have (`vision_cfg` / `vision_config`). */
export const VISION_CONFIG_KEYS: readonly string[] = Object.keys(VisionConfigObject.shape);

/** Validates {@linkcode TextConfigInput} (unknown keys rejected). */
const TextConfigObject = z.object({
  context_length: posInt,
  vocab_size: posInt,
  width: posInt,
  heads: posInt,
  layers: posInt,
  mlp_ratio: z.number().positive().default(4),
  no_causal_mask: z.literal(true).default(true),
  proj_bias: z.literal(true).default(true),
  pool_type: z.literal("last").default("last"),
  norm_kwargs: z.object({ eps: z.number().positive() }).strict().default({ eps: 1e-6 }),
  hf_tokenizer_name: z.string().optional(),
  tokenizer_kwargs: z.object({ clean: z.string() }).partial().strict().optional(),
  output_dim: posInt.optional(),
  prompt_proj_dim: posInt.optional(),
  pad_id: z.number().int().nonnegative().default(0),
  embed_cls: z.literal(false).optional(),
  ls_init_value: z.null().optional(),
  output_tokens: z.literal(false).optional(),
  act_kwargs: z.object({ approximate: z.enum(["none", "tanh"]).optional() }).strict().optional(),
  final_ln_after_pool: z.literal(false).optional(),
  architectures: z.array(z.string()).optional(),
  model_type: z.string().optional(),
}).strict();
const TextConfigSchema: z.ZodType<TextConfigInput> = TextConfigObject;

/** Every field a text config may have (`text_cfg` / `text_config`). */
export const TEXT_CONFIG_KEYS: readonly string[] = Object.keys(TextConfigObject.shape);

/**
 * Validates {@linkcode ModelConfigInput} (unknown keys rejected, defaults filled in); the
 * field meanings are documented on the interfaces.
 */
export const ModelConfigSchema: z.ZodType<ModelConfigInput> = z.object({
  name: z.string().default("PS3"),
  embed_dim: posInt,
  init_logit_scale: z.number().default(Math.log(10)),
  init_logit_bias: z.number().default(-10),
  custom_text: z.literal(true).default(true),
  vision_cfg: VisionConfigSchema,
  text_cfg: TextConfigSchema,
  preprocess_cfg: z.object({
    mean: z.tuple([z.number(), z.number(), z.number()]).default(() => siglipPreprocess().mean),
    std: z.tuple([z.number(), z.number(), z.number()]).default(() => siglipPreprocess().std),
    interpolation: z.literal("bicubic").default("bicubic"),
    resize_mode: z.literal("squash").default("squash"),
  }).strict().default(siglipPreprocess),
}).strict();

/** Resolved trunk sizes. */
export interface TrunkDims {
  /** Width C. */
  width: number;
  /** Blocks. */
  depth: number;
  /** Heads. */
  heads: number;
  /** MLP hidden size. */
  mlpHidden: number;
  /** Patch size p. */
  patch: number;
  /** Side of the learned position grid. */
  posGrid: number;
  /** LayerNorm eps. */
  eps: number;
  /** MLP activation (exact GELU when absent). */
  act?: "gelu" | "gelu_tanh" | undefined;
}

/** Resolved vision configuration. */
export interface VisionConfig {
  /** The trunk. */
  trunk: TrunkDims;
  /** timm name, if any. */
  modelName: string | undefined;
  /** Scales, ascending. */
  scales: number[];
  /** Blocks feeding selection. */
  selectLayers: number[];
  /** Tokens selected per sample. */
  maxSelect: number;
  /** Per high-res scale budget (sums to maxSelect). */
  budgets: number[];
  /** Per-scale position residuals. */
  separatePosEmb: boolean;
  /** ConvNet settings, or null without it. */
  conv: { hidden: number; out: number; depth: number; kernel: number; inputSize: number } | null;
  /** MAP pool MLP activation. */
  poolAct: "gelu" | "gelu_tanh";
  /** The fields as given (no defaults filled in), for converted configs. */
  raw: Record<string, unknown>;
}

/** A resolved model configuration. */
export interface ModelConfig {
  /** Name. */
  name: string;
  /** Joint embedding width. */
  embedDim: number;
  /** Initial logit scale. */
  initLogitScale: number;
  /** Initial logit bias. */
  initLogitBias: number;
  /** Vision tower. */
  vision: VisionConfig;
  /** Text tower. */
  text: TextConfig;
  /** Preprocessing. */
  preprocess: PreprocessConfigInput;
}

/**
 * Formats zod issues as `path: message` lines.
 *
 * @param error A zod error.
 * @returns One line per issue.
 */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => {
    const path = i.path.map(String).join(".");
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => `${path ? `${path}.` : ""}${k}: unknown key`).join("\n");
    }
    return `${path || "(top level)"}: ${i.message}`;
  }).join("\n");
}

/**
 * The reference's budget split: floor(max * s_i^2 / sum_j s_j^2) over the high-res scales,
 * the remainder added to the last.
 *
 * @param scales All scales (s0 first).
 * @param maxSelect Total budget.
 * @returns One budget per high-res scale.
 */
export function splitBudget(scales: readonly number[], maxSelect: number): number[] {
  const px = scales.slice(1).map((s) => s * s);
  const total = px.reduce((a, b) => a + b, 0);
  const out = px.map((p) => Math.floor(maxSelect * p / total));
  out[out.length - 1]! += maxSelect - out.reduce((a, b) => a + b, 0);
  return out;
}

/**
 * Resolves validated vision fields: trunk sizes (from `model_name` or the explicit fields),
 * scales, budgets, ConvNet settings, each checked.
 *
 * @param v The validated fields.
 * @param given The fields as given (kept as `raw`).
 * @param source File name for messages.
 * @param prefix Field path prefix for messages (`vision_cfg.` or none).
 * @returns The resolved vision configuration.
 */
function resolveVision(
  v: VisionConfigInput,
  given: Record<string, unknown>,
  source: string,
  prefix: string,
): VisionConfig {
  const known = v.model_name ? KNOWN_TRUNKS[v.model_name] : undefined;
  if (v.model_name && !known && (v.embed_dim === undefined || v.depth === undefined)) {
    throw new SyntaxError(
      `Invalid ${source}: vision model_name "${v.model_name}" is not a known timm model ` +
        `(${Object.keys(KNOWN_TRUNKS).join(", ")}); give embed_dim, depth, num_heads, ` +
        "mlp_ratio, patch_size and img_size explicitly",
    );
  }
  const pick = <
    K extends "embed_dim" | "depth" | "num_heads" | "mlp_ratio" | "patch_size" | "img_size",
  >(k: K) => {
    const value = v[k] ?? known?.[k];
    if (value === undefined) {
      throw new SyntaxError(`Invalid ${source}: ${prefix}${k} is required`);
    }
    return value;
  };
  const width = pick("embed_dim"), heads = pick("num_heads"), patch = pick("patch_size");
  const trunk: TrunkDims = {
    width,
    depth: pick("depth"),
    heads,
    mlpHidden: Math.trunc(width * pick("mlp_ratio")),
    patch,
    posGrid: Math.floor(pick("img_size") / patch),
    eps: v.norm_eps,
    act: v.act_layer ?? known?.act ?? "gelu",
  };
  const fail = (msg: string) => {
    throw new SyntaxError(`Invalid ${source}: ${msg}`);
  };
  if (width % heads !== 0) fail(`vision width ${width} is not divisible by ${heads} heads`);
  const scales = [...v.ps3_scales];
  for (let i = 1; i < scales.length; i++) {
    if (scales[i]! <= scales[i - 1]!) fail(`ps3_scales must increase, got [${scales}]`);
    if (scales[i]! % scales[0]! !== 0) {
      fail(`ps3_scales: ${scales[i]} is not a multiple of the lowest scale ${scales[0]}`);
    }
  }
  if (scales[0]! % patch !== 0) {
    fail(`ps3_scales[0] = ${scales[0]} is not a multiple of patch ${patch}`);
  }
  for (const l of v.select_based_on_layer) {
    if (l >= trunk.depth) fail(`select_based_on_layer: block ${l} >= depth ${trunk.depth}`);
  }
  const budgets = v.max_select_num_each_scale ?? splitBudget(scales, v.max_select_num);
  if (budgets.length !== scales.length - 1) {
    fail(`max_select_num_each_scale needs ${scales.length - 1} entries, got ${budgets.length}`);
  }
  if (budgets.reduce((a, b) => a + b, 0) !== v.max_select_num) {
    fail(
      `max_select_num_each_scale [${budgets}] does not sum to max_select_num ${v.max_select_num}`,
    );
  }
  // A budget above the high-res patches cannot take effect (it only pads the selection).
  const patches = scales.slice(1).map((s) => (s / patch) ** 2);
  const available = patches.reduce((a, b) => a + b, 0);
  if (v.max_select_num > available) {
    fail(
      `${prefix}max_select_num ${v.max_select_num} is more than the ${available} high-res ` +
        `patches of ps3_scales [${scales.slice(1).join(", ")}] with patch ${patch} (${
          patches.join(" + ")
        }); ` +
        `at most ${available} can be selected`,
    );
  }
  const conv = v.highres_selection_feature
    ? {
      hidden: v.highres_selection_module_hidden_dim,
      out: v.highres_selection_module_out_dim,
      depth: v.highres_selection_module_depth,
      kernel: v.highres_selection_module_kernel_size,
      inputSize: v.highres_selection_input_size,
    }
    : null;
  if (conv && conv.inputSize % conv.kernel !== 0) {
    fail(
      `highres_selection_input_size ${conv.inputSize} is not a multiple of the kernel ${conv.kernel}`,
    );
  }
  return {
    trunk,
    modelName: v.model_name,
    scales,
    selectLayers: [...v.select_based_on_layer],
    maxSelect: v.max_select_num,
    budgets,
    separatePosEmb: v.separate_pos_emb,
    conv,
    poolAct: v.pool_act ?? trunk.act ?? "gelu",
    raw: { ...given },
  };
}

/**
 * Validates and resolves a raw vision config on its own: the `vision_config` of a Hugging
 * Face PS3 folder, or the top-level `config.json` of a vision-only folder
 * (`PS3VisionModel`).
 *
 * @param raw Parsed JSON.
 * @param source File name for messages.
 * @returns The resolved vision configuration.
 * @throws {SyntaxError} Naming every invalid field.
 */
export function resolveVisionConfig(raw: unknown, source = "vision config"): VisionConfig {
  const r = VisionConfigSchema.safeParse(raw);
  if (!r.success) throw new SyntaxError(`Invalid ${source}:\n${formatIssues(r.error)}`);
  return resolveVision(r.data, raw as Record<string, unknown>, source, "");
}

/**
 * Validates and resolves a raw model config.
 *
 * @param raw Parsed YAML / JSON.
 * @param source File name for messages.
 * @returns The resolved config.
 * @throws {SyntaxError} Naming every invalid field.
 */
export function resolveModelConfig(raw: unknown, source = "model config"): ModelConfig {
  const r = ModelConfigSchema.safeParse(raw);
  if (!r.success) {
    throw new SyntaxError(`Invalid ${source}:\n${formatIssues(r.error)}`);
  }
  const c = r.data;
  const given = raw as { vision_cfg: Record<string, unknown>; text_cfg: Record<string, unknown> };
  const vision = resolveVision(c.vision_cfg, given.vision_cfg, source, "vision_cfg.");
  const width = vision.trunk.width;
  const fail = (msg: string) => {
    throw new SyntaxError(`Invalid ${source}: ${msg}`);
  };
  if (c.embed_dim !== width) {
    fail(
      `embed_dim ${c.embed_dim} differs from the vision width ${width}: PS3's image features are ` +
        "the pooled trunk output, with no projection",
    );
  }
  const t = c.text_cfg;
  if (t.width % t.heads !== 0) fail(`text width ${t.width} is not divisible by ${t.heads} heads`);
  return {
    name: c.name,
    embedDim: c.embed_dim,
    initLogitScale: c.init_logit_scale,
    initLogitBias: c.init_logit_bias,
    vision,
    text: {
      context: t.context_length,
      vocab: t.vocab_size,
      width: t.width,
      heads: t.heads,
      layers: t.layers,
      mlpHidden: Math.trunc(t.width * t.mlp_ratio),
      eps: t.norm_kwargs.eps,
      outputDim: t.output_dim ?? c.embed_dim,
      promptProjDim: t.prompt_proj_dim ?? width,
      act: t.act_kwargs?.approximate === "tanh" ? "gelu_tanh" : "gelu",
      raw: { ...given.text_cfg },
    },
    preprocess: c.preprocess_cfg,
  };
}

/**
 * Reads a model config from a YAML (or JSON) file: either a model config itself or a run
 * config whose `model:` section is one.
 *
 * @param path File path.
 * @returns The resolved config.
 */
export async function loadModelConfig(path: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read model config "${path}": ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse model config "${path}": ${(e as Error).message}`);
  }
  const section = raw !== null && typeof raw === "object" && "model" in raw
    ? (raw as { model: unknown }).model
    : raw;
  return resolveModelConfig(section, `model config "${path}"`);
}
