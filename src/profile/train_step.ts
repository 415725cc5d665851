/**
 * `ps3 train <config> --profile`: the run's model, optimizer and data as `ps3 train` builds
 * them (fresh, from the config's seed; no checkpoint is read or written), a few warm-up steps
 * (pipelines compiled, buffers pooled, the loader's workers running), then one profiled
 * step: data wait, forward + losses + backward recorded, the AdamW update recorded, and the
 * readback of the step's scalars, as the trainer does them.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import type { RunConfig } from "../train/config.ts";
import { dataPaths, loaderOptions } from "../train/run_data.ts";
import { createRunState, type RunState } from "../train/run_state.ts";
import { runGroups } from "../train/preflight.ts";
import {
  forwardBackward,
  type ForwardBackwardOptions,
  optimizerStep,
  trainOptions,
} from "../train/step.ts";
import { learningRate } from "../optim/schedule.ts";
import { DataLoader } from "../data/pipeline/loader.ts";
import { Profiler, type StepProfile } from "./profiler.ts";

/** Options of {@linkcode profileTrainStep}. */
export interface ProfileTrainOptions {
  /** Unprofiled steps first (default 2). */
  warmup?: number | undefined;
  /** Progress lines. */
  log?: ((s: string) => void) | undefined;
}

/**
 * Runs warm-up steps and profiles the next training step of a run configuration.
 *
 * @param config The run configuration (one process; accumulation as configured).
 * @param options Warm-up steps and logging.
 * @returns The profile of the step.
 * @example
 * ```ts
 * await initGpu({ timestamps: true });
 * const p = await profileTrainStep(await loadRunConfig("configs/ps3-tiny.yaml", []));
 * console.log(formatProfile(p));
 * ```
 */
export async function profileTrainStep(
  config: RunConfig,
  options: ProfileTrainOptions = {},
): Promise<StepProfile> {
  const rt = gpu();
  const log = options.log ?? (() => {});
  const warmup = options.warmup ?? 2;
  const paths = await dataPaths(config, log);
  // The trainer's sample groups (every tensor under the largest buffer), checked first.
  const { groupSize } = runGroups(config, rt);
  const state = createRunState(config, rt);
  const t = config.train;
  const fb: ForwardBackwardOptions = {
    train: trainOptions(t),
    weights: { prior: config.loss.prior_box_weight, posterior: config.loss.posterior_box_weight },
    micro: t.accum_steps,
    groupSize,
  };
  await using loader = await DataLoader.create(loaderOptions(config, paths, true));
  const total = t.steps ?? warmup + 1;
  for (let i = 0; i < warmup; i++) {
    const batch = await loader.next();
    if (!batch) throw new Error("Cannot profile a training step: the data ran out in warm-up");
    await trainOnce(state, batch, fb, lr(config, i, total));
    log(`warm-up step ${i + 1} of ${warmup} done`);
  }
  const profiler = new Profiler(rt);
  profiler.start();
  try {
    const batch = await profiler.phaseAsync("data wait", () => loader.next(), "data");
    if (!batch) throw new Error("Cannot profile a training step: the data ran out");
    await trainOnce(state, batch, fb, lr(config, warmup, total), profiler);
  } catch (e) {
    rt.observe(null);
    throw e;
  }
  return await profiler.stop(
    `training step of ${config.resolvedModel.name}, batch ${t.batch_size}` +
      ` (${t.accum_steps} micro-batches, checkpointing ${t.grad_checkpointing ? "on" : "off"})`,
  );
}

function lr(config: RunConfig, step: number, total: number) {
  const o = config.optim;
  const at = (peak: number) =>
    learningRate(step, { lr: peak, warmup: o.warmup, total, kind: o.schedule });
  return { base: at(o.lr), selection: at(o.token_selection_lr ?? o.lr) };
}

/** One step as the trainer runs it, its phases marked when profiled. */
async function trainOnce(
  state: RunState,
  batch: NonNullable<Awaited<ReturnType<DataLoader["next"]>>>,
  fb: ForwardBackwardOptions,
  rates: { base: number; selection: number },
  profiler?: Profiler,
): Promise<void> {
  const phase = <T>(name: string, fn: () => T): T => profiler ? profiler.phase(name, fn) : fn();
  phase("zero gradients", () => state.model.params.zeroGrad());
  const scalars = phase(
    "forward + losses + backward",
    () => forwardBackward(state.model, batch, fb),
  );
  const stats = phase(
    "AdamW update",
    () => optimizerStep(state.model, state.opt, { lr: rates, loss: scalars.total }),
  );
  const terms = [scalars.total, scalars.contrastive, scalars.priorBox, scalars.posteriorBox];
  const read = () => gpu().read([...terms, stats]);
  await (profiler ? profiler.phaseAsync("readback of the step's scalars", read) : read());
  for (const s of terms) s.dispose();
}
