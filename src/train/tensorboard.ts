/**
 * TensorBoard logging of a training run (`train.report_to: [tensorboard]`): every logged
 * step scalar (losses, learning rate, gradient norm, throughput, data wait, device memory),
 * the held-out evaluation figures, and selection heat maps of a few fixed held-out samples
 * at each evaluation, in `<run>/tensorboard/events.out.tfevents.*` (`tensorboard --logdir
 * <run>/tensorboard`).
 *
 * @module
 */

import type { PoolStats } from "../gpu/buffer_pool.ts";
import type { StepRecord } from "./progress.ts";
import type { EvalMetrics } from "./evaluate.ts";
import type { DatasetEvalReport } from "../eval/run_eval.ts";
import { reportScalars } from "../eval/report.ts";
import { EventFileWriter } from "../report/tfevents.ts";

/** Where each step-record field goes (fields not listed are not logged). */
const STEP_TAGS: Partial<Record<keyof StepRecord, string>> = {
  loss: "train/loss",
  contrastive: "train/siglip",
  prior_box: "train/prior_box",
  posterior_box: "train/posterior_box",
  lr: "train/lr",
  grad_norm: "train/grad_norm",
  loss_scale: "train/loss_scale",
  epoch: "train/epoch",
  step_s: "perf/step_seconds",
  data_wait_s: "perf/data_wait_seconds",
  samples_per_s: "perf/samples_per_second",
  skipped: "data/skipped_samples",
};

/**
 * The scalars of one training step.
 *
 * @param rec The step's record.
 * @param memory The device memory pool's counters.
 * @returns Tag -> value.
 */
export function stepScalars(rec: StepRecord, memory?: PoolStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, tag] of Object.entries(STEP_TAGS)) {
    const v = rec[k as keyof StepRecord];
    if (typeof v === "number") out[tag!] = v;
  }
  if (memory) {
    out["memory/in_use_mib"] = memory.inUseBytes / 2 ** 20;
    out["memory/peak_in_use_mib"] = memory.peakInUseBytes / 2 ** 20;
    out["memory/allocated_mib"] = memory.allocatedBytes / 2 ** 20;
  }
  return out;
}

/**
 * The scalars of one held-out evaluation: the loss terms and in-batch figures of
 * `evaluate.ts` under `heldout/`, the whole-set figures under `eval/`.
 *
 * @param e The in-batch evaluation.
 * @param full The whole-set evaluation, if run.
 * @returns Tag -> value.
 */
export function evalScalars(
  e: EvalMetrics | null,
  full: DatasetEvalReport | null,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (e) {
    const put = (tag: string, v: number) => {
      if (Number.isFinite(v)) out[`heldout/${tag}`] = v;
    };
    put("siglip", e.contrastive);
    put("prior_box", e.priorBox);
    put("posterior_box", e.posteriorBox);
    put("selection_prob_inside", e.probInside);
    put("selection_prob_outside", e.probOutside);
    put("in_batch_caption_to_region_top1", e.retrieval);
  }
  return full ? { ...out, ...reportScalars(full) } : out;
}

/** Writes a run's TensorBoard events. */
export class TrainBoard {
  /** The event file. */
  readonly writer: EventFileWriter;

  private constructor(writer: EventFileWriter) {
    this.writer = writer;
  }

  /**
   * Opens a new event file in the folder (a resumed run adds a file; TensorBoard merges
   * them).
   *
   * @param dir `<run>/tensorboard`.
   * @returns The board.
   */
  static async create(dir: string): Promise<TrainBoard> {
    return new TrainBoard(await EventFileWriter.create(dir));
  }

  /**
   * Logs one step.
   *
   * @param rec The step's record.
   * @param memory Device memory counters.
   */
  async step(rec: StepRecord, memory?: PoolStats): Promise<void> {
    await this.writer.scalars(rec.step, stepScalars(rec, memory));
  }

  /**
   * Logs one evaluation: figures and heat maps (tag `eval/selection/<sample key>`).
   *
   * @param step The step.
   * @param e The in-batch evaluation.
   * @param full The whole-set evaluation, if run.
   */
  async eval(step: number, e: EvalMetrics | null, full: DatasetEvalReport | null): Promise<void> {
    await this.writer.scalars(step, evalScalars(e, full));
    for (const h of full?.heatmaps ?? []) {
      await this.writer.image(step, `eval/selection/${h.key}`, {
        height: h.height,
        width: h.width,
        colorspace: 3,
        encoded: h.png,
      });
    }
  }

  /** Closes the event file. */
  close(): void {
    this.writer.close();
  }
}
