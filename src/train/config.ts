/**
 * The run configuration of `ps3 train`: one YAML file with the model and everything the
 * reference's training script sets (data, batch, schedule, optimizer, losses, checkpoints,
 * logging), validated with zod (unknown keys are rejected with their path), plus
 * `--section.key=value` overrides from the command line.
 *
 * @module
 */

import { z } from "zod";
import { parse as parseYaml } from "yaml";
import {
  formatIssues,
  type ModelConfig,
  ModelConfigSchema,
  resolveModelConfig,
} from "../model/config.ts";

const posInt = z.number().int().positive();
const nonNeg = z.number().nonnegative();

/** Data section: where the shards are and how samples are prepared. */
const DataSchema = z.object({
  /** "paired" (image shards + text-box JSON shards, the reference's) or "single" (key.jpg + key.json). */
  layout: z.enum(["paired", "single"]).default("paired"),
  /** Image shards (paired) or the single-layout shards; brace lists, `::` between sources.
   * Paths are relative to the current folder. Omit with `synthesize`. */
  images: z.string().nullish(),
  /** Text-box shards of the paired layout. */
  text_boxes: z.string().nullish(),
  /** Weights of the `::` sources (resampled shards only). */
  weights: z.array(z.number().positive()).nullish(),
  /** Held-out shards for evaluation (same layout). */
  eval_images: z.string().nullish(),
  /** Held-out text-box shards. */
  eval_text_boxes: z.string().nullish(),
  /** tokenizer.json of the text tower (SentencePiece Unigram, Hugging Face format); with
   * `synthesize`, the synthetic dataset's own. */
  tokenizer: z.string().nullish(),
  /** Shard order: "resampled" (with replacement, the reference's) or "shuffled" epochs. */
  shards: z.enum(["resampled", "shuffled"]).default("resampled"),
  /** Samples in the shuffle buffer. */
  shuffle_buffer: z.number().int().nonnegative().default(5000),
  /** Decode workers. */
  workers: posInt.default(2),
  /** Batches prepared ahead. */
  prefetch: posInt.default(2),
  /** Largest image accepted (pixels, checked before decoding). */
  max_pixels: posInt.default(100_000_000),
  /** Probability of the global caption when both kinds exist (reference 0.25). */
  global_caption_prob: z.number().min(0).max(1).default(0.25),
  /** Boxes (local captions) per image. */
  sample_n_box_each_image: posInt.default(1),
  /** The reference's sentence masking of local captions. */
  sentence_masking: z.boolean().default(true),
  /** Fail at the first bad sample instead of skipping and counting it. */
  strict: z.boolean().default(false),
  /** Train on the synthetic dataset: written to `out` when missing (its manifest gives the
   * shards and the held-out set; `images` and `text_boxes` are then not needed). */
  synthesize: z.object({
    /** Dataset folder. */
    out: z.string(),
    /** Training samples. */
    count: posInt.default(512),
    /** Held-out samples. */
    holdout: z.number().int().nonnegative().default(64),
    /** Seed. */
    seed: z.number().int().default(0),
    /** Typical image width and height (pixels; the aspect ratio varies around them). */
    width: posInt.default(256),
    /** Typical image height. */
    height: posInt.default(192),
    /** Samples per shard. */
    shard_size: posInt.default(64),
  }).strict().nullish(),
}).strict();

/** Training section. */
const TrainSchema = z.object({
  /** Samples per optimizer step (split into `accum_steps` micro-batches). */
  batch_size: posInt,
  /** Micro-batches per step (gradient accumulation). */
  accum_steps: posInt.default(1),
  /** Samples per epoch (the reference's --train-num-samples). */
  samples_per_epoch: posInt,
  /** Epochs (ignored when `steps` is set). */
  epochs: posInt.default(1),
  /** Total optimizer steps (overrides epochs). */
  steps: posInt.nullish(),
  /** Seed of data order and augmentation. */
  seed: z.number().int().default(0),
  /** Compute precision: "f32", or "f16" storage of activations where the adapter has shader-f16. */
  precision: z.enum(["f32"]).default("f32"),
  /** Recompute block activations in the backward pass (--grad-checkpointing). */
  grad_checkpointing: z.boolean().default(true),
  /** Force the ground-truth patches into the selection (--select_w_gt). */
  select_w_gt: z.boolean().default(true),
  /** Pool only tokens inside the boxes (--pool_gt_token_only). */
  pool_gt_token_only: z.boolean().default(true),
  /** Use the low-res pooled feature for global captions (--use_global_caption). */
  use_global_caption: z.boolean().default(true),
  /** Memory the run may use on the device, in GiB (checked against the estimate). */
  memory_limit_gb: z.number().positive().nullish(),
}).strict();

/** Optimizer section (AdamW + schedule). */
const OptimSchema = z.object({
  /** Peak learning rate. */
  lr: z.number().positive(),
  /** Peak learning rate of the token-selection parameters (own group, no decay, same
   * schedule). The reference builds this group but its scheduler then assigns the base
   * rate to every group, so there the setting has no effect; here it does. */
  token_selection_lr: z.number().positive().nullish(),
  /** Warmup steps (linear). */
  warmup: z.number().int().nonnegative().default(0),
  /** Schedule after warmup. */
  schedule: z.enum(["cosine", "const"]).default("cosine"),
  /** Adam beta1. */
  beta1: z.number().min(0).lt(1).default(0.9),
  /** Adam beta2. */
  beta2: z.number().min(0).lt(1).default(0.95),
  /** Adam epsilon (the reference's default for non-"vit" model names, PS3's: 1e-8). */
  eps: z.number().positive().default(1e-8),
  /** Decoupled weight decay (no decay for biases, norms, 1-d params, logit_scale). */
  weight_decay: nonNeg.default(3e-4),
  /** Global gradient-norm bound (null = no clipping, the reference's default). */
  grad_clip_norm: z.number().positive().nullish(),
}).strict();

/** Loss weights. */
const LossSchema = z.object({
  /** Prior (bottom-up) box supervision weight. */
  prior_box_weight: nonNeg.default(1),
  /** Posterior (top-down) box supervision weight. */
  posterior_box_weight: nonNeg.default(1),
}).strict();

/** Output, saving and resuming. */
const CheckpointSchema = z.object({
  /** Run folder (checkpoints/, metrics.jsonl, loss.png). */
  out: z.string(),
  /** Save every N optimizer steps (0 = only at the end). */
  save_every: z.number().int().nonnegative().default(1000),
  /** Checkpoints kept (older ones deleted; 0 keeps all). */
  keep_last: z.number().int().nonnegative().default(3),
  /** Resume: null, "latest", or a checkpoint folder. */
  resume: z.string().nullish(),
  /** Start from the weights of an HF PS3 folder or a training checkpoint. */
  init: z.string().nullish(),
  /** Start from OpenCLIP / timm SigLIP weights (the reference's --pretrained webli). */
  init_siglip: z.string().nullish(),
}).strict();

/** Logging. */
const LogSchema = z.object({
  /** Log a line every N steps (a progress bar updates every step on a terminal). */
  every: posInt.default(10),
  /** Evaluate on the held-out shards every N steps (0 = at the end only). */
  eval_every: z.number().int().nonnegative().default(0),
  /** Held-out batches per evaluation. */
  eval_batches: posInt.default(4),
  /** Also evaluate before the first step (a baseline for the learning curve). */
  eval_at_start: z.boolean().default(false),
}).strict();

/** The whole run configuration. */
export const RunConfigSchema = z.object({
  /** The model (see configs/*.yaml and src/model/config.ts). */
  model: ModelConfigSchema,
  /** Data. */
  data: DataSchema,
  /** Training. */
  train: TrainSchema,
  /** Optimizer. */
  optim: OptimSchema,
  /** Losses. */
  loss: LossSchema.default({ prior_box_weight: 1, posterior_box_weight: 1 }),
  /** Checkpoints. */
  checkpoint: CheckpointSchema,
  /** Logging. */
  log: LogSchema.default({ every: 10, eval_every: 0, eval_batches: 4, eval_at_start: false }),
}).strict();

/** A validated run configuration. */
export type RunConfigInput = z.infer<typeof RunConfigSchema>;

/** A resolved run configuration. */
export interface RunConfig extends RunConfigInput {
  /** The resolved model. */
  resolvedModel: ModelConfig;
  /** The input as given (with overrides applied), saved in checkpoints. */
  raw: Record<string, unknown>;
}

/**
 * Applies `section.key=value` overrides to a raw config (values parsed as YAML scalars:
 * numbers, booleans, null, strings, or flow lists like `[1, 2]`).
 *
 * @param raw The parsed file (modified in place).
 * @param overrides Entries like "train.batch_size=8".
 */
export function applyOverrides(raw: Record<string, unknown>, overrides: readonly string[]): void {
  for (const o of overrides) {
    const eq = o.indexOf("=");
    if (eq <= 0) throw new SyntaxError(`Cannot apply override "${o}": expected key.path=value`);
    const path = o.slice(0, eq).split(".");
    let node: Record<string, unknown> = raw;
    for (const k of path.slice(0, -1)) {
      const next = node[k];
      if (next === undefined || next === null) node[k] = {};
      else if (typeof next !== "object" || Array.isArray(next)) {
        throw new SyntaxError(`Cannot apply override "${o}": "${k}" is not a section`);
      }
      node = node[k] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = parseYaml(o.slice(eq + 1));
  }
}

/**
 * Validates a raw run configuration.
 *
 * @param raw Parsed YAML (overrides applied).
 * @param source Name for messages.
 * @returns The resolved configuration.
 */
export function resolveRunConfig(raw: unknown, source: string): RunConfig {
  const r = RunConfigSchema.safeParse(raw);
  if (!r.success) throw new SyntaxError(`Invalid ${source}:\n${formatIssues(r.error)}`);
  const c = r.data;
  const model = resolveModelConfig((raw as { model: unknown }).model, `${source} (model)`);
  if (c.train.batch_size % c.train.accum_steps !== 0) {
    throw new SyntaxError(
      `Invalid ${source}: train.batch_size ${c.train.batch_size} is not a multiple of ` +
        `train.accum_steps ${c.train.accum_steps}`,
    );
  }
  if (!c.data.synthesize) {
    const need = (k: "images" | "tokenizer" | "text_boxes", why: string) => {
      if (!c.data[k]) throw new SyntaxError(`Invalid ${source}: data.${k} is required ${why}`);
    };
    need("images", "(or data.synthesize)");
    need("tokenizer", "(or data.synthesize)");
    if (c.data.layout === "paired") need("text_boxes", "with the paired layout");
  }
  return { ...c, resolvedModel: model, raw: raw as Record<string, unknown> };
}

/**
 * Reads a run configuration file and applies overrides.
 *
 * @param path YAML file.
 * @param overrides `section.key=value` entries.
 * @returns The resolved configuration.
 */
export async function loadRunConfig(
  path: string,
  overrides: readonly string[] = [],
): Promise<RunConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read run config "${path}": ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse run config "${path}": ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new SyntaxError(`Cannot use run config "${path}": it is not a mapping`);
  }
  applyOverrides(raw as Record<string, unknown>, overrides);
  return resolveRunConfig(raw, `run config "${path}"`);
}
