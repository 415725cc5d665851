import { ok, strictEqual } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";
import { readTrainState } from "../../src/checkpoint/train_checkpoint.ts";

await initGpu();

Deno.test("a NaN/Inf loss stops the run with a checkpoint of the state before the bad step", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-nan-" });
  const synth = await Deno.makeTempDir({ prefix: "ps3-nan-synth-" });
  // An absurd learning rate: the first update blows the weights up, a later loss is not finite.
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
    `checkpoint.out=${out}`,
    `data.synthesize.out=${synth}`,
    "optim.lr=1e30",
    "optim.warmup=0",
    "checkpoint.save_every=0",
  ]);
  const summary = await train(config, { tty: false });
  strictEqual(summary.stopped, "nan");
  ok(summary.steps < 6, `stopped at step ${summary.steps}`);
  ok(summary.checkpoint, "a checkpoint was written");
  const state = await readTrainState(summary.checkpoint!);
  strictEqual(state.step, summary.steps);
  // The saved parameters are those before the bad step: all finite.
  const r = await openSafetensors(join(summary.checkpoint!, "model.safetensors"));
  for (const name of r.names()) {
    const v = await r.read(name) as Float32Array;
    ok(v.every(Number.isFinite), `${name} is finite`);
  }
  r.close();
});
