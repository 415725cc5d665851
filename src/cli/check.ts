/**
 * `ps3 check`: validates a dataset without training and prints a report (counts, problems by
 * kind, first examples).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkDataset } from "../data/tools/check.ts";

const USAGE = `Usage: ps3 check <image shards> [<text-box shards>] [options]

Reads every sample through the training path (decode, resize, annotation and box checks,
caption cleaning, tokenization). Give two shard lists for the paired layout (the reference's
images + text_boxes webdatasets) or one for the single layout (key.jpg + key.json).
Shard lists use brace notation: "data/images/image_{00000..00099}.tar".

Options:
  --tokenizer <file>   tokenizer.json to tokenize with (default: captions are cleaned and
                       tokenized with a stand-in; the vocabulary is not checked)
  --workers <n>        Decode workers (default min(4, cores))
  --image-size <s>     Resize side used while checking (default 64)
  --max-pixels <n>     Largest image accepted (default 178956970)
  --examples <n>       Problems to show (default 10)
  --strict             Exit with code 1 when any problem is found
  --json               Print the report as JSON`;

/**
 * Checks the dataset and prints the report.
 *
 * @param args Command-line arguments after `check`.
 * @returns Exit code: 0, or 1 with `--strict` when problems exist, 2 for usage errors.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tokenizer: { type: "string" },
      workers: { type: "string" },
      "image-size": { type: "string" },
      "max-pixels": { type: "string" },
      examples: { type: "string" },
      strict: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 2) {
    console.error(`ps3 check: expected one or two shard lists\n\n${USAGE}`);
    return 2;
  }
  const num = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new TypeError(`Cannot parse --${name} "${v}": not an integer`);
    return n;
  };
  const [images, texts] = positionals as [string, string | undefined];
  let last = performance.now();
  const r = await checkDataset(images, {
    texts,
    tokenizer: values.tokenizer,
    workers: num("workers", values.workers),
    imageSize: num("image-size", values["image-size"]),
    maxPixels: num("max-pixels", values["max-pixels"]),
    keepExamples: num("examples", values.examples),
    onProgress: (s) => {
      if (values.json || performance.now() - last < 5000) return;
      last = performance.now();
      console.error(`  ... ${s.yielded} usable samples so far`);
    },
  });
  const skipped = Object.values(r.skipped).reduce((a, b) => a + b, 0);
  const problems = Object.values(r.problems).reduce((a, b) => a + b, 0);
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    const layout = texts === undefined ? "single layout" : "paired layout";
    console.log(`shards:   ${r.shards} (${layout})`);
    console.log(`samples:  ${r.found} found, ${r.usable} usable, ${skipped} skipped`);
    if (!r.tokenizerChecked) {
      console.log("tokens:   not checked against a vocabulary (no --tokenizer)");
    }
    const table = (title: string, t: Record<string, number>) => {
      const rows = Object.entries(t).sort((a, b) => b[1] - a[1]);
      if (rows.length === 0) return;
      console.log(title);
      for (const [k, n] of rows) console.log(`  ${k.padEnd(22)} ${n}`);
    };
    table("skipped samples by reason:", r.skipped);
    table("problems (shards, key mismatches):", r.problems);
    table("fixes applied (samples kept):", r.repaired);
    if (r.examples.length > 0) {
      console.log("first examples:");
      for (const e of r.examples) {
        console.log(`  ${e.kind}: ${e.file}${e.key ? ` key "${e.key}"` : ""}\n    ${e.message}`);
      }
    }
    console.log(skipped + problems === 0 ? "no problems found" : "problems found");
  }
  return values.strict && skipped + problems > 0 ? 1 : 0;
}
