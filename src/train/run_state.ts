/**
 * A run's training state: the model (with the reference's parameter groups and the kernel
 * choice of its precision), the optimizer, the loss scaler of float16 compute; restored from
 * a checkpoint or initialised (Hugging Face folder, SigLIP weights), and saved.
 *
 * @module
 */

import { join } from "node:path";
import type { Runtime } from "../gpu/runtime.ts";
import type { LoaderState } from "../data/pipeline/loader.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { AdamW } from "../optim/adamw.ts";
import { referenceGroups } from "../optim/param_groups.ts";
import { loadSafetensorsInto, readHfFolderConfig } from "../checkpoint/hf.ts";
import { initFromSiglip } from "../checkpoint/siglip_init.ts";
import { initFromTorchCheckpoint } from "../checkpoint/torch_init.ts";
import { loadMoments, readTrainState, saveCheckpoint } from "../checkpoint/train_checkpoint.ts";
import {
  chooseResume,
  moveAsideFailed,
  pruneVerified,
  type VerifyCache,
} from "../checkpoint/recovery.ts";
import type { RunConfig } from "./config.ts";
import { LossScaler, type LossScaleState } from "./loss_scale.ts";
import type { StepRecord } from "./progress.ts";
import { type Communicator, SINGLE_PROCESS } from "../dist/communicator.ts";

const ENC = new TextEncoder();

/** The trainer's own state saved in checkpoints. */
interface TrainerState {
  optimizerStep: number;
  lossScale?: LossScaleState | undefined;
}

/** Model, optimizer and loss scaler of a run. */
export interface RunState {
  /** The model. */
  model: Ps3Clip;
  /** AdamW over its parameter table. */
  opt: AdamW;
  /** The loss scaler of float16 compute, or null in float32. */
  scaler: LossScaler | null;
}

/**
 * Builds the model, the optimizer and (float16 compute) the loss scaler. In float16 the
 * model's activations are stored in f16 and its matmuls run the f16 tile kernels (f32
 * accumulation, f32 master weights and optimizer state), the selection ConvNet's patches and
 * feature maps and the selection MLP's included; the input images and the trunk's patches, the
 * pooled features,
 * the selection logits, probabilities and top-k, the loss and its logits stay float32.
 *
 * @param config The run configuration.
 * @param rt The runtime (float16 needs shader-f16).
 * @returns The state, freshly initialised.
 */
export function createRunState(config: RunConfig, rt: Runtime): RunState {
  const t = config.train, o = config.optim;
  if (t.precision === "f16" && !rt.info.hasF16) {
    throw new Error(
      `train.precision f16 needs shader-f16, which this adapter (${rt.info.description}) lacks`,
    );
  }
  const f16 = t.precision === "f16";
  const model = new Ps3Clip(config.resolvedModel, {
    seed: t.seed,
    group: referenceGroups(!!o.token_selection_lr),
    kernels: f16 ? { matmul: { variant: "tiled-f16" }, activations: "f16" } : undefined,
  });
  const opt = new AdamW(model.params, {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weight_decay,
    clipNorm: o.grad_clip_norm ?? 0,
  });
  return { model, opt, scaler: f16 ? new LossScaler({ init: t.loss_scale }) : null };
}

/** The data positions of every rank of a data-parallel run, as checkpoints store them. */
export interface RankedLoaderStates {
  /** Number of ranks that wrote them. */
  worldSize: number;
  /** Each rank's loader position, in rank order. */
  ranks: LoaderState[];
}

/**
 * This rank's data position from a checkpoint's `data`: a loader state (one process) or
 * every rank's (data-parallel). Resuming with another number of ranks is refused: each
 * rank's stream position belongs to its own share of the shards.
 *
 * @param data The checkpoint's data entry.
 * @param comm The ranks of this run.
 * @param where The checkpoint, for messages.
 * @returns This rank's loader state.
 */
export function rankLoaderState(data: unknown, comm: Communicator, where: string): LoaderState {
  const ranked = data as Partial<RankedLoaderStates>;
  const saved = Array.isArray(ranked.ranks) ? ranked.worldSize ?? ranked.ranks.length : 1;
  if (saved !== comm.size) {
    throw new Error(
      `Cannot resume ${where} with ${comm.size} rank(s): it was written by a run of ${saved} ` +
        `rank(s), and each rank's data position belongs to its share of the shards. Resume ` +
        `with ${saved} rank(s), or start a new run from its weights (checkpoint.init)`,
    );
  }
  return Array.isArray(ranked.ranks) ? ranked.ranks[comm.rank]! : data as LoaderState;
}

/** Where a run starts. */
export interface RunStart {
  /** Steps already done. */
  step: number;
  /** The data loader's position, when resumed. */
  loader: LoaderState | null;
  /** The checkpoint resumed from, if any. */
  resumedFrom: string | null;
  /** The last step record saved with it (a run that reached its last step completes it). */
  saved: StepRecord | null;
}

/**
 * Resumes from `checkpoint.resume`, or initialises from `checkpoint.init` /
 * `checkpoint.init_siglip`.
 *
 * @param state The run's state (changed in place).
 * @param config The run configuration.
 * @param say Log sink.
 * @param comm The ranks (rank 0 resolves `latest`, every rank loads the same checkpoint).
 * @param verified The run's cache of verified checkpoints (filled here, used by pruning).
 * @returns The step and data position to start from.
 */
export async function restoreRunState(
  state: RunState,
  config: RunConfig,
  say: (s: string) => void,
  comm: Communicator = SINGLE_PROCESS,
  verified: VerifyCache = new Map(),
): Promise<RunStart> {
  const ck = config.checkpoint;
  const { model, opt, scaler } = state;
  const root = join(ck.out, "checkpoints");
  // Rank 0 decides which checkpoint every rank resumes from: `latest` is the newest that
  // verifies (damaged ones are moved aside, with a note), an explicit one verifies or fails.
  let resumeFrom: string | null = null;
  if (comm.rank === 0 && ck.resume) {
    resumeFrom = await chooseResume(ck.resume, root, { log: say, cache: verified });
    await moveAsideFailed(root, verified, say);
  }
  if (comm.size > 1) {
    const path = await comm.broadcastBytes(ENC.encode(resumeFrom ?? ""));
    resumeFrom = new TextDecoder().decode(path) || null;
  }
  if (resumeFrom) {
    const saved = await readTrainState(resumeFrom);
    await loadSafetensorsInto(model.params, join(resumeFrom, "model.safetensors"));
    await loadMoments(model.params, resumeFrom);
    const ts = saved.trainer as TrainerState;
    opt.step = ts.optimizerStep;
    if (scaler && ts.lossScale) scaler.restore(ts.lossScale);
    say(`resumed from ${resumeFrom} at step ${saved.step}`);
    const loader = rankLoaderState(saved.data, comm, `"${resumeFrom}"`);
    const record = saved.metrics as unknown as StepRecord;
    return { step: saved.step, loader, resumedFrom: resumeFrom, saved: record };
  }
  if (ck.init && (await Deno.stat(ck.init)).isFile) {
    // A PyTorch checkpoint (open_clip's epoch_N.pt or a bare state dict).
    const r = await initFromTorchCheckpoint(model.params, ck.init);
    if (r.optimizerStep !== null) opt.step = r.optimizerStep;
    say(
      `initialised from ${ck.init}: ${r.loaded.length} tensors loaded, ${r.missing.length} ` +
        `new, ${r.unused.length} unused; ` +
        (r.optimizerStep !== null
          ? `AdamW moments loaded (step ${r.optimizerStep})`
          : `optimizer state not loaded: ${r.optimizerNote}`),
    );
  } else if (ck.init) {
    const isHf = await Deno.stat(join(ck.init, "config.json")).then(() => true, () => false);
    if (isHf) await readHfFolderConfig(ck.init); // validates the folder (full or vision-only)
    const r = await loadSafetensorsInto(model.params, join(ck.init, "model.safetensors"), {
      strict: false,
    });
    say(
      `initialised from ${ck.init}: ${r.loaded.length} tensors loaded, ${r.missing.length} new, ${r.unused.length} unused`,
    );
  }
  if (ck.init_siglip) {
    const r = await initFromSiglip(model.params, ck.init_siglip);
    say(
      `initialised from SigLIP ${ck.init_siglip}: ${r.loaded.length} tensors loaded, ${r.fresh.length} new`,
    );
  }
  return { step: 0, loader: null, resumedFrom: null, saved: null };
}

/**
 * Writes a training checkpoint (atomic, sealed with the digests of its files; see
 * `src/checkpoint/train_checkpoint.ts`) and prunes the verified ones beyond
 * `checkpoint.keep_last` (see `src/checkpoint/recovery.ts`).
 *
 * @param state The run's state.
 * @param config The run configuration.
 * @param at The step, the data position after it (every rank's in a data-parallel run),
 *   the last step record.
 * @param io The run's cache of verified checkpoints, the log, and the test seam called in
 *   the middle of the write.
 * @returns The checkpoint's folder.
 */
export async function saveRunState(
  state: RunState,
  config: RunConfig,
  at: { step: number; data: LoaderState | RankedLoaderStates; last: StepRecord | null },
  io: { verified: VerifyCache; log: (s: string) => void; crashMidway?: (() => void) | undefined },
): Promise<string> {
  const root = join(config.checkpoint.out, "checkpoints");
  const path = await saveCheckpoint(root, state.model.params, {
    step: at.step,
    runConfig: config.raw,
    modelConfig: (config.raw as { model: unknown }).model,
    data: at.data,
    trainer: {
      optimizerStep: state.opt.step,
      lossScale: state.scaler?.state(),
    } satisfies TrainerState,
    metrics: at.last
      ? Object.fromEntries(Object.entries(at.last).filter(([, v]) => v !== undefined))
      : {},
  }, { crashMidway: io.crashMidway });
  // Digested as written (sealCheckpoint): pruning need not read it back.
  io.verified.set(path, {
    path,
    step: at.step,
    complete: true,
    verified: true,
    legacy: false,
    size: 0,
    problems: [],
  });
  await pruneVerified(root, config.checkpoint.keep_last, { log: io.log, cache: io.verified });
  return path;
}
