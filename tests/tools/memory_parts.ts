/**
 * What is live at the peak of one training step, by where it was allocated (issue 14): the
 * buffer pool's acquire and release are wrapped to track every live buffer with its call
 * site, and at the step's peak the live bytes are summed by the model-level caller (the
 * innermost frame in src/model, src/nn or src/loss) and the op (the innermost frame in
 * src/ops), forward or backward. Same run settings as tests/tools/memory_peak.ts:
 *
 *   deno run -A tests/tools/memory_parts.ts <config.yaml | eq-1.5k | eq-tiny> <micro-batch>
 *     [--precision=f32|f16] [--top=40]
 *
 * Prints the pool peak, then one line per (caller, op) group: MB live at the peak and count.
 *
 * @module
 */

import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { stepConfigs } from "../../src/bench/step.ts";
import { measureStep } from "../../src/train/fit_batch.ts";

const [what, batchArg, ...rest] = Deno.args;
const opt = (k: string, d: string) =>
  rest.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3) ?? d;
const precision = opt("precision", "f32");
const eq = what!.startsWith("eq-");
let config = await loadRunConfig(eq ? "configs/ps3-tiny.yaml" : what!, [
  `train.precision=${precision}`,
]);
if (eq) config = { ...config, resolvedModel: stepConfigs([what!])[0]!.model };
const rt = await initGpu();

/** The allocation site of a buffer: "caller | op [backward]". */
function site(stack: string): string {
  const frames = stack.split("\n").slice(1).map((l) => l.trim());
  const where = (re: RegExp) => {
    const f = frames.find((l) => re.test(l));
    if (!f) return "-";
    const m = /at (?:(\S+) )?\(?file:\/\/\/.*\/(src\/[^:]+):(\d+)/.exec(f);
    return m ? `${m[1] ?? "?"}@${m[2]}:${m[3]}` : f;
  };
  const op = where(/\/src\/ops\/(?!creation\.ts)/);
  const caller = where(/\/src\/(model|nn|loss)\//);
  const back = frames.some((l) => /backward|tape\.ts/.test(l)) ? " [bwd]" : "";
  return `${caller} | ${op}${back}`;
}

const live = new Map<GPUBuffer, string>();
let inUse = 0, snapAt = 0;
let snapshot = new Map<GPUBuffer, string>();
const pool = rt.pool;
const acquire = pool.acquire.bind(pool), release = pool.release.bind(pool);
Error.stackTraceLimit = 40;
pool.acquire = (bytes: number, label?: string) => {
  const buf = acquire(bytes, label);
  live.set(buf, site(new Error().stack ?? ""));
  inUse += buf.size;
  if (inUse > snapAt + 2 ** 20) {
    snapAt = inUse;
    snapshot = new Map(live);
  }
  return buf;
};
pool.release = (buf: GPUBuffer) => {
  inUse -= buf.size;
  live.delete(buf);
  release(buf);
};
// The snapshot is taken within 1 MiB of the peak; the state (parameters, grads) is outside
// the pool's measured part but inside `live`, so the step's base is subtracted by group.
const m = await measureStep(config, rt, Number(batchArg));
const groups = new Map<string, { bytes: number; n: number }>();
for (const [buf, s] of snapshot) {
  const g = groups.get(s) ?? { bytes: 0, n: 0 };
  g.bytes += buf.size;
  g.n++;
  groups.set(s, g);
}
const rows = [...groups].sort((a, b) => b[1].bytes - a[1].bytes);
const total = rows.reduce((x, [, g]) => x + g.bytes, 0);
console.log(
  `${what} batch ${batchArg} ${precision}: measured activation peak ${
    (m.peakActivationBytes / 1e6).toFixed(1)
  } MB; live at the snapshot ${(total / 1e6).toFixed(1)} MB (includes the base)`,
);
for (const [s, g] of rows.slice(0, Number(opt("top", "40")))) {
  console.log(`${(g.bytes / 1e6).toFixed(1).padStart(8)} MB ${String(g.n).padStart(4)}  ${s}`);
}
