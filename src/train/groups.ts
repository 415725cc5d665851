/**
 * Sample groups: a tensor is one GPU buffer, so no tensor of a training step may pass the
 * device's largest buffer (`maxBufferSize`; 2 GiB - 1 on llvmpipe, other adapters have their
 * own). At the paper's batch it would: PS3-4K's image batch of 32 is 6.81 GiB. The step
 * therefore runs the model's forward per group of samples of its micro-batch (the images
 * uploaded per group; the vision tower, the text tower and the selection per group) and
 * concatenates the per-sample outputs (features, probabilities) before the losses, which see
 * the whole micro-batch. The group size is the largest for which every tensor of the step
 * fits, from the config alone ({@linkcode planGroups}); the preflight and
 * `train.batch_size=auto` use the same plan.
 *
 * The tensors are counted from the model's shapes ({@linkcode stepTensors}): those that grow
 * with the group (one sample's share; gradients have the forward's shapes), those of the whole
 * micro-batch (after the concatenation), and those of no batch at all (position tables,
 * weights and their gradients). `tests/train/buffer_limit_train_test.ts` checks the largest
 * buffer a real step asks for against this count.
 *
 * @module
 */

import { numel } from "../autograd/tensor.ts";
import { fmtBytes, poolMaxBytes } from "../gpu/buffer_pool.ts";
import type { ModelConfig } from "../model/config.ts";
import { selectCounts } from "../model/scales.ts";

/** One tensor (or family of tensors of one shape) of a training step. */
export interface StepTensor {
  /** What it is (an op's output, the image batch). */
  what: string;
  /** Its shape: one sample's for "sample" and "batch" (without the batch dimension). */
  shape: number[];
  /** Bytes per element. */
  elementBytes: 2 | 4;
  /** What its size grows with: the group's samples, the micro-batch's, or nothing. */
  per: "sample" | "batch" | "fixed";
}

/**
 * The large tensors of a training step of a model (forward and backward), in the run's
 * activation precision: the trunk's and text tower's activations in `precision`, everything
 * else f32 (as the model keeps them, see `src/train/memory.ts`). Small tensors (norm
 * statistics, per-sample scalars) are left out: they are far below these.
 *
 * @param config The model.
 * @param precision Activation storage of the run.
 * @returns The tensors.
 */
export function stepTensors(config: ModelConfig, precision: "f32" | "f16"): StepTensor[] {
  const v = config.vision, t = config.text;
  const { width: c, mlpHidden: h, patch } = v.trunk;
  const a = precision === "f16" ? 2 : 4;
  const s = v.scales, side = s[s.length - 1]!;
  const pp = 3 * patch * patch;
  const n0 = (s[0]! / patch) ** 2;
  const grids = s.slice(1).map((x) => x / patch);
  const counts = selectCounts(v.budgets, grids.map((g) => g * g));
  const m = counts.reduce((x, y) => x + y, 0);
  const nl = v.selectLayers.length, k = grids.length;
  const out: StepTensor[] = [];
  const add = (what: string, shape: number[], bytes: 2 | 4, per: StepTensor["per"] = "sample") =>
    out.push({ what, shape, elementBytes: bytes, per });
  add("the images", [3, side, side], 4);
  add("the box maps", [side, side], 4);
  // Every other scale and the ConvNet input, resized from the batch's side in two passes
  // (rows, then columns): the first pass is [3, size, side].
  for (const size of new Set([...s, ...(v.conv ? [v.conv.inputSize] : [])])) {
    if (size === side) continue;
    add(`the images resized to ${size}`, [3, size, size], 4);
    add(`the first pass of the resize to ${size}`, [3, size, side], 4);
  }
  // The box maps area-resized to each high-res grid (targets, gt masks, pooling mask).
  add("the first pass of the box maps' area resize", [Math.max(...grids), side], 4);
  add("the low-res patches", [n0, pp], 4);
  add("low-res attn.qkv (and its gradient)", [n0, 3 * c], a);
  add("low-res mlp.fc1 (output, pre-activation, gradients)", [n0, h], a);
  // The selection MLP and the ConvNet store in the activation precision but their outputs
  // (fc2, out_proj: the selection logits' inputs), f32 (see src/nn/convnet.ts).
  add("the selection features' concat and selection_feature_proj.fc1", [n0, nl * c], a);
  add("selection_feature_proj.fc2", [n0, k * c], 4);
  if (v.conv) {
    const cv = v.conv, g = (cv.inputSize / cv.kernel) ** 2;
    add("the ConvNet's patches", [g, 3 * cv.kernel ** 2], a);
    add("the ConvNet's mlp.fc1 (output, pre-activation, gradients)", [g, 4 * cv.hidden], a);
    add("the ConvNet's out_proj", [g, cv.out], 4);
  }
  counts.forEach((n, i) => {
    if (n > 0) add(`the high-res patches of scale ${s[i + 1]}`, [n, pp], 4);
  });
  add("high-res attn.qkv (and its gradient)", [m, 3 * c], a);
  add("high-res mlp.fc1 (output, pre-activation, gradients)", [m, h], a);
  add("text attn.qkv (and its gradient)", [t.context, 3 * t.width], a);
  add("text mlp.fc1 (output, pre-activation, gradients)", [t.context, t.mlpHidden], a);
  // After the concatenation: the whole micro-batch's probabilities, box targets and losses.
  grids.forEach((g, i) =>
    add(`the selection probabilities of scale ${s[i + 1]}`, [g * g], 4, "batch")
  );
  // Of no batch: the position tables resized to each grid (and their first pass), the
  // largest weights' gradients (the text embedding's gradient goes straight into the
  // parameter table, whose chunks fit the limit).
  grids.forEach((g, i) => {
    add(`the position table resized to scale ${s[i + 1]}`, [g * g, c], 4, "fixed");
    add(
      `the first pass of the position table's resize to ${s[i + 1]}`,
      [g, v.trunk.posGrid, c],
      4,
      "fixed",
    );
  });
  add("the trunk's mlp.fc1 weight gradient", [h, c], 4, "fixed");
  add("selection_feature_proj.fc1's weight gradient", [nl * c, nl * c], 4, "fixed");
  return out;
}

/** Bytes of a step tensor at a group (or micro-batch) of `n` samples. */
function tensorBytes(x: StepTensor, n: number): number {
  return numel(x.shape) * x.elementBytes * (x.per === "fixed" ? 1 : n);
}

/** How a micro-batch is split into sample groups. */
export interface GroupPlan {
  /** Samples per group (the last group may hold fewer). */
  groupSize: number;
  /** Groups per micro-batch. */
  groups: number;
  /** The largest tensor that grows with the group, and its bytes at `groupSize`. */
  largest: { tensor: StepTensor; bytes: number };
  /** The largest tensor of any kind at `groupSize`, bytes (the largest buffer the step asks). */
  largestBytes: number;
  /** The largest buffer the device (pool) allows, bytes. */
  limit: number;
}

/**
 * Splits a micro-batch into the fewest groups of equal size (the last may be smaller) whose
 * tensors all fit the device's largest buffer.
 *
 * @param config The model.
 * @param microBatch Samples per micro-batch.
 * @param options The run's activation precision and the device's `maxBufferBytes`.
 * @returns The plan.
 * @throws {RangeError} Before anything is allocated, when a tensor cannot fit at any group
 *   size (one sample's share, a tensor of the whole micro-batch, or one of no batch): naming
 *   it, its shape, its bytes and the limit.
 */
export function planGroups(
  config: ModelConfig,
  microBatch: number,
  options: { precision: "f32" | "f16"; maxBufferBytes: number },
): GroupPlan {
  const limit = poolMaxBytes(options.maxBufferBytes);
  const tensors = stepTensors(config, options.precision);
  const over = tensors.filter((x) => tensorBytes(x, x.per === "sample" ? 1 : microBatch) > limit);
  if (over.length > 0) {
    const what = (x: StepTensor) => {
      const n = x.per === "sample" ? 1 : microBatch;
      const shape = x.per === "fixed" ? x.shape : [n, ...x.shape];
      const kind = x.per === "sample"
        ? "one sample"
        : x.per === "batch"
        ? `the whole micro-batch of ${microBatch}, after the groups`
        : "no batch";
      return `  ${x.what} (${kind}): [${shape.join(", ")}] ${
        x.elementBytes === 2 ? "f16" : "f32"
      }, ` +
        `${tensorBytes(x, n)} bytes`;
    };
    throw new RangeError(
      `Cannot split the step below the device's largest buffer of ${limit} bytes ` +
        `(${fmtBytes(limit)}, maxBufferSize; a tensor is one buffer): ${over.length} tensor(s) ` +
        `pass it at any group size:\n${over.map(what).join("\n")}`,
    );
  }
  const perSample = tensors.filter((x) => x.per === "sample");
  const top = perSample.reduce((x, y) => tensorBytes(y, 1) > tensorBytes(x, 1) ? y : x);
  const most = Math.min(microBatch, Math.floor(limit / tensorBytes(top, 1)));
  const groups = Math.ceil(microBatch / most);
  const groupSize = Math.ceil(microBatch / groups);
  const largestBytes = Math.max(
    ...tensors.map((x) => tensorBytes(x, x.per === "batch" ? microBatch : groupSize)),
  );
  return {
    groupSize,
    groups,
    largest: { tensor: top, bytes: tensorBytes(top, groupSize) },
    largestBytes,
    limit,
  };
}

/**
 * The sample ranges of a micro-batch's groups.
 *
 * @param range The micro-batch's samples [start, end).
 * @param groupSize Samples per group.
 * @returns Consecutive ranges covering it.
 */
export function groupRanges(
  range: { start: number; end: number },
  groupSize: number,
): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (let s = range.start; s < range.end; s += groupSize) {
    out.push({ start: s, end: Math.min(s + groupSize, range.end) });
  }
  return out;
}
