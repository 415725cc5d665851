/**
 * Builds the inputs of issue 14's check: the golden tiny PS3 folder
 * (`tests/testdata/ps3_golden/ckpt`) with the reference's 1512-px selection ConvNet input, and a
 * training batch of N samples (the golden batch's two samples repeated), so that
 * `ps3 debug-step` meets tensors larger than the storage binding limit (the ConvNet's input and
 * patch matrix grow ~27 MB per sample).
 *
 * ```sh
 * deno run -A tests/tools/big_selection_input.ts --out /tmp/big --batch 8 [--input 1512]
 * deno run -A main.ts debug-step --checkpoint /tmp/big/ckpt --batch /tmp/big/batch.safetensors \
 *   --out /tmp/big/out.safetensors
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  openSafetensors,
  writeSafetensors,
  type WriteTensor,
} from "../../src/checkpoint/safetensors.ts";

const GOLDEN = new URL("../testdata/ps3_golden/", import.meta.url).pathname;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string" },
    batch: { type: "string", default: "8" },
    input: { type: "string", default: "1512" },
  },
});
if (!values.out) {
  throw new Error("Usage: big_selection_input.ts --out <dir> [--batch N] [--input S]");
}
const n = Number(values.batch), size = Number(values.input);
const ckpt = join(values.out, "ckpt");
await Deno.mkdir(ckpt, { recursive: true });
const config = JSON.parse(await Deno.readTextFile(join(GOLDEN, "ckpt/config.json")));
config.vision_config.highres_selection_input_size = size;
await Deno.writeTextFile(join(ckpt, "config.json"), JSON.stringify(config, null, 2) + "\n");
await Deno.copyFile(join(GOLDEN, "ckpt/model.safetensors"), join(ckpt, "model.safetensors"));

const src = await openSafetensors(join(GOLDEN, "batch_train.safetensors"));
const tensors: WriteTensor[] = [];
for (const e of src.entries) {
  const raw = new Uint8Array(await src.readBytes(e.name));
  const per = raw.length / e.shape[0]!;
  const from = e.shape[0]!;
  const data = new Uint8Array(per * n);
  for (let i = 0; i < n; i++) {
    data.set(raw.subarray((i % from) * per, (i % from + 1) * per), i * per);
  }
  tensors.push({ name: e.name, dtype: e.dtype, shape: [n, ...e.shape.slice(1)], data });
}
await writeSafetensors(join(values.out, "batch.safetensors"), tensors);
console.log(
  `${ckpt} (selection input ${size}), ${join(values.out, "batch.safetensors")} (${n} samples)`,
);
