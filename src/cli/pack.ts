/**
 * `ps3 pack`: builds paired image and text-box shards from a folder of images and a JSONL of
 * captions and boxes, validating every record.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { packDataset } from "../data/tools/pack.ts";

const USAGE = `Usage: ps3 pack --images <folder> --captions <jsonl> --out <dir> [options]

Each JSONL line: {"image": "name.jpg", "text": [local captions], "box": [[x1,y1,x2,y2], ...],
"global_text": "..."} with boxes in the image's pixels. Bad records are reported and skipped.

Options:
  --images <folder>    Folder the "image" names are relative to (required)
  --captions <jsonl>   Annotations, one JSON object per line (required)
  --out <dir>          Output folder: images/, text_boxes/, index.jsonl, dataset.json (required)
  --shard-size <k>     Samples per shard (default 1000)
  --verify             Decode every image fully (slower; default: headers only)
  --max-pixels <n>     Largest image accepted (default 178956970)
  --strict             Stop at the first bad record (exit code 1)
  --json               Print the report as JSON`;

/**
 * Packs the dataset and prints the report.
 *
 * @param args Command-line arguments after `pack`.
 * @returns Exit code: 0, 1 when a record failed in strict mode or nothing was packed, 2 for
 *   usage errors.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      images: { type: "string" },
      captions: { type: "string" },
      out: { type: "string" },
      "shard-size": { type: "string" },
      verify: { type: "boolean" },
      "max-pixels": { type: "string" },
      strict: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.images || !values.captions || !values.out) {
    console.error(`ps3 pack: --images, --captions and --out are required\n\n${USAGE}`);
    return 2;
  }
  const num = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new TypeError(`Cannot parse --${name} "${v}": not a number`);
    return n;
  };
  const r = await packDataset({ images: values.images, captions: values.captions }, values.out, {
    shardSize: num("shard-size", values["shard-size"]),
    verify: values.verify,
    maxPixels: num("max-pixels", values["max-pixels"]),
    strict: values.strict,
  });
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
  } else {
    const skipped = Object.values(r.skipped).reduce((a, b) => a + b, 0);
    console.log(
      `packed ${r.packed} of ${r.records} records into ${r.shards} shard pairs in ${values.out}`,
    );
    if (r.shards > 0) console.log(`  images ${r.images}\n  texts  ${r.texts}`);
    if (skipped > 0) {
      console.log(`skipped ${skipped} records:`);
      for (const [k, n] of Object.entries(r.skipped)) console.log(`  ${k.padEnd(22)} ${n}`);
    }
    if (Object.keys(r.repairs).length > 0) {
      console.log("fixes the loader will apply (samples kept):");
      for (const [k, n] of Object.entries(r.repairs)) console.log(`  ${k.padEnd(22)} ${n}`);
    }
    if (r.examples.length > 0) {
      console.log("first problems:");
      for (const p of r.examples) {
        console.log(`  line ${p.line} ${p.image ? `(${p.image}) ` : ""}${p.kind}: ${p.message}`);
      }
    }
  }
  return r.packed > 0 ? 0 : 1;
}
