/**
 * `train.batch_size=auto`: the largest micro-batch that fits the device, chosen from the
 * memory estimate (nothing allocated; the ops' binding units checked, though none of them
 * depends on the batch; every tensor under the largest buffer in the sample groups of
 * `./groups.ts`, which the confirming step runs in), then confirmed by one real
 * training step (the trainer's forward, losses and backward on a random batch of the run's
 * shapes, with the run's model, precision and recomputation): a step that runs out of memory,
 * or whose measured peak passes the limit, backs off to a smaller micro-batch.
 *
 * @module
 */

import type { Runtime } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import { tidy } from "../autograd/scope.ts";
import { Rng } from "../util/rng.ts";
import type { ModelConfig } from "../model/config.ts";
import type { RunConfig } from "./config.ts";
import { createRunState } from "./run_state.ts";
import { forwardBackward, trainOptions } from "./step.ts";
import { checkRunBindings, describeGroups, memoryLimit, runEstimate } from "./preflight.ts";
import { planGroups } from "./groups.ts";

/**
 * A random host batch of a model's shapes: normal images at the largest scale, random
 * tokens, one box over a quarter of each image, local captions.
 *
 * @param config The model.
 * @param size Samples.
 * @param seed Generator seed.
 * @returns The batch.
 */
export function randomHostBatch(config: ModelConfig, size: number, seed: number): Batch {
  const s = config.vision.scales[config.vision.scales.length - 1]!;
  const rng = new Rng(seed);
  const images = new Float32Array(size * 3 * s * s);
  for (let i = 0; i < images.length; i++) images[i] = rng.normal();
  const tokens = new Int32Array(size * config.text.context);
  for (let i = 0; i < tokens.length; i++) tokens[i] = 1 + rng.int(config.text.vocab - 1);
  const boxMaps = new Uint8Array(size * s * s);
  const half = s >> 1;
  for (let b = 0; b < size; b++) {
    const y0 = rng.int(half), x0 = rng.int(half);
    for (let y = y0; y < y0 + half; y++) {
      boxMaps.fill(1, b * s * s + y * s + x0, b * s * s + y * s + x0 + half);
    }
  }
  const keys = [...Array(size).keys()].map((i) => `random-${i}`);
  return { images, tokens, boxMaps, isGlobal: new Uint8Array(size), keys, epoch: 0, index: 0 };
}

/** What one measured step used. */
export interface StepMemory {
  /** Peak bytes of the buffer pool during the step (activations and temporaries, the batch). */
  peakActivationBytes: number;
  /** Parameters, gradients and both AdamW moments (f32), bytes. */
  stateBytes: number;
  /** Bytes the pool holds after the step (in use or free: what the device gave it). */
  pooledBytes: number;
  /** The device reported out-of-memory, or an allocation was refused; the message. */
  outOfMemory: string | null;
}

/**
 * Runs one training step (forward, losses, backward; no update) of a run's model on a random
 * micro-batch and measures its peak device memory. The model is freed afterwards.
 *
 * @param config The run configuration (model, precision, recomputation, switches).
 * @param rt The runtime.
 * @param microBatch Samples.
 * @returns The measurement.
 */
export async function measureStep(
  config: RunConfig,
  rt: Runtime,
  microBatch: number,
): Promise<StepMemory> {
  const t = config.train;
  const state = createRunState(config, rt);
  const model = state.model;
  const batch = randomHostBatch(config.resolvedModel, microBatch, t.seed + 1);
  const { groupSize } = planGroups(config.resolvedModel, microBatch, {
    precision: t.precision,
    maxBufferBytes: rt.info.maxBufferBytes,
  });
  await rt.sync();
  rt.pool.resetPeak();
  const base = rt.memory().inUseBytes;
  rt.device.pushErrorScope("out-of-memory");
  let outOfMemory: string | null = null;
  try {
    tidy(() => {
      const loss = forwardBackward(model, batch, {
        train: trainOptions(t),
        weights: { prior: 1, posterior: 1 },
        micro: 1,
        lossScale: state.scaler ? 1024 : 1,
        groupSize,
      });
      for (const x of Object.values(loss)) x.dispose();
    });
    await rt.sync();
  } catch (e) {
    if (!(e instanceof RangeError) || !/allocate/.test(e.message)) throw e;
    outOfMemory = e.message;
  }
  const err = await rt.device.popErrorScope();
  if (err) outOfMemory = err.message || "out of memory";
  const peak = rt.memory().peakInUseBytes - base;
  // Values, gradients and both AdamW moments, f32 (outside the pool).
  const stateBytes = model.params.chunkSizes.reduce((x, n) => x + n, 0) * 4 * 4;
  for (const p of model.params.params) {
    p.value.dispose();
    p.grad.dispose();
  }
  for (const x of [...model.params.values, ...model.params.grads]) x.dispose();
  rt.pool.trim();
  return {
    peakActivationBytes: peak,
    stateBytes,
    pooledBytes: rt.memory().allocatedBytes,
    outOfMemory,
  };
}

/** The result of {@linkcode fitBatchSize}. */
export interface BatchFit {
  /** The micro-batch chosen (confirmed by a step). */
  microBatch: number;
  /** The largest micro-batch the estimate allowed. */
  estimated: number;
  /** The confirming steps, in order: micro-batch and measurement. */
  tries: { microBatch: number; memory: StepMemory }[];
  /** The memory limit, bytes. */
  limit: number;
}

/** The largest micro-batch in [1, upper] for which `fits` holds (monotone), or 0. */
function largest(upper: number, fits: (b: number) => boolean): number {
  if (!fits(1)) return 0;
  let lo = 1, hi = upper;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The estimate's side of {@linkcode fitBatchSize}: the memory limit and the micro-batch. */
export interface EstimatedFit {
  /** The memory limit, bytes. */
  limit: number;
  /** The largest micro-batch the estimate allows under it (at least 1). */
  estimated: number;
}

/**
 * The largest micro-batch the estimate (state, activations) fits under the memory limit
 * (`train.memory_limit_gb`, or 80% of the host's memory on a CPU adapter), at most an epoch's
 * samples, once every op's smallest unit fits the binding limit. Nothing is allocated.
 *
 * @param config The run configuration (its `batch_size` is ignored; `accum_steps` kept).
 * @param rt The runtime.
 * @returns The limit and the micro-batch.
 * @throws {RangeError} Without a known memory limit, when an op's unit passes the binding
 *   limit, or when not even one sample fits.
 */
export function estimateBatchFit(config: RunConfig, rt: Runtime): EstimatedFit {
  const limit = memoryLimit(config, rt);
  if (limit === null) {
    throw new RangeError(
      "train.batch_size=auto needs the device's memory: WebGPU does not report it for " +
        `${rt.info.description}; set train.memory_limit_gb (e.g. --train.memory_limit_gb=75)`,
    );
  }
  const t = config.train;
  const upper = Math.max(1, Math.floor(t.samples_per_epoch / t.accum_steps));
  // The binding units do not depend on the batch (the ops split it): checked once, a unit
  // over the limit fails every batch size.
  checkRunBindings(config, rt);
  // Every tensor of the step must also fit the largest buffer at some group size: a sample's
  // share always does once one sample fits; the whole micro-batch's tensors bound the batch.
  const plannable = (b: number) => {
    try {
      planGroups(config.resolvedModel, b, {
        precision: t.precision,
        maxBufferBytes: rt.info.maxBufferBytes,
      });
      return true;
    } catch {
      return false;
    }
  };
  const estimated = largest(
    upper,
    (b) => runEstimate(config, b).total <= limit && plannable(b),
  );
  if (estimated === 0) {
    // One sample's tensors past the largest buffer: the plan's error names them.
    planGroups(config.resolvedModel, 1, {
      precision: t.precision,
      maxBufferBytes: rt.info.maxBufferBytes,
    });
    throw new RangeError(
      `train.batch_size=auto: not even one sample fits ${fmtBytes(limit)} (estimate ` +
        `${fmtBytes(runEstimate(config, 1).total)})`,
    );
  }
  return { limit, estimated };
}

/**
 * Finds the largest micro-batch that fits the device: {@linkcode estimateBatchFit}, then one
 * real step confirms it (peak measured), backing off in proportion while it does not fit.
 *
 * @param config The run configuration (its `batch_size` is ignored; `accum_steps` kept).
 * @param rt The runtime.
 * @param log Where the search is reported.
 * @returns The fit.
 * @throws {RangeError} As {@linkcode estimateBatchFit}, and when a micro-batch of 1 does not
 *   fit in the confirming step.
 */
export async function fitBatchSize(
  config: RunConfig,
  rt: Runtime,
  log: (line: string) => void,
): Promise<BatchFit> {
  const { limit, estimated } = estimateBatchFit(config, rt);
  const t = config.train;
  log(
    `batch_size=auto: the estimate allows a micro-batch of ${estimated} in ${fmtBytes(limit)} ` +
      `(${fmtBytes(runEstimate(config, estimated).total)} estimated); confirming with one step`,
  );
  const tries: BatchFit["tries"] = [];
  let b = estimated;
  for (;;) {
    const memory = await measureStep(config, rt, b);
    tries.push({ microBatch: b, memory });
    const used = memory.peakActivationBytes + memory.stateBytes;
    if (memory.outOfMemory === null && used <= limit) break;
    log(
      `batch_size=auto: a micro-batch of ${b} ` +
        (memory.outOfMemory === null
          ? `peaked at ${fmtBytes(used)}, over ${fmtBytes(limit)}`
          : `ran out of memory (${memory.outOfMemory})`) +
        "; backing off",
    );
    const next = memory.outOfMemory === null
      ? Math.min(b - 1, Math.floor(b * limit / used))
      : Math.floor(b / 2);
    if (next < 1) {
      throw new RangeError(
        `train.batch_size=auto: a micro-batch of 1 does not fit ${fmtBytes(limit)}`,
      );
    }
    b = next;
  }
  const m = tries[tries.length - 1]!.memory;
  const plan = planGroups(config.resolvedModel, b, {
    precision: t.precision,
    maxBufferBytes: rt.info.maxBufferBytes,
  });
  if (plan.groups > 1) log(`batch_size=auto: ${describeGroups(plan, b)}`);
  log(
    `batch_size=auto: micro-batch ${b} (batch_size ${b * t.accum_steps}): one step peaked at ` +
      `${fmtBytes(m.peakActivationBytes + m.stateBytes)} of ${fmtBytes(limit)} (estimate ` +
      `${fmtBytes(runEstimate(config, b).total)})`,
  );
  return { microBatch: b, estimated, tries, limit };
}
