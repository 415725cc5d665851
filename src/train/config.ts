/**
 * The run configuration of `ps3 train`: one YAML file with the model and everything the
 * reference's training script sets (data, batch, schedule, optimizer, losses, checkpoints,
 * logging), validated with zod (unknown keys are rejected with their path), plus
 * `--section.key=value` overrides from the command line.
 *
 * @module
 */

import { z } from "npm:zod@4.6.7";
import { parse as parseYaml } from "npm:yaml@2.9.1";
import {
  formatIssues,
  type ModelConfig,
  type ModelConfigInput,
  ModelConfigSchema,
  resolveModelConfig,
} from "../model/config.ts";

/** Typical size and count of the synthetic dataset `ps3 train` writes (`data.synthesize`). */
export interface SynthesizeConfigInput {
  /** Dataset folder. */
  out: string;
  /** Training samples (default 512). */
  count: number;
  /** Held-out samples (default 64). */
  holdout: number;
  /** Seed (default 0). */
  seed: number;
  /** Typical image width (pixels; the aspect ratio varies around it; default 256). */
  width: number;
  /** Typical image height (default 192). */
  height: number;
  /** Samples per shard (default 64). */
  shard_size: number;
}

/** Data section: where the shards are and how samples are prepared. */
export interface DataConfigInput {
  /** "paired" (image shards + text-box JSON shards, the reference's; the default) or "single"
   * (key.jpg + key.json). */
  layout: "paired" | "single";
  /** Image shards (paired) or the single-layout shards; brace lists, `::` between sources.
   * Paths are relative to the current folder. Omit with `synthesize`. */
  images?: string | null | undefined;
  /** Text-box shards of the paired layout. */
  text_boxes?: string | null | undefined;
  /** Weights of the `::` sources (resampled shards only). */
  weights?: number[] | null | undefined;
  /** Held-out shards for evaluation (same layout). */
  eval_images?: string | null | undefined;
  /** Held-out text-box shards. */
  eval_text_boxes?: string | null | undefined;
  /** tokenizer.json of the text tower (SentencePiece Unigram, Hugging Face format); with
   * `synthesize`, the synthetic dataset's own. */
  tokenizer?: string | null | undefined;
  /** Shard order: "resampled" (with replacement, the reference's; the default) or "shuffled"
   * epochs. */
  shards: "resampled" | "shuffled";
  /** Samples in the shuffle buffer (default 5000). */
  shuffle_buffer: number;
  /** Decode workers (default 2). */
  workers: number;
  /** Batches prepared ahead (default 2). */
  prefetch: number;
  /** Largest image accepted (pixels, checked before decoding; default 100 000 000). */
  max_pixels: number;
  /** Probability of the global caption when both kinds exist (default 0.25, the reference's). */
  global_caption_prob: number;
  /** Boxes (local captions) per image (default 1). */
  sample_n_box_each_image: number;
  /** The reference's sentence masking of local captions (default true). */
  sentence_masking: boolean;
  /** Fail at the first bad sample instead of skipping and counting it (default false). */
  strict: boolean;
  /** Train on the synthetic dataset: written to `out` when missing (its manifest gives the
   * shards and the held-out set; `images` and `text_boxes` are then not needed). */
  synthesize?: SynthesizeConfigInput | null | undefined;
}

/** Data-parallel training over MPI (`mpirun -n N ps3 train ...`). */
export interface DistributedConfigInput {
  /** The MPI library to load (default: found as `mpicc` / `pkg-config` report it). */
  mpi_library?: string | null | undefined;
  /** Steps between the checks that every rank holds the same parameters (default 50). */
  check_every: number;
  /** Seconds a collective may wait before the job is aborted (default 600). */
  timeout_s: number;
  /** Size of the gradient buckets of the all-reduce, MiB (default 64). */
  bucket_mb: number;
}

/** Training section. */
export interface TrainConfigInput {
  /** Samples per optimizer step on each rank (split into `accum_steps` micro-batches); the
   * global batch is this times the number of ranks, as the reference's --batch-size. In a
   * file or an override, `auto` asks `ps3 train` to fit it to the device (one process;
   * {@linkcode RunConfig.autoBatch}). */
  batch_size: number;
  /** Micro-batches per step (gradient accumulation; default 1). */
  accum_steps: number;
  /** Samples per epoch over all ranks (the reference's --train-num-samples). */
  samples_per_epoch: number;
  /** Epochs (ignored when `steps` is set; default 1). */
  epochs: number;
  /** Total optimizer steps (overrides epochs). */
  steps?: number | null | undefined;
  /** Seed of data order and augmentation (default 0). */
  seed: number;
  /** Compute precision: "f32" (default), or "f16": matmuls on float16 tiles with float32
   * accumulation, float32 master weights and optimizer, dynamic loss scaling (needs the
   * adapter's shader-f16); activations (and recomputation checkpoints) stored in float16;
   * the ConvNet's patches and feature maps and the selection MLP in float16 too; the input
   * images and the trunk's patches, pooled features, selection logits and probabilities,
   * top-k, logits and loss in float32. */
  precision: "f32" | "f16";
  /** Initial loss scale of float16 compute (default 65536, GradScaler's init_scale); it halves
   * on each overflow and doubles after 2000 finite steps. */
  loss_scale: number;
  /** Recompute block activations in the backward pass (--grad-checkpointing; default true). */
  grad_checkpointing: boolean;
  /** Force the ground-truth patches into the selection (--select_w_gt; default true). */
  select_w_gt: boolean;
  /** Pool only tokens inside the boxes (--pool_gt_token_only; default true). */
  pool_gt_token_only: boolean;
  /** Use the low-res pooled feature for global captions (--use_global_caption; default true). */
  use_global_caption: boolean;
  /** Memory the run may use on the device, in GiB (checked against the estimate). */
  memory_limit_gb?: number | null | undefined;
  /** Data-parallel settings (used when an MPI launcher started the process). */
  distributed: DistributedConfigInput;
  /** Where else to log (open_clip's --report-to): `[tensorboard]` writes TensorBoard event
   * files to `<checkpoint.out>/tensorboard` (default: none). */
  report_to: "tensorboard"[];
}

/** Optimizer section (AdamW + schedule). */
export interface OptimConfigInput {
  /** Peak learning rate. */
  lr: number;
  /** Peak learning rate of the token-selection parameters (own group, no decay, same
   * schedule). The reference builds this group but its scheduler then assigns the base
   * rate to every group, so there the setting has no effect; here it does. */
  token_selection_lr?: number | null | undefined;
  /** Warmup steps (linear; default 0). */
  warmup: number;
  /** Schedule after warmup (default "cosine"). */
  schedule: "cosine" | "const";
  /** Adam beta1 (default 0.9). */
  beta1: number;
  /** Adam beta2 (default 0.95). */
  beta2: number;
  /** Adam epsilon (default 1e-8, the reference's for non-"vit" model names such as PS3's). */
  eps: number;
  /** Decoupled weight decay (no decay for biases, norms, 1-d params, logit_scale; default
   * 3e-4). */
  weight_decay: number;
  /** Global gradient-norm bound (null = no clipping, the reference's default). */
  grad_clip_norm?: number | null | undefined;
}

/** Loss weights. */
export interface LossConfigInput {
  /** Prior (bottom-up) box supervision weight (default 1). */
  prior_box_weight: number;
  /** Posterior (top-down) box supervision weight (default 1). */
  posterior_box_weight: number;
}

/** Output, saving and resuming. */
export interface CheckpointConfigInput {
  /** Run folder (checkpoints/, metrics.jsonl, loss.png). */
  out: string;
  /** Save every N optimizer steps (0 = only at the end; default 1000). */
  save_every: number;
  /** Checkpoints kept (older ones deleted; 0 keeps all; default 3). */
  keep_last: number;
  /** Resume: null, "latest", or a checkpoint folder. */
  resume?: string | null | undefined;
  /**
   * Start from the weights of an HF PS3 folder (full, or vision-only: the text tower then
   * keeps its initialisation), a training checkpoint, or a PyTorch file (open_clip's
   * `epoch_N.pt`: weights, and the AdamW state where the mapping is exact).
   */
  init?: string | null | undefined;
  /** Start from OpenCLIP / timm SigLIP weights (the reference's --pretrained webli):
   * safetensors, or a PyTorch `open_clip_pytorch_model.bin`. */
  init_siglip?: string | null | undefined;
}

/** Logging. */
export interface LogConfigInput {
  /** Log a line every N steps (a progress bar updates every step on a terminal; default 10). */
  every: number;
  /** Evaluate on the held-out shards every N steps (0 = at the end only, the default). */
  eval_every: number;
  /** Held-out batches per evaluation (default 4). */
  eval_batches: number;
  /** Also evaluate before the first step (a baseline for the learning curve; default false). */
  eval_at_start: boolean;
  /** At each evaluation, also the whole-set figures of `ps3 eval` on every held-out sample:
   * image-text retrieval R@1/5/10, caption->region R@1/5, pointing (default true). */
  eval_full: boolean;
  /** Selection heat maps of the first held-out local-caption samples logged at each
   * evaluation (TensorBoard images; default 4). */
  eval_heatmaps: number;
  /** Zero-shot folders (class sub-folders, optional classnames.txt / templates.txt)
   * evaluated with the whole-set figures (default none). */
  zeroshot: string[];
}

/** A validated run configuration (defaults filled in). */
export interface RunConfigInput {
  /** The model (see configs/*.yaml and {@linkcode ModelConfigInput}). */
  model: ModelConfigInput;
  /** Data. */
  data: DataConfigInput;
  /** Training. */
  train: TrainConfigInput;
  /** Optimizer. */
  optim: OptimConfigInput;
  /** Losses (default weights 1). */
  loss: LossConfigInput;
  /** Checkpoints. */
  checkpoint: CheckpointConfigInput;
  /** Logging. */
  log: LogConfigInput;
}

const posInt = z.number().int().positive();
const nonNeg = z.number().nonnegative();

/** Validates {@linkcode DataConfigInput}. */
const DataSchema = z.object({
  layout: z.enum(["paired", "single"]).default("paired"),
  images: z.string().nullish(),
  text_boxes: z.string().nullish(),
  weights: z.array(z.number().positive()).nullish(),
  eval_images: z.string().nullish(),
  eval_text_boxes: z.string().nullish(),
  tokenizer: z.string().nullish(),
  shards: z.enum(["resampled", "shuffled"]).default("resampled"),
  shuffle_buffer: z.number().int().nonnegative().default(5000),
  workers: posInt.default(2),
  prefetch: posInt.default(2),
  max_pixels: posInt.default(100_000_000),
  global_caption_prob: z.number().min(0).max(1).default(0.25),
  sample_n_box_each_image: posInt.default(1),
  sentence_masking: z.boolean().default(true),
  strict: z.boolean().default(false),
  synthesize: z.object({
    out: z.string(),
    count: posInt.default(512),
    holdout: z.number().int().nonnegative().default(64),
    seed: z.number().int().default(0),
    width: posInt.default(256),
    height: posInt.default(192),
    shard_size: posInt.default(64),
  }).strict().nullish(),
}).strict();

/** Validates {@linkcode TrainConfigInput}. */
const TrainSchema = z.object({
  batch_size: posInt,
  accum_steps: posInt.default(1),
  samples_per_epoch: posInt,
  epochs: posInt.default(1),
  steps: posInt.nullish(),
  seed: z.number().int().default(0),
  precision: z.enum(["f32", "f16"]).default("f32"),
  loss_scale: z.number().positive().default(65536),
  grad_checkpointing: z.boolean().default(true),
  select_w_gt: z.boolean().default(true),
  pool_gt_token_only: z.boolean().default(true),
  use_global_caption: z.boolean().default(true),
  memory_limit_gb: z.number().positive().nullish(),
  distributed: z.object({
    mpi_library: z.string().nullish(),
    check_every: posInt.default(50),
    timeout_s: z.number().positive().default(600),
    bucket_mb: z.number().positive().default(64),
  }).strict().default({ check_every: 50, timeout_s: 600, bucket_mb: 64 }),
  report_to: z.array(z.enum(["tensorboard"])).default([]),
}).strict();

/** Validates {@linkcode OptimConfigInput}. */
const OptimSchema = z.object({
  lr: z.number().positive(),
  token_selection_lr: z.number().positive().nullish(),
  warmup: z.number().int().nonnegative().default(0),
  schedule: z.enum(["cosine", "const"]).default("cosine"),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.95),
  eps: z.number().positive().default(1e-8),
  weight_decay: nonNeg.default(3e-4),
  grad_clip_norm: z.number().positive().nullish(),
}).strict();

/** Validates {@linkcode LossConfigInput}. */
const LossSchema = z.object({
  prior_box_weight: nonNeg.default(1),
  posterior_box_weight: nonNeg.default(1),
}).strict();

/** Validates {@linkcode CheckpointConfigInput}. */
const CheckpointSchema = z.object({
  out: z.string(),
  save_every: z.number().int().nonnegative().default(1000),
  keep_last: z.number().int().nonnegative().default(3),
  resume: z.string().nullish(),
  init: z.string().nullish(),
  init_siglip: z.string().nullish(),
}).strict();

/** Validates {@linkcode LogConfigInput}. */
const LogSchema = z.object({
  every: posInt.default(10),
  eval_every: z.number().int().nonnegative().default(0),
  eval_batches: posInt.default(4),
  eval_at_start: z.boolean().default(false),
  eval_full: z.boolean().default(true),
  eval_heatmaps: z.number().int().nonnegative().default(4),
  zeroshot: z.array(z.string()).default([]),
}).strict();

/**
 * Validates {@linkcode RunConfigInput} (unknown keys rejected with their path, defaults filled
 * in); the field meanings are documented on the interfaces.
 */
const RunConfigSchema: z.ZodType<RunConfigInput> = z.object({
  model: ModelConfigSchema,
  data: DataSchema,
  train: TrainSchema,
  optim: OptimSchema,
  loss: LossSchema.default({ prior_box_weight: 1, posterior_box_weight: 1 }),
  checkpoint: CheckpointSchema,
  log: LogSchema.default({
    every: 10,
    eval_every: 0,
    eval_batches: 4,
    eval_at_start: false,
    eval_full: true,
    eval_heatmaps: 4,
    zeroshot: [],
  }),
}).strict();

/** A resolved run configuration. */
export interface RunConfig extends RunConfigInput {
  /** The resolved model. */
  resolvedModel: ModelConfig;
  /** The input as given (with overrides applied), saved in checkpoints. */
  raw: Record<string, unknown>;
  /**
   * `train.batch_size` was `auto`: `train.batch_size` holds `train.accum_steps` (a placeholder)
   * until `ps3 train` replaces it with the largest micro-batch that fits (times accum_steps).
   */
  autoBatch: boolean;
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
  const autoBatch = isAutoBatch(raw);
  const r = RunConfigSchema.safeParse(autoBatch ? withPlaceholderBatch(raw) : raw);
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
  return { ...c, resolvedModel: model, raw: raw as Record<string, unknown>, autoBatch };
}

/** Whether a raw config says `train.batch_size: auto`. */
function isAutoBatch(raw: unknown): boolean {
  const train = (raw as { train?: unknown } | null)?.train;
  return typeof train === "object" && train !== null &&
    (train as Record<string, unknown>).batch_size === "auto";
}

/**
 * The raw config with `train.batch_size: auto` replaced by `train.accum_steps` (one sample per
 * micro-batch) so the rest validates; {@linkcode RunConfig.autoBatch} says the number is a
 * placeholder until `ps3 train` fits it.
 */
function withPlaceholderBatch(raw: unknown): unknown {
  const r = raw as { train: Record<string, unknown> };
  const accum = r.train.accum_steps ?? 1;
  return { ...r, train: { ...r.train, batch_size: accum } };
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
