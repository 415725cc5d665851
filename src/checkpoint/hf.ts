/**
 * Hugging Face PS3 folders, as the reference converter (`save_ps3_hf_ckpt.py`) writes them
 * and the PS3 Python package loads them: `model.safetensors` with the Hugging Face names,
 * `config.json` (`PS3Model` with `vision_config` and `text_config`, or the vision config at
 * top level for the vision-only variant), `preprocessor_config.json` and
 * `tokenizer_config.json`.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";
import { openSafetensors, writeSafetensors, type WriteTensor } from "./safetensors.ts";
import {
  type ModelConfig,
  resolveModelConfig,
  resolveVisionConfig,
  siglipPreprocess,
} from "../model/config.ts";
import { normalizeHfTextConfig, normalizeHfVisionConfig } from "../model/hf_config.ts";
import type { VisionModelConfig } from "../model/ps3_vision_model.ts";
import type { ParamTable } from "../params/param_table.ts";
import { fmtShape, numel } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";

/** Result of loading weights into a parameter table. */
export interface LoadReport {
  /** Parameters filled from the file. */
  loaded: string[];
  /** Parameters the file lacks (they keep their initialisation). */
  missing: string[];
  /** Tensors of the file no parameter uses. */
  unused: string[];
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read "${path}": ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new SyntaxError(`Cannot parse "${path}": ${(e as Error).message}`);
  }
}

/**
 * Reads the model configuration of a Hugging Face PS3 folder (the full `PS3Model` layout).
 *
 * @param folder The folder.
 * @returns The resolved configuration.
 * @throws {SyntaxError} For a vision-only folder or an invalid config, naming the field.
 */
export async function readHfConfig(folder: string): Promise<ModelConfig> {
  const path = join(folder, "config.json");
  return fullConfig(await readJson(path), path);
}

function asObject(v: unknown, path: string, key: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new SyntaxError(`Invalid "${path}": ${key} is not an object`);
  }
  return v as Record<string, unknown>;
}

/** Resolves the `PS3Model` layout of a parsed `config.json` (see {@linkcode readHfConfig}). */
function fullConfig(cfg: Record<string, unknown>, path: string): ModelConfig {
  if (!("vision_config" in cfg) || !("text_config" in cfg)) {
    throw new SyntaxError(
      `Cannot use "${path}": it has no vision_config and text_config (a vision-only folder ` +
        "has no text tower; readHfFolderConfig reads both layouts)",
    );
  }
  const text = normalizeHfTextConfig(asObject(cfg.text_config, path, "text_config"), `"${path}"`, {
    prefix: "text_config.",
  });
  const vision = normalizeHfVisionConfig(
    asObject(cfg.vision_config, path, "vision_config"),
    `"${path}"`,
    { prefix: "vision_config." },
  );
  const embed = text.output_dim;
  return resolveModelConfig({
    name: typeof cfg.name === "string" ? cfg.name : "PS3",
    embed_dim: embed,
    vision_cfg: vision,
    text_cfg: text,
  }, `"${path}"`);
}

/** The configuration of a Hugging Face PS3 folder: the whole model, or the vision tower. */
export type HfFolderConfig =
  | { kind: "full"; config: ModelConfig }
  | { kind: "vision"; config: VisionModelConfig };

/**
 * Reads the model configuration of a Hugging Face PS3 folder of either layout: the full
 * `PS3Model` (vision and text) or the vision-only `PS3VisionModel` that
 * `ps3 convert --vision-only` writes.
 *
 * @param folder The folder.
 * @returns Which layout, with its resolved configuration.
 * @throws {SyntaxError} For an invalid config, naming the field.
 * @example
 * ```ts
 * const hf = await readHfFolderConfig("ps3-1.5k");
 * const model = hf.kind === "full" ? new Ps3Clip(hf.config) : new Ps3VisionModel(hf.config);
 * ```
 */
export async function readHfFolderConfig(folder: string): Promise<HfFolderConfig> {
  const path = join(folder, "config.json");
  const cfg = await readJson(path);
  if ("vision_config" in cfg || "text_config" in cfg) {
    return { kind: "full", config: fullConfig(cfg, path) };
  }
  const { name, ...vision } = cfg;
  return {
    kind: "vision",
    config: {
      name: typeof name === "string" ? name : "PS3",
      vision: resolveVisionConfig(normalizeHfVisionConfig(vision, `"${path}"`), `"${path}"`),
      preprocess: siglipPreprocess(),
    },
  };
}

/** The float dtypes a checkpoint tensor may have (widened or narrowed to f32 on load). */
export const FLOAT_DTYPES: ReadonlySet<string> = new Set(["F16", "BF16", "F32", "F64"]);

function quoteSome(names: readonly string[], n = 3): string {
  const head = names.slice(0, n).map((x) => `"${x}"`).join(", ");
  return names.length > n ? `${head}, ... (${names.length - n} more)` : head;
}

/** Default piece of a tensor read, widened and written at a time while loading (f32 bytes). */
export const LOAD_CHUNK_BYTES = 16 * 2 ** 20;

/** Bytes written to the device between waits for the writes (bounds the device's copies). */
const SETTLE_BYTES = 256 * 2 ** 20;

/**
 * Fills a parameter table from a safetensors file with Hugging Face names (any float dtype;
 * shapes must match exactly). The whole header is checked before any value is loaded, so a
 * failed load leaves the table untouched. Values stream from the file straight into the
 * table's buffers in pieces of at most `chunkBytes` (as f32), each widened on its own: the
 * host never holds a whole tensor or the whole model.
 *
 * @param table The parameters.
 * @param path The safetensors file.
 * @param options `strict` (default true): every parameter must be in the file and every
 *   tensor of the file must be a parameter (as PyTorch's `load_state_dict(strict=True)`);
 *   non-strict loads what is there and reports the rest; `optional` names parameters that
 *   may be missing even when strict (they keep their initialisation); `chunkBytes`: the
 *   largest piece read at a time, as f32 bytes (default {@linkcode LOAD_CHUNK_BYTES});
 *   `ignore`: tensors of the file to leave alone, neither loaded nor reported unused (the
 *   text tower when only the vision tower is loaded).
 * @returns What was loaded, missing and unused.
 * @throws {RangeError} Listing every tensor whose shape differs from its parameter's.
 * @throws {TypeError} For a tensor that is not a float type.
 * @throws {Error} When strict, for missing parameters or unused tensors, naming them.
 * @example
 * ```ts
 * const model = new Ps3Clip(await readHfConfig("ps3-1.5k"));
 * await loadSafetensorsInto(model.params, "ps3-1.5k/model.safetensors");
 * ```
 */
export async function loadSafetensorsInto(
  table: ParamTable,
  path: string,
  options: {
    strict?: boolean | undefined;
    optional?: ReadonlySet<string> | undefined;
    chunkBytes?: number | undefined;
    ignore?: ((name: string) => boolean) | undefined;
  } = {},
): Promise<LoadReport> {
  const reader = await openSafetensors(path);
  try {
    const report: LoadReport = { loaded: [], missing: [], unused: [] };
    const shapes: string[] = [];
    for (const p of table.params) {
      const name = p.spec.name;
      if (!reader.has(name)) {
        report.missing.push(name);
        continue;
      }
      const e = reader.entry(name);
      if (!FLOAT_DTYPES.has(e.dtype)) {
        throw new TypeError(
          `Cannot load "${name}" from "${path}": dtype ${e.dtype} is not a float type`,
        );
      }
      if (e.shape.length !== p.spec.shape.length || e.shape.some((d, i) => d !== p.spec.shape[i])) {
        shapes.push(`"${name}" is ${fmtShape(e.shape)}, the model's ${fmtShape(p.spec.shape)}`);
      }
      report.loaded.push(name);
    }
    if (shapes.length > 0) {
      throw new RangeError(
        `Cannot load "${path}": ${shapes.length} tensor shapes do not match the model ` +
          `(a checkpoint of another configuration?): ${shapes.join("; ")}`,
      );
    }
    report.unused = reader.names().filter((n) => !table.has(n) && !options.ignore?.(n));
    const required = report.missing.filter((n) => !options.optional?.has(n));
    if (options.strict !== false && (required.length > 0 || report.unused.length > 0)) {
      const parts = [];
      if (required.length) {
        parts.push(`${required.length} parameters are missing (${quoteSome(required)})`);
      }
      if (report.unused.length) {
        parts.push(
          `${report.unused.length} tensors are not parameters of the model ` +
            `(${quoteSome(report.unused)})`,
        );
      }
      throw new Error(
        `Cannot load "${path}": ${parts.join(" and ")}; is it a checkpoint of this model ` +
          "configuration?",
      );
    }
    const chunk = Math.max(1, Math.floor((options.chunkBytes ?? LOAD_CHUNK_BYTES) / 4));
    let unsettled = 0;
    for (const name of report.loaded) {
      for await (const { start, data } of reader.readFloatChunks(name, chunk)) {
        table.write(name, start, data);
        unsettled += data.byteLength;
        if (unsettled >= SETTLE_BYTES) {
          await table.settleWrites();
          unsettled = 0;
        }
      }
    }
    await table.settleWrites();
    return report;
  } finally {
    reader.close();
  }
}

/** Vision fields the reference converter writes, in its order (from the open_clip config). */
const VISION_KEYS = [
  "model_name",
  "hidden_size",
  "pool",
  "ps3",
  "ps3_scales",
  "select_based_on_layer",
  "min_select_num",
  "max_select_num",
  "separate_pos_emb",
  "highres_selection_feature",
] as const;

/** Text fields the reference converter writes, in its order. */
const TEXT_KEYS = [
  "context_length",
  "vocab_size",
  "hf_tokenizer_name",
  "tokenizer_kwargs",
  "width",
  "heads",
  "layers",
  "mlp_ratio",
  "no_causal_mask",
  "proj_bias",
  "pool_type",
  "norm_kwargs",
] as const;

/**
 * The `config.json` of a Hugging Face PS3 folder, as the reference converter writes it: the
 * reference's fields with their effective values (so the PS3 package, whose defaults differ,
 * builds the same model), then any other field the model config gave (explicit trunk sizes,
 * ConvNet sizes).
 *
 * @param config The model configuration.
 * @param options `visionOnly` puts the vision config at the top level.
 * @returns The JSON object.
 */
export function hfConfigJson(
  config: ModelConfig,
  options: { visionOnly?: boolean | undefined } = {},
): Record<string, unknown> {
  const v = config.vision;
  const vEffective: Record<string, unknown> = {
    model_name: v.modelName,
    hidden_size: v.trunk.width,
    pool: "map",
    ps3: true,
    ps3_scales: v.scales,
    select_based_on_layer: v.selectLayers,
    min_select_num: v.raw.min_select_num ?? 1,
    max_select_num: v.maxSelect,
    separate_pos_emb: v.separatePosEmb,
    highres_selection_feature: v.conv !== null,
  };
  const vision: Record<string, unknown> = {
    architectures: ["PS3VisionModel"],
    model_type: "ps3_vision_model",
  };
  for (const k of VISION_KEYS) if (vEffective[k] !== undefined) vision[k] = vEffective[k];
  for (const [k, val] of Object.entries(v.raw)) {
    if (!(k in vision) && k !== "architectures" && k !== "model_type") vision[k] = val;
  }
  if (options.visionOnly) return vision;
  const t = config.text;
  const tEffective: Record<string, unknown> = {
    context_length: t.context,
    vocab_size: t.vocab,
    hf_tokenizer_name: t.raw.hf_tokenizer_name,
    tokenizer_kwargs: t.raw.tokenizer_kwargs,
    width: t.width,
    heads: t.heads,
    layers: t.layers,
    mlp_ratio: t.raw.mlp_ratio ?? 4,
    no_causal_mask: true,
    proj_bias: true,
    pool_type: "last",
    norm_kwargs: { eps: t.eps },
  };
  const text: Record<string, unknown> = {};
  for (const k of TEXT_KEYS) if (tEffective[k] !== undefined) text[k] = tEffective[k];
  for (const [k, val] of Object.entries(t.raw)) {
    if (
      !(k in text) && !["architectures", "model_type", "output_dim", "prompt_proj_dim"].includes(k)
    ) {
      text[k] = val;
    }
  }
  Object.assign(text, {
    architectures: ["PS3TextModel"],
    model_type: "ps3_text_model",
    output_dim: t.outputDim,
    prompt_proj_dim: t.promptProjDim,
  });
  return {
    architectures: ["PS3Model"],
    model_type: "ps3",
    vision_config: vision,
    text_config: text,
  };
}

/**
 * Writes the JSON files of a Hugging Face PS3 folder as the reference converter does:
 * `config.json` ({@link hfConfigJson}), `preprocessor_config.json` (image size = the largest
 * scale, mean, std, interpolation, resize mode) and `tokenizer_config.json` (tokenizer name,
 * context length, cleaning), each replaced atomically. The vision-only variant writes the
 * same three files, with the vision config at the top level of `config.json`.
 *
 * @param folder Target folder (created).
 * @param config The model configuration.
 * @param options `visionOnly` puts the vision config at the top level; `tokenizerName`
 *   overrides the tokenizer name.
 * @returns Resolves once the files are in place.
 * @example
 * ```ts
 * await writeHfConfigFiles("out/ps3-1.5k", await loadModelConfig("configs/ps3-1.5k.yaml"));
 * ```
 */
export async function writeHfConfigFiles(
  folder: string,
  config: ModelConfig,
  options: { visionOnly?: boolean | undefined; tokenizerName?: string | undefined } = {},
): Promise<void> {
  await Deno.mkdir(folder, { recursive: true });
  const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
  await writeFileAtomic(join(folder, "config.json"), json(hfConfigJson(config, options)));
  const largest = config.vision.scales[config.vision.scales.length - 1]!;
  const pre = config.preprocess;
  await writeFileAtomic(
    join(folder, "preprocessor_config.json"),
    json({
      image_size: [largest, largest],
      mean: pre.mean,
      std: pre.std,
      interpolation: pre.interpolation,
      resize_mode: pre.resize_mode,
    }),
  );
  await writeFileAtomic(
    join(folder, "tokenizer_config.json"),
    json({
      tokenizer_name: options.tokenizerName ?? config.text.raw.hf_tokenizer_name ??
        "timm/ViT-B-16-SigLIP",
      context_length: config.text.context,
      clean: (config.text.raw.tokenizer_kwargs as { clean?: string } | undefined)?.clean ??
        "canonicalize",
    }),
  );
}

/**
 * Writes a Hugging Face PS3 folder from a parameter table.
 *
 * @param folder Target folder (created).
 * @param table The parameters (read back from the GPU one at a time).
 * @param config The model configuration.
 * @param options `visionOnly` keeps only `vision_model.*`; `tokenizer` names the tokenizer.
 */
export async function writeHfFolder(
  folder: string,
  table: ParamTable,
  config: ModelConfig,
  options: { visionOnly?: boolean | undefined; tokenizerName?: string | undefined } = {},
): Promise<void> {
  await Deno.mkdir(folder, { recursive: true });
  const params = table.params.filter((p) =>
    !options.visionOnly || p.spec.name.startsWith("vision_model.")
  );
  const tensors: WriteTensor[] = params.map((p) => ({
    name: p.spec.name,
    dtype: "F32",
    shape: p.spec.shape,
    data: async () => {
      const [bytes] = await gpu().read([p.value]);
      return new Float32Array(bytes!, 0, numel(p.spec.shape));
    },
  }));
  await writeSafetensors(join(folder, "model.safetensors"), tensors, {
    metadata: { format: "pt" },
  });
  await writeHfConfigFiles(folder, config, options);
}
