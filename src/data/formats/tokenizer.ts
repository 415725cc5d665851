/**
 * The SigLIP text tokenizer: a SentencePiece Unigram model read from a Hugging Face
 * `tokenizer.json` (T5-style, as `timm/ViT-B-16-SigLIP` ships it, vocab 32000), with the
 * reference's text cleaning in front. This reproduces open_clip's
 * `HFTokenizer(clean="canonicalize")` call: clean the text, encode it, append `</s>` (the
 * post-processor's template), truncate to `contextLength` keeping the `</s>` last (the Hugging
 * Face truncation reserves room for the template's special tokens), pad with the pad id.
 *
 * Cleaning (`basic_clean` then `canonicalize_text` in the reference): HTML entities are
 * unescaped twice, curly quotes straightened, text NFC-normalised and stripped (the parts of
 * ftfy's `fix_text` that matter here; its mojibake repair is not reproduced); then "_"
 * becomes a space, ASCII punctuation (Python's `string.punctuation`) is removed, text is
 * lower-cased and whitespace collapsed.
 *
 * Supported `tokenizer.json` pieces: normalizers `Precompiled` (the SentencePiece charsmap,
 * applied as the `tokenizers` library does: precompiled.ts; Unicode NFKC without one), `NFKC`, `NFC`,
 * `NFD`, `NFKD`, `Lowercase`, `Strip`, `Replace`, `Prepend`, `Sequence`; pre-tokenizers
 * `Metaspace` (both the `add_prefix_space` and the `prepend_scheme` forms) , `WhitespaceSplit`,
 * `Sequence`; model `Unigram` (Viterbi as in `tokenizers`' `encode_optimized`, unknown
 * characters scored `min_score - 10`, consecutive unknowns fused into one `<unk>`); post-
 * processor `TemplateProcessing` (single-sequence template) or none. Added tokens are not
 * matched in the input: after canonicalisation (no `<`, `>`, `/`) the special tokens of T5
 * vocabularies cannot occur. Anything else is rejected with a SyntaxError when loading.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { z } from "npm:zod@4.6.7";
import { parseCharsmap, precompiledNormalizer } from "./precompiled.ts";
import { BpeTokenizer } from "./bpe_tokenizer.ts";
import { frameIds } from "./token_frame.ts";

/** Python's `string.punctuation`. */
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

/** Characters Python's `str.split()` treats as whitespace (U+001C..U+001F included). */
// deno-lint-ignore no-control-regex
const PY_WHITESPACE = new RegExp(
  "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+",
  "g",
);

/** Named HTML entities worth unescaping in captions (the rest of html5's table is rare). */
const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\xa0",
  ndash: "\u2013",
  mdash: "\u2014",
  lsquo: "\u2018",
  rsquo: "\u2019",
  ldquo: "\u201c",
  rdquo: "\u201d",
  hellip: "\u2026",
  deg: "\xb0",
  times: "\xd7",
  copy: "\xa9",
  reg: "\xae",
  trade: "\u2122",
};

function unescapeHtml(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (m, body: string) => {
    if (body[0] === "#") {
      const code = body[1] === "x" || body[1] === "X"
        ? parseInt(body.slice(2), 16)
        : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff)
        ? String.fromCodePoint(code)
        : "\ufffd";
    }
    return ENTITIES[body] ?? m;
  });
}

/**
 * The reference's `basic_clean`: ftfy's fixes that matter for captions (NFC, straight quotes),
 * HTML unescaping twice, stripping.
 *
 * @param text Raw text.
 * @returns Cleaned text.
 *
 * @example
 * ```ts
 * basicClean("  Tom &amp;amp; Jerry\u2019s  "); // "Tom & Jerry's"
 * ```
 */
export function basicClean(text: string): string {
  const t = text.normalize("NFC").replace(/[\u02bc\u2018-\u201b]/g, "'").replace(
    /[\u201c-\u201f]/g,
    '"',
  );
  return unescapeHtml(unescapeHtml(t)).trim();
}

/**
 * The reference's `canonicalize_text`: "_" to space, ASCII punctuation removed, lower case,
 * whitespace collapsed.
 *
 * @param text Text (usually after {@link basicClean}).
 * @returns Canonical text.
 *
 * @example
 * ```ts
 * canonicalizeText("A red_boat,  at the DOCK!"); // "a red boat at the dock"
 * ```
 */
export function canonicalizeText(text: string): string {
  return text.replaceAll("_", " ").replace(PUNCTUATION, "").toLowerCase().replace(
    PY_WHITESPACE,
    " ",
  ).trim();
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json schema

/** A `normalizer` entry of `tokenizer.json` (the supported kinds). */
export type NormalizerJson =
  | { type: "NFKC" | "NFC" | "NFD" | "NFKD" | "Lowercase" }
  | { type: "Precompiled"; precompiled_charsmap?: string | null | undefined }
  | { type: "Strip"; strip_left?: boolean | undefined; strip_right?: boolean | undefined }
  | { type: "Replace"; pattern: { String: string } | { Regex: string }; content: string }
  | { type: "Prepend"; prepend: string }
  | { type: "Sequence"; normalizers: NormalizerJson[] };

const Normalizer: z.ZodType<NormalizerJson> = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({ type: z.enum(["NFKC", "NFC", "NFD", "NFKD", "Lowercase"]) }),
    z.object({ type: z.literal("Precompiled"), precompiled_charsmap: z.string().nullish() }),
    z.object({
      type: z.literal("Strip"),
      strip_left: z.boolean().optional(),
      strip_right: z.boolean().optional(),
    }),
    z.object({
      type: z.literal("Replace"),
      pattern: z.union([z.object({ String: z.string() }), z.object({ Regex: z.string() })]),
      content: z.string(),
    }),
    z.object({ type: z.literal("Prepend"), prepend: z.string() }),
    z.object({ type: z.literal("Sequence"), normalizers: z.array(Normalizer) }),
  ])
);

/** A `pre_tokenizer` entry of `tokenizer.json` (the supported kinds). */
export type PreTokenizerJson =
  | {
    type: "Metaspace";
    replacement: string;
    prepend_scheme?: "always" | "first" | "never" | undefined;
    add_prefix_space?: boolean | undefined;
    split?: boolean | undefined;
  }
  | { type: "WhitespaceSplit" }
  | { type: "Sequence"; pretokenizers: PreTokenizerJson[] };

const PreTokenizer: z.ZodType<PreTokenizerJson> = z.lazy(() =>
  z.discriminatedUnion("type", [
    z.object({
      type: z.literal("Metaspace"),
      replacement: z.string(),
      prepend_scheme: z.enum(["always", "first", "never"]).optional(),
      add_prefix_space: z.boolean().optional(),
      split: z.boolean().optional(),
    }),
    z.object({ type: z.literal("WhitespaceSplit") }),
    z.object({ type: z.literal("Sequence"), pretokenizers: z.array(PreTokenizer) }),
  ])
);

/** A piece of the post-processor's single-sequence template: the input or a special token. */
export type TemplatePieceJson = { Sequence: { id: "A" } } | { SpecialToken: { id: string } };

/** Parsed `tokenizer.json`, as {@link Tokenizer.fromJson} accepts it (the fields ps3 reads). */
export interface TokenizerJsonData {
  /** Text normalisation, or null for none. */
  normalizer: NormalizerJson | null;
  /** Splitting into words, or null for none. */
  pre_tokenizer: PreTokenizerJson | null;
  /** The template that appends special tokens (e.g. `</s>`), or null for none. */
  post_processor: {
    /** Only "TemplateProcessing" is supported. */
    type: "TemplateProcessing";
    /** The single-sequence template. */
    single: TemplatePieceJson[];
    /** Ids of the template's special tokens, by token. */
    special_tokens: Record<string, { ids: number[] }>;
  } | null;
  /** Padding settings (other keys kept as given). */
  padding?: { pad_id: number; [key: string]: unknown } | null | undefined;
  /** Added (special) tokens (other keys kept as given). */
  added_tokens?: { id: number; content: string; [key: string]: unknown }[] | undefined;
  /** The Unigram model. */
  model: {
    /** Only "Unigram" is supported. */
    type: "Unigram";
    /** Id of the unknown piece, or null. */
    unk_id: number | null;
    /** Pieces and their log-probability scores, by id. */
    vocab: [string, number][];
    /** Byte fallback: unsupported, false when given. */
    byte_fallback?: false | undefined;
  };
}

const TemplatePiece: z.ZodType<TemplatePieceJson> = z.union([
  z.object({ Sequence: z.object({ id: z.literal("A") }) }),
  z.object({ SpecialToken: z.object({ id: z.string() }) }),
]);

const TokenizerJson: z.ZodType<TokenizerJsonData> = z.object({
  normalizer: Normalizer.nullable(),
  pre_tokenizer: PreTokenizer.nullable(),
  post_processor: z.object({
    type: z.literal("TemplateProcessing"),
    single: z.array(TemplatePiece),
    special_tokens: z.record(z.string(), z.object({ ids: z.array(z.number().int()) })),
  }).nullable(),
  padding: z.object({ pad_id: z.number().int() }).loose().nullish(),
  added_tokens: z.array(z.object({ id: z.number().int(), content: z.string() }).loose())
    .optional(),
  model: z.object({
    type: z.literal("Unigram"),
    unk_id: z.number().int().nullable(),
    vocab: z.array(z.tuple([z.string(), z.number()])).min(1),
    byte_fallback: z.literal(false).optional(),
  }),
});

/** Options of {@link Tokenizer.fromJson} and {@link loadTokenizer}. */
export interface TokenizerOptions {
  /**
   * The padding token (its text, e.g. `"</s>"`). Default: `padding.pad_id` of the JSON, else
   * the `pad_token` of a `tokenizer_config.json` or `special_tokens_map.json` beside it
   * (for `timm/ViT-B-16-SigLIP` that is `"</s>"`, id 1), else an error.
   */
  padToken?: string | undefined;
  /** Name used in error messages (the file path). */
  name?: string | undefined;
}

/** A pre-tokenized piece: its text and whether it starts the input. */
interface Piece {
  text: string;
  first: boolean;
}

/**
 * A Unigram SentencePiece tokenizer with the reference's cleaning.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("tokenizer.json");
 * tok.encode("A red boat.", 64); // Int32Array of 64 ids ending in pad ids
 * ```
 */
export class Tokenizer {
  /** Vocabulary size (ids are 0..vocabSize-1). */
  readonly vocabSize: number;
  /** Id used for padding. */
  readonly padId: number;
  /** Id of unknown pieces, or null when the model has none. */
  readonly unkId: number | null;
  readonly #pieces: Map<string, number>;
  readonly #scores: Float64Array;
  readonly #maxPieceLength: number;
  readonly #unkScore: number;
  readonly #normalize: (s: string) => string;
  readonly #preTokenize: (s: string) => Piece[];
  readonly #suffix: number[];
  readonly #prefix: number[];

  private constructor(json: TokenizerJsonData, padId: number) {
    const vocab = json.model.vocab;
    this.vocabSize = vocab.length;
    this.padId = padId;
    this.unkId = json.model.unk_id;
    this.#pieces = new Map();
    this.#scores = new Float64Array(vocab.length);
    let maxLen = 0;
    let minScore = Infinity;
    vocab.forEach(([piece, score], id) => {
      this.#pieces.set(piece, id);
      this.#scores[id] = score;
      maxLen = Math.max(maxLen, [...piece].length);
      minScore = Math.min(minScore, score);
    });
    this.#maxPieceLength = maxLen;
    this.#unkScore = minScore - 10;
    this.#normalize = normalizerOf(json.normalizer);
    this.#preTokenize = preTokenizerOf(json.pre_tokenizer);
    this.#prefix = [];
    this.#suffix = [];
    const post = json.post_processor;
    if (post) {
      let seen = false;
      for (const p of post.single) {
        if ("Sequence" in p) {
          seen = true;
          continue;
        }
        const special = post.special_tokens[p.SpecialToken.id];
        if (!special) {
          throw new SyntaxError(`Template token "${p.SpecialToken.id}" is not in special_tokens`);
        }
        (seen ? this.#suffix : this.#prefix).push(...special.ids);
      }
    }
  }

  /**
   * Builds a tokenizer from a parsed `tokenizer.json`.
   *
   * @param json The parsed file.
   * @param options The padding token and a name for errors.
   * @returns The tokenizer.
   * @throws {SyntaxError} For unsupported or malformed parts, or no known padding token.
   *
   * @example
   * ```ts
   * const tok = Tokenizer.fromJson(JSON.parse(text), { padToken: "</s>" });
   * ```
   */
  static fromJson(json: unknown, options: TokenizerOptions = {}): Tokenizer {
    const name = options.name ?? "tokenizer.json";
    const r = TokenizerJson.safeParse(json);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new SyntaxError(
        `Cannot load tokenizer "${name}": field "${issue.path.join(".")}" is unsupported or ` +
          `malformed (${issue.message})`,
      );
    }
    const data = r.data;
    let padId: number | undefined;
    if (options.padToken !== undefined) {
      padId = tokenId(data, options.padToken);
      if (padId === undefined) {
        throw new SyntaxError(
          `Cannot load tokenizer "${name}": pad token "${options.padToken}" is not in the vocabulary`,
        );
      }
    } else {
      padId = data.padding?.pad_id;
    }
    if (padId === undefined) {
      throw new SyntaxError(
        `Cannot load tokenizer "${name}": no padding token (set "padding" in the JSON, ` +
          `put a tokenizer_config.json beside it, or pass padToken)`,
      );
    }
    if (!(padId >= 0 && padId < data.model.vocab.length)) {
      throw new SyntaxError(`Cannot load tokenizer "${name}": pad id ${padId} is out of range`);
    }
    const unk = data.model.unk_id;
    if (unk !== null && !(unk >= 0 && unk < data.model.vocab.length)) {
      throw new SyntaxError(`Cannot load tokenizer "${name}": unk_id ${unk} is out of range`);
    }
    return new Tokenizer(data, padId);
  }

  /**
   * Token ids of a text as the `tokenizers` library gives them with its post-processor
   * (`Tokenizer.encode(text).ids`): no cleaning, truncation or padding.
   *
   * @param text The text.
   * @returns The ids.
   */
  rawIds(text: string): number[] {
    const ids: number[] = [...this.#prefix];
    for (const piece of this.#preTokenize(this.#normalize(text))) this.#viterbi(piece.text, ids);
    ids.push(...this.#suffix);
    return ids;
  }

  /**
   * Token ids of a cleaned, normalised text, without special tokens or padding.
   *
   * @param text Text as given to {@link encode} (it is cleaned here too).
   * @returns The ids.
   */
  pieces(text: string): number[] {
    const normalized = this.#normalize(canonicalizeText(basicClean(text)));
    const ids: number[] = [];
    for (const piece of this.#preTokenize(normalized)) this.#viterbi(piece.text, ids);
    return ids;
  }

  /**
   * Encodes a caption as the reference does: clean, tokenise, add the template's special
   * tokens (`</s>`), truncate to `contextLength` keeping them, pad with the pad id.
   *
   * @param text The caption.
   * @param contextLength Output length (reference: 64).
   * @returns `contextLength` ids.
   *
   * @example
   * ```ts
   * tok.encode("a boat", 8); // e.g. [9, 710, 1, 1, 1, 1, 1, 1]
   * ```
   */
  encode(text: string, contextLength: number): Int32Array {
    return frameIds(this.pieces(text), {
      prefix: this.#prefix,
      suffix: this.#suffix,
      padId: this.padId,
      contextLength,
    });
  }

  /** Viterbi over one pre-tokenized piece (tokenizers' `Unigram::encode_optimized`). */
  #viterbi(text: string, out: number[]): void {
    const chars = [...text];
    const n = chars.length;
    if (n === 0) return;
    const score = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const id = new Int32Array(n + 1);
    for (let start = 0; start < n; start++) {
      const base = score[start]!;
      let single = false;
      let piece = "";
      for (let len = 1; len <= this.#maxPieceLength && start + len <= n; len++) {
        piece += chars[start + len - 1];
        const pid = this.#pieces.get(piece);
        if (pid === undefined) continue;
        const end = start + len;
        const s = base + this.#scores[pid]!;
        if (from[end] === -1 || s > score[end]!) {
          score[end] = s;
          from[end] = start;
          id[end] = pid;
        }
        if (len === 1) single = true;
      }
      if (!single) {
        if (this.unkId === null) {
          throw new RangeError(
            `Cannot tokenise "${chars[start]}": not in the vocabulary and the model has no unk_id`,
          );
        }
        const end = start + 1;
        const s = base + this.#unkScore;
        if (from[end] === -1 || s > score[end]!) {
          score[end] = s;
          from[end] = start;
          id[end] = this.unkId;
        }
      }
    }
    const rev: number[] = [];
    for (let end = n; end > 0; end = from[end]!) {
      const t = id[end]!;
      // Consecutive unknown pieces fuse into one.
      if (!(t === this.unkId && rev[rev.length - 1] === this.unkId)) rev.push(t);
    }
    for (let i = rev.length - 1; i >= 0; i--) out.push(rev[i]!);
  }
}

function tokenId(data: TokenizerJsonData, token: string): number | undefined {
  const added = data.added_tokens?.find((t) => t.content === token);
  if (added) return added.id;
  const i = data.model.vocab.findIndex(([p]) => p === token);
  return i >= 0 ? i : undefined;
}

function normalizerOf(n: NormalizerJson | null): (s: string) => string {
  if (n === null) return (s) => s;
  switch (n.type) {
    case "Precompiled": {
      const map = n.precompiled_charsmap ? parseCharsmap(n.precompiled_charsmap) : null;
      if (map) return precompiledNormalizer(map);
      return (s) => s.normalize("NFKC");
    }
    case "NFKC":
      return (s) => s.normalize("NFKC");
    case "NFC":
    case "NFD":
    case "NFKD": {
      const form = n.type;
      return (s) => s.normalize(form);
    }
    case "Lowercase":
      return (s) => s.toLowerCase();
    case "Strip": {
      const left = n.strip_left ?? true;
      const right = n.strip_right ?? true;
      return (s) => {
        let t = s;
        if (left) t = t.trimStart();
        if (right) t = t.trimEnd();
        return t;
      };
    }
    case "Replace": {
      const re = "String" in n.pattern
        ? new RegExp(n.pattern.String.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu")
        : new RegExp(n.pattern.Regex, "gu");
      const content = n.content;
      return (s) => s.replace(re, () => content);
    }
    case "Prepend": {
      const p = n.prepend;
      return (s) => (s.length > 0 ? p + s : s);
    }
    case "Sequence": {
      const steps = n.normalizers.map(normalizerOf);
      return (s) => steps.reduce((t, f) => f(t), s);
    }
  }
}

function preTokenizerOf(p: PreTokenizerJson | null): (s: string) => Piece[] {
  if (p === null) return (s) => [{ text: s, first: true }];
  switch (p.type) {
    case "WhitespaceSplit":
      return (s) => splitOn(s, /\s+/gu);
    case "Metaspace": {
      const rep = p.replacement;
      const scheme = p.prepend_scheme ?? (p.add_prefix_space === false ? "never" : "always");
      const split = p.split ?? true;
      return (s) => {
        let t = s.replaceAll(" ", rep);
        const first = t.length > 0;
        if (first && !t.startsWith(rep) && scheme !== "never") t = rep + t;
        if (!split) return [{ text: t, first: true }];
        const out: Piece[] = [];
        let cur = "";
        for (const ch of t) {
          if (ch === rep && cur.length > 0) {
            out.push({ text: cur, first: out.length === 0 });
            cur = "";
          }
          cur += ch;
        }
        if (cur.length > 0) out.push({ text: cur, first: out.length === 0 });
        return out;
      };
    }
    case "Sequence": {
      const steps = p.pretokenizers;
      return (s) => {
        let pieces: Piece[] = [{ text: s, first: true }];
        for (const step of steps) {
          pieces = pieces.flatMap((piece) => applyWithOffset(step, piece));
        }
        return pieces;
      };
    }
  }
}

/** Applies a pre-tokenizer to a piece that may not start the input ("first" prepend rule). */
function applyWithOffset(step: PreTokenizerJson, piece: Piece): Piece[] {
  if (step.type === "Metaspace" && step.prepend_scheme === "first" && !piece.first) {
    return preTokenizerOf({ ...step, prepend_scheme: "never" })(piece.text).map((p) => ({
      text: p.text,
      first: false,
    }));
  }
  return preTokenizerOf(step)(piece.text).map((p) => ({
    text: p.text,
    first: piece.first && p.first,
  }));
}

function splitOn(s: string, re: RegExp): Piece[] {
  return s.split(re).filter((t) => t.length > 0).map((text, i) => ({ text, first: i === 0 }));
}

/**
 * Loads a tokenizer from a Hugging Face `tokenizer.json`. The padding token comes from the
 * options, the JSON's `padding`, or a `tokenizer_config.json` / `special_tokens_map.json`
 * in the same folder, in that order. A Unigram file gives a {@linkcode Tokenizer}, a BPE
 * file (Gemma / SigLIP2) a {@linkcode BpeTokenizer} (run by `@huggingface/tokenizers`).
 *
 * @param path Path of `tokenizer.json`.
 * @param options The padding token.
 * @returns The tokenizer.
 * @throws {SyntaxError} For malformed or unsupported files.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("models/siglip/tokenizer.json");
 * tok.encode("a boat at the dock", 64);
 * ```
 */
export async function loadTokenizer(
  path: string,
  options: TokenizerOptions = {},
): Promise<AnyTokenizer> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new SyntaxError(`Cannot load tokenizer "${path}": not JSON (${e.message})`);
    }
    throw e;
  }
  let padToken = options.padToken;
  const hasPadding = typeof json === "object" && json !== null &&
    (json as { padding?: unknown }).padding != null;
  if (padToken === undefined && !hasPadding) {
    for (const side of ["tokenizer_config.json", "special_tokens_map.json"]) {
      padToken = await sidePadToken(join(dirname(path), side));
      if (padToken !== undefined) break;
    }
  }
  const name = options.name ?? path;
  if ((json as { model?: { type?: unknown } } | null)?.model?.type === "BPE") {
    const config = await readSideJson(join(dirname(path), "tokenizer_config.json"));
    return BpeTokenizer.fromJson(json, {
      padToken,
      name,
      config,
      clean: (t) => canonicalizeText(basicClean(t)),
    });
  }
  return Tokenizer.fromJson(json, { padToken, name });
}

/** A Unigram ({@linkcode Tokenizer}) or BPE ({@linkcode BpeTokenizer}) tokenizer. */
export type AnyTokenizer = Tokenizer | BpeTokenizer;

async function readSideJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new SyntaxError(`Cannot read "${path}": ${(e as Error).message}`);
  }
}

async function sidePadToken(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot read "${path}": not JSON (${(e as Error).message})`);
  }
  const pad = (cfg as { pad_token?: unknown } | null)?.pad_token;
  if (typeof pad === "string") return pad;
  if (
    typeof pad === "object" && pad !== null &&
    typeof (pad as { content?: unknown }).content === "string"
  ) {
    return (pad as { content: string }).content;
  }
  return undefined;
}
