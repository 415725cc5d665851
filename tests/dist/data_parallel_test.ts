/**
 * Data-parallel training over MPI against one process: N ranks with b samples each train as
 * one process with N*b samples (loss terms, summed gradients, parameters after three AdamW
 * steps), with 2 and 3 ranks and with gradient accumulation. Each side is a separate
 * process (`dp_worker.ts`); the ranks are launched with OpenMPI's mpirun on the software
 * adapter. Skipped with a message where mpirun is missing (CI installs OpenMPI).
 */
import { ok } from "node:assert";
import { join } from "node:path";
import { mpirunAvailable, runMpi } from "./helpers.ts";

const WORKER = new URL("./dp_worker.ts", import.meta.url).pathname;

interface Side {
  losses: number[][];
  names: string[];
  sizes: number[];
  params: Float32Array;
  grads: Float32Array;
}

async function side(dir: string, name: string, ranks: number, global: number, micro: number) {
  const prefix = join(dir, name);
  const args = ["run", "-A", WORKER, prefix, String(global), String(micro)];
  if (ranks === 1) {
    const out = await new Deno.Command(Deno.execPath(), { args, stderr: "piped" }).output();
    ok(out.success, `worker failed: ${new TextDecoder().decode(out.stderr)}`);
  } else await runMpi(ranks, [Deno.execPath(), ...args]);
  const meta = JSON.parse(await Deno.readTextFile(`${prefix}.json`));
  const f32 = async (f: string) => new Float32Array((await Deno.readFile(f)).buffer);
  return {
    ...meta,
    params: await f32(`${prefix}.params.bin`),
    grads: await f32(`${prefix}.grads.bin`),
  } as Side;
}

/**
 * The entries of a tensor whose exact gradient is zero: the key slice of an attention's
 * input-projection bias (softmax is invariant to adding one value to every score of a row).
 * Their computed gradients are rounding noise, which AdamW's first steps turn into updates of
 * about the learning rate with whatever sign the noise has.
 */
function keyBias(name: string, size: number): [number, number] | null {
  if (name.endsWith("attn.in_proj_bias") || name.endsWith("attn.qkv.bias")) {
    return [size / 3, (2 * size) / 3];
  }
  if (name.endsWith("attn_pool.kv.bias")) return [0, size / 2];
  return null;
}

/** Worst per-tensor relative L2 difference, with its tensor (key-bias slices optional). */
function worst(a: Side, b: Side, which: "params" | "grads", skipKeyBias: boolean) {
  let off = 0, max = 0, at = "";
  a.names.forEach((name, i) => {
    if (b.names[i] !== name) throw new Error(`parameter order differs at ${i}: ${name}`);
    const n = a.sizes[i]!;
    const skip = skipKeyBias ? keyBias(name, n) : null;
    let num = 0, den = 0;
    for (let j = 0; j < n; j++) {
      if (skip && j >= skip[0] && j < skip[1]) continue;
      const x = a[which][off + j]!, y = b[which][off + j]!;
      num += (x - y) ** 2;
      den += x * x;
    }
    const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    if (rel > max) [max, at] = [rel, name];
    off += n;
  });
  return { max, at };
}

const cases = [
  { name: "2 ranks x 2 samples", ranks: 2, global: 4, micro: 1 },
  { name: "3 ranks x 2 samples (odd world size)", ranks: 3, global: 6, micro: 1 },
  { name: "2 ranks x 2 samples in 2 micro-batches", ranks: 2, global: 4, micro: 2 },
];

for (const c of cases) {
  Deno.test({
    name: `data-parallel ${c.name} trains as one process with ${c.global} samples`,
    ignore: !mpirunAvailable(),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "ps3-dp-" });
      try {
        const one = await side(dir, "one", 1, c.global, 1);
        const many = await side(dir, "many", c.ranks, c.global, c.micro);
        // Loss terms of 3 steps: float32 sums in another order (measured <= 3.1e-7).
        one.losses.forEach((l, s) =>
          l.forEach((v, k) => {
            const rel = Math.abs(v - many.losses[s]![k]!) / Math.abs(v);
            ok(rel <= 1e-5, `step ${s + 1} loss term ${k}: ${v} vs ${many.losses[s]![k]} (${rel})`);
          })
        );
        // Gradients of the first step summed over the ranks: every tensor within 1e-5
        // relative L2 of the one-process gradient.
        const g = worst(one, many, "grads", false);
        ok(g.max <= 1e-5, `gradient of ${g.at} differs by ${g.max.toExponential(2)}`);
        // Parameters after 3 AdamW steps: AdamW's first updates are about the sign of the
        // gradient times the learning rate, so an entry whose gradient is near zero moves by
        // +-lr on rounding noise; 1e-4 relative L2 per tensor, the key-bias slices (exact
        // gradient zero) left out. Measured: <= 9e-6 with 2 ranks, 4.5e-5 with 3.
        const p = worst(one, many, "params", true);
        ok(p.max <= 1e-4, `parameter ${p.at} differs by ${p.max.toExponential(2)}`);
        console.log(
          `${c.name}: gradients ${g.max.toExponential(2)} (${g.at}), parameters after 3 ` +
            `steps ${p.max.toExponential(2)} (${p.at})`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
