/**
 * `ps3 convert`: training checkpoint -> Hugging Face PS3 folder (streaming, no GPU), the
 * checkpoint names of a model config, and SigLIP -> Hugging Face PS3 folder (the starting
 * point of the reference's training).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { initGpu } from "../gpu/runtime.ts";
import { loadModelConfig } from "../model/config.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { convertCheckpoint, findCheckpoint, listHfKeys } from "../checkpoint/convert.ts";
import { writeHfFolder } from "../checkpoint/hf.ts";
import { formatSiglipReport, initFromSiglip } from "../checkpoint/siglip_init.ts";

const USAGE = `Usage: ps3 convert --checkpoint <folder>|latest [--run <run folder>] --out <folder>
                   [--vision-only] [--tokenizer-name <name>] [--tokenizer <tokenizer.json>]
       ps3 convert --config <model.yaml> --list-keys
       ps3 convert --config <model.yaml> --siglip <file.safetensors> --out <folder>
                   [--seed N] [--vision-only]

--checkpoint: writes the Hugging Face PS3 folder of a training checkpoint as the reference's
  converter does (model.safetensors, config.json, preprocessor_config.json,
  tokenizer_config.json), one tensor at a time without the GPU; "latest" takes the newest
  complete checkpoint under <run folder>/checkpoints. --vision-only keeps vision_model.* and
  writes the vision config at the top level of config.json. The run's tokenizer.json (or
  --tokenizer) is copied in, with special_tokens_map.json, for ps3 encode --prompt.
--list-keys: prints every checkpoint tensor, "<name> [<dims>] float32", in PyTorch's
  state_dict order, without allocating weights.
--siglip: builds the model (fresh initialisation, --seed), copies the SigLIP weights
  (OpenCLIP or timm layout) as the reference's --pretrained webli does, prints what was
  loaded, kept fresh and unused, and writes the Hugging Face folder (uses the GPU).`;

/**
 * Runs the command.
 *
 * @param args Command-line arguments after `convert`.
 * @returns Exit code.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      checkpoint: { type: "string" },
      run: { type: "string" },
      out: { type: "string" },
      "vision-only": { type: "boolean" },
      "tokenizer-name": { type: "string" },
      tokenizer: { type: "string" },
      config: { type: "string" },
      "list-keys": { type: "boolean" },
      siglip: { type: "string" },
      seed: { type: "string", default: "0" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const visionOnly = values["vision-only"] ?? false;
  if (values.config && values["list-keys"]) {
    const config = await loadModelConfig(values.config);
    console.log(listHfKeys(config).join("\n"));
    return 0;
  }
  if (values.config && values.siglip && values.out) {
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(seed)) {
      throw new TypeError(`Cannot use --seed "${values.seed}": it is not an integer`);
    }
    await initGpu();
    const config = await loadModelConfig(values.config);
    const model = new Ps3Clip(config, { seed });
    console.log(formatSiglipReport(await initFromSiglip(model.params, values.siglip)));
    await writeHfFolder(values.out, model.params, config, { visionOnly });
    console.log(`wrote ${values.out}`);
    return 0;
  }
  if (values.checkpoint && values.out) {
    const t0 = performance.now();
    const dir = await findCheckpoint(values.checkpoint, values.run);
    const r = await convertCheckpoint(dir, values.out, {
      visionOnly,
      tokenizerName: values["tokenizer-name"],
      tokenizer: values.tokenizer,
    });
    console.log(
      `converted ${dir} (step ${r.step}, model ${r.config.name}) -> ${values.out}: ` +
        `${r.tensors} tensors, ${fmtBytes(r.bytes)}${visionOnly ? ", vision only" : ""}, ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        (r.tokenizer
          ? `tokenizer from ${r.tokenizer.source} (${r.tokenizer.written.join(", ")})`
          : "no tokenizer copied (the run's was not found; pass --tokenizer <tokenizer.json>)"),
    );
    return 0;
  }
  console.error(USAGE);
  return 2;
}
