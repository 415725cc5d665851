/**
 * The device pool across repeated encodings of one image: per encoding the model time, the
 * pool's in-use peak, the most it held (in use + cached free), what it holds after, and the
 * process peak. For checking that inference keeps one pass's buffers, not every pass's
 * (e.g. on `tests/testdata/ps3-1.5k-3block.yaml`, a random-init folder from
 * `tests/tools/random_hf_folder.ts`).
 *
 * Usage: deno run -A tests/tools/encode_memory.ts <model folder> [image] [encodings=2]
 *
 * @module
 */

import { initGpu } from "../../src/gpu/runtime.ts";
import { fmtBytes } from "../../src/gpu/buffer_pool.ts";
import { Ps3Encoder } from "../../src/encode/ps3_encoder.ts";

const [folder, image = "tests/testdata/dock.jpg", times = "2"] = Deno.args;
if (!folder) {
  console.error("Usage: deno run -A tests/tools/encode_memory.ts <model folder> [image] [n]");
  Deno.exit(2);
}
const rt = await initGpu();
const encoder = await Ps3Encoder.load(folder, { visionOnly: true });
const bytes = await Deno.readFile(image);
for (let i = 1; i <= Number(times); i++) {
  const { summary } = await encoder.encode(bytes, { file: image });
  const pool = rt.memory();
  const m = summary.memory;
  console.log(
    `encoding ${i}: model ${(summary.ms.model / 1000).toFixed(1)} s, ${summary.tokens} tokens; ` +
      `pool in use at most ${fmtBytes(m.devicePeak)}, held at most ` +
      `${fmtBytes(pool.peakAllocatedBytes)}, holds ${fmtBytes(m.devicePool)} after; ` +
      `process peak ${m.processPeak === null ? "unknown" : fmtBytes(m.processPeak)}`,
  );
}
