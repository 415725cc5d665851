/**
 * Lenient-but-strict reading of the `vision_config` / `text_config` of a Hugging Face PS3
 * `config.json`: what the PS3 package (`PS3Config.save_pretrained`, any transformers version)
 * and the Hub write, brought to the fields ps3's model config knows.
 *
 * - Metadata (transformers' generic `PretrainedConfig` fields, `transformers_version`,
 *   `dtype` / `torch_dtype`, `_name_or_path`, the package's `vision_tower_name` and
 *   `image_size` placeholders) is accepted and dropped.
 * - Fields of other variants (RADIO, dropout, timm options PS3 overrides) are accepted at
 *   their off values and dropped; any other value would change the computation and is
 *   refused, naming the field.
 * - `img_size: null` means the trunk name decides; the package always writes `patch_size: 14`
 *   (a placeholder), so with a known trunk name the trunk decides the patch size.
 * - Any other unknown field is reported through `warn` and dropped.
 *
 * @module
 */

import { KNOWN_TRUNKS, TEXT_CONFIG_KEYS, VISION_CONFIG_KEYS } from "./config.ts";

/** Where warnings go (default `console.warn`). */
export type WarnFn = (message: string) => void;

/**
 * Fields of transformers' `PretrainedConfig` (4.x writes them into nested configs) and of the
 * Hub that never change a PS3 model's computation.
 */
export const HF_METADATA_KEYS: ReadonlySet<string> = new Set([
  "transformers_version",
  "dtype",
  "torch_dtype",
  "_name_or_path",
  "_commit_hash",
  "_attn_implementation_autoset",
  "_attn_implementation",
  "auto_map",
  "name",
  "return_dict",
  "output_hidden_states",
  "output_attentions",
  "torchscript",
  "use_bfloat16",
  "tie_word_embeddings",
  "is_encoder_decoder",
  "is_decoder",
  "add_cross_attention",
  "tie_encoder_decoder",
  "cross_attention_hidden_size",
  "chunk_size_feed_forward",
  "pruned_heads",
  "id2label",
  "label2id",
  "problem_type",
  "tokenizer_class",
  "prefix",
  "bos_token_id",
  "pad_token_id",
  "eos_token_id",
  "sep_token_id",
  "decoder_start_token_id",
  "task_specific_params",
  "finetuning_task",
  "tf_legacy_loss",
  "use_return_dict",
  "max_length",
  "min_length",
  "do_sample",
  "early_stopping",
  "num_beams",
  "num_beam_groups",
  "diversity_penalty",
  "temperature",
  "top_k",
  "top_p",
  "typical_p",
  "repetition_penalty",
  "length_penalty",
  "no_repeat_ngram_size",
  "encoder_no_repeat_ngram_size",
  "bad_words_ids",
  "num_return_sequences",
  "output_scores",
  "return_dict_in_generate",
  "forced_bos_token_id",
  "forced_eos_token_id",
  "remove_invalid_values",
  "exponential_decay_length_penalty",
  "suppress_tokens",
  "begin_suppress_tokens",
]);

/** A field accepted only at values that leave the computation as ps3 runs it. */
interface OffField {
  /** Whether the value is off. */
  ok: (v: unknown) => boolean;
  /** The accepted values, for the message. */
  want: string;
  /** What a different value would mean. */
  why: string;
}

const isNull = (v: unknown) => v === null;
const isZeroOrNull = (v: unknown) => v === null || v === 0;
const isBool = (v: unknown) => typeof v === "boolean";

/** Vision fields of other variants (`PS3VisionConfig`), each at its off values. */
const VISION_OFF: Readonly<Record<string, OffField>> = {
  radio: { ok: (v) => v === false, want: "false", why: "a C-RADIO trunk is not supported" },
  radio_adapter_mlp_version: { ok: isNull, want: "null", why: "RADIO adapter" },
  radio_adapter_mlp_input_dim: { ok: isNull, want: "null", why: "RADIO adapter" },
  radio_adapter_mlp_hidden_dim: { ok: isNull, want: "null", why: "RADIO adapter" },
  radio_adapter_mlp_output_dim: { ok: isNull, want: "null", why: "RADIO adapter" },
  radio_adapter_mlp_num_inner: { ok: isNull, want: "null", why: "RADIO adapter" },
  drop_path: { ok: isZeroOrNull, want: "null or 0", why: "stochastic depth is not supported" },
  patch_drop: { ok: isZeroOrNull, want: "null or 0", why: "patch dropout is not supported" },
  drop: { ok: (v) => v === 0, want: "0", why: "dropout is not supported" },
  class_token: {
    ok: (v) => v === null || v === false,
    want: "null or false",
    why: "PS3 has no prefix tokens",
  },
  // Used by the package only with radio: true.
  final_norm: { ok: isBool, want: "a boolean", why: "" },
  // Loading timm weights by name, and timm's position resampling: PS3 replaces both.
  pretrained: { ok: isBool, want: "a boolean", why: "" },
  dynamic_img_size: { ok: isBool, want: "a boolean", why: "" },
  // The package's placeholders for VILA (`vision_tower_name = model_name`,
  // `image_size = ps3_scales[-1]`).
  vision_tower_name: { ok: (v) => v === null || typeof v === "string", want: "a name", why: "" },
  image_size: { ok: (v) => v === null || typeof v === "number", want: "a number", why: "" },
};

/** Text fields of other variants (`PS3TextConfig`), each at its off values. */
const TEXT_OFF: Readonly<Record<string, OffField>> = {
  final_ln_after_pool: { ok: (v) => v === false, want: "false", why: "not supported" },
};

function check(
  raw: Record<string, unknown>,
  off: Readonly<Record<string, OffField>>,
  known: readonly string[],
  source: string,
  prefix: string,
  warn: WarnFn,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (HF_METADATA_KEYS.has(k)) continue;
    const f = off[k];
    if (f) {
      if (!f.ok(v)) {
        throw new SyntaxError(
          `Invalid ${source}: ${prefix}${k} is ${JSON.stringify(v)}; ps3 accepts ${f.want}` +
            (f.why ? ` (${f.why})` : ""),
        );
      }
      continue;
    }
    if (known.includes(k)) out[k] = v;
    else unknown.push(k);
  }
  if (unknown.length > 0) {
    warn(
      `${source}: ignoring ${unknown.length} unknown field${unknown.length > 1 ? "s" : ""} ` +
        `(${unknown.map((k) => prefix + k).join(", ")})`,
    );
  }
  return out;
}

/**
 * Brings a Hugging Face `vision_config` (or the top level of a vision-only `config.json`) to
 * the fields of ps3's vision config (see the module notes).
 *
 * @param raw The parsed object.
 * @param source The file, for messages.
 * @param options `prefix` for field paths in messages (e.g. "vision_config."); `warn`.
 * @returns The fields ps3's schema reads.
 * @throws {SyntaxError} For a field at a value that would change the computation.
 */
export function normalizeHfVisionConfig(
  raw: Record<string, unknown>,
  source: string,
  options: { prefix?: string | undefined; warn?: WarnFn | undefined } = {},
): Record<string, unknown> {
  const prefix = options.prefix ?? "", warn = options.warn ?? console.warn;
  const out = check(raw, VISION_OFF, VISION_CONFIG_KEYS, source, prefix, warn);
  if (out.img_size === null) delete out.img_size;
  const name = typeof out.model_name === "string" ? out.model_name : undefined;
  const trunk = name === undefined ? undefined : KNOWN_TRUNKS[name];
  if (trunk && out.patch_size !== undefined) {
    if (out.patch_size !== trunk.patch_size) {
      warn(
        `${source}: ${prefix}patch_size ${out.patch_size} ignored: the trunk ${name} has patch ` +
          `${trunk.patch_size} (the PS3 package writes 14 as a placeholder)`,
      );
    }
    delete out.patch_size;
  }
  return out;
}

/**
 * Brings a Hugging Face `text_config` to the fields of ps3's text config (see the module
 * notes).
 *
 * @param raw The parsed object.
 * @param source The file, for messages.
 * @param options `prefix` for field paths in messages (e.g. "text_config."); `warn`.
 * @returns The fields ps3's schema reads.
 * @throws {SyntaxError} For a field at a value that would change the computation.
 */
export function normalizeHfTextConfig(
  raw: Record<string, unknown>,
  source: string,
  options: { prefix?: string | undefined; warn?: WarnFn | undefined } = {},
): Record<string, unknown> {
  return check(
    raw,
    TEXT_OFF,
    TEXT_CONFIG_KEYS,
    source,
    options.prefix ?? "",
    options.warn ?? console.warn,
  );
}
