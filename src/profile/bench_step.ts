/**
 * `ps3 bench --profile`: the benchmark's training steps (`src/bench/step.ts`: forward, losses
 * and backward on random data, no optimizer), each run once unprofiled, then profiled.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { tidy } from "../autograd/scope.ts";
import { type StepConfig, stepWork } from "../bench/step.ts";
import { Profiler, type StepProfile } from "./profiler.ts";

/**
 * Profiles one benchmark step of a configuration, after one warm-up step.
 *
 * @param config A configuration from `stepConfigs`.
 * @returns The profile.
 * @example
 * ```ts
 * const [tiny] = stepConfigs(["tiny"]);
 * console.log(formatProfile(await profileBenchStep(tiny!)));
 * ```
 */
export async function profileBenchStep(config: StepConfig): Promise<StepProfile> {
  const rt = gpu();
  const work = stepWork(config);
  try {
    tidy(work.step);
    await rt.sync();
    const profiler = new Profiler(rt);
    profiler.start();
    try {
      profiler.phase("forward + losses + backward (recorded)", () => tidy(work.step));
    } catch (e) {
      rt.observe(null);
      throw e;
    }
    return await profiler.stop(
      `bench step ${config.name} (batch ${config.batch}; ${config.note}; no optimizer)`,
    );
  } finally {
    work.dispose();
    await rt.sync();
  }
}
