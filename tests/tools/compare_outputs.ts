/**
 * Compares two safetensors files tensor by tensor (two `ps3 debug-step` outputs, say, with and
 * without a lowered binding limit): prints each tensor that differs with its relative L2
 * difference, and how many are bit-identical. Exit status 1 when any differs.
 *
 * ```sh
 * deno run -A tests/tools/compare_outputs.ts a.safetensors b.safetensors
 * ```
 *
 * @module
 */

import { openSafetensors } from "../../src/checkpoint/safetensors.ts";

const [pa, pb] = Deno.args;
if (!pa || !pb) throw new Error("Usage: compare_outputs.ts <a.safetensors> <b.safetensors>");
const [x, y] = [await openSafetensors(pa), await openSafetensors(pb)];
let same = 0;
for (const e of x.entries) {
  if (!y.has(e.name)) {
    console.log(`only in ${pa}: ${e.name}`);
    continue;
  }
  const a = await x.readBytes(e.name), b = await y.readBytes(e.name);
  let eq = a.length === b.length;
  for (let i = 0; eq && i < a.length; i++) if (a[i] !== b[i]) eq = false;
  if (eq) {
    same++;
    continue;
  }
  let msg = "";
  if (e.dtype === "F32" && a.length === b.length) {
    const fa = new Float32Array(a.buffer, a.byteOffset, a.length / 4);
    const fb = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    let d = 0, n = 0;
    for (let i = 0; i < fa.length; i++) {
      d += (fa[i]! - fb[i]!) ** 2;
      n += fa[i]! ** 2;
    }
    msg = ` relative L2 ${Math.sqrt(d / (n || 1)).toExponential(2)}`;
  }
  console.log(`differs: ${e.name} [${e.shape}]${msg}`);
}
console.log(`${same}/${x.entries.length} tensors bit-identical`);
if (same !== x.entries.length) Deno.exit(1);
