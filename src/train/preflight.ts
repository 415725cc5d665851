/**
 * Checks made before a run allocates anything: every file the run config names exists (shard
 * lists expanded, tokenizer, initial weights), and the memory the run needs fits. A run of a
 * real config on a fresh machine then fails at once with every missing input named by its
 * config key, not with a bare "No such file" after minutes of allocation.
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
 * The memory a run needs, from the parameter declarations (nothing allocated), and a check
 * against `train.memory_limit_gb`, or 80% of the host's memory on a CPU adapter.
 *
 * @param config The run configuration.
 * @param rt The runtime (adapter kind).
 * @returns The estimate.
 * @throws {RangeError} When it does not fit, with the settings that lower it.
 */
export function checkRunMemory(config: RunConfig, rt: Runtime): MemoryEstimate {
  const t = config.train;
  const params = Ps3Clip.paramSpecs(config.resolvedModel).reduce(
    (n, s) => n + numel(s.shape),
    0,
  );
  const est = estimateMemory(config.resolvedModel, {
    params,
    microBatch: t.batch_size / t.accum_steps,
    checkpointing: t.grad_checkpointing,
  });
  const limit = t.memory_limit_gb
    ? t.memory_limit_gb * 2 ** 30
    : rt.info.isSoftware
    ? Deno.systemMemoryInfo().total * 0.8
    : null;
  if (limit !== null && est.total > limit) {
    throw new RangeError(
      `The run needs about ${fmtBytes(est.total)} (parameters, gradients and AdamW moments ` +
        `${fmtBytes(est.state)}, activations of a micro-batch of ${t.batch_size / t.accum_steps} ${
          fmtBytes(est.activations)
        }) but ${t.memory_limit_gb ? "train.memory_limit_gb allows" : "this machine has"} ${
          fmtBytes(limit)
        }: lower train.batch_size (or raise train.accum_steps), keep ` +
        "train.grad_checkpointing on",
    );
  }
  return est;
}
