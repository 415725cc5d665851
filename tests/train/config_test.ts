import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert";
import { parse } from "npm:yaml@2.9.1";
import { applyOverrides, loadRunConfig, resolveRunConfig } from "../../src/train/config.ts";
import { learningRate } from "../../src/optim/schedule.ts";

const base = parse(await Deno.readTextFile("tests/testdata/train_tiny.yaml")) as Record<
  string,
  unknown
>;

Deno.test("loadRunConfig() reads every shipped config with its defaults", async () => {
  for (const f of ["configs/ps3-tiny.yaml", "configs/ps3-1.5k.yaml", "configs/ps3-4k.yaml"]) {
    const c = await loadRunConfig(f);
    ok(c.train.batch_size > 0 && c.optim.lr > 0, f);
  }
  const c15 = await loadRunConfig("configs/ps3-1.5k.yaml");
  // The reference script's settings.
  deepStrictEqual(
    [
      c15.train.batch_size,
      c15.optim.lr,
      c15.optim.warmup,
      c15.optim.beta1,
      c15.optim.beta2,
      c15.optim.weight_decay,
    ],
    [32, 5e-6, 1500, 0.9, 0.95, 3e-4],
  );
  deepStrictEqual([c15.train.samples_per_epoch, c15.train.epochs, c15.data.global_caption_prob], [
    1_000_000,
    75,
    0.25,
  ]);
});

Deno.test("resolveRunConfig() rejects unknown keys with their path", () => {
  const bad = structuredClone(base);
  (bad.train as Record<string, unknown>).batchsize = 3;
  (bad.model as { vision_cfg: Record<string, unknown> }).vision_cfg.depthh = 3;
  throws(() => resolveRunConfig(bad, "test"), (e: Error) => {
    return /train\.batchsize: unknown key/.test(e.message) &&
      /model\.vision_cfg\.depthh: unknown key/.test(e.message);
  });
});

Deno.test("applyOverrides() sets nested values parsed as YAML scalars", () => {
  const raw = structuredClone(base);
  applyOverrides(raw, [
    "train.batch_size=4",
    "optim.token_selection_lr=1e-4",
    "checkpoint.resume=latest",
    "train.select_w_gt=false",
  ]);
  const c = resolveRunConfig(raw, "test");
  deepStrictEqual(
    [c.train.batch_size, c.optim.token_selection_lr, c.checkpoint.resume, c.train.select_w_gt],
    [4, 1e-4, "latest", false],
  );
  throws(() => applyOverrides(raw, ["nonsense"]), /expected key\.path=value/);
  throws(
    () =>
      resolveRunConfig({
        ...raw,
        train: { ...(raw.train as object), batch_size: 6, accum_steps: 4 },
      }, "t"),
    /not a multiple/,
  );
});

Deno.test("resolveRunConfig() takes train.batch_size: auto as a placeholder to be fitted", () => {
  const auto = resolveRunConfig({
    ...base,
    train: { ...(base.train as object), batch_size: "auto", accum_steps: 2 },
  }, "t");
  deepStrictEqual([auto.autoBatch, auto.train.batch_size, auto.train.accum_steps], [true, 2, 2]);
  deepStrictEqual((auto.raw.train as { batch_size: unknown }).batch_size, "auto");
  strictEqual(resolveRunConfig(structuredClone(base), "t").autoBatch, false);
  throws(
    () =>
      resolveRunConfig({ ...base, train: { ...(base.train as object), batch_size: "big" } }, "t"),
    /train\.batch_size/,
  );
});

Deno.test("loadRunConfig() names a missing file", async () => {
  await rejects(loadRunConfig("nope.yaml"), /Cannot read run config "nope\.yaml"/);
});

Deno.test("learningRate() warms up linearly, then follows open_clip's cosine", () => {
  const o = { lr: 1, warmup: 4, total: 14, kind: "cosine" as const };
  deepStrictEqual([0, 1, 2, 3].map((s) => learningRate(s, o)), [0.25, 0.5, 0.75, 1]);
  strictEqual(learningRate(4, o), 1);
  ok(Math.abs(learningRate(9, o) - 0.5) < 1e-12);
  ok(learningRate(13, o) < 0.03);
  strictEqual(learningRate(10, { ...o, kind: "const" }), 1);
});
