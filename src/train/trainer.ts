/**
 * The training loop of `ps3 train`: data (prefetched by the parallel loader), forward,
 * losses, backward, AdamW, checkpoints (atomic, resumable bit-exactly), progress, metrics,
 * the loss plot, held-out evaluation and the final summary. A NaN/Inf loss stops the run
 * with a checkpoint of the state before the bad step and names the step and the batch's keys.
 *
 * The parts: `run_data.ts` (where the data is), `run_state.ts` (model, optimizer, resume and
 * save), `step.ts` (one step's GPU work), `evaluate.ts`, `summary.ts`, `plot.ts`; this file
 * opens a run, loops over its steps and closes it.
 *
 * Data-parallel (a {@linkcode Communicator} of several ranks, under `mpirun`): every rank
 * trains on its share of the data with the same parameters; the SigLIP loss sees every
 * rank's features, the gradients are summed over the ranks before the identical AdamW update
 * on every rank, and the ranks agree before each step on whether to go on (a rank out of
 * data or interrupted stops them all). Rank 0 writes checkpoints (with every rank's data
 * position), metrics, the plot and the summary, and evaluates; the parameters are compared
 * across ranks every `train.distributed.check_every` steps.
 *
 * @module
 */

import { join } from "node:path";
import { gpu, type Runtime } from "../gpu/runtime.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import { DataLoader, type LoaderState } from "../data/pipeline/loader.ts";
import type { TrainOptions } from "../model/ps3_clip.ts";
import type { LossWeights } from "../loss/ps3_loss.ts";
import { learningRate } from "../optim/schedule.ts";
import { writeFileAtomic } from "../checkpoint/atomic.ts";
import type { MemoryEstimate } from "./memory.ts";
import type { GroupPlan } from "./groups.ts";
import type { RunConfig } from "./config.ts";
import { describeEstimate } from "./memory.ts";
import { forwardBackward, forwardBackwardGlobal, optimizerStep, trainOptions } from "./step.ts";
import {
  checkRunBindings,
  checkRunInputs,
  checkRunMemory,
  describeGroups,
  type RunDataPaths,
  runGroups,
} from "./preflight.ts";
import { JsonLines, Progress, type StepRecord } from "./progress.ts";
import { writePlot } from "./plot.ts";
import { describeEval, type EvalMetrics, evaluateHeldOut } from "./evaluate.ts";
import { evaluateWholeSet } from "./evaluate_set.ts";
import { formatReport, reportJson } from "../eval/report.ts";
import { TrainBoard } from "./tensorboard.ts";
import { dataPaths, loaderOptions } from "./run_data.ts";
import { createRunState, restoreRunState, type RunState, saveRunState } from "./run_state.ts";
import { describeSummary, type TrainSummary } from "./summary.ts";
import { type Faults, faultsFromEnv } from "./faults.ts";
import { type Communicator, SINGLE_PROCESS, timedCommunicator } from "../dist/communicator.ts";
import { newSkipShardLines } from "../data/pipeline/skip_tally.ts";
import type { VerifyCache } from "../checkpoint/recovery.ts";
import { RunLock } from "./run_lock.ts";
import { StopSignals } from "./signals.ts";
import { armStopDeadline, type StopDeadline } from "./stop_deadline.ts";
import { finishedSummary, guardFreshStart } from "./run_folder.ts";
import { allreduceBuffers } from "../dist/grad_allreduce.ts";
import { divergentRanks } from "../dist/param_check.ts";

export type { TrainSummary };

/** An open run: its configuration, state, data and bookkeeping. */
interface Run {
  config: RunConfig;
  comm: Communicator;
  /** Seconds spent in collectives so far. */
  commSeconds: () => number;
  rt: Runtime;
  state: RunState;
  paths: RunDataPaths;
  loader: DataLoader;
  metrics: JsonLines;
  progress: Progress;
  est: MemoryEstimate;
  /** The sample groups a micro-batch runs in (every tensor under the largest buffer). */
  groups: GroupPlan;
  faults: Faults;
  /** TensorBoard event files (rank 0, with `train.report_to: [tensorboard]`). */
  board: TrainBoard | null;
  trainOpts: TrainOptions;
  weights: LossWeights;
  /** Steps of the whole run. */
  total: number;
  /** The step this process started at. */
  start: number;
  /** Steps done. */
  step: number;
  /** Why the loop stops ("done" while it runs). */
  stop: TrainSummary["stopped"];
  /** The data position before the current step (saved with a NaN stop). */
  posBefore: LoaderState;
  /** Checkpoints verified (or written) by this process. */
  verified: VerifyCache;
  /** Shards whose skipped samples have been named in the log. */
  skipShardsLogged: Set<string>;
  /** The stop signals listened to. */
  signals: StopSignals | null;
  /** The summary of a run that had already finished (nothing to do). */
  finished: TrainSummary | null;
  /** The run had reached its last step without a summary: only the summary is completed. */
  finishing: boolean;
  last: StepRecord | null;
  lastCheckpoint: string | null;
  /** The step of the last checkpoint saved (on every rank; rank 0 writes it). */
  savedStep: number | null;
  dataWait: number;
  skippedUpdates: number;
  t0: number;
  lastEvalStep: number;
  lastEval: EvalMetrics | null;
  evalAtStart: EvalMetrics | null;
}

/**
 * Runs (or resumes) a training run.
 *
 * One trainer per run folder (`train.lock`, held by rank 0 until the run returns); a folder
 * that already holds a run needs `checkpoint.resume` or `fresh`. SIGINT, SIGTERM and SIGHUP
 * stop after the current step with a checkpoint; a second signal exits at once.
 *
 * @param config The run configuration.
 * @param options Whether to draw a progress bar; the ranks of a data-parallel run (default:
 *   this process alone); `fresh`: start from step 0 in a folder that holds a run (which is
 *   moved aside; refused otherwise).
 * @returns The summary (on every rank; rank 0 writes it).
 */
export async function train(
  config: RunConfig,
  options: {
    tty?: boolean | undefined;
    comm?: Communicator | undefined;
    fresh?: boolean | undefined;
  } = {},
): Promise<TrainSummary> {
  const out = config.checkpoint.out;
  const lead = (options.comm ?? SINGLE_PROCESS).rank === 0;
  await Deno.mkdir(out, { recursive: true });
  // One trainer per run folder, until this function returns (a crash leaves a stale lock).
  await using _lock = lead ? await RunLock.acquire(out, (s) => console.log(s)) : null;
  if (lead && !config.checkpoint.resume) {
    await guardFreshStart(out, { fresh: options.fresh, log: (s) => console.log(s) });
  }
  const run = await openRun(config, options);
  if (run.finished) {
    await run.loader[Symbol.asyncDispose]();
    return run.finished;
  }
  let deadline = null as StopDeadline | null;
  run.signals = new StopSignals((name) => {
    run.stop = "signal";
    run.progress.warn(
      `${name}: stopping after this step with a checkpoint (send it again to exit at once)`,
    );
    // The ranks stop together at the next step; if a peer is gone (the launcher signals the
    // survivors when a rank dies) or this rank is stuck in a wait, the collectives cannot
    // complete: the process ends after a grace time, on a thread of its own.
    if (run.comm.size > 1 && !deadline) {
      const grace = 30;
      deadline = armStopDeadline(
        grace,
        `ps3 (rank ${run.comm.rank}): ${name}: the ranks did not stop together within ` +
          `${grace} s (a rank is gone or stuck?); exiting without a checkpoint`,
      );
    }
  });
  try {
    run.t0 = performance.now();
    run.rt.pool.resetPeak();
    const lead = run.comm.rank === 0;
    if (lead && config.log.eval_at_start && run.paths.evalImages && run.start === 0) {
      run.evalAtStart = await evalAt(run, 0);
    }
    // One process stops at a signal here; data-parallel ranks agree in trainStep first.
    while (run.step < run.total && (run.comm.size > 1 || run.stop === "done")) {
      if (!await trainStep(run)) break;
    }
    // Every rank decides alike (a save is collective): not again when this step is saved.
    // Data-parallel ranks fetched the batch of the step they agreed not to run: the position
    // to save is the one before it.
    const saved = run.savedStep === run.step;
    const data = run.comm.size > 1 ? run.posBefore : run.loader.state();
    if (run.stop !== "nan" && run.step > run.start && !saved) await save(run, data);
  } finally {
    run.signals.dispose();
    await run.loader[Symbol.asyncDispose]();
  }
  try {
    return await closeRun(run);
  } finally {
    deadline?.cancel();
  }
}

/**
 * Held-out evaluation at a step: the in-batch figures, the whole-set figures of `ps3 eval`
 * (with `log.eval_full`), into metrics.jsonl, the log and TensorBoard.
 */
async function evalAt(run: Run, step: number): Promise<EvalMetrics> {
  const { config, paths, trainOpts } = run;
  const model = run.state.model;
  const e = await evaluateHeldOut(model, config, paths, trainOpts);
  const full = await evaluateWholeSet(model, config, paths, trainOpts, run.groups.groupSize);
  await run.metrics.append({ step, eval: e, ...(full ? { eval_full: reportJson(full) } : {}) });
  run.progress.log(describeEval(step, e));
  if (full) run.progress.log(formatReport(full));
  await run.board?.eval(step, e, full);
  return e;
}

/** Checks the inputs and memory, builds the state, restores it, opens the data and logs. */
async function openRun(
  config: RunConfig,
  options: { tty?: boolean | undefined; comm?: Communicator | undefined },
): Promise<Run> {
  const rt = gpu();
  const given = options.comm ?? SINGLE_PROCESS;
  const timed = given.size > 1 ? timedCommunicator(given) : null;
  const comm: Communicator = timed ?? given;
  const t = config.train, out = config.checkpoint.out;
  const globalBatch = t.batch_size * comm.size;
  const stepsPerEpoch = Math.floor(t.samples_per_epoch / globalBatch);
  if (stepsPerEpoch < 1) {
    throw new RangeError(
      `train.samples_per_epoch ${t.samples_per_epoch} is less than one batch of ${globalBatch}` +
        (comm.size > 1 ? ` (${t.batch_size} per rank x ${comm.size} ranks)` : ""),
    );
  }
  const total = t.steps ?? t.epochs * stepsPerEpoch;
  const earlyLog: string[] = [];
  const say = (s: string) => earlyLog.push(s);
  // Rank 0 writes the synthetic dataset (if any) before the others read it.
  const paths = comm.rank === 0
    ? await dataPaths(config, (s) => console.log(s))
    : (await comm.barrier(), await dataPaths(config, () => {}));
  if (comm.rank === 0 && comm.size > 1) await comm.barrier();
  // Before anything is allocated: every input exists, and the run fits in memory.
  await checkRunInputs(config, paths);
  const est = checkRunMemory(config, rt);
  checkRunBindings(config, rt);
  const groups = runGroups(config, rt);
  const state = createRunState(config, rt);
  say(`model ${config.resolvedModel.name}: ${state.model.params.describe()}`);
  say(describeEstimate(est));
  if (groups.groups > 1) say(describeGroups(groups, t.batch_size / t.accum_steps));
  const verified: VerifyCache = new Map();
  const begin = await restoreRunState(state, config, say, comm, verified);
  const split = { rank: comm.rank, size: comm.size };
  const loader = await DataLoader.create(loaderOptions(config, paths, true, split));
  if (begin.loader) await loader.resume(begin.loader);
  const metrics = new JsonLines(join(out, "metrics.jsonl"), (s) => console.warn(s));
  // A run that already finished: nothing changes. One that reached its last step without
  // writing its summary: only the summary is completed.
  const finished = begin.step >= total
    ? await finishedSummary<TrainSummary>(out, begin.step)
    : null;
  if (finished) {
    for (const s of earlyLog) console.log(s);
    console.log(
      `the run already finished at step ${begin.step} (${begin.resumedFrom}); nothing to do, ` +
        `nothing was changed (summary: ${join(out, "summary.json")})`,
    );
  }
  const finishing = !finished && begin.step >= total && begin.resumedFrom !== null;
  if (finishing) {
    say(`the run reached step ${begin.step} but did not write its summary; completing it`);
  }
  if (comm.rank === 0 && !finished) await metrics.truncateAfter(begin.step);
  const progress = new Progress(total, {
    firstStep: begin.step,
    every: config.log.every,
    tty: options.tty,
    rank: comm.rank,
  });
  for (const s of earlyLog) progress.log(s);
  if (comm.size > 1) await reportAdapters(comm, rt, progress);
  progress.log(
    `training ${total - begin.step} steps of ${t.batch_size} samples (${t.accum_steps} ` +
      `micro-batches)` +
      (comm.size > 1
        ? ` on each of ${comm.size} ranks (global batch ${globalBatch}; MPI: ${comm.flavor})`
        : ` on ${rt.info.description}`),
  );
  return {
    config,
    comm,
    commSeconds: () => timed?.seconds ?? 0,
    rt,
    state,
    paths,
    loader,
    metrics,
    progress,
    est,
    groups,
    faults: faultsFromEnv(),
    board: comm.rank === 0 && t.report_to.includes("tensorboard")
      ? await TrainBoard.create(join(out, "tensorboard"))
      : null,
    trainOpts: trainOptions(t),
    weights: {
      prior: config.loss.prior_box_weight,
      posterior: config.loss.posterior_box_weight,
    },
    total,
    start: begin.step,
    step: begin.step,
    stop: "done",
    posBefore: loader.state(),
    verified,
    skipShardsLogged: new Set(),
    signals: null,
    finished,
    finishing,
    last: finishing ? begin.saved : null,
    lastCheckpoint: finishing ? begin.resumedFrom : null,
    savedStep: finishing ? begin.step : null,
    dataWait: 0,
    skippedUpdates: 0,
    t0: performance.now(),
    lastEvalStep: -1,
    lastEval: null,
    evalAtStart: null,
  };
}

/**
 * Logs which adapter each rank got (from rank 0), and warns when ranks of one machine got
 * the same GPU adapter: Deno's WebGPU cannot pick among identical adapters, so each rank's
 * GPU must be isolated by the launcher (see the README).
 */
async function reportAdapters(comm: Communicator, rt: Runtime, progress: Progress) {
  const me = { rank: comm.rank, local: comm.localRank, host: Deno.hostname(), gpu: rt.info };
  const all = (await comm.allgatherBytes(new TextEncoder().encode(JSON.stringify(me))))
    .map((b) => JSON.parse(new TextDecoder().decode(b)) as typeof me);
  for (const r of all) {
    progress.log(`rank ${r.rank} (${r.host}, local rank ${r.local}): ${r.gpu.description}`);
  }
  const shared = all.filter((r) =>
    !r.gpu.isSoftware &&
    all.some((o) =>
      o.rank !== r.rank && o.host === r.host && o.gpu.description === r.gpu.description
    )
  );
  if (shared.length > 0) {
    progress.log(
      `warning: ranks ${shared.map((r) => r.rank).join(", ")} share a machine and report the ` +
        "same adapter; unless the launcher gives each rank its own GPU (README: data-parallel " +
        "training), they all run on the first one",
    );
  }
}

/**
 * Saves a checkpoint of the current state with the given data position. In a data-parallel
 * run every rank calls it (their data positions are gathered) and rank 0 writes.
 */
async function save(run: Run, data: LoaderState): Promise<void> {
  const at = run.step, comm = run.comm;
  run.savedStep = at;
  let saved: Parameters<typeof saveRunState>[2]["data"] = data;
  if (comm.size > 1) {
    const all = await comm.allgatherBytes(new TextEncoder().encode(JSON.stringify(data)));
    saved = {
      worldSize: comm.size,
      ranks: all.map((b) => JSON.parse(new TextDecoder().decode(b)) as LoaderState),
    };
  }
  if (comm.rank !== 0) return;
  run.lastCheckpoint = await saveRunState(
    run.state,
    run.config,
    { step: at, data: saved, last: run.last },
    {
      verified: run.verified,
      log: (s) => run.progress.log(s),
      crashMidway: run.faults.exitDuringSaveAtStep === at ? () => Deno.exit(137) : undefined,
    },
  );
}

/** The learning rates of a step (warmup + schedule). */
function stepLr(run: Run, step: number): { base: number; selection: number } {
  const o = run.config.optim;
  const at = (peak: number) =>
    learningRate(step, { lr: peak, warmup: o.warmup, total: run.total, kind: o.schedule });
  return { base: at(o.lr), selection: at(o.token_selection_lr ?? o.lr) };
}

/**
 * One step: the next batch, forward and backward, the update, and what follows it
 * (metrics, plot, checkpoint, evaluation).
 *
 * @returns False when the data ran out or the loss was not finite.
 */
async function trainStep(run: Run): Promise<boolean> {
  const { rt, state, config, comm } = run;
  const c0 = run.commSeconds();
  const tw = performance.now();
  const batch = await run.loader.next();
  if (comm.size > 1 && !await ranksAgree(run, batch !== undefined)) return false;
  if (!batch) return false;
  const ts = performance.now();
  const wait = (ts - tw) / 1000;
  run.dataWait += wait;
  if (run.faults.throwAtStep === run.step + 1) {
    throw new Error(`injected fault (PS3_FAULT) in step ${run.step + 1}`);
  }
  state.model.params.zeroGrad();
  const lossScale = state.scaler?.scale;
  const fb = {
    train: run.trainOpts,
    weights: run.weights,
    micro: config.train.accum_steps,
    lossScale,
    groupSize: run.groups.groupSize,
  };
  const scalars = comm.size > 1
    ? await forwardBackwardGlobal(state.model, batch, fb, comm)
    : forwardBackward(state.model, batch, fb);
  if (comm.size > 1) {
    const bucket = config.train.distributed.bucket_mb * 2 ** 20;
    await allreduceBuffers(state.model.params.grads, comm, bucket);
  }
  const lr = stepLr(run, run.step);
  const stats = optimizerStep(state.model, state.opt, { lr, loss: scalars.total, lossScale });
  const terms = [scalars.total, scalars.contrastive, scalars.priorBox, scalars.posteriorBox];
  const host = (await rt.read([...terms, stats])).map((b) => new Float32Array(b));
  for (const s of terms) s.dispose();
  if (comm.size > 1) await sumLossShares(comm, host);
  const dt = (performance.now() - ts) / 1000;
  const loss = host[0]![0]!, gradNorm = host[4]![1]!;
  if (!checkUpdate(run, { loss, gradNorm, lossScale })) {
    run.progress.warn(
      `step ${run.step + 1}: the loss is ${loss} (gradient norm ${gradNorm}); stopping. ` +
        `Batch keys: ${batch.keys.join(", ")}`,
    );
    await save(run, run.posBefore);
    run.progress.log(`saved the state before this step to ${run.lastCheckpoint}`);
    return false;
  }
  run.step++;
  const loaderStats = run.loader.stats();
  for (const line of newSkipShardLines(loaderStats, run.skipShardsLogged)) {
    run.progress.warn(line);
  }
  run.last = stepRecord(run, batch, {
    lr: lr.base,
    host,
    lossScale,
    seconds: dt,
    wait,
  });
  if (comm.size > 1) run.last.comm_s = run.commSeconds() - c0;
  await afterStep(run);
  return true;
}

/**
 * Before a data-parallel step: whether every rank has a batch and none was interrupted. A
 * rank out of data, or one that got a stop signal, stops every rank at the same step.
 *
 * @returns Whether the step goes ahead.
 */
async function ranksAgree(run: Run, haveBatch: boolean): Promise<boolean> {
  const flags = new Int32Array([haveBatch ? 0 : 1, run.stop === "signal" ? 1 : 0]);
  await run.comm.allreduceMax(flags);
  // Decide from the reduced flags only: a signal that arrives during the collective sets
  // run.stop on this rank alone, and is agreed on at the next step.
  if (flags[1]) run.stop = "signal";
  if (flags[0]) {
    run.progress.warn(
      `step ${run.step + 1}: a rank ran out of data; every rank stops here` +
        (haveBatch ? "" : " (this rank's shards are exhausted)"),
    );
    return false;
  }
  return flags[1] === 0;
}

/** Sums the loss shares of every rank into the global batch's loss terms (host values). */
async function sumLossShares(comm: Communicator, host: Float32Array[]): Promise<void> {
  const shares = new Float64Array(host.slice(0, 4).map((h) => h[0]!));
  await comm.allreduceSum64(shares);
  shares.forEach((v, i) => (host[i]![0] = v));
}

/**
 * Applies the float16 loss-scale rule and the NaN stop. The AdamW kernel skips non-finite
 * updates on the GPU; here the optimizer's step count follows.
 *
 * @returns False when the run must stop (the parameters are those before the step).
 */
function checkUpdate(
  run: Run,
  s: { loss: number; gradNorm: number; lossScale: number | undefined },
): boolean {
  const { opt, scaler } = run.state;
  const gradsFinite = Number.isFinite(s.gradNorm);
  if (scaler && Number.isFinite(s.loss)) {
    // float16 compute: overflowing gradients skip the update and halve the loss scale.
    scaler.update(gradsFinite);
    if (!gradsFinite) {
      opt.step--;
      run.skippedUpdates++;
      run.progress.warn(
        `step ${run.step + 1}: gradients overflowed at loss scale ${s.lossScale}; update ` +
          `skipped, scale now ${scaler.scale}`,
      );
    }
  }
  if (!Number.isFinite(s.loss) || (!scaler && !gradsFinite)) {
    opt.step--;
    run.stop = "nan";
    return false;
  }
  return true;
}

/** The metrics line of the step just done. */
function stepRecord(
  run: Run,
  batch: Batch,
  m: {
    lr: number;
    host: Float32Array[];
    lossScale: number | undefined;
    seconds: number;
    wait: number;
  },
): StepRecord {
  const h = m.host;
  return {
    step: run.step,
    epoch: batch.epoch,
    lr: m.lr,
    loss: h[0]![0]!,
    contrastive: h[1]![0]!,
    prior_box: h[2]![0]!,
    posterior_box: h[3]![0]!,
    grad_norm: h[4]![1]!,
    ...(run.state.scaler ? { loss_scale: m.lossScale! } : {}),
    step_s: m.seconds,
    data_wait_s: m.wait,
    samples_per_s: batch.keys.length * run.comm.size / m.seconds,
    skipped: Object.values(run.loader.stats().skipped).reduce((a, b) => a + b, 0),
  };
}

/** Metrics, progress, plot, periodic checkpoint and evaluation after a step. */
async function afterStep(run: Run): Promise<void> {
  const { config, step, comm } = run;
  const last = run.last!;
  const lead = comm.rank === 0;
  if (lead) await run.metrics.append({ ...last });
  run.progress.step(last);
  await run.board?.step(last, run.rt.memory());
  run.posBefore = run.loader.state();
  if (run.faults.exitAfterStep === step) Deno.exit(137);
  const out = config.checkpoint.out;
  if (lead && (step % config.log.every === 0 || step === run.total)) {
    await writePlot(out, run.metrics);
  }
  const check = config.train.distributed.check_every;
  if (comm.size > 1 && (step % check === 0 || step === run.total)) {
    const bad = await divergentRanks(run.state.model.params, comm);
    if (bad.length > 0) {
      comm.abort(
        `ps3: after step ${step} the parameters of rank(s) ${bad.join(", ")} differ from ` +
          `rank 0's (checksums of every parameter buffer); stopping every rank`,
      );
    }
  }
  const every = config.checkpoint.save_every;
  if (every > 0 && step % every === 0 && step < run.total) await save(run, run.posBefore);
  if (
    lead && config.log.eval_every > 0 && step % config.log.eval_every === 0 &&
    run.paths.evalImages
  ) {
    const e = await evalAt(run, step);
    run.lastEvalStep = step;
    run.lastEval = e;
  }
}

/** The plot, the final evaluation and the summary. */
async function closeRun(run: Run): Promise<TrainSummary> {
  const { config, step, start } = run;
  const lead = run.comm.rank === 0;
  const seconds = (performance.now() - run.t0) / 1000;
  const out = config.checkpoint.out;
  if (lead) await writePlot(out, run.metrics);
  let evalMetrics: EvalMetrics | null = run.lastEvalStep === step ? run.lastEval : null;
  if (run.finishing) {
    const done = (await run.metrics.readAll()).find((r) => r.step === step && r.eval);
    if (done) [run.lastEvalStep, run.lastEval] = [step, done.eval as EvalMetrics];
    evalMetrics = run.lastEval;
  }
  if (
    lead && run.stop === "done" && run.paths.evalImages && (step > start || run.finishing) &&
    run.lastEvalStep !== step
  ) {
    evalMetrics = await evalAt(run, step);
  }
  run.board?.close();
  const mem = run.rt.memory();
  const summary: TrainSummary = {
    steps: step,
    stepsThisRun: step - start,
    seconds,
    samplesPerSecond: (step - start) * config.train.batch_size * run.comm.size /
      Math.max(seconds, 1e-9),
    dataWaitSeconds: run.dataWait,
    peakActivationBytes: mem.peakInUseBytes,
    stateBytes: run.state.model.params.bytes(),
    estimatedBytes: run.est.total,
    dispatches: {
      count: run.rt.counters.dispatches,
      maxBindingBytes: run.rt.info.maxBindingBytes,
    },
    skipped: run.loader.stats().skipped,
    skippedByShard: run.loader.stats().skippedByShard ?? {},
    last: run.last,
    eval: evalMetrics,
    evalAtStart: run.evalAtStart,
    stopped: run.stop,
    signal: run.signals?.received ?? undefined,
    skippedUpdates: run.skippedUpdates,
    checkpoint: run.lastCheckpoint,
  };
  if (!lead) return summary;
  await writeFileAtomic(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  run.progress.log(describeSummary(summary, run.est.total));
  return summary;
}
