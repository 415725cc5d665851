/**
 * Training checkpoint -> Hugging Face PS3 folder, as the reference's converter
 * (`save_ps3_hf_ckpt.py`) writes it: `model.safetensors` with the Hugging Face names, the
 * reference's shapes and float32 data, then `config.json`, `preprocessor_config.json` and
 * `tokenizer_config.json`, and the run's `tokenizer.json` (+ `special_tokens_map.json`) when
 * it can be found (tokenizer_files.ts). The vision-only variant keeps the `vision_model.*` tensors and puts
 * the vision config at the top level of `config.json`; it writes the same two other files.
 *
 * The conversion streams: the checkpoint's header is checked against the model's parameter
 * declarations ({@linkcode Ps3Clip.paramSpecs}, no weights allocated), then each tensor is
 * read from disk and written to the new file one at a time, without the GPU, so a multi-
 * gigabyte checkpoint converts in the memory of its largest tensor.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { fmtShape, numel } from "../autograd/tensor.ts";
import { type ModelConfig, resolveModelConfig } from "../model/config.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { FLOAT_DTYPES, writeHfConfigFiles } from "./hf.ts";
import { openSafetensors, writeSafetensors, type WriteTensor } from "./safetensors.ts";
import { listCheckpoints, readTrainState } from "./train_checkpoint.ts";
import { verifyCheckpoint } from "./manifest.ts";
import {
  copyTokenizerFiles,
  runTokenizerPath,
  type TokenizerFilesResult,
} from "./tokenizer_files.ts";

/** The dtype of every tensor of a converted folder (the reference does not cast). */
export const HF_DTYPE = "float32";

/** The first few items of a list for a message, quoted, with the count of the rest. */
function listSome(
  items: readonly string[],
  options: { quote?: boolean; sep?: string } = {},
): string {
  const n = 5;
  const shown = items.slice(0, n).map((x) => options.quote === false ? x : `"${x}"`);
  const rest = items.length > n ? ` and ${items.length - n} more` : "";
  return shown.join(options.sep ?? ", ") + rest;
}

/** Options of {@linkcode convertCheckpoint}. */
export interface ConvertOptions {
  /** Keep only `vision_model.*`, with the vision config at the top level of config.json. */
  visionOnly?: boolean | undefined;
  /** Overrides the tokenizer name written to tokenizer_config.json. */
  tokenizerName?: string | undefined;
  /** The tokenizer.json to copy into the folder (default: the run's, from state.json). */
  tokenizer?: string | undefined;
}

/** What {@linkcode convertCheckpoint} wrote. */
export interface ConvertResult {
  /** The checkpoint converted. */
  checkpoint: string;
  /** Its training step. */
  step: number;
  /** The model configuration (from the checkpoint's state.json). */
  config: ModelConfig;
  /** Tensors written to model.safetensors. */
  tensors: number;
  /** Data bytes written to model.safetensors. */
  bytes: number;
  /** The tokenizer files copied, or null when the run's tokenizer was not found. */
  tokenizer: TokenizerFilesResult | null;
}

/**
 * The Hugging Face checkpoint's tensors of a model configuration, one line each:
 * `<name> [<dim>, <dim>, ...] float32` (`[]` for a scalar), in PyTorch's `state_dict` order.
 * Nothing is allocated: the names come from the parameter declarations.
 *
 * @param config The model configuration.
 * @returns The lines.
 * @example
 * ```ts
 * const lines = listHfKeys(await loadModelConfig("configs/ps3-1.5k.yaml"));
 * // lines[3] === "vision_model.trunk.pos_embed [1, 729, 1152] float32"
 * ```
 */
export function listHfKeys(config: ModelConfig): string[] {
  return Ps3Clip.paramSpecs(config).map((s) => `${s.name} ${fmtShape(s.shape)} ${HF_DTYPE}`);
}

/**
 * Finds the checkpoint to convert: a checkpoint folder (which must be complete), or
 * `"latest"`: the newest complete checkpoint of a run's `checkpoints/` folder.
 *
 * @param spec A checkpoint folder or "latest".
 * @param run The run's output folder (needed for "latest").
 * @returns The checkpoint folder.
 * @throws {Error} When the folder is not a complete checkpoint or the run has none.
 * @example
 * ```ts
 * const dir = await findCheckpoint("latest", "runs/tiny");
 * ```
 */
export async function findCheckpoint(spec: string, run?: string): Promise<string> {
  if (spec === "latest") {
    if (run === undefined) {
      throw new Error('Cannot find the "latest" checkpoint: name the run folder with --run');
    }
    const root = join(run, "checkpoints");
    const all = await listCheckpoints(root);
    const last = all[all.length - 1];
    if (!last) throw new Error(`Cannot find a complete checkpoint in "${root}"`);
    return last.path;
  }
  try {
    await Deno.stat(join(spec, "COMPLETE"));
  } catch {
    throw new Error(
      `Cannot convert "${spec}": it is not a complete training checkpoint (no COMPLETE marker)`,
    );
  }
  return spec;
}

/**
 * Converts a training checkpoint folder into a Hugging Face PS3 folder, streaming one tensor
 * at a time (no GPU), after verifying every file against the checkpoint's manifest. The checkpoint's tensors must be exactly the model's parameters, with
 * their shapes and a float dtype; everything is checked before the output is written.
 *
 * @param checkpoint The training checkpoint folder (model.safetensors, state.json).
 * @param out The output folder (created; its files are replaced atomically).
 * @param options Vision-only, tokenizer name.
 * @returns What was written.
 * @throws {Error} When the checkpoint fails verification (naming each bad file and why).
 * @throws {SyntaxError} For a state.json without a valid model configuration.
 * @throws {RangeError} Naming the tensors whose shapes are not the model's.
 * @throws {Error} For missing or extra tensors, naming them.
 * @example
 * ```ts
 * await convertCheckpoint("runs/tiny/checkpoints/step_00000100", "out/ps3-tiny");
 * ```
 */
export async function convertCheckpoint(
  checkpoint: string,
  out: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  if (resolve(out) === resolve(checkpoint)) {
    throw new Error(`Cannot convert "${checkpoint}" into itself: choose another --out folder`);
  }
  const check = await verifyCheckpoint(checkpoint);
  if (!check.verified && !check.legacy) {
    throw new Error(`Cannot convert "${checkpoint}": ${check.problems.join("; ")}`);
  }
  const state = await readTrainState(checkpoint);
  const config = resolveModelConfig(
    state.modelConfig,
    `model config of "${join(checkpoint, "state.json")}"`,
  );
  const specs = Ps3Clip.paramSpecs(config);
  const path = join(checkpoint, "model.safetensors");
  const reader = await openSafetensors(path);
  try {
    const problems: string[] = [];
    const shapes: string[] = [];
    const missing = specs.filter((s) => !reader.has(s.name)).map((s) => s.name);
    const known = new Set(specs.map((s) => s.name));
    const extra = reader.names().filter((n) => !known.has(n));
    if (missing.length) problems.push(`it lacks ${missing.length}: ${listSome(missing)}`);
    if (extra.length) problems.push(`${extra.length} are not parameters: ${listSome(extra)}`);
    if (problems.length) {
      throw new Error(
        `Cannot convert "${path}": its tensors are not the parameters of model ` +
          `"${config.name}" (${problems.join("; ")})`,
      );
    }
    for (const s of specs) {
      const e = reader.entry(s.name);
      if (!FLOAT_DTYPES.has(e.dtype)) {
        throw new TypeError(
          `Cannot convert "${path}": tensor "${s.name}" has dtype ${e.dtype}, not a float type`,
        );
      }
      if (fmtShape(e.shape) !== fmtShape(s.shape)) {
        shapes.push(`"${s.name}" is ${fmtShape(e.shape)}, the model's ${fmtShape(s.shape)}`);
      }
    }
    if (shapes.length) {
      throw new RangeError(
        `Cannot convert "${path}": ${shapes.length} tensor shapes do not match model ` +
          `"${config.name}": ${listSome(shapes, { quote: false, sep: "; " })}`,
      );
    }
    const keep = specs.filter((s) => !options.visionOnly || s.name.startsWith("vision_model."));
    const bytes = keep.reduce((n, s) => n + numel(s.shape) * 4, 0);
    const tensors: WriteTensor[] = keep.map((s) => {
      const e = reader.entry(s.name);
      return {
        name: s.name,
        dtype: "F32",
        shape: s.shape,
        // f32 is copied byte for byte; other float types are widened / narrowed to f32.
        data: async () => {
          if (e.dtype === "F32") return await reader.readBytes(s.name);
          const v = await reader.read(s.name);
          return v instanceof Float32Array ? v : Float32Array.from(v as Float64Array);
        },
      };
    });
    await Deno.mkdir(out, { recursive: true });
    await writeSafetensors(join(out, "model.safetensors"), tensors, {
      metadata: { format: "pt" },
    });
    await writeHfConfigFiles(out, config, options);
    const tokPath = options.tokenizer ?? await runTokenizerPath(state.runConfig);
    const tokenizer = tokPath ? await copyTokenizerFiles(tokPath, out) : null;
    return { checkpoint, step: state.step, config, tensors: tensors.length, bytes, tokenizer };
  } finally {
    reader.close();
  }
}
