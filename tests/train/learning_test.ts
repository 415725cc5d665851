import { ok } from "node:assert";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";

await initGpu();

Deno.test("ps3 learns on the synthetic set: box loss falls, selection finds the boxes, retrieval beats chance", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-learn-" });
  const synth = await Deno.makeTempDir({ prefix: "ps3-learn-synth-" });
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
    `checkpoint.out=${out}`,
    `data.synthesize.out=${synth}`,
    "train.steps=300",
    "optim.lr=3e-3",
    "optim.warmup=10",
    "checkpoint.save_every=0",
    "log.every=50",
    "log.eval_at_start=true",
    "log.eval_batches=4",
  ]);
  const s = await train(config, { tty: false });
  const before = s.evalAtStart!, after = s.eval!;
  // Held-out images (32 samples, 4 batches of 8).
  ok(
    after.posteriorBox < 0.6 * before.posteriorBox,
    `posterior box loss ${before.posteriorBox} -> ${after.posteriorBox}`,
  );
  ok(
    after.probInside > 2 * after.probOutside,
    `probability inside ${after.probInside} vs outside ${after.probOutside}`,
  );
  ok(
    after.retrieval >= 2.5 * after.chance,
    `caption->region retrieval ${after.retrieval} (chance ${after.chance})`,
  );
  // The estimate printed before the first step is close to the measured peak. It counts the
  // tensors the step keeps, not the pool's bucket rounding (up to 25% per buffer, more below
  // 256 bytes), so at this config's tiny tensors it falls short: measured -11.7% here, -0.4%
  // on configs/ps3-tiny.yaml (tests/train/memory_test.ts, tests/tools/memory_peak.ts).
  const measured = s.peakActivationBytes + s.stateBytes;
  ok(
    s.estimatedBytes >= 0.8 * measured && s.estimatedBytes <= 1.5 * measured,
    `estimate ${s.estimatedBytes}, measured ${measured}`,
  );
});
