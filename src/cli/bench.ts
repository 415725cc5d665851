/**
 * `ps3 bench`: the performance record — kernel timings on the model's shapes, printed as a
 * table with the adapter's name.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initGpu } from "../gpu/runtime.ts";
import { benchOps } from "../bench/ops.ts";
import { formatTable } from "../bench/timing.ts";

/**
 * Runs the benchmarks and prints the table.
 *
 * @param args `--quick` for small shapes, `--json` for machine-readable rows.
 * @returns Exit code.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { quick: { type: "boolean" }, json: { type: "boolean" }, help: { type: "boolean" } },
  });
  if (values.help) {
    console.log("Usage: ps3 bench [--quick] [--json]");
    return 0;
  }
  const rt = await initGpu();
  const rows = await benchOps({ quick: values.quick });
  if (values.json) console.log(JSON.stringify({ adapter: rt.info, rows }, null, 2));
  else {
    console.log(`adapter: ${rt.info.description} (${rt.info.backend})\n`);
    console.log(formatTable(rows));
  }
  return 0;
}
