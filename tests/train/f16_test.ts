import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";
import { LossScaler } from "../../src/train/loss_scale.ts";

const rt = await initGpu();
const synth = await Deno.makeTempDir({ prefix: "ps3-f16-synth-" });

Deno.test("LossScaler halves on overflow and doubles after the growth interval (GradScaler's rule)", () => {
  const s = new LossScaler({ init: 1024, growthInterval: 3 });
  s.update(false);
  strictEqual(s.scale, 512);
  s.update(true);
  s.update(true);
  strictEqual(s.scale, 512);
  s.update(true);
  strictEqual(s.scale, 1024);
  s.update(true);
  s.update(false);
  deepStrictEqual(s.state(), { scale: 512, goodSteps: 0 });
});

async function losses(out: string): Promise<{ step: number; loss: number; loss_scale: number }[]> {
  const text = await Deno.readTextFile(join(out, "metrics.jsonl"));
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)).filter((r) =>
    "loss" in r
  );
}

const run = async (out: string, extra: string[]) =>
  await train(
    await loadRunConfig("tests/testdata/train_tiny.yaml", [
      `checkpoint.out=${out}`,
      `data.synthesize.out=${synth}`,
      "train.steps=8",
      "log.every=100",
      ...extra,
    ]),
    { tty: false },
  );

Deno.test({
  name: "train.precision f16 trains with loss scaling and resumes with the scaler's state",
  ignore: !rt.info.hasF16,
  fn: async () => {
    const f32 = await Deno.makeTempDir({ prefix: "ps3-f32-" });
    const f16 = await Deno.makeTempDir({ prefix: "ps3-f16-" });
    await run(f32, []);
    const s = await run(f16, ["train.precision=f16"]);
    strictEqual(s.stopped, "done");
    const a = await losses(f32), b = await losses(f16);
    // Step 1 runs the same weights: float16 matmul operands move the loss by ~1e-4.
    ok(Math.abs(a[0]!.loss - b[0]!.loss) < 2e-3 * a[0]!.loss, `${a[0]!.loss} vs ${b[0]!.loss}`);
    ok(s.skippedUpdates > 0 && b[b.length - 1]!.loss_scale < 65536, "the scale backed off");
    ok(b.every((r) => Number.isFinite(r.loss)));
    // Resume from the step-4 checkpoint: the same losses, scale included.
    const resumed = await Deno.makeTempDir({ prefix: "ps3-f16-resume-" });
    await Deno.mkdir(join(resumed, "checkpoints"), { recursive: true });
    await Deno.rename(
      join(f16, "checkpoints", "step_00000004"),
      join(resumed, "checkpoints", "step_00000004"),
    );
    await run(resumed, ["train.precision=f16", "checkpoint.resume=latest"]);
    deepStrictEqual(
      (await losses(resumed)).map((r) => [r.loss, r.loss_scale]),
      b.slice(4).map((r) => [r.loss, r.loss_scale]),
    );
  },
});
