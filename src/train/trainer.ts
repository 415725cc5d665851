/**
 * The training loop of `ps3 train`: data (prefetched by the parallel loader), forward,
 * losses, backward, AdamW, checkpoints (atomic, resumable bit-exactly), progress, metrics,
 * the loss plot, held-out evaluation and the final summary. A NaN/Inf loss stops the run
 * with a checkpoint of the state before the bad step and names the step and the batch's keys.
 *
 * @module
 */

import { join } from "node:path";
import { gpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { DataLoader, type LoaderOptions, type LoaderState } from "../data/loader.ts";
import type { Batch } from "../data/loader.ts";
import { type SynthManifest, writeSynthDataset } from "../data/synth.ts";
import { Ps3Clip, referenceGroups, type TrainOptions } from "../model/ps3_clip.ts";
import { AdamW } from "../optim/adamw.ts";
import { loadSafetensorsInto, readHfFolderConfig } from "../checkpoint/hf.ts";
import { writeFileAtomic } from "../checkpoint/atomic.ts";
import { initFromSiglip } from "../checkpoint/siglip_init.ts";
import { initFromTorchCheckpoint } from "../checkpoint/torch_init.ts";
import {
  listCheckpoints,
  loadMoments,
  pruneCheckpoints,
  readTrainState,
  resolveCheckpoint,
  saveCheckpoint,
} from "../checkpoint/train_checkpoint.ts";
import type { RunConfig } from "./config.ts";
import { learningRate } from "./schedule.ts";
import { LossScaler, type LossScaleState } from "./loss_scale.ts";
import { setMatmulVariant } from "../ops/matmul.ts";
import { forwardBackward, optimizerStep } from "./step.ts";
import { describeEstimate } from "./memory.ts";
import { checkRunInputs, checkRunMemory, type RunDataPaths } from "./preflight.ts";
import { JsonLines, Progress, type StepRecord } from "./progress.ts";
import { plotLosses } from "./plot.ts";
import { type EvalMetrics, evaluate } from "./evaluate.ts";

/** Faults a test can inject to check crash safety (never set in normal runs). */
export interface TrainFaults {
  /** Exit the process (code 137) right after this step, before any save. */
  exitAfterStep?: number | undefined;
  /** Exit the process (code 137) in the middle of writing the checkpoint of this step. */
  exitDuringSaveAtStep?: number | undefined;
}

/** What a finished (or stopped) run reports. */
export interface TrainSummary {
  /** Steps done in total. */
  steps: number;
  /** Steps done by this process. */
  stepsThisRun: number;
  /** Wall time of this process's steps, seconds. */
  seconds: number;
  /** Samples per second over this process's steps. */
  samplesPerSecond: number;
  /** Peak pooled GPU memory of activations, bytes. */
  peakActivationBytes: number;
  /** GPU memory of parameters, gradients and moments, bytes. */
  stateBytes: number;
  /** Seconds the steps of this run waited for their batches (data loading not hidden). */
  dataWaitSeconds: number;
  /** The memory estimate printed before the first step, bytes. */
  estimatedBytes: number;
  /** Samples skipped by reason. */
  skipped: Record<string, number>;
  /** The last step's record. */
  last: StepRecord | null;
  /** Held-out metrics at the end, if evaluated. */
  eval: EvalMetrics | null;
  /** Held-out metrics before the first step, with `log.eval_at_start`. */
  evalAtStart: EvalMetrics | null;
  /** Why the run stopped. */
  stopped: "done" | "nan" | "signal";
  /** Updates skipped because float16 gradients overflowed (mixed precision). */
  skippedUpdates: number;
  /** The last checkpoint written. */
  checkpoint: string | null;
}

async function dataPaths(config: RunConfig, log: (s: string) => void): Promise<RunDataPaths> {
  const d = config.data;
  if (d.synthesize) {
    const out = d.synthesize.out;
    const manifest = join(out, "dataset.json");
    let m: SynthManifest;
    try {
      m = JSON.parse(await Deno.readTextFile(manifest));
    } catch {
      log(
        `writing the synthetic dataset to ${out} (${d.synthesize.count} + ${d.synthesize.holdout} samples)`,
      );
      m = await writeSynthDataset(out, {
        count: d.synthesize.count,
        holdout: d.synthesize.holdout,
        seed: d.synthesize.seed,
        width: d.synthesize.width,
        height: d.synthesize.height,
        shardSize: d.synthesize.shard_size,
      });
    }
    return {
      images: join(out, m.train.images),
      texts: join(out, m.train.texts),
      tokenizer: d.tokenizer ?? join(out, m.tokenizer),
      evalImages: m.holdout ? join(out, m.holdout.images) : undefined,
      evalTexts: m.holdout ? join(out, m.holdout.texts) : undefined,
    };
  }
  return {
    images: d.images!,
    texts: d.layout === "paired" ? d.text_boxes! : undefined,
    tokenizer: d.tokenizer!,
    evalImages: d.eval_images ?? undefined,
    evalTexts: d.eval_text_boxes ?? undefined,
  };
}

function loaderOptions(config: RunConfig, paths: RunDataPaths, train: boolean): LoaderOptions {
  const m = config.resolvedModel, d = config.data, t = config.train;
  const sk = m.vision.scales[m.vision.scales.length - 1]!;
  return {
    images: train ? paths.images : paths.evalImages!,
    texts: train ? paths.texts : paths.evalTexts,
    weights: train ? d.weights ?? undefined : undefined,
    tokenizer: paths.tokenizer,
    batchSize: t.batch_size,
    sample: {
      imageSize: sk,
      train,
      globalCaptionProb: d.global_caption_prob,
      sampleNBoxEachImage: d.sample_n_box_each_image,
      sentenceMasking: train && d.sentence_masking,
      maxPixels: d.max_pixels,
      contextLength: m.text.context,
      mean: m.preprocess.mean,
      std: m.preprocess.std,
    },
    seed: t.seed,
    shards: train ? d.shards : "sequential",
    shuffleBuffer: train ? d.shuffle_buffer : 0,
    workers: d.workers,
    prefetch: d.prefetch,
    strict: d.strict,
    batchesPerEpoch: train ? Math.floor(t.samples_per_epoch / t.batch_size) : undefined,
    epochs: train ? undefined : 1,
  };
}

/** The trainer's own state saved in checkpoints. */
interface TrainerState {
  optimizerStep: number;
  lossScale?: LossScaleState | undefined;
}

/**
 * Runs (or resumes) a training run.
 *
 * @param config The run configuration.
 * @param options Injected faults (tests), log sink, and whether to draw a progress bar.
 * @returns The summary.
 */
export async function train(
  config: RunConfig,
  options: { faults?: TrainFaults | undefined; tty?: boolean | undefined } = {},
): Promise<TrainSummary> {
  const rt = gpu();
  const t = config.train, o = config.optim, ck = config.checkpoint;
  const out = ck.out;
  await Deno.mkdir(out, { recursive: true });
  const root = join(out, "checkpoints");
  const stepsPerEpoch = Math.floor(t.samples_per_epoch / t.batch_size);
  if (stepsPerEpoch < 1) {
    throw new RangeError(
      `train.samples_per_epoch ${t.samples_per_epoch} is less than one batch of ${t.batch_size}`,
    );
  }
  const total = t.steps ?? t.epochs * stepsPerEpoch;
  const earlyLog: string[] = [];
  const say = (s: string) => earlyLog.push(s);
  const paths = await dataPaths(config, (s) => console.log(s));
  // Before anything is allocated: every input exists, and the run fits in memory.
  await checkRunInputs(config, paths);
  const est = checkRunMemory(config, rt);

  const model = new Ps3Clip(config.resolvedModel, {
    seed: t.seed,
    group: referenceGroups(!!o.token_selection_lr),
  });
  say(`model ${config.resolvedModel.name}: ${model.params.describe()}`);
  say(describeEstimate(est));
  const opt = new AdamW(model.params, {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weight_decay,
    clipNorm: o.grad_clip_norm ?? 0,
  });

  // float16 compute: f16 matmul tiles with f32 accumulation, f32 master weights, loss scaling.
  let scaler: LossScaler | null = null;
  if (t.precision === "f16") {
    if (!rt.info.hasF16) {
      throw new Error(
        `train.precision f16 needs shader-f16, which this adapter (${rt.info.description}) lacks`,
      );
    }
    scaler = new LossScaler();
  }
  let skippedUpdates = 0;

  // Resume, or initialise.
  let start = 0;
  let loaderState: LoaderState | null = null;
  const resumeFrom = ck.resume ? await resolveCheckpoint(ck.resume, root) : null;
  if (ck.resume && !resumeFrom && ck.resume !== "latest") {
    throw new Error(`No checkpoint at "${ck.resume}"`);
  }
  if (resumeFrom) {
    const state = await readTrainState(resumeFrom);
    await loadSafetensorsInto(model.params, join(resumeFrom, "model.safetensors"));
    await loadMoments(model.params, resumeFrom);
    const ts = state.trainer as TrainerState;
    opt.step = ts.optimizerStep;
    if (scaler && ts.lossScale) scaler.restore(ts.lossScale);
    loaderState = state.data as LoaderState;
    start = state.step;
    say(`resumed from ${resumeFrom} at step ${start}`);
  } else if (ck.init && (await Deno.stat(ck.init)).isFile) {
    // A PyTorch checkpoint (open_clip's epoch_N.pt or a bare state dict).
    const r = await initFromTorchCheckpoint(model.params, ck.init);
    if (r.optimizerStep !== null) opt.step = r.optimizerStep;
    say(
      `initialised from ${ck.init}: ${r.loaded.length} tensors loaded, ${r.missing.length} new, ${r.unused.length} unused; ` +
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
  if (ck.init_siglip && !resumeFrom) {
    const r = await initFromSiglip(model.params, ck.init_siglip);
    say(
      `initialised from SigLIP ${ck.init_siglip}: ${r.loaded.length} tensors loaded, ${r.fresh.length} new`,
    );
  }

  const micro = t.accum_steps;
  const loader = await DataLoader.create(loaderOptions(config, paths, true));
  if (loaderState) await loader.resume(loaderState);
  const metrics = new JsonLines(join(out, "metrics.jsonl"));
  await metrics.truncateAfter(start);
  const progress = new Progress(total, {
    firstStep: start,
    every: config.log.every,
    tty: options.tty,
  });
  for (const s of earlyLog) progress.log(s);
  progress.log(
    `training ${
      total - start
    } steps of ${t.batch_size} samples (${micro} micro-batches) on ${rt.info.description}`,
  );

  const trainOpts: TrainOptions = {
    selectWithGt: t.select_w_gt,
    poolGtOnly: t.pool_gt_token_only,
    useGlobalCaption: t.use_global_caption,
    priorWeight: config.loss.prior_box_weight,
    posteriorWeight: config.loss.posterior_box_weight,
    checkpoint: t.grad_checkpointing,
  };
  const schedule = (step: number, peak: number) =>
    learningRate(step, { lr: peak, warmup: o.warmup, total, kind: o.schedule });
  let stop: TrainSummary["stopped"] = "done";
  const onSignal = () => {
    stop = "signal";
  };
  Deno.addSignalListener("SIGINT", onSignal);
  let last: StepRecord | null = null;
  let lastCheckpoint: string | null = null;
  const t0 = performance.now();
  let dataWait = 0;
  rt.pool.resetPeak();
  let step = start;
  let posBefore = loader.state();
  let lastEvalStep = -1;
  let lastEval: EvalMetrics | null = null;
  let evalAtStart: EvalMetrics | null = null;
  if (config.log.eval_at_start && paths.evalImages && start === 0) {
    evalAtStart = await runEval(model, config, paths, trainOpts);
    await metrics.append({ step: 0, eval: evalAtStart });
    progress.log(describeEval(0, evalAtStart));
  }

  const save = async (atStep: number, data: LoaderState) => {
    const path = await saveCheckpoint(root, model.params, {
      step: atStep,
      runConfig: config.raw,
      modelConfig: (config.raw as { model: unknown }).model,
      data,
      trainer: { optimizerStep: opt.step, lossScale: scaler?.state() } satisfies TrainerState,
      metrics: last
        ? Object.fromEntries(Object.entries(last).filter(([, v]) => v !== undefined))
        : {},
    }, {
      crashMidway: options.faults?.exitDuringSaveAtStep === atStep
        ? () => Deno.exit(137)
        : undefined,
    });
    await pruneCheckpoints(root, ck.keep_last);
    lastCheckpoint = path;
    return path;
  };

  if (scaler) setMatmulVariant("tiled-f16");
  try {
    while (step < total && stop === "done") {
      const tw = performance.now();
      const batch = await loader.next();
      if (!batch) break;
      const ts = performance.now();
      const wait = (ts - tw) / 1000;
      dataWait += wait;
      model.params.zeroGrad();
      const lossScale = scaler?.scale;
      const scalars = forwardBackward(model, batch, { train: trainOpts, micro, lossScale });
      const lr = {
        base: schedule(step, o.lr),
        selection: schedule(step, o.token_selection_lr ?? o.lr),
      };
      const stats = optimizerStep(model, opt, { lr, loss: scalars.total, lossScale });
      const host = (await rt.read([
        scalars.total,
        scalars.contrastive,
        scalars.priorBox,
        scalars.posteriorBox,
        stats,
      ]))
        .map((b) => new Float32Array(b));
      for (
        const s of [scalars.total, scalars.contrastive, scalars.priorBox, scalars.posteriorBox]
      ) s.dispose();
      const dt = (performance.now() - ts) / 1000;
      const loss = host[0]![0]!;
      const gradsFinite = Number.isFinite(host[4]![1]!);
      if (scaler && Number.isFinite(loss)) {
        // float16 compute: overflowing gradients skip the update and halve the loss scale.
        scaler.update(gradsFinite);
        if (!gradsFinite) {
          opt.step--;
          skippedUpdates++;
          progress.log(
            `step ${step + 1}: gradients overflowed at loss scale ${lossScale}; update skipped, ` +
              `scale now ${scaler.scale}`,
          );
        }
      }
      if (!Number.isFinite(loss) || (!scaler && !gradsFinite)) {
        // The update was skipped on the GPU: the parameters are those before this step.
        opt.step--;
        stop = "nan";
        progress.log(
          `step ${step + 1}: the loss is ${loss} (gradient norm ${
            host[4]![1]
          }); stopping. Batch keys: ${batch.keys.join(", ")}`,
        );
        await save(step, posBefore);
        progress.log(`saved the state before this step to ${lastCheckpoint}`);
        break;
      }
      step++;
      const stats2 = loader.stats();
      last = {
        step,
        epoch: batch.epoch,
        lr: lr.base,
        loss,
        contrastive: host[1]![0]!,
        prior_box: host[2]![0]!,
        posterior_box: host[3]![0]!,
        grad_norm: host[4]![1]!,
        ...(scaler ? { loss_scale: lossScale! } : {}),
        step_s: dt,
        data_wait_s: wait,
        samples_per_s: batch.keys.length / dt,
        skipped: Object.values(stats2.skipped).reduce((a, b) => a + b, 0),
      };
      await metrics.append({ ...last });
      progress.step(last);
      posBefore = loader.state();
      if (options.faults?.exitAfterStep === step) Deno.exit(137);
      if (step % config.log.every === 0 || step === total) await writePlot(out, metrics);
      if (ck.save_every > 0 && step % ck.save_every === 0 && step < total) {
        await save(step, posBefore);
      }
      if (config.log.eval_every > 0 && step % config.log.eval_every === 0 && paths.evalImages) {
        const e = await runEval(model, config, paths, trainOpts);
        await metrics.append({ step, eval: e });
        progress.log(describeEval(step, e));
        lastEvalStep = step;
        lastEval = e;
      }
    }
    if (stop !== "nan" && step > start) await save(step, loader.state());
  } finally {
    if (scaler) setMatmulVariant("auto");
    Deno.removeSignalListener("SIGINT", onSignal);
    await loader[Symbol.asyncDispose]();
  }
  const seconds = (performance.now() - t0) / 1000;
  await writePlot(out, metrics);
  let evalMetrics: EvalMetrics | null = lastEvalStep === step ? lastEval : null;
  if (stop === "done" && paths.evalImages && step > start && lastEvalStep !== step) {
    evalMetrics = await runEval(model, config, paths, trainOpts);
    await metrics.append({ step, eval: evalMetrics });
    progress.log(describeEval(step, evalMetrics));
  }
  const stats = loader.stats();
  const mem = rt.memory();
  const summary: TrainSummary = {
    steps: step,
    stepsThisRun: step - start,
    seconds,
    samplesPerSecond: (step - start) * t.batch_size / Math.max(seconds, 1e-9),
    dataWaitSeconds: dataWait,
    peakActivationBytes: mem.peakInUseBytes,
    stateBytes: model.params.bytes(),
    estimatedBytes: est.total,
    skipped: stats.skipped,
    last,
    eval: evalMetrics,
    evalAtStart,
    stopped: stop,
    skippedUpdates,
    checkpoint: lastCheckpoint,
  };
  await writeFileAtomic(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  progress.log(describeSummary(summary, est.total));
  return summary;
}

async function runEval(
  model: Ps3Clip,
  config: RunConfig,
  paths: RunDataPaths,
  opts: TrainOptions,
): Promise<EvalMetrics> {
  const loader = await DataLoader.create(loaderOptions(config, paths, false));
  const batches: Batch[] = [];
  try {
    for (let i = 0; i < config.log.eval_batches; i++) {
      const b = await loader.next();
      if (!b) break;
      batches.push(b);
    }
  } finally {
    await loader[Symbol.asyncDispose]();
  }
  return await evaluate(model, batches, opts);
}

function describeEval(step: number, e: EvalMetrics): string {
  return `eval at step ${step} (${e.batches} held-out batches): posterior box ${
    e.posteriorBox.toFixed(4)
  }, ` +
    `prior box ${e.priorBox.toFixed(4)}, siglip ${
      e.contrastive.toFixed(4)
    }; selection probability ` +
    `inside boxes ${e.probInside.toFixed(3)} vs outside ${
      e.probOutside.toFixed(3)
    }; caption->region ` +
    `retrieval ${(100 * e.retrieval).toFixed(1)}% (chance ${(100 * e.chance).toFixed(1)}%)`;
}

function describeSummary(s: TrainSummary, estimate: number): string {
  const skipped = Object.entries(s.skipped).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  return [
    `run ${
      s.stopped === "done" ? "finished" : `stopped (${s.stopped})`
    }: ${s.stepsThisRun} steps in ` +
    `${s.seconds.toFixed(1)} s (${(s.seconds / Math.max(s.stepsThisRun, 1)).toFixed(2)} s/step, ` +
    `${s.samplesPerSecond.toFixed(1)} samples/s)`,
    `waiting for data: ${s.dataWaitSeconds.toFixed(1)} s (${
      (100 * s.dataWaitSeconds / Math.max(s.seconds, 1e-9)).toFixed(1)
    }% of the run)`,
    `peak device memory ${fmtBytes(s.peakActivationBytes + s.stateBytes)} (activations ` +
    `${fmtBytes(s.peakActivationBytes)}, parameters/gradients/moments ${
      fmtBytes(s.stateBytes)
    }; estimated ` +
    `${fmtBytes(estimate)})`,
    `skipped samples: ${skipped}`,
    ...(s.last ? [`final loss ${s.last.loss.toFixed(4)} at step ${s.last.step}`] : []),
    ...(s.checkpoint ? [`checkpoint: ${s.checkpoint}`] : []),
  ].join("\n");
}

async function writePlot(out: string, metrics: JsonLines): Promise<void> {
  const recs = (await metrics.readAll()).filter((r) =>
    typeof r.loss === "number"
  ) as unknown as StepRecord[];
  if (recs.length < 2) return;
  const pts = (k: keyof StepRecord) =>
    recs.map((r) => [r.step, r[k] as number] as [number, number]);
  const png = plotLosses(
    [
      { label: "total", color: [40, 40, 40], points: pts("loss") },
      { label: "siglip", color: [31, 119, 180], points: pts("contrastive") },
    ],
    [
      { label: "prior box", color: [255, 127, 14], points: pts("prior_box") },
      { label: "posterior box", color: [44, 160, 44], points: pts("posterior_box") },
    ],
  );
  await writeFileAtomic(join(out, "loss.png"), png);
}

/**
 * Completed checkpoints of a run folder (for tools and tests).
 *
 * @param out The run folder.
 * @returns Steps and paths.
 */
export function runCheckpoints(out: string): Promise<{ step: number; path: string }[]> {
  return listCheckpoints(join(out, "checkpoints"));
}
