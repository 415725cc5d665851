/**
 * Writes a randomly initialised Hugging Face PS3 folder of any configuration without a GPU
 * and without holding the model in memory: each tensor is initialised on the host (the model's
 * own initialisers, in state_dict order) when the writer reaches it. For measuring loading
 * and inference of the large configurations (`ps3 encode` on PS3-1.5K) where no trained
 * weights are at hand.
 *
 * Usage: deno run -A tests/tools/random_hf_folder.ts <config.yaml> <out folder> [F32|F16|BF16]
 *
 * @module
 */

import { join } from "node:path";
import { writeHfConfigFiles } from "../../src/checkpoint/hf.ts";
import { writeSafetensors, type WriteTensor } from "../../src/checkpoint/safetensors.ts";
import { loadModelConfig } from "../../src/model/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { numel } from "../../src/autograd/tensor.ts";

const [configPath, out, dtype = "F32"] = Deno.args;
if (!configPath || !out || !["F32", "F16", "BF16"].includes(dtype)) {
  console.error(
    "Usage: deno run -A tests/tools/random_hf_folder.ts <config.yaml> <out> [F32|F16|BF16]",
  );
  Deno.exit(2);
}
const config = await loadModelConfig(configPath);
await Deno.mkdir(out, { recursive: true });
const tensors: WriteTensor[] = Ps3Clip.paramSpecs(config).map((s) => ({
  name: s.name,
  dtype: dtype as "F32" | "F16" | "BF16",
  shape: [...s.shape],
  data: () => {
    const a = new Float32Array(numel(s.shape));
    s.init(a);
    return a;
  },
}));
await writeSafetensors(join(out, "model.safetensors"), tensors, { metadata: { format: "pt" } });
await writeHfConfigFiles(out, config);
console.log(`wrote ${tensors.length} tensors of ${config.name} (${dtype}) to ${out}/`);
