import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { join } from "node:path";

// Each run is a separate process, as a crash would be: PS3_FAULT makes the trainer exit
// (code 137) after a step, or in the middle of writing a checkpoint.
const config = "tests/testdata/train_tiny.yaml";
const synth = await Deno.makeTempDir({ prefix: "ps3-resume-synth-" });

async function ps3Train(out: string, extra: string[], fault?: string): Promise<number> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "train",
      config,
      `--checkpoint.out=${out}`,
      `--data.synthesize.out=${synth}`,
      "--no-progress",
      ...extra,
    ],
    env: fault ? { PS3_FAULT: fault } : {},
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  if (r.code !== 0 && r.code !== 137) {
    throw new Error(`ps3 train failed (${r.code}):\n${new TextDecoder().decode(r.stderr)}`);
  }
  return r.code;
}

async function losses(out: string): Promise<[number, number, number, number][]> {
  const text = await Deno.readTextFile(join(out, "metrics.jsonl"));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((r) => typeof r.loss === "number")
    .map((r) => [r.step, r.loss, r.prior_box, r.posterior_box]);
}

const straight = await Deno.makeTempDir({ prefix: "ps3-straight-" });
await ps3Train(straight, []);
const reference = await losses(straight);

Deno.test("ps3 train runs 6 steps and writes checkpoints, metrics, plot and summary", async () => {
  strictEqual(reference.length, 6);
  for (const f of ["loss.png", "summary.json", "checkpoints/step_00000006/COMPLETE"]) {
    await Deno.stat(join(straight, f));
  }
});

Deno.test("a run killed between steps resumes with exactly the losses of an uninterrupted run", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-killed-" });
  strictEqual(await ps3Train(out, [], "exit-after=3"), 137); // checkpoint at step 2 exists
  await ps3Train(out, ["--resume", "latest"]);
  deepStrictEqual(await losses(out), reference);
});

Deno.test("a run killed while writing a checkpoint resumes from the last complete one", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-killed-save-" });
  strictEqual(await ps3Train(out, [], "exit-during-save=4"), 137);
  const names = [...Deno.readDirSync(join(out, "checkpoints"))].map((e) => e.name).sort();
  ok(
    names.some((n) => n.startsWith("step_00000004.tmp-")),
    `expected a partial folder, got ${names}`,
  );
  ok(names.includes("step_00000002"));
  await ps3Train(out, ["--resume", "latest"]);
  deepStrictEqual(await losses(out), reference);
  const after = [...Deno.readDirSync(join(out, "checkpoints"))].map((e) => e.name);
  ok(!after.some((n) => n.includes(".tmp-")), `the partial folder should be gone: ${after}`);
});
