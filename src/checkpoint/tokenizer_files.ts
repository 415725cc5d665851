/**
 * The tokenizer files of a converted Hugging Face folder: `tokenizer.json` copied from the
 * run's tokenizer, and `special_tokens_map.json` (copied from beside it, else written with
 * the pad token the run used), so that `ps3 encode --prompt` finds `<folder>/tokenizer.json`
 * and its padding on every folder ps3 writes. `tokenizer_config.json` stays the PS3
 * package's (`PS3Tokenizer` init arguments, as the reference converter writes it); the run's
 * own `tokenizer_config.json` would replace those, so it is not copied.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";
import { loadTokenizer } from "../data/formats/tokenizer.ts";

/** Files written by {@linkcode copyTokenizerFiles}. */
export interface TokenizerFilesResult {
  /** The tokenizer.json copied. */
  source: string;
  /** Names of the files written into the folder. */
  written: string[];
}

/**
 * The tokenizer a run used, from its run config (as saved in a checkpoint's `state.json`):
 * `data.tokenizer`, else the synthetic dataset's (`data.synthesize.out` + its manifest).
 * Relative paths are taken from `base` (the training's working directory).
 *
 * @param runConfig The run config as given.
 * @param base Folder relative paths start from (default: the current directory).
 * @returns The tokenizer.json path, or null when the config names none or it is gone.
 */
export async function runTokenizerPath(
  runConfig: unknown,
  base: string = Deno.cwd(),
): Promise<string | null> {
  const data = (runConfig as { data?: Record<string, unknown> } | null)?.data;
  if (!data) return null;
  const abs = (p: string) => (isAbsolute(p) ? p : join(base, p));
  let path: string | null = null;
  if (typeof data.tokenizer === "string") path = abs(data.tokenizer);
  else {
    const out = (data.synthesize as { out?: unknown } | undefined)?.out;
    if (typeof out === "string") {
      try {
        const m = JSON.parse(await Deno.readTextFile(join(abs(out), "dataset.json")));
        if (typeof m.tokenizer === "string") path = join(abs(out), m.tokenizer);
      } catch {
        return null;
      }
    }
  }
  if (path === null) return null;
  try {
    return (await Deno.stat(path)).isFile ? path : null;
  } catch {
    return null;
  }
}

/**
 * Copies a tokenizer into a Hugging Face folder (see the module notes). The tokenizer is
 * loaded first, so a file ps3 cannot read is reported rather than copied.
 *
 * @param tokenizerJson The run's tokenizer.json.
 * @param folder The Hugging Face folder.
 * @returns What was written.
 * @throws {Error} When the tokenizer cannot be loaded, naming the file.
 */
export async function copyTokenizerFiles(
  tokenizerJson: string,
  folder: string,
): Promise<TokenizerFilesResult> {
  const tok = await loadTokenizer(tokenizerJson);
  const written = ["tokenizer.json"];
  await writeFileAtomic(join(folder, "tokenizer.json"), await Deno.readFile(tokenizerJson));
  const side = join(dirname(tokenizerJson), "special_tokens_map.json");
  let map: Uint8Array | null = null;
  try {
    map = await Deno.readFile(side);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (map === null) {
    const json = JSON.parse(await Deno.readTextFile(tokenizerJson));
    const pad = padTokenText(json, tok.padId);
    if (pad !== null) {
      map = new TextEncoder().encode(JSON.stringify({ pad_token: pad }, null, 2) + "\n");
    }
  }
  if (map !== null) {
    await writeFileAtomic(join(folder, "special_tokens_map.json"), map);
    written.push("special_tokens_map.json");
  }
  return { source: tokenizerJson, written };
}

/** The text of a token id in a tokenizer.json (added tokens, then the model's vocabulary). */
function padTokenText(json: Record<string, unknown>, id: number): string | null {
  for (const t of (json.added_tokens as { id: number; content: string }[] | undefined) ?? []) {
    if (t.id === id) return t.content;
  }
  const vocab = (json.model as { vocab?: unknown } | undefined)?.vocab;
  if (Array.isArray(vocab)) {
    const entry = vocab[id];
    return Array.isArray(entry) && typeof entry[0] === "string" ? entry[0] : null;
  }
  if (vocab && typeof vocab === "object") {
    for (const [k, v] of Object.entries(vocab)) if (v === id) return k;
  }
  return null;
}
