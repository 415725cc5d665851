/**
 * One training step (or one inference) of a PS3 model on a given batch, with every loss
 * term, output and gradient returned by name: the comparison point with the reference
 * implementation (`ps3 debug-step`, and the golden-file test).
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { keep, tidy } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { tensor, zeros } from "../ops/creation.ts";
import { scatterValue } from "../ops/gather.ts";
import { openSafetensors } from "../checkpoint/safetensors.ts";
import type { Ps3Clip, TrainBatch, TrainOptions } from "../model/ps3_clip.ts";
import { type LossWeights, ps3Loss } from "../loss/ps3_loss.ts";
import { torchTopkIndices } from "./torch_topk.ts";
import {
  encodeImage,
  inferenceProbs,
  type LookClose,
  planRounds,
  planSelections,
} from "../model/ps3_inference.ts";

/** A debug batch on the host. */
export interface DebugBatch {
  /** Images [B, 3, H, W] f32, normalised. */
  images: { data: Float32Array; shape: number[] };
  /** Tokens [B, T], or null (inference). */
  text: { data: Int32Array; shape: number[] } | null;
  /** Box maps [B, H, W], or null (inference). */
  gt: { data: Float32Array; shape: number[] } | null;
  /** Global-caption flags [B], or null. */
  isGlobal: Uint8Array | null;
}

/**
 * Reads a debug batch: `images` f32 [B,3,H,W], `text` i32/i64 [B,T], `gt_selection_maps`
 * [B,H,W], `is_global_text` u8 [B] (the last three only for training).
 *
 * @param path The safetensors file.
 * @param needText Whether text, boxes and flags are required.
 * @returns The batch.
 */
export async function readDebugBatch(path: string, needText: boolean): Promise<DebugBatch> {
  const r = await openSafetensors(path);
  try {
    const get = async (name: string, required: boolean) => {
      if (!r.has(name)) {
        if (required) throw new Error(`Cannot use batch "${path}": it has no tensor "${name}"`);
        return null;
      }
      return { data: await r.read(name), shape: [...r.entry(name).shape] };
    };
    const images = await get("images", true);
    if (
      !(images!.data instanceof Float32Array) || images!.shape.length !== 4 ||
      images!.shape[1] !== 3
    ) {
      throw new TypeError(`Batch "${path}": "images" must be f32 [B, 3, H, W]`);
    }
    const text = await get("text", needText);
    if (text && !(text.data instanceof Int32Array) && !(text.data instanceof BigInt64Array)) {
      throw new TypeError(`Batch "${path}": "text" must be i32 or i64 [B, T]`);
    }
    const gt = await get("gt_selection_maps", needText);
    const isG = await get("is_global_text", needText);
    const b = images!.shape[0]!;
    const textI32 = text
      ? {
        data: text.data instanceof BigInt64Array
          ? Int32Array.from(text.data, Number)
          : text.data as Int32Array,
        shape: text.shape,
      }
      : null;
    if (textI32 && textI32.shape[0] !== b) {
      throw new RangeError(`Batch "${path}": text has ${textI32.shape[0]} rows, images ${b}`);
    }
    const gtF32 = gt
      ? { data: Float32Array.from(gt.data as ArrayLike<number>), shape: gt.shape }
      : null;
    if (
      gtF32 &&
      (gtF32.shape[0] !== b || gtF32.shape[1] !== images!.shape[2] ||
        gtF32.shape[2] !== images!.shape[3])
    ) {
      throw new RangeError(`Batch "${path}": gt_selection_maps must be [B, H, W] like the images`);
    }
    return {
      images: { data: images!.data as Float32Array, shape: images!.shape },
      text: textI32,
      gt: gtF32,
      isGlobal: isG ? Uint8Array.from(isG.data as ArrayLike<number>) : null,
    };
  } finally {
    r.close();
  }
}

/**
 * Chooses the training selection as the reference does on the CPU: the selection
 * probabilities read back, then per sample and scale the index set `torch.topk` picks
 * (its tie-breaking inside the blocks of equal probabilities).
 *
 * @param model The model.
 * @param batch The batch on the GPU.
 * @param opts The training switches.
 * @returns Indices per high-res scale [B, k_i] i32.
 */
export async function torchSelection(
  model: Ps3Clip,
  batch: TrainBatch,
  opts: TrainOptions,
): Promise<Tensor[]> {
  const [b, , h, w] = batch.images.shape as [number, number, number, number];
  const counts = model.vision.selectCounts([h, w]);
  const probs = tidy(() => model.selectionProbs(batch, opts));
  const host = await gpu().read(probs);
  for (const p of probs) p.dispose();
  return host.map((bytes, i) => {
    const all = new Float32Array(bytes);
    const n = all.length / b, k = counts[i]!;
    const idx = new Int32Array(b * k);
    for (let s = 0; s < b; s++) {
      idx.set(torchTopkIndices(all.subarray(s * n, (s + 1) * n), k), s * k);
    }
    return keep(tensor(idx, [b, k], "i32"));
  });
}

/** Options of {@linkcode debugStep}. */
export interface DebugStepOptions {
  /** Run inference instead of a training step. */
  infer?: LookClose | undefined;
  /** Break selection ties with ps3's GPU rule instead of PyTorch's CPU topk. */
  gpuTopk?: boolean | undefined;
  /** Training switches (the reference script's defaults when omitted). */
  train?: Partial<TrainOptions> | undefined;
  /** Box-loss weights (default 1 and 1, as the reference script). */
  weights?: Partial<LossWeights> | undefined;
}

/** A named output tensor on the host. */
export interface DebugOutput {
  /** Name: loss/*, out/*, grad/<parameter>. */
  name: string;
  /** Shape. */
  shape: readonly number[];
  /** Values. */
  data: Float32Array<ArrayBuffer>;
}

/**
 * Runs one training forward + backward (select_w_gt, pool_gt_token_only, global captions)
 * or one inference, and returns every output by name. Gradients accumulate into the
 * model's table (zero it first to get a single step's).
 *
 * @param model The model.
 * @param batch The batch.
 * @param options Inference or training, tie rule.
 * @returns loss/*, out/* and grad/<name> tensors.
 */
export async function debugStep(
  model: Ps3Clip,
  batch: DebugBatch,
  options: DebugStepOptions = {},
): Promise<DebugOutput[]> {
  const rt = gpu();
  const [b, , h, w] = batch.images.shape as [number, number, number, number];
  const f32 = (name: string, t: Tensor, shape: readonly number[] = t.shape) => ({ name, t, shape });
  let pending: { name: string; t: Tensor; shape: readonly number[] }[] = [];
  const owned: Tensor[] = [];
  const hold = <T extends Tensor>(t: T) => {
    owned.push(t);
    return keep(t);
  };
  try {
    if (options.infer) {
      const look = options.infer;
      const images = hold(tensor(batch.images.data, batch.images.shape));
      let selections: Tensor[][] | undefined;
      if (!options.gpuTopk) {
        const probs = tidy(() => noGrad(() => inferenceProbs(model.vision, images, null)));
        const host = (await rt.read(probs)).map((x) => new Float32Array(x));
        for (const p of probs) p.dispose();
        const grids = model.vision.featureSizes([h, w]).slice(1);
        const plan = planRounds(model.config.vision.budgets, grids.map(([a, c]) => a * c), look);
        selections = planSelections(host, b, plan, torchTopkIndices).map((round, r) =>
          round.map((idx, i) => hold(tensor(idx, [b, plan[r]![i]!], "i32")))
        );
      }
      pending = tidy(() => {
        const out = noGrad(() =>
          encodeImage(model.vision, images, { numLookClose: look, prompt: null, selections })
        );
        return [
          f32("out/last_hidden_state", out.lastHiddenState),
          ...out.selectionProbs.map((p, i) => f32(`out/selection_probs/${i}`, p)),
        ];
      });
    } else {
      if (!batch.text || !batch.gt) throw new Error("A training step needs text and box maps");
      const opts: TrainOptions = {
        selectWithGt: true,
        poolGtOnly: true,
        useGlobalCaption: true,
        checkpoint: true,
        ...options.train,
      };
      const weights: LossWeights = { prior: 1, posterior: 1, ...options.weights };
      const isG = batch.isGlobal ?? new Uint8Array(b);
      const trainBatch: TrainBatch = {
        images: hold(tensor(batch.images.data, batch.images.shape)),
        tokens: hold(tensor(batch.text.data, batch.text.shape, "i32")),
        gtMaps: hold(tensor(batch.gt.data, batch.gt.shape)),
        isGlobal: hold(tensor(Float32Array.from(isG), [b, 1])),
        isGlobalHost: isG,
      };
      const selected = options.gpuTopk ? undefined : await torchSelection(model, trainBatch, opts);
      if (selected) owned.push(...selected);
      pending = tidy(() => {
        const out = model.forwardTrain(trainBatch, opts, { selected });
        const loss = ps3Loss(out, trainBatch, { weights });
        backward(loss.total);
        const grids = out.vision.featureSizes.slice(1);
        const maps = noGrad(() =>
          out.vision.selected.map((idx, i) =>
            scatterValue(zeros([b, grids[i]![0] * grids[i]![1]]), idx, { value: 1 })
          )
        );
        return [
          f32("loss/contrastive", loss.contrastive),
          f32("loss/prior_box", loss.priorBox),
          f32("loss/posterior_box", loss.posteriorBox),
          f32("loss/total", loss.total),
          f32("out/image_features", out.imageFeatures),
          f32("out/text_features", out.textFeatures),
          ...maps.map((m, i) => f32(`out/selection_maps/${i}`, m, [b, ...grids[i]!])),
          ...out.vision.priorProbs.map((p, i) => f32(`out/prior_probs/${i}`, p, [b, ...grids[i]!])),
          ...(out.vision.posteriorProbs ?? []).map((p, i) =>
            f32(`out/posterior_probs/${i}`, p, [b, ...grids[i]!])
          ),
        ];
      });
      for (const p of model.params.params) pending.push(f32(`grad/${p.spec.name}`, p.grad));
    }
    // Read back in groups of ~256 MiB: one staging copy of every gradient of a full-size
    // model at once would double the host memory.
    const outputs: DebugOutput[] = [];
    for (let i = 0; i < pending.length;) {
      const group: typeof pending = [];
      let bytes = 0;
      while (i < pending.length && (group.length === 0 || bytes < 256 * 2 ** 20)) {
        bytes += pending[i]!.t.byteLength;
        group.push(pending[i++]!);
      }
      const host = await rt.read(group.map((p) => p.t));
      group.forEach((p, j) =>
        outputs.push({ name: p.name, shape: p.shape, data: new Float32Array(host[j]!) })
      );
    }
    return outputs;
  } finally {
    for (const p of pending) if (!p.name.startsWith("grad/")) p.t.dispose();
    for (const t of owned) t.dispose();
  }
}
