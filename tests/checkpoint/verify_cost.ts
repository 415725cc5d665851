/**
 * Measures what checkpoint integrity costs on a large file: writes a synthetic checkpoint
 * folder whose model.safetensors has the given size (default 3.75 GiB, PS3-1.5K's), seals it
 * (the digest pass of a save) and verifies it (the pass of a resume, `convert`, `ps3 verify`),
 * and prints seconds per GB of each: once from the page cache (the digest's own cost) and
 * once cold, after dropping the file from the page cache (adds the disk's read time).
 *
 * ```sh
 * deno run -A tests/checkpoint/verify_cost.ts [--gib 3.75] [--dir /tmp]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { sealCheckpoint, verifyCheckpoint } from "../../src/checkpoint/manifest.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { gib: { type: "string", default: "3.75" }, dir: { type: "string", default: "/tmp" } },
});
const bytes = Math.round(Number(values.gib) * 2 ** 30);
const dir = await Deno.makeTempDir({ dir: values.dir, prefix: "ps3-verify-cost-" });
try {
  const ckpt = join(dir, "step_00000001");
  await Deno.mkdir(ckpt);
  // Random bytes in 64 MiB blocks (each block different), written as one file.
  const block = new Uint8Array(64 << 20);
  {
    using f = await Deno.open(join(ckpt, "model.safetensors"), { write: true, create: true });
    for (let done = 0; done < bytes;) {
      for (let i = 0; i < block.length; i += 65536) {
        crypto.getRandomValues(block.subarray(i, i + 65536));
      }
      const n = Math.min(block.length, bytes - done);
      let w = 0;
      while (w < n) w += await f.write(block.subarray(w, n));
      done += n;
    }
  }
  await Deno.writeTextFile(join(ckpt, "state.json"), "{}\n");
  const gb = bytes / 1e9;
  const t = performance.now();
  await sealCheckpoint(ckpt, 1, ["model.safetensors", "state.json"]);
  const seal = (performance.now() - t) / 1000;
  const timeVerify = async () => {
    const t = performance.now();
    const s = await verifyCheckpoint(ckpt);
    if (!s.verified) throw new Error(`verification failed: ${s.problems.join("; ")}`);
    return (performance.now() - t) / 1000;
  };
  const rate = (s: number) =>
    `${s.toFixed(2)} s (${(s / gb).toFixed(2)} s/GB, ${(gb / s).toFixed(2)} GB/s)`;
  console.log(`${gb.toFixed(2)} GB: digest at save ${rate(seal)}`);
  console.log(`verify (page cache) ${rate(await timeVerify())}`);
  // Drop the file from the page cache (GNU dd's nocache flag: posix_fadvise DONTNEED) and
  // verify again: a cold read from the disk.
  const drop = await new Deno.Command("dd", {
    args: [`if=${join(ckpt, "model.safetensors")}`, "iflag=nocache", "count=0", "status=none"],
  }).output().catch(() => null);
  if (drop?.success) {
    console.log(`verify (cold, dropped from the page cache) ${rate(await timeVerify())}`);
  } else console.log("cold verification not measured: GNU dd with iflag=nocache is not available");
} finally {
  await Deno.remove(dir, { recursive: true });
}
