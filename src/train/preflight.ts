/**
 * Checks made before a run allocates anything: every file the run config names exists (shard
 * lists expanded, tokenizer, initial weights), the memory the run needs fits, every op's
 * smallest unit fits the storage binding limit, and the micro-batch splits into sample groups
 * whose tensors fit the largest buffer (`./groups.ts`). A run of a real config on a fresh machine
 * then fails at once with every missing input named by its config key, not with a bare "No
 * such file" after minutes of allocation.
 *
 * @module
 */

import { join } from "node:path";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import type { Runtime } from "../gpu/runtime.ts";
import { missingShards, shardUnits } from "../data/pipeline/shards.ts";
import { numel } from "../autograd/tensor.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import type { RunConfig } from "./config.ts";
import { estimateMemory, type MemoryEstimate } from "./memory.ts";
import type { ModelConfig } from "../model/config.ts";
import { selectCounts } from "../model/scales.ts";
import { attentionSampleBytes } from "../ops/attention.ts";
import { weightUnitFloats } from "../ops/matmul_weight.ts";
import { gatherPatchesPlaneSlab, patchifySlab } from "../ops/patch.ts";
import { slabUnitBytes } from "../ops/slab_chunks.ts";
import { type GroupPlan, planGroups } from "./groups.ts";

/** Where a run's data is (the config's paths, or those of the synthetic set it wrote). */
export interface RunDataPaths {
  /** Image (or single-layout) shard spec. */
  images: string;
  /** Text-box shard spec of the paired layout. */
  texts: string | undefined;
  /** tokenizer.json. */
  tokenizer: string;
  /** Held-out image shard spec. */
  evalImages: string | undefined;
  /** Held-out text-box shard spec. */
  evalTexts: string | undefined;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The problems of one shard list (paired with its text-box list), as `key: reason` lines. */
async function shardProblems(
  keys: [string, string],
  images: string,
  texts: string | undefined,
): Promise<string[]> {
  let units;
  try {
    units = shardUnits(images, { texts });
  } catch (e) {
    return [`${keys[0]}: ${(e as Error).message}`];
  }
  const missing = new Set(await missingShards(units));
  const report = (key: string, paths: string[], spec: string) => {
    const gone = paths.filter((p) => missing.has(p));
    if (gone.length === 0) return [];
    return [
      `${key}: ${gone.length} of ${paths.length} shards of "${spec}" are missing (first: "${
        gone[0]
      }")`,
    ];
  };
  return [
    ...report(keys[0], units.map((u) => u.image), images),
    ...(texts === undefined ? [] : report(keys[1], units.map((u) => u.text!), texts)),
  ];
}

/**
 * Checks that every input of a run exists: the training and held-out shards, the tokenizer,
 * `checkpoint.init` (a folder with model.safetensors) and `checkpoint.init_siglip`.
 *
 * @param config The run configuration.
 * @param paths Its data paths.
 * @throws {Error} Naming every missing input by its config key, with how to point it elsewhere.
 */
export async function checkRunInputs(config: RunConfig, paths: RunDataPaths): Promise<void> {
  const problems: string[] = [];
  problems.push(
    ...await shardProblems(["data.images", "data.text_boxes"], paths.images, paths.texts),
  );
  if (paths.evalImages !== undefined) {
    problems.push(
      ...await shardProblems(
        ["data.eval_images", "data.eval_text_boxes"],
        paths.evalImages,
        paths.evalTexts,
      ),
    );
  }
  if (!await isFile(paths.tokenizer)) {
    problems.push(`data.tokenizer: "${paths.tokenizer}" is not a file`);
  }
  const ck = config.checkpoint;
  if (
    ck.init && !ck.resume && !await isFile(ck.init) &&
    !await isFile(join(ck.init, "model.safetensors"))
  ) {
    problems.push(
      `checkpoint.init: "${ck.init}" is not a Hugging Face PS3 folder, a training checkpoint ` +
        "(no model.safetensors in it) or a PyTorch checkpoint file",
    );
  }
  if (ck.init_siglip && !await isFile(ck.init_siglip)) {
    problems.push(`checkpoint.init_siglip: "${ck.init_siglip}" is not a file`);
  }
  if (problems.length > 0) {
    throw new Error(
      `Cannot start the run: ${problems.length} input(s) of the run config are missing:\n` +
        problems.map((p) => `  ${p}`).join("\n") +
        "\nPoint them at your files in the YAML or on the command line " +
        "(e.g. --data.images=/data/img_{00000..00099}.tar); set checkpoint.init_siglip=null " +
        "to start from random weights.",
    );
  }
}

/**
 * The memory limit a run is checked against: `train.memory_limit_gb`, or 80% of the host's
 * memory on a CPU adapter; null on a GPU without the setting (WebGPU does not report its
 * memory).
 *
 * @param config The run configuration.
 * @param rt The runtime (adapter kind).
 * @returns Bytes, or null.
 */
export function memoryLimit(config: RunConfig, rt: Runtime): number | null {
  const gb = config.train.memory_limit_gb;
  if (gb) return gb * 2 ** 30;
  return rt.info.isSoftware ? Deno.systemMemoryInfo().total * 0.8 : null;
}

/**
 * The estimate of a run at a micro-batch, from the parameter declarations (nothing
 * allocated), in the run's precision and recomputation.
 *
 * @param config The run configuration.
 * @param microBatch Samples per micro-batch.
 * @returns The estimate.
 */
export function runEstimate(config: RunConfig, microBatch: number): MemoryEstimate {
  // The parameter table pads each parameter to 64 elements (256 bytes).
  const params = Ps3Clip.paramSpecs(config.resolvedModel).reduce(
    (n, s) => n + Math.ceil(Math.max(numel(s.shape), 1) / 64) * 64,
    0,
  );
  return estimateMemory(config.resolvedModel, {
    params,
    microBatch,
    checkpointing: config.train.grad_checkpointing,
    precision: config.train.precision,
  });
}

/**
 * The memory a run needs, from the parameter declarations (nothing allocated), and a check
 * against {@linkcode memoryLimit}.
 *
 * @param config The run configuration.
 * @param rt The runtime (adapter kind).
 * @returns The estimate.
 * @throws {RangeError} When it does not fit, with the settings that lower it.
 */
export function checkRunMemory(config: RunConfig, rt: Runtime): MemoryEstimate {
  const t = config.train;
  const est = runEstimate(config, t.batch_size / t.accum_steps);
  const limit = memoryLimit(config, rt);
  if (limit !== null && est.total > limit) {
    throw new RangeError(
      `The run needs about ${fmtBytes(est.total)} (parameters, gradients and AdamW moments ` +
        `${fmtBytes(est.state)}, activations of a micro-batch of ${t.batch_size / t.accum_steps} ${
          fmtBytes(est.activations)
        }) but ${t.memory_limit_gb ? "train.memory_limit_gb allows" : "this machine has"} ${
          fmtBytes(limit)
        }: lower train.batch_size (or raise train.accum_steps, or use train.batch_size=auto), ` +
        "keep train.grad_checkpointing on",
    );
  }
  return est;
}

/** The smallest piece of a tensor an op splits to fit the storage binding limit. */
export interface BindingUnit {
  /** The op (kernel family) and what one unit is. */
  op: string;
  /** Shape of one unit, elements. */
  shape: number[];
  /** Bytes one binding of the unit spans at most (with the op's alignment slack). */
  bytes: number;
}

/**
 * The units of a model's ops that cannot be split further past the storage binding limit,
 * from the ops' own rules: the patch unfold of the larger of the low-res image and the
 * ConvNet input splits per image (`patchifySlab`, with the window's alignment slack, `slabUnitBytes`);
 * attention splits per sample (`attentionSampleBytes`: q, k, v, the low-res cache, lse, in
 * 16-byte vectors; f32, an upper bound for f16 activations); a matmul splits its weight along
 * its rows down to four rows (`weightUnitFloats`: the widest linear layer's); the gather of the selected high-res patches splits per sample (one
 * sample's patches are at most its image) and its images per plane
 * (`gatherPatchesPlaneSlab`), as the resizes do;
 * batch, rows of matmuls, norms and softmax split far below these.
 *
 * @param config The model configuration.
 * @param alignment The device's storage binding offset alignment, bytes.
 * @returns The units, largest first (none depends on the batch: every op splits it).
 */
export function bindingUnits(config: ModelConfig, alignment: number): BindingUnit[] {
  const v = config.vision, t = config.text;
  const { width: c, patch, heads } = v.trunk;
  // patchify runs on the low-res image and the ConvNet input; the high-res scales are only
  // resized and gathered, per image plane.
  const side = Math.max(v.scales[0]!, v.conv?.inputSize ?? 0);
  const top = v.scales[v.scales.length - 1]!;
  const n0 = (v.scales[0]! / patch) ** 2;
  const grids = v.scales.slice(1).map((x) => (x / patch) ** 2);
  const counts = selectCounts(v.budgets, grids);
  const m = counts.reduce((a, x) => a + x, 0);
  const sample = (n: number, nc: number, w: number, h: number): BindingUnit => {
    const bytes = attentionSampleBytes({ heads: h, d: w / h, nq: n, nk: n, nc, mask: false });
    return {
      op: `attention (one sample of ${n} tokens${nc > 0 ? ` and ${nc} cached` : ""})`,
      shape: [Math.max(n, nc), w],
      bytes: Math.ceil(bytes / 16) * 16,
    };
  };
  const units: BindingUnit[] = [
    {
      op: "patch_unfold (one image)",
      shape: [3, side, side],
      bytes: slabUnitBytes(patchifySlab(3, side, side), alignment),
    },
    {
      op: `patch_gather and resizes (one image plane of scale ${top})`,
      shape: [top, top],
      bytes: slabUnitBytes(gatherPatchesPlaneSlab(top, top), alignment),
    },
    sample(n0, 0, c, heads),
    sample(m, n0, c, heads),
    sample(t.context, 0, t.width, t.heads),
    widestWeight(config),
  ];
  return units.sort((a, b) => b.bytes - a.bytes);
}

/** The model's widest linear-layer weight: four of its rows, the unit its splits keep
 * together (`weightUnitFloats`). */
function widestWeight(config: ModelConfig): BindingUnit {
  const v = config.vision, t = config.text;
  const { width: c, mlpHidden: h, patch } = v.trunk;
  const nl = v.selectLayers.length;
  const named: [string, number][] = [
    ["trunk attn.qkv", c],
    ["trunk mlp.fc2", h],
    ["text attn.qkv", t.width],
    ["text mlp.fc2", t.mlpHidden],
    ["selection_feature_proj.fc1", nl * c],
    ["selection_feature_proj.fc2", nl * c],
    ["text_model.prompt_proj.fc1", config.text.outputDim],
    ["patch_embed", 3 * patch * patch],
    ...(v.conv
      ? [
        ["ConvNet stem", 3 * v.conv.kernel ** 2],
        ["ConvNet mlp.fc2", 4 * v.conv.hidden],
      ] as [string, number][]
      : []),
  ];
  const [name, kk] = named.reduce((a, b) => (b[1] > a[1] ? b : a));
  return {
    op: `matmul (four rows of the widest weight, ${name}, split along its rows)`,
    shape: [4, kk],
    bytes: weightUnitFloats(kk) * 4,
  };
}

/**
 * Checks, before anything is allocated, that every op's smallest unit fits the device's
 * storage binding limit (larger tensors split along the batch or rows).
 *
 * @param config The run configuration.
 * @param rt The runtime (its binding limit and alignment).
 * @throws {RangeError} Naming the op, the unit's shape and the limit when one cannot fit.
 */
export function checkRunBindings(config: RunConfig, rt: Runtime): void {
  const { maxBindingBytes, bindingOffsetAlignment } = rt.info;
  const over = bindingUnits(config.resolvedModel, bindingOffsetAlignment)
    .filter((u) => u.bytes > maxBindingBytes);
  if (over.length > 0) {
    throw new RangeError(
      `Cannot start the run: ${over.length} op(s) cannot split below the device's storage ` +
        `binding limit of ${maxBindingBytes} bytes:\n` +
        over.map((u) => `  ${u.op}: [${u.shape.join(", ")}] f32, ${u.bytes} bytes`).join("\n"),
    );
  }
}

/**
 * The sample groups a run's micro-batch runs in so that every tensor fits the device's
 * largest buffer (`planGroups`, the rule the step uses), checked before anything is
 * allocated.
 *
 * @param config The run configuration (model, micro-batch, precision).
 * @param rt The runtime (its `maxBufferBytes`).
 * @param precision Activation storage (default the run's).
 * @returns The plan.
 * @throws {RangeError} Naming the tensors, shapes and the limit when one cannot fit at any
 *   group size.
 */
export function runGroups(
  config: RunConfig,
  rt: Runtime,
  precision: "f32" | "f16" = config.train.precision,
): GroupPlan {
  const t = config.train;
  return planGroups(config.resolvedModel, t.batch_size / t.accum_steps, {
    precision,
    maxBufferBytes: rt.info.maxBufferBytes,
  });
}

/**
 * One line describing a plan: the groups and the largest tensor per group against the limit.
 *
 * @param plan The plan.
 * @param microBatch Samples per micro-batch.
 * @returns The line.
 */
export function describeGroups(plan: GroupPlan, microBatch: number): string {
  const x = plan.largest.tensor;
  const type = x.elementBytes === 2 ? "f16" : "f32";
  const size = (n: number) => `${fmtBytes(n)} (${n} bytes)`;
  return `micro-batch of ${microBatch} in ${plan.groups} group(s) of ${plan.groupSize}: ` +
    `largest tensor per group ${x.what} [${[plan.groupSize, ...x.shape].join(", ")}] ${type} ` +
    `${size(plan.largest.bytes)}, largest of the step ${size(plan.largestBytes)}, ` +
    `device's largest buffer ${size(plan.limit)}`;
}

/**
 * The preflight's figures of a run, for `ps3 train <config> --preflight` (nothing allocated,
 * inputs not checked): the estimate by part at the run's micro-batch and precision against
 * the memory limit, and the ops' smallest units against the binding limit.
 *
 * @param config The run configuration.
 * @param rt The runtime (limits).
 * @returns Lines to print.
 */
export function describePreflight(config: RunConfig, rt: Runtime): string[] {
  const t = config.train;
  const micro = t.batch_size / t.accum_steps;
  const est = runEstimate(config, micro);
  const limit = memoryLimit(config, rt);
  const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`;
  const { maxBindingBytes, bindingOffsetAlignment } = rt.info;
  const units = bindingUnits(config.resolvedModel, bindingOffsetAlignment);
  return [
    `preflight of ${config.resolvedModel.name}: micro-batch ${micro}, precision ${t.precision}, ` +
    `recomputation ${t.grad_checkpointing ? "on" : "off"}`,
    `  total ${gib(est.total)} = state (parameters, gradients, AdamW moments, f32) ` +
    `${gib(est.state)} + activations ${gib(est.activations)}`,
    ...Object.entries(est.parts).map(([k, v]) => `    ${k.padEnd(15)} ${gib(v)}`),
    `  memory limit: ${limit === null ? "none known (set train.memory_limit_gb)" : gib(limit)} -> ${
      limit === null ? "not checked" : est.total <= limit ? "fits" : "does NOT fit"
    }`,
    ...(["f32", "f16"] as const).map((p) => {
      const line = (() => {
        try {
          return describeGroups(runGroups(config, rt, p), micro);
        } catch (e) {
          return `does NOT fit: ${(e as Error).message}`;
        }
      })();
      return `  buffers (${p}${p === t.precision ? ", this run" : ""}): ${line}`;
    }),
    `  binding limit ${fmtBytes(maxBindingBytes)}; smallest units of the ops:`,
    ...units.map((u) =>
      `    ${u.bytes <= maxBindingBytes ? "ok  " : "OVER"} ${u.op}: [${u.shape.join(", ")}] ` +
      fmtBytes(u.bytes)
    ),
  ];
}
