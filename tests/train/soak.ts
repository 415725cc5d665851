/**
 * The kill -9 soak: trains the tiny test config again and again, killing the trainer with
 * SIGKILL at random moments (start-up, mid-step, inside checkpoint writes, the marker, the
 * rename, the prune) and resuming with `--resume latest` after each kill, then checks that the
 * finished run is bit-identical to an uninterrupted one: the final model and optimizer files
 * byte for byte, and every metrics line (all fields but timings). Every checkpoint left must
 * verify, and no temporary folder or lock may remain.
 *
 * ```sh
 * DENO_WEBGPU_BACKEND=vulkan deno run -A tests/train/soak.ts --kills 20 [--seed 1]
 * ```
 *
 * Kill times are uniform over the wall time of the last run that finished by itself. When a
 * run finishes before its kill lands, it is checked and the soak goes on in a fresh folder (a
 * new round) until the number of kills is reached. Exit code 0 when every round
 * matches, 1 otherwise. CI runs it with a few kills (`tests/train/soak_test.ts`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { verifyCheckpoint } from "../../src/checkpoint/manifest.ts";
import { checkpointFolders } from "../../src/checkpoint/recovery.ts";

const CONFIG = "tests/testdata/train_tiny.yaml";
const TIMING = new Set(["step_s", "data_wait_s", "samples_per_s"]);

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function command(out: string, synth: string, resume: boolean): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "train",
      CONFIG,
      `--checkpoint.out=${out}`,
      `--data.synthesize.out=${synth}`,
      "--checkpoint.keep_last=2",
      "--no-progress",
      ...(resume ? ["--resume", "latest"] : []),
    ],
    stdout: "null",
    stderr: "piped",
  });
}

/** What must be identical: final tensors and metrics without timings. */
async function finalState(out: string): Promise<{ files: Uint8Array[]; metrics: string }> {
  const last = (await checkpointFolders(join(out, "checkpoints")))[0];
  if (!last) throw new Error(`No checkpoint in "${out}"`);
  const files = await Promise.all(
    ["model.safetensors", "optimizer.safetensors"].map((f) => Deno.readFile(join(last.path, f))),
  );
  const lines = (await Deno.readTextFile(join(out, "metrics.jsonl"))).split("\n").filter(Boolean)
    .map((l) => JSON.stringify(JSON.parse(l), (k, v) => (TIMING.has(k) ? undefined : v)));
  return { files, metrics: lines.join("\n") };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Problems of a finished soak folder compared with the reference. */
async function check(
  out: string,
  ref: { files: Uint8Array[]; metrics: string },
): Promise<string[]> {
  const problems: string[] = [];
  const got = await finalState(out);
  if (!sameBytes(got.files[0]!, ref.files[0]!)) problems.push("model.safetensors differs");
  if (!sameBytes(got.files[1]!, ref.files[1]!)) problems.push("optimizer.safetensors differs");
  if (got.metrics !== ref.metrics) problems.push("metrics.jsonl differs");
  for (const c of await checkpointFolders(join(out, "checkpoints"))) {
    const s = await verifyCheckpoint(c.path);
    if (!s.verified) problems.push(`${c.path} fails verification: ${s.problems.join("; ")}`);
  }
  for await (const e of Deno.readDir(join(out, "checkpoints"))) {
    if (e.name.includes(".tmp-")) problems.push(`temporary folder left: ${e.name}`);
  }
  if (await Deno.stat(join(out, "train.lock")).then(() => true, () => false)) {
    problems.push("train.lock left behind");
  }
  return problems;
}

/**
 * Runs the soak.
 *
 * @param kills SIGKILLs to deliver.
 * @param seed Seed of the kill times.
 * @param log Progress lines.
 * @returns Rounds finished and their problems (none when all match).
 */
export async function soak(
  kills: number,
  seed: number,
  log: (s: string) => void = console.log,
): Promise<{ rounds: number; kills: number; problems: string[] }> {
  const tmp = await Deno.makeTempDir({ prefix: "ps3-soak-" });
  const synth = join(tmp, "synth");
  const refOut = join(tmp, "reference");
  const t0 = performance.now();
  const r = await command(refOut, synth, false).output();
  if (r.code !== 0) throw new Error(`reference run failed:\n${new TextDecoder().decode(r.stderr)}`);
  const refSeconds = (performance.now() - t0) / 1000;
  const ref = await finalState(refOut);
  log(`reference run: ${refSeconds.toFixed(1)} s`);
  const rand = mulberry32(seed);
  const problems: string[] = [];
  let done = 0, rounds = 0, out = "", started = false;
  // Kill times are drawn over the wall time of the last run that finished by itself (the
  // machine's load changes it), so that kills land in every phase of a run.
  let typical = refSeconds;
  while (done < kills) {
    if (!started) {
      out = join(tmp, `round-${rounds}`);
      started = false;
    }
    const child = command(out, synth, started).spawn();
    started = true;
    const stderr = new Response(child.stderr).text();
    const delay = rand() * typical * 1000;
    const began = performance.now();
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, delay);
    const { code, signal } = await child.status;
    clearTimeout(timer);
    if (signal === "SIGKILL") {
      done++;
      log(`kill ${done}/${kills} at ${(delay / 1000).toFixed(2)} s (round ${rounds})`);
      continue;
    }
    if (code !== 0) {
      problems.push(`round ${rounds}: ps3 train exited ${code}: ${(await stderr).slice(-2000)}`);
      started = false;
      rounds++;
      continue;
    }
    // Finished before its kill: check this round, go on in a fresh folder.
    typical = (performance.now() - began) / 1000;
    for (const p of await check(out, ref)) problems.push(`round ${rounds}: ${p}`);
    log(`round ${rounds} finished and checked`);
    rounds++;
    started = false;
  }
  if (started) {
    const fin = await command(out, synth, true).output();
    if (fin.code !== 0) {
      problems.push(`round ${rounds}: final resume exited ${fin.code}`);
    } else {
      for (const p of await check(out, ref)) problems.push(`round ${rounds}: ${p}`);
    }
    log(`round ${rounds} finished and checked`);
    rounds++;
  }
  if (!problems.length) await Deno.remove(tmp, { recursive: true });
  else log(`kept ${tmp} for inspection`);
  return { rounds, kills: done, problems };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { kills: { type: "string", default: "20" }, seed: { type: "string", default: "1" } },
  });
  const r = await soak(Number(values.kills), Number(values.seed));
  for (const p of r.problems) console.error(`MISMATCH ${p}`);
  console.log(
    `${r.kills} kills over ${r.rounds} round(s): ` +
      (r.problems.length ? `${r.problems.length} problem(s)` : "every round bit-identical"),
  );
  Deno.exit(r.problems.length ? 1 : 0);
}
