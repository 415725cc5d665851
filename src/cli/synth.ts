/**
 * `ps3 synth`: writes the synthetic shapes dataset (paired image and text-box shards,
 * held-out shards, tokenizer.json, dataset.json) used by the tiny training config and tests.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { writeSynthDataset } from "../data/tools/synth.ts";
import { writeSynthZeroshot } from "../eval/synth_zeroshot.ts";

const USAGE = `Usage: ps3 synth --out <dir> [options]

Writes coloured shapes at known places with local captions, pixel boxes and global captions
as two paired webdatasets (images/, text_boxes/), held-out shards (holdout/), a matching
tokenizer.json and dataset.json (the shard specs to train and evaluate on).

Options:
  --out <dir>          Output folder (required)
  --count <n>          Training samples (default 512)
  --holdout <n>        Held-out samples in separate shards (default 64; 0 for none)
  --size <WxH>         Image size; each image keeps this area with a random aspect ratio
                       unless --fixed-size (default 256x192)
  --fixed-size         Make every image exactly WxH
  --shard-size <k>     Samples per shard (default 64)
  --seed <s>           Seed; the same seed writes identical files (default 0)
  --zeroshot <n>       Also write a zero-shot set of n single-shape images per class
                       ("<colour>_<shape>" folders, templates.txt) to <out>/zeroshot`;

/**
 * Writes the dataset and prints a summary.
 *
 * @param args Command-line arguments after `synth`.
 * @returns Exit code.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: "string" },
      count: { type: "string" },
      holdout: { type: "string" },
      size: { type: "string" },
      "fixed-size": { type: "boolean" },
      "shard-size": { type: "string" },
      seed: { type: "string" },
      zeroshot: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out) {
    console.error(`ps3 synth: --out is required\n\n${USAGE}`);
    return 2;
  }
  const size = /^(\d+)x(\d+)$/.exec(values.size ?? "256x192");
  if (!size) {
    throw new SyntaxError(`Cannot parse --size "${values.size}": expected WxH, e.g. 256x192`);
  }
  const t0 = performance.now();
  const m = await writeSynthDataset(values.out, {
    count: intArg("count", values.count),
    holdout: intArg("holdout", values.holdout),
    width: Number(size[1]),
    height: Number(size[2]),
    fixedSize: values["fixed-size"],
    shardSize: intArg("shard-size", values["shard-size"]),
    seed: intArg("seed", values.seed),
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`wrote ${values.out} in ${secs} s`);
  console.log(`  train:     ${m.train.samples} samples in ${m.train.shards} shard pairs`);
  console.log(`             images ${m.train.images}`);
  console.log(`             texts  ${m.train.texts}`);
  if (m.holdout) {
    console.log(`  holdout:   ${m.holdout.samples} samples in ${m.holdout.shards} shard pairs`);
    console.log(`             images ${m.holdout.images}`);
    console.log(`             texts  ${m.holdout.texts}`);
  }
  console.log(`  tokenizer: ${m.tokenizer}`);
  if (values.zeroshot !== undefined) {
    const z = await writeSynthZeroshot(join(values.out, "zeroshot"), {
      perClass: intArg("zeroshot", values.zeroshot),
      seed: intArg("seed", values.seed),
      width: Number(size[1]),
      height: Number(size[2]),
    });
    console.log(`  zeroshot:  ${z.images} images of ${z.classes} classes in zeroshot/`);
  }
  return 0;
}

function intArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new TypeError(`Cannot parse --${name} "${v}": not an integer`);
  return n;
}
