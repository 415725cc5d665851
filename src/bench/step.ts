/**
 * Training-step benchmarks: the model's training forward, loss and backward (`Ps3Clip.forwardTrain`
 * then `backward`, no optimizer) on random data, per configuration, with an account of where
 * the time goes (text tower, image resizes, low-res pass, ConvNet, selection, high-res pass;
 * each part timed forward + backward on its own).
 *
 * PS3's claim is that the step cost hardly grows with resolution at a fixed selection
 * budget. The equal-budget family `eq-tiny`, `eq-1.5k`, `eq-4k` tests it: each keeps its
 * configuration's scales, patch size and ConvNet, and all three share one trunk (SigLIP
 * SO400M widths at a reduced depth), one text tower and one budget, so the ratios isolate
 * what resolution adds: the low-res pass (64 vs 729 tokens), the resizes and the ConvNet.
 *
 * @module
 */

import { type BenchRow, timeGpuMedian } from "./timing.ts";
import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { keep, tidy } from "../autograd/scope.ts";
import { backward, noGrad } from "../autograd/tape.ts";
import { randn, tensor } from "../ops/creation.ts";
import { topkIndices } from "../ops/topk.ts";
import { broadcastTo } from "../ops/elementwise.ts";
import { reshape } from "../ops/shape.ts";
import { type ModelConfig, resolveModelConfig } from "../model/config.ts";
import { Ps3Clip, type TrainBatch, type TrainOptions } from "../model/ps3_clip.ts";
import { ps3Loss } from "../loss/ps3_loss.ts";
import { Rng } from "../util/rng.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import type { ModelKernels } from "../nn/module.ts";

/** A step configuration of the benchmark. */
export interface StepConfig {
  /** Name used on the command line and in the table. */
  name: string;
  /** The model. */
  model: ModelConfig;
  /** Batch size. */
  batch: number;
  /** How it was derived (stated in the table). */
  note: string;
  /** Kernel choices of the model (default: the adapter's). */
  kernels?: ModelKernels | undefined;
}

/** Configuration names {@linkcode stepConfigs} knows. */
export const STEP_CONFIG_NAMES: readonly string[] = [
  "tiny",
  "1.5k",
  "4k",
  "eq-tiny",
  "eq-1.5k",
  "eq-4k",
  "eq-1.5k-vec4",
];

/** Options of {@linkcode stepConfigs}. */
export interface StepConfigOptions {
  /** Trunk and text depth of the reduced configurations (default 2). */
  depth?: number | undefined;
  /** Selection budget of the equal-budget family (default 1024: the tiny grids hold 1280). */
  budget?: number | undefined;
  /** Batch size of the SO400M-width configurations (default 1). */
  batch?: number | undefined;
}

const SO400M = {
  embed_dim: 1152,
  depth: 27,
  num_heads: 16,
  mlp_ratio: 3.7362,
  patch_size: 14,
  img_size: 384,
};

const TEXT_SO400M = {
  context_length: 64,
  vocab_size: 32000,
  width: 1152,
  heads: 16,
  layers: 27,
  mlp_ratio: 3.7362,
  norm_kwargs: { eps: 1e-6 },
};

/** Resolution settings of the three configurations (configs/ps3-*.yaml). */
const RESOLUTIONS = {
  tiny: {
    patch_size: 8,
    img_size: 64,
    ps3_scales: [64, 128, 256],
    max_select_num: 96,
    highres_selection_module_hidden_dim: 32,
    highres_selection_module_out_dim: 32,
    highres_selection_module_depth: 1,
    highres_selection_module_kernel_size: 16,
    highres_selection_input_size: 256,
  },
  "1.5k": { ps3_scales: [378, 756, 1512], max_select_num: 2560 },
  "4k": { ps3_scales: [378, 756, 1512, 3780], max_select_num: 2560 },
} as const;

const TINY_TRUNK = { embed_dim: 64, depth: 4, num_heads: 4, mlp_ratio: 4 };
const TINY_TEXT = {
  context_length: 16,
  vocab_size: 128,
  width: 64,
  heads: 4,
  layers: 2,
  mlp_ratio: 4,
};

/**
 * Builds the named step configurations.
 *
 * @param names Names from {@linkcode STEP_CONFIG_NAMES}.
 * @param options Depth, budget and batch of the reduced configurations.
 * @returns One configuration per name.
 * @throws {RangeError} For an unknown name.
 */
export function stepConfigs(names: readonly string[], options: StepConfigOptions = {}) {
  const depth = options.depth ?? 2;
  const budget = options.budget ?? 1024;
  const batch = options.batch ?? 1;
  const layers = [...Array(depth).keys()];
  return names.map((name): StepConfig => {
    if (!STEP_CONFIG_NAMES.includes(name)) {
      throw new RangeError(
        `Unknown step config "${name}": expected one of ${STEP_CONFIG_NAMES.join(", ")}`,
      );
    }
    if (name === "tiny") {
      const raw = {
        name: "PS3-tiny",
        embed_dim: 64,
        vision_cfg: { ...TINY_TRUNK, ...RESOLUTIONS.tiny, select_based_on_layer: [0, 1, 2, 3] },
        text_cfg: TINY_TEXT,
      };
      return { name, model: resolveModelConfig(raw), batch: 8, note: "configs/ps3-tiny.yaml" };
    }
    if (name === "eq-1.5k-vec4") {
      // eq-1.5k with the storage-read matmuls: the texture family's gain in the same run.
      const [base] = stepConfigs(["eq-1.5k"], options);
      return {
        ...base!,
        name,
        note: `eq-1.5k with the vec4 matmuls (storage reads, before texture)`,
        kernels: { matmul: { variant: "vec4" } },
      };
    }
    const eq = name.startsWith("eq-");
    const res = RESOLUTIONS[(eq ? name.slice(3) : name) as keyof typeof RESOLUTIONS];
    const trunkDepth = eq ? depth : SO400M.depth;
    const raw = {
      name: `PS3-${name}`,
      embed_dim: 1152,
      vision_cfg: {
        ...SO400M,
        ...res,
        depth: trunkDepth,
        select_based_on_layer: eq ? layers : [0, 9, 18, 26],
        ...(eq ? { max_select_num: budget } : {}),
      },
      text_cfg: { ...TEXT_SO400M, layers: eq ? depth : TEXT_SO400M.layers },
    };
    const note = eq
      ? `SO400M widths, ${depth} trunk + ${depth} text blocks, budget ${budget}, ` +
        `scales [${res.ps3_scales.join(", ")}]`
      : `configs/ps3-${name}.yaml (full depth)`;
    return { name, model: resolveModelConfig(raw), batch, note };
  });
}

/** A random training batch: normal images, random tokens, one box per sample. */
function randomBatch(cfg: ModelConfig, batch: number, seed: number): TrainBatch {
  const s = cfg.vision.scales[cfg.vision.scales.length - 1]!;
  const rng = new Rng(seed);
  const tokens = new Int32Array(batch * cfg.text.context);
  for (let i = 0; i < tokens.length; i++) tokens[i] = 1 + rng.int(cfg.text.vocab - 1);
  const maps = new Float32Array(batch * s * s);
  for (let b = 0; b < batch; b++) {
    // A box over a quarter of the image, placed per sample.
    const y0 = rng.int(s >> 1), x0 = rng.int(s >> 1);
    for (let y = y0; y < y0 + (s >> 1); y++) {
      maps.fill(1, b * s * s + y * s + x0, b * s * s + y * s + x0 + (s >> 1));
    }
  }
  const isGlobalHost = new Uint8Array(batch);
  return {
    images: keep(randn([batch, 3, s, s], seed)),
    tokens: keep(tensor(tokens, [batch, cfg.text.context], "i32")),
    gtMaps: keep(tensor(maps, [batch, s, s])),
    isGlobal: keep(tensor(new Float32Array(batch), [batch, 1])),
    isGlobalHost,
  };
}

function disposeBatch(b: TrainBatch): void {
  for (const t of [b.images, b.tokens, b.gtMaps, b.isGlobal]) t.dispose();
}

const TRAIN_OPTIONS: TrainOptions = {
  selectWithGt: true,
  poolGtOnly: true,
  useGlobalCaption: true,
  checkpoint: false,
};

/** One configuration's results. */
export interface StepResult {
  /** The configuration. */
  config: StepConfig;
  /** Median milliseconds of forwardTrain + backward. */
  stepMs: number;
  /** Median milliseconds of each part, forward + backward on its own. */
  parts: StepPart[];
}

/** A part of the step, timed on its own. */
export interface StepPart {
  /** What it is. */
  name: string;
  /** Median milliseconds, forward + backward. */
  ms: number;
  /** Whether it is contained in other parts (shown, not added up). */
  within: boolean;
}

/**
 * Times training steps and their parts.
 *
 * @param configs Configurations (see {@linkcode stepConfigs}).
 * @param options Timed runs per measurement (median kept; default 3), and whether to time
 *   the parts.
 * @returns One result per configuration.
 * @example
 * ```ts
 * const [eq15, eq4k] = await benchSteps(stepConfigs(["eq-1.5k", "eq-4k"], { depth: 1 }));
 * console.log(eq4k.stepMs / eq15.stepMs);
 * ```
 */
export async function benchSteps(
  configs: readonly StepConfig[],
  options: { runs?: number | undefined; parts?: boolean | undefined } = {},
): Promise<StepResult[]> {
  const runs = options.runs ?? 3;
  const timing = { runs, minMs: 1, maxReps: 1 };
  const out: StepResult[] = [];
  for (const config of configs) {
    const work = stepWork(config);
    const { model, batch, step } = work;
    // The first step compiles the pipelines (shared by the later configurations); not timed.
    if (out.length === 0) await timeGpuMedian(step, { runs: 1, minMs: 1, maxReps: 1 });
    const stepMs = await timeGpuMedian(step, timing);
    const parts = options.parts === false ? [] : await timeParts(model, batch, runs);
    work.dispose();
    await gpu().sync();
    out.push({ config, stepMs, parts });
  }
  return out;
}

/** A configuration's training step on random data, ready to record. */
export interface StepWork {
  /** The model (seed 1). */
  model: Ps3Clip;
  /** The random batch (seed 7). */
  batch: TrainBatch;
  /** Records forwardTrain, the loss and backward once (call it inside a scope). */
  step: () => void;
  /** Frees the model and the batch. */
  dispose: () => void;
}

/**
 * Builds a configuration's model and random batch, and the step the benchmark times.
 *
 * @param config A configuration from {@linkcode stepConfigs}.
 * @returns The step and what it holds.
 */
export function stepWork(config: StepConfig): StepWork {
  const model = new Ps3Clip(config.model, { seed: 1, kernels: config.kernels });
  const batch = randomBatch(config.model, config.batch, 7);
  const step = () => {
    const o = model.forwardTrain(batch, TRAIN_OPTIONS);
    backward(ps3Loss(o, batch, { weights: { prior: 1, posterior: 1 } }).total);
  };
  const dispose = () => {
    for (const p of model.params.params) {
      p.value.dispose();
      p.grad.dispose();
    }
    for (const t of [...model.params.values, ...model.params.grads]) t.dispose();
    disposeBatch(batch);
  };
  return { model, batch, step, dispose };
}

/** Times each part of the step forward + backward on its own (inputs precomputed). */
async function timeParts(model: Ps3Clip, batch: TrainBatch, runs: number) {
  const v = model.vision;
  const cfg = model.config.vision;
  const [b, , h, w] = batch.images.shape as [number, number, number, number];
  const sizes = v.featureSizes([h, w]);
  const counts = v.selectCounts([h, w]);
  const time = (fn: () => void) => timeGpuMedian(fn, { runs, minMs: 1, maxReps: 1 });
  const leaf = (t: Tensor) => {
    const k = keep(t);
    k.requiresGrad = true;
    return k;
  };
  // Inputs of the later parts, computed once without gradients.
  const pre = tidy(() =>
    noGrad(() => {
      const low = v.lowRes(batch.images, false);
      const probs = v.selectionProbs(
        v.selectionFeatures(low.hidden),
        v.convFeatures(batch.images),
        broadcastTo(reshape(v.priorPrompt.value, [1, v.width]), [b, v.width]),
        sizes,
      );
      const selected = probs.map((p, i) => topkIndices(p, counts[i]!));
      return [...low.hidden, ...low.cache.flatMap((c) => [c.k, c.v]), ...selected];
    })
  );
  const depth = cfg.trunk.depth;
  const hidden = pre.slice(0, depth).map(leaf);
  const cache = [...Array(depth).keys()].map((i) => ({
    k: leaf(pre[depth + 2 * i]!),
    v: leaf(pre[depth + 2 * i + 1]!),
  }));
  const selected = pre.slice(3 * depth).map((t) => keep(t));
  const prompt = leaf(randn([b, v.width], 3));
  const tokens = leaf(noGrad(() => v.embedHighRes(batch.images, selected, sizes)));
  const n0 = sizes[0]![0] * sizes[0]![1];
  const m = counts.reduce((x, y) => x + y, 0);
  // Disjoint parts (their sum is about the step); image resizes happen inside three of them.
  const parts: StepPart[] = [];
  const part = async (name: string, fn: () => void, within = false) =>
    parts.push({ name, ms: await time(fn), within });
  await part(
    "text tower + prompt_proj",
    () => backward(model.promptProj.forward(model.encodeText(batch.tokens))),
  );
  await part(`low-res pass (resize to ${cfg.scales[0]}, ${n0} tokens)`, () => {
    const low = v.lowRes(batch.images, false);
    backward([low.pooled, ...low.cache.flatMap((c) => [c.k, c.v])]);
  });
  if (cfg.conv) {
    await part(
      `selection ConvNet (resize to ${cfg.conv.inputSize})`,
      () => backward(v.convFeatures(batch.images)!),
    );
  }
  await part("selection features, probabilities, top-k", () => {
    const probs = v.selectionProbs(v.selectionFeatures(hidden), null, prompt, sizes);
    noGrad(() => probs.map((p, i) => topkIndices(p, counts[i]!)));
    backward(probs);
  });
  await part(
    "high-res embedding (resizes to the scales, position tables, patch gather)",
    () => backward(v.embedHighRes(batch.images, selected, sizes)),
  );
  await part(`high-res blocks (${m} tokens, cache ${n0}) + pool`, () => {
    const high = v.highRes(tokens, cache, false);
    backward(v.pool.forward(high.normed, null));
  });
  await part(
    `of which image resizes to [${cfg.scales.join(", ")}]${
      cfg.conv ? ` and ${cfg.conv.inputSize}` : ""
    }`,
    () => {
      for (const s of cfg.scales) v.resizeImages(batch.images, [s, s]);
      if (cfg.conv) v.resizeImages(batch.images, [cfg.conv.inputSize, cfg.conv.inputSize]);
    },
    true,
  );
  for (const t of [...hidden, ...cache.flatMap((c) => [c.k, c.v]), ...selected, prompt, tokens]) {
    t.grad?.dispose();
    t.dispose();
  }
  return parts;
}

/**
 * Table rows of step results: the step, its parts, and the ratios of the equal-budget
 * family (4K / 1.5K and 1.5K / tiny) when both ends were measured.
 *
 * @param results From {@linkcode benchSteps}.
 * @returns Rows.
 */
export function stepRows(results: readonly StepResult[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const r of results) {
    rows.push({
      name: `step ${r.config.name} (batch ${r.config.batch})`,
      ms: r.stepMs,
      rate: (1000 * r.config.batch) / r.stepMs,
      unit: "samples/s",
      note: r.config.note,
    });
    const sum = r.parts.filter((p) => !p.within).reduce((s, p) => s + p.ms, 0);
    for (const p of r.parts) {
      rows.push({
        name: `  ${r.config.name}: ${p.name}`,
        ms: p.ms,
        note: `${((100 * p.ms) / r.stepMs).toFixed(1)}% of the step${
          p.within ? " (inside the parts above; forward only)" : ""
        }`,
      });
    }
    if (r.parts.length > 0) {
      rows.push({
        name: `  ${r.config.name}: rest (losses, pooling, overlap)`,
        ms: r.stepMs - sum,
        note: "step minus the parts",
      });
    }
  }
  const by = (n: string) => results.find((r) => r.config.name === n);
  const vec4 = by("eq-1.5k-vec4"), eq15 = by("eq-1.5k");
  if (vec4 && eq15) {
    rows.push({
      name: "ratio eq-1.5k-vec4 / eq-1.5k (matmul family)",
      ms: vec4.stepMs - eq15.stepMs,
      rate: vec4.stepMs / eq15.stepMs,
      unit: "x",
      note: "ms column: the difference; the same step with vec4 matmuls over texture ones",
    });
  }
  for (const [hi, lo] of [["eq-4k", "eq-1.5k"], ["eq-1.5k", "eq-tiny"]] as const) {
    const a = by(hi), b = by(lo);
    if (!a || !b) continue;
    const diffs = a.parts.map((p, i) => ({ name: p.name, d: p.ms - (b.parts[i]?.ms ?? 0) }))
      .filter((_, i) => !a.parts[i]!.within)
      .filter((x) => Math.abs(x.d) > 0.05 * Math.abs(a.stepMs - b.stepMs))
      .map((x) => `${x.name.split(" (")[0]} ${x.d >= 0 ? "+" : ""}${(x.d / 1000).toFixed(2)} s`);
    rows.push({
      name: `ratio ${hi} / ${lo} (equal budget)`,
      ms: a.stepMs - b.stepMs,
      rate: a.stepMs / b.stepMs,
      unit: "x",
      note: a.parts.length === 0
        ? "ms column: the difference (parts not timed)"
        : `ms column: the difference; it comes from ${diffs.join(", ") || "no single part"}`,
    });
  }
  return rows;
}

/** Peak device memory of one training step ({@linkcode stepPeakMemory}). */
export interface StepMemory {
  /** Storage of the activations. */
  activations: FloatDType;
  /** Bytes held before the step: parameters, their gradients, the batch. */
  baseBytes: number;
  /** Highest bytes in use during the step (forward, loss, backward), base included. */
  peakBytes: number;
}

/**
 * Measures the buffer pool's peak bytes in use during one training step (forward, loss,
 * backward; the bench's options, no recomputation) of a configuration, with the activations
 * stored in f32 or f16. Both use the adapter's matmul family (the one `train.precision: f16`
 * picks, tiled-f16, allocates the same tensors but is slow on CPU adapters), so only the
 * storage differs. The activation part is `peakBytes - baseBytes`.
 *
 * @param config The configuration.
 * @param activations Storage of the activations.
 * @returns The base and peak bytes.
 */
export async function stepPeakMemory(
  config: StepConfig,
  activations: FloatDType,
): Promise<StepMemory> {
  const rt = gpu();
  const model = new Ps3Clip(config.model, { seed: 1, kernels: { activations } });
  const batch = randomBatch(config.model, config.batch, 7);
  await rt.sync();
  const baseBytes = rt.pool.stats().inUseBytes;
  rt.pool.resetPeak();
  tidy(() => {
    const o = model.forwardTrain(batch, TRAIN_OPTIONS);
    backward(ps3Loss(o, batch, { weights: { prior: 1, posterior: 1 } }).total);
  });
  await rt.sync();
  const peakBytes = rt.pool.stats().peakInUseBytes;
  for (const p of model.params.params) {
    p.value.dispose();
    p.grad.dispose();
  }
  for (const t of [...model.params.values, ...model.params.grads]) t.dispose();
  disposeBatch(batch);
  await rt.sync();
  return { activations, baseBytes, peakBytes };
}
