/**
 * Evaluation on held-out batches: the loss terms, how the selection probability inside the
 * boxes compares with outside, and caption-to-region retrieval (does a local caption's text
 * feature pick its own image's region feature among the batch's?).
 *
 * @module
 */

import { tidy } from "../autograd/scope.ts";
import { noGrad } from "../autograd/tape.ts";
import { gpu } from "../gpu/runtime.ts";
import { matmul } from "../ops/matmul.ts";
import { batchBoxTargets, ps3Loss } from "../loss/ps3_loss.ts";
import { type Batch, DataLoader } from "../data/pipeline/loader.ts";
import type { Ps3Clip, TrainOptions } from "../model/ps3_clip.ts";
import { groupedForward } from "./step.ts";
import { planGroups } from "./groups.ts";
import type { RunConfig } from "./config.ts";
import type { RunDataPaths } from "./preflight.ts";
import { loaderOptions } from "./run_data.ts";

/** Held-out metrics (means over the evaluated batches). */
export interface EvalMetrics {
  /** Batches evaluated. */
  batches: number;
  /** SigLIP loss. */
  contrastive: number;
  /** Prior box loss (unweighted). */
  priorBox: number;
  /** Posterior box loss (unweighted). */
  posteriorBox: number;
  /** Mean posterior selection probability of patches inside the boxes (local captions). */
  probInside: number;
  /** Mean posterior selection probability of patches outside the boxes. */
  probOutside: number;
  /** Caption-to-region retrieval accuracy (top-1 among the batch). */
  retrieval: number;
  /** Accuracy of a random guess (1 / batch size). */
  chance: number;
}

/**
 * Evaluates held-out batches.
 *
 * @param model The model.
 * @param batches Host batches (e.g. from a sequential loader over the held-out shards).
 * @param opts Training switches (the evaluation uses the same forward, without gradients).
 * @param groupSize Samples per group of the forward (`./groups.ts`; default a batch in one).
 * @returns Mean metrics.
 */
export async function evaluate(
  model: Ps3Clip,
  batches: readonly Batch[],
  opts: TrainOptions,
  groupSize?: number,
): Promise<EvalMetrics> {
  const sums = {
    contrastive: 0,
    priorBox: 0,
    posteriorBox: 0,
    inSum: 0,
    inN: 0,
    outSum: 0,
    outN: 0,
    hits: 0,
    queries: 0,
    chance: 0,
  };
  for (const batch of batches) {
    const b = batch.keys.length;
    const ts = tidy(() =>
      noGrad(() => {
        const range = { start: 0, end: b };
        const { out, targets: tb } = groupedForward(model, batch, range, {
          train: opts,
          groupSize,
        });
        const loss = ps3Loss(out, tb, { weights: { prior: 1, posterior: 1 } });
        const probs = out.posteriorProbs ?? out.priorProbs;
        const targets = batchBoxTargets(tb.gtMaps, out.highresGrids);
        const sim = matmul(out.textFeatures, out.imageFeatures, { transB: true });
        return [loss.contrastive, loss.priorBox, loss.posteriorBox, sim, ...probs, ...targets];
      })
    );
    const host = (await gpu().read(ts)).map((x) => new Float32Array(x));
    for (const t of ts) t.dispose();
    const [c, pr, po, sim] = host;
    sums.contrastive += c![0]!;
    sums.priorBox += pr![0]!;
    sums.posteriorBox += po![0]!;
    const k = (host.length - 4) / 2;
    for (let s = 0; s < k; s++) {
      const p = host[4 + s]!, t = host[4 + k + s]!;
      const n = p.length / b;
      for (let i = 0; i < b; i++) {
        if (batch.isGlobal[i]) continue;
        for (let j = 0; j < n; j++) {
          if (t[i * n + j]! > 0) {
            sums.inSum += p[i * n + j]!;
            sums.inN++;
          } else {
            sums.outSum += p[i * n + j]!;
            sums.outN++;
          }
        }
      }
    }
    for (let i = 0; i < b; i++) {
      if (batch.isGlobal[i]) continue;
      let best = 0;
      for (let j = 1; j < b; j++) if (sim![i * b + j]! > sim![i * b + best]!) best = j;
      if (best === i) sums.hits++;
      sums.queries++;
    }
    sums.chance += 1 / b;
  }
  const nb = Math.max(batches.length, 1);
  return {
    batches: batches.length,
    contrastive: sums.contrastive / nb,
    priorBox: sums.priorBox / nb,
    posteriorBox: sums.posteriorBox / nb,
    probInside: sums.inN ? sums.inSum / sums.inN : NaN,
    probOutside: sums.outN ? sums.outSum / sums.outN : NaN,
    retrieval: sums.queries ? sums.hits / sums.queries : NaN,
    chance: sums.chance / nb,
  };
}

/**
 * Evaluates the model on the first `log.eval_batches` batches of the held-out stream.
 *
 * @param model The model.
 * @param config The run configuration.
 * @param paths The run's data paths (with held-out shards).
 * @param opts Training switches.
 * @returns Mean metrics.
 */
export async function evaluateHeldOut(
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
  // The held-out batches have the training batch's size: the same sample groups.
  const plan = planGroups(config.resolvedModel, config.train.batch_size, {
    precision: config.train.precision,
    maxBufferBytes: gpu().info.maxBufferBytes,
  });
  return await evaluate(model, batches, opts, plan.groupSize);
}

/**
 * One log line of held-out metrics.
 *
 * @param step The step they were measured at.
 * @param e The metrics.
 * @returns The line.
 */
export function describeEval(step: number, e: EvalMetrics): string {
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
