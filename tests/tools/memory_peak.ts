/**
 * Measured peak device memory of one training step against the estimate, for the validation
 * of `src/train/memory.ts`:
 *
 *   deno run -A tests/tools/memory_peak.ts <config.yaml | eq-1.5k | eq-4k> <micro-batch>
 *     [--precision=f32|f16] [--checkpointing=true|false] [--depth=2]
 *
 * `eq-*` are the bench's equal-budget SO400M-width configurations (src/bench/step.ts) inside
 * configs/ps3-tiny.yaml's run settings. Prints one JSON line: measured (pool peak during
 * forward + losses + backward, the state counted exactly) and estimated bytes, and the error.
 *
 * @module
 */

import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { stepConfigs } from "../../src/bench/step.ts";
import { measureStep } from "../../src/train/fit_batch.ts";
import { runEstimate } from "../../src/train/preflight.ts";

const [what, batchArg, ...rest] = Deno.args;
const opt = (k: string, d: string) =>
  rest.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d;
const precision = opt("precision", "f32");
const checkpointing = opt("checkpointing", "true");
const eq = what!.startsWith("eq-");
let config = await loadRunConfig(eq ? "configs/ps3-tiny.yaml" : what!, [
  `train.precision=${precision}`,
  `train.grad_checkpointing=${checkpointing}`,
]);
if (eq) {
  const depth = Number(opt("depth", "2"));
  config = { ...config, resolvedModel: stepConfigs([what!], { depth })[0]!.model };
}
const rt = await initGpu();
const b = Number(batchArg);
const m = await measureStep(config, rt, b);
const est = runEstimate(config, b);
const measured = m.peakActivationBytes + m.stateBytes;
console.log(JSON.stringify({
  config: what,
  microBatch: b,
  precision,
  checkpointing,
  measured: { total: measured, activations: m.peakActivationBytes, state: m.stateBytes },
  pooledAfter: m.pooledBytes,
  estimated: est,
  errorActivations: est.activations / m.peakActivationBytes - 1,
  errorTotal: est.total / measured - 1,
  outOfMemory: m.outOfMemory,
}));
