/**
 * `ps3 info`: which adapter runs, its features and limits.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initGpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";

/**
 * Prints the adapter description (or JSON with `--json`).
 *
 * @param args Command-line arguments after `info`.
 * @returns Exit code.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean" } } });
  const { info } = await initGpu({ timestamps: true });
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  console.log(`adapter:      ${info.description} (vendor ${info.vendor || "?"})`);
  console.log(`backend:      ${info.backend}${info.isSoftware ? " (software)" : ""}`);
  console.log(`shader-f16:   ${info.hasF16 ? "yes" : "no"}`);
  console.log(`timestamps:   ${info.hasTimestamps ? "yes" : "no"}`);
  console.log(`max binding:  ${fmtBytes(info.maxBindingBytes)}`);
  console.log(`max buffer:   ${fmtBytes(info.maxBufferBytes)}`);
  if (Number.isFinite(info.maxLoopTrips)) {
    console.log(`loop limit:   ${info.maxLoopTrips} trips per loop (kernels split longer work)`);
  }
  return 0;
}
