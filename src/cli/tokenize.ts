/**
 * `ps3 tokenize --tokenizer <tokenizer.json> [--context-length N] [--pad-token T]`: reads
 * lines from standard input and prints each line's token ids as a JSON array, one line per
 * input line (a debugging aid, and a way to check the tokenizer against another
 * implementation).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadTokenizer } from "../data/formats/tokenizer.ts";

const USAGE = `Usage: ps3 tokenize --tokenizer <tokenizer.json> [--context-length N] [--pad-token T]

Reads lines from standard input and prints each line's ids as a JSON array, cleaned, with
</s> appended, truncated and padded to the context length (default 64) as in training.`;

/**
 * Tokenises standard input line by line.
 *
 * @param args Command-line arguments after `tokenize`.
 * @returns Exit code (2 for bad arguments).
 *
 * @example
 * ```ts
 * // echo "a boat at the dock" | ps3 tokenize --tokenizer tokenizer.json --context-length 8
 * await run(["--tokenizer", "tokenizer.json", "--context-length", "8"]);
 * ```
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      tokenizer: { type: "string" },
      "context-length": { type: "string", default: "64" },
      "pad-token": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.tokenizer) {
    console.error(`ps3 tokenize: --tokenizer is required\n\n${USAGE}`);
    return 2;
  }
  const contextLength = Number(values["context-length"]);
  if (!Number.isInteger(contextLength) || contextLength < 1) {
    console.error(
      `ps3 tokenize: --context-length "${values["context-length"]}" is not a positive integer`,
    );
    return 2;
  }
  const tokenizer = await loadTokenizer(values.tokenizer, { padToken: values["pad-token"] });
  const out: string[] = [];
  for await (const line of readLines(Deno.stdin.readable)) {
    out.push(JSON.stringify(Array.from(tokenizer.encode(line, contextLength))));
    if (out.length >= 256) {
      console.log(out.join("\n"));
      out.length = 0;
    }
  }
  if (out.length > 0) console.log(out.join("\n"));
  return 0;
}

/** Lines of a byte stream (UTF-8), without their "\n" or "\r\n"; a last unterminated line
 * counts. */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const p of parts) yield p.endsWith("\r") ? p.slice(0, -1) : p;
  }
  if (rest.length > 0) yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
}
