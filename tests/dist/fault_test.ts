/**
 * Faults of a data-parallel run (2 ranks under OpenMPI's mpirun, each a separate process): a
 * rank that raises ends every rank with its message; a rank killed with SIGKILL ends the job
 * within a bounded time, and `--resume latest` then finishes with the same losses as an
 * uninterrupted run. Skipped with a message where mpirun is missing (CI installs OpenMPI).
 */
import { deepStrictEqual, ok } from "node:assert";
import { join } from "node:path";
import { mpirunArgs, mpirunAvailable } from "./helpers.ts";

const CONFIG = "tests/testdata/train_tiny.yaml";
const synth = await Deno.makeTempDir({ prefix: "ps3-dp-synth-" });

/** `ps3 train` of the test config, as one rank's command line. */
function trainArgs(out: string, extra: string[] = []): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    "main.ts",
    "train",
    CONFIG,
    `--checkpoint.out=${out}`,
    `--data.synthesize.out=${synth}`,
    "--train.steps=8",
    "--no-progress",
    ...extra,
  ];
}

/** Starts mpirun with the given argument tail (after the rank count flags). */
function mpirun(args: string[]): Deno.ChildProcess {
  return new Deno.Command("mpirun", { args, stdout: "piped", stderr: "piped" }).spawn();
}

async function finish(p: Deno.ChildProcess) {
  const out = await p.output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function losses(out: string): Promise<number[][]> {
  const text = await Deno.readTextFile(join(out, "metrics.jsonl"));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((r) => typeof r.loss === "number")
    .map((r) => [r.step, r.loss, r.contrastive, r.prior_box, r.posterior_box]);
}

/** The PID of the process of a rank that trains into `out` (from /proc). */
async function rankPid(out: string, rank: number): Promise<number | null> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (!cmd.includes(`--checkpoint.out=${out}`) || !cmd.includes("main.ts")) continue;
      const env = await Deno.readTextFile(`/proc/${e.name}/environ`);
      if (env.split("\0").includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(e.name);
    } catch {
      // the process ended meanwhile, or is not ours to read
    }
  }
  return null;
}

const mpi = mpirunAvailable();

Deno.test({
  name: "data-parallel: a rank that raises ends every rank with its message",
  ignore: !mpi,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "ps3-dp-raise-" });
    const t0 = performance.now();
    const r = await finish(mpirun([
      ...mpirunArgs(1),
      ...trainArgs(out),
      ":",
      "-n",
      "1",
      "-x",
      "PS3_FAULT=throw-at=3",
      ...trainArgs(out),
    ]));
    const s = (performance.now() - t0) / 1000;
    ok(r.code !== 0, "the job should fail");
    ok(r.text.includes("ps3 (rank 1 of 2): injected fault (PS3_FAULT) in step 3"), r.text);
    ok(s < 300, `took ${s} s`);
    await Deno.remove(out, { recursive: true });
  },
});

Deno.test({
  name:
    "data-parallel: SIGKILL of one rank ends the job; --resume latest finishes as an uninterrupted run",
  ignore: !mpi,
  async fn() {
    const straight = await Deno.makeTempDir({ prefix: "ps3-dp-straight-" });
    const killed = await Deno.makeTempDir({ prefix: "ps3-dp-killed-" });
    const a = await finish(mpirun([...mpirunArgs(2), ...trainArgs(straight)]));
    ok(a.code === 0, a.text);

    const job = mpirun([...mpirunArgs(2), ...trainArgs(killed)]);
    // Kill rank 1 once rank 0 has logged step 3 (after the checkpoint of step 2).
    let pid: number | null = null;
    for (let i = 0; i < 1200 && pid === null; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const done = await losses(killed).catch(() => []);
      if (done.length >= 3) pid = await rankPid(killed, 1);
    }
    ok(pid !== null, "rank 1 was not found running");
    Deno.kill(pid!, "SIGKILL");
    const t0 = performance.now();
    const b = await finish(job);
    ok(b.code !== 0, "the job should fail after a rank was killed");
    ok(/rank 1|signal 9|Killed/i.test(b.text), b.text);
    // The other rank's process ends too, within a bounded time.
    while (await rankPid(killed, 0) !== null && performance.now() - t0 < 120_000) {
      await new Promise((r) => setTimeout(r, 250));
    }
    const s = (performance.now() - t0) / 1000;
    ok(s < 60, `the other rank took ${s.toFixed(1)} s to end`);
    console.log(`rank 1 killed: the job and rank 0 ended ${s.toFixed(1)} s later`);

    const c = await finish(
      mpirun([...mpirunArgs(2), ...trainArgs(killed, ["--resume", "latest"])]),
    );
    ok(c.code === 0, c.text);
    deepStrictEqual(await losses(killed), await losses(straight));
    await Deno.remove(straight, { recursive: true });
    await Deno.remove(killed, { recursive: true });
  },
});

Deno.test({
  name: "data-parallel: SIGTERM to one rank stops every rank at one step with a checkpoint",
  ignore: !mpi,
  async fn() {
    const straight = await Deno.makeTempDir({ prefix: "ps3-dp-straight2-" });
    const stopped = await Deno.makeTempDir({ prefix: "ps3-dp-term-" });
    const a = await finish(mpirun([...mpirunArgs(2), ...trainArgs(straight)]));
    ok(a.code === 0, a.text);
    const job = mpirun([...mpirunArgs(2), ...trainArgs(stopped)]);
    let pid: number | null = null;
    for (let i = 0; i < 1200 && pid === null; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const done = await losses(stopped).catch(() => []);
      if (done.length >= 2) pid = await rankPid(stopped, 1);
    }
    ok(pid !== null, "rank 1 was not found running");
    Deno.kill(pid!, "SIGTERM");
    const b = await finish(job);
    ok(b.code !== 0, "a stopped run does not exit 0");
    ok(b.text.includes("SIGTERM: stopping after this step"), b.text);
    const at = (await losses(stopped)).length;
    ok(at < 8, `the run went on to step ${at}`);
    const saved = [...Deno.readDirSync(join(stopped, "checkpoints"))].map((e) => e.name);
    ok(
      saved.includes(`step_${String(at).padStart(8, "0")}`),
      `no checkpoint of step ${at}: ${saved}`,
    );
    const c = await finish(
      mpirun([...mpirunArgs(2), ...trainArgs(stopped, ["--resume", "latest"])]),
    );
    ok(c.code === 0, c.text);
    deepStrictEqual(await losses(stopped), await losses(straight));
    await Deno.remove(straight, { recursive: true });
    await Deno.remove(stopped, { recursive: true });
  },
});
