/**
 * `ps3 train --train.batch_size=auto` on the test model under a lowered memory limit
 * (`train.memory_limit_gb`, 20 MiB) and a lowered storage binding limit (256 KiB): the
 * micro-batch the estimate allows is confirmed by one measured step (smaller while the
 * measured peak passes the limit), reported, and trained with.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert";
import { join } from "node:path";
import { stringify } from "npm:yaml@2.9.1";
import { loadRunConfig } from "../../src/train/config.ts";
import { runEstimate } from "../../src/train/preflight.ts";
import { runTiny } from "./tiny_run.ts";

const LIMIT_GB = 0.02;
const limit = LIMIT_GB * 2 ** 30;

Deno.test("train.batch_size=auto takes the largest micro-batch that fits, confirmed by a step", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-fit-" });
  const synth = await Deno.makeTempDir({ prefix: "ps3-fit-synth-" });
  const r = await runTiny({ PS3_MAX_BINDING_BYTES: "262144" }, [
    "--train.batch_size=auto",
    `--train.memory_limit_gb=${LIMIT_GB}`,
    "--train.steps=1",
    `--checkpoint.out=${out}`,
    `--data.synthesize.out=${synth}`,
    "--no-progress",
  ]);
  const log = new TextDecoder().decode(r.stdout);
  ok(r.success, `${log}\n${new TextDecoder().decode(r.stderr)}`);
  console.log(log.split("\n").filter((l) => l.startsWith("batch_size=auto")).join("\n"));
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml");
  // The estimate's choice: the largest micro-batch whose estimate fits.
  const est = Number(log.match(/the estimate allows a micro-batch of (\d+)/)![1]);
  ok(runEstimate(config, est).total <= limit);
  ok(runEstimate(config, est + 1).total > limit);
  // Every micro-batch tried before the last measured over the limit; the last fits.
  const backed = [...log.matchAll(/a micro-batch of (\d+) peaked at [\d.]+ MiB, over/g)]
    .map((m) => Number(m[1]));
  const done = log.match(
    /micro-batch (\d+) \(batch_size (\d+)\): one step peaked at ([\d.]+) MiB/,
  )!;
  const chosen = Number(done[1]);
  deepStrictEqual(Number(done[2]), chosen);
  ok(Number(done[3]) * 2 ** 20 <= limit * 1.0005, `peak ${done[3]} MiB`);
  deepStrictEqual(backed.length > 0 ? backed[0] : chosen, est);
  for (const b of backed) ok(b > chosen);
  // The run trained with it, under the binding limit.
  ok(log.includes(`training 1 steps of ${chosen} samples`), log);
  const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json")));
  deepStrictEqual(summary.dispatches.maxBindingBytes, 262144);
  deepStrictEqual(summary.steps, 1);
});

Deno.test("batch_size: auto in the file; --preflight shows the estimate's micro-batch", async () => {
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml");
  const dir = await Deno.makeTempDir({ prefix: "ps3-fit-yaml-" });
  const file = join(dir, "auto.yaml");
  const raw = config.raw as { train: Record<string, unknown> };
  await Deno.writeTextFile(
    file,
    stringify({ ...raw, train: { ...raw.train, batch_size: "auto", memory_limit_gb: LIMIT_GB } }),
  );
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "train", file, "--preflight"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = new TextDecoder().decode(r.stdout);
  ok(r.success, `${log}\n${new TextDecoder().decode(r.stderr)}`);
  const est = Number(log.match(/the estimate allows a micro-batch of (\d+)/)![1]);
  ok(runEstimate(config, est).total <= limit && runEstimate(config, est + 1).total > limit);
  ok(log.includes(`micro-batch ${est},`), log);
});
