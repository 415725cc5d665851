/**
 * Peak device memory of one training step in f32 and f16 activations, side by side (issue
 * 14): the buffer pool's peak during forward, loss and backward of the bench's step
 * configurations (`src/bench/step.ts`), the activation part (peak minus the parameters,
 * gradients and batch held before the step) and its f16 / f32 ratio.
 *
 * ```sh
 * deno run -A tests/tools/step_memory.ts eq-tiny tiny
 * ```
 *
 * @module
 */

import { initGpu } from "../../src/gpu/runtime.ts";
import { stepConfigs, stepPeakMemory } from "../../src/bench/step.ts";

const rt = await initGpu();
const names = Deno.args.length > 0 ? Deno.args : ["eq-tiny"];
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
console.log(`adapter: ${rt.info.description}`);
console.log("config    | f32 peak / act. MiB | f16 peak / act. MiB | activation ratio f16/f32");
for (const config of stepConfigs(names)) {
  const [a, b] = [await stepPeakMemory(config, "f32"), await stepPeakMemory(config, "f16")];
  const actA = a.peakBytes - a.baseBytes, actB = b.peakBytes - b.baseBytes;
  console.log(
    `${config.name.padEnd(9)} | ${mib(a.peakBytes)} / ${mib(actA)} | ` +
      `${mib(b.peakBytes)} / ${mib(actB)} | ${(actB / actA).toFixed(3)}   (${config.note}, ` +
      `batch ${config.batch})`,
  );
}
