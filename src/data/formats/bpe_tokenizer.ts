/**
 * BPE `tokenizer.json` files (Gemma's byte-fallback BPE, SigLIP2's text tower), run by
 * Hugging Face's `@huggingface/tokenizers` (tokenizers.js): normalizers, pre-tokenizers, the
 * BPE model with byte fallback and added tokens as the Python `tokenizers` library does
 * (measured equal on tests/testdata/tokenizers: see README). ps3 adds open_clip's
 * `HFTokenizer` behaviour around it: the reference's text cleaning first, then the
 * post-processor's special tokens kept when truncating to the context length, padding with
 * the pad id.
 *
 * @module
 */

import { Tokenizer as HfTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { frameIds } from "./token_frame.ts";

/** Options of {@linkcode BpeTokenizer.fromJson}. */
export interface BpeTokenizerOptions {
  /** The padding token's text (else `padding.pad_id` of the JSON). */
  padToken?: string | undefined;
  /** The file, for messages. */
  name?: string | undefined;
  /** `tokenizer_config.json` beside the file (added-token and cleanup options), if any. */
  config?: Record<string, unknown> | undefined;
  /** Text cleaning applied before tokenising (ps3: the reference's canonicalisation). */
  clean?: ((text: string) => string) | undefined;
}

interface BpeJson {
  model: { type: string; vocab: Record<string, number> };
  added_tokens?: { id: number; content: string }[];
  padding?: { pad_id?: number } | null;
  post_processor?: {
    type?: string;
    single?: ({ Sequence: unknown } | { SpecialToken: { id: string } })[];
    special_tokens?: Record<string, { ids: number[] }>;
  } | null;
}

/**
 * A BPE tokenizer with the same surface as the Unigram {@linkcode Tokenizer} of tokenizer.ts.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("siglip2/tokenizer.json"); // a BpeTokenizer for BPE files
 * tok.encode("a red boat", 64);
 * ```
 */
export class BpeTokenizer {
  /** Vocabulary size (ids are 0..vocabSize-1, added tokens included). */
  readonly vocabSize: number;
  /** Id used for padding. */
  readonly padId: number;
  /** Id of unknown pieces, or null. */
  readonly unkId: number | null;
  readonly #tok: HfTokenizer;
  readonly #prefix: number[];
  readonly #suffix: number[];
  readonly #clean: (text: string) => string;

  private constructor(
    tok: HfTokenizer,
    sizes: { vocabSize: number; padId: number; unkId: number | null },
    template: { prefix: number[]; suffix: number[] },
    clean: (text: string) => string,
  ) {
    this.#tok = tok;
    this.vocabSize = sizes.vocabSize;
    this.padId = sizes.padId;
    this.unkId = sizes.unkId;
    this.#prefix = template.prefix;
    this.#suffix = template.suffix;
    this.#clean = clean;
  }

  /**
   * Builds a tokenizer from a parsed BPE `tokenizer.json`.
   *
   * @param json The parsed file.
   * @param options Pad token, name, `tokenizer_config.json`, cleaning.
   * @returns The tokenizer.
   * @throws {SyntaxError} For a file tokenizers.js rejects, or no known padding token.
   */
  static fromJson(json: unknown, options: BpeTokenizerOptions = {}): BpeTokenizer {
    const name = options.name ?? "tokenizer.json";
    const j = json as BpeJson;
    if (j?.model?.type !== "BPE" || typeof j.model.vocab !== "object") {
      throw new SyntaxError(`Cannot load tokenizer "${name}": not a BPE tokenizer.json`);
    }
    let tok: HfTokenizer;
    try {
      tok = new HfTokenizer(json as object, options.config ?? {});
    } catch (e) {
      throw new SyntaxError(`Cannot load tokenizer "${name}": ${(e as Error).message}`);
    }
    const ids = new Map<string, number>(Object.entries(j.model.vocab));
    for (const t of j.added_tokens ?? []) ids.set(t.content, t.id);
    let vocabSize = 0;
    for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);
    const padId = options.padToken !== undefined ? ids.get(options.padToken) : j.padding?.pad_id;
    if (padId === undefined) {
      throw new SyntaxError(
        `Cannot load tokenizer "${name}": ` +
          (options.padToken !== undefined
            ? `pad token "${options.padToken}" is not in the vocabulary`
            : 'no padding token (set "padding" in the JSON, put a tokenizer_config.json beside ' +
              "it, or pass padToken)"),
      );
    }
    const unk = (json as { model: { unk_token?: string | null } }).model.unk_token;
    const prefix: number[] = [], suffix: number[] = [];
    const post = j.post_processor;
    if (post) {
      if (post.type !== "TemplateProcessing" || !post.single) {
        throw new SyntaxError(
          `Cannot load tokenizer "${name}": post_processor ${post.type} is not supported ` +
            "(TemplateProcessing only)",
        );
      }
      let seen = false;
      for (const p of post.single) {
        if ("Sequence" in p) {
          seen = true;
          continue;
        }
        const special = post.special_tokens?.[p.SpecialToken.id];
        if (!special) {
          throw new SyntaxError(
            `Cannot load tokenizer "${name}": template token "${p.SpecialToken.id}" is not in ` +
              "special_tokens",
          );
        }
        (seen ? suffix : prefix).push(...special.ids);
      }
    }
    return new BpeTokenizer(
      tok,
      { vocabSize, padId, unkId: unk ? ids.get(unk) ?? null : null },
      { prefix, suffix },
      options.clean ?? ((s) => s),
    );
  }

  /**
   * Token ids of a text as the `tokenizers` library gives them with its post-processor
   * (`Tokenizer.encode(text).ids`), without ps3's cleaning, truncation or padding.
   *
   * @param text The text.
   * @returns The ids.
   */
  rawIds(text: string): number[] {
    return this.#tok.encode(text).ids;
  }

  /**
   * Token ids of a cleaned text, without special tokens or padding.
   *
   * @param text Text as given to {@link encode} (it is cleaned here too).
   * @returns The ids.
   */
  pieces(text: string): number[] {
    return this.#tok.encode(this.#clean(text), { add_special_tokens: false }).ids;
  }

  /**
   * Encodes a caption as open_clip's `HFTokenizer` does: clean, tokenise, add the template's
   * special tokens, truncate to `contextLength` keeping them, pad with the pad id.
   *
   * @param text The caption.
   * @param contextLength Output length (reference: 64).
   * @returns `contextLength` ids.
   */
  encode(text: string, contextLength: number): Int32Array {
    return frameIds(this.pieces(text), {
      prefix: this.#prefix,
      suffix: this.#suffix,
      padId: this.padId,
      contextLength,
    });
  }
}
