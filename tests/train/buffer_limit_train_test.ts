/**
 * A tiny training run under a lowered largest buffer (`PS3_MAX_BUFFER_BYTES`, 400000 bytes)
 * against the same run without it, each in a process of its own. A tensor is one buffer, so
 * the step runs its micro-batch of 8 in sample groups (`src/train/groups.ts`): 4 groups of 2,
 * decided by one image (3 x 128 x 128 f32, 196608 bytes). Unsplit, the image batch, the box
 * maps, the ConvNet's patches, the first pass of the image resize and the high-res trunk's
 * qkv and fc1 activations (the test model's trunk is 120 wide with 80 high-res tokens) would
 * each pass the limit. Every op of the forward works per sample, so step 1's losses are the
 * same bits; the weight gradients sum over the groups' rows in another grouping, so the
 * gradient norm and the later steps differ by float32 rounding only.
 *
 * Also: the largest buffer a real step asks for is the plan's (the plan counts the step's
 * tensors from the config alone), the errors when one sample cannot fit, and the preflight's
 * lines.
 *
 * @module
 */

import { deepStrictEqual, ok, throws } from "node:assert";
import { join } from "node:path";
import type { Runtime } from "../../src/gpu/runtime.ts";
import { initGpu } from "../../src/gpu/runtime.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { createRunState } from "../../src/train/run_state.ts";
import { randomHostBatch } from "../../src/train/fit_batch.ts";
import { forwardBackward, trainOptions } from "../../src/train/step.ts";
import { groupRanges, planGroups, stepTensors } from "../../src/train/groups.ts";
import { describePreflight } from "../../src/train/preflight.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { assertSameRun, runWide, trainWide, WIDE } from "./tiny_run.ts";

const LIMIT = 400000;
const synth = await Deno.makeTempDir({ prefix: "ps3-buffer-synth-" });

/** Runs the wide test model under a buffer limit ("" for none). */
const run = (limit: string, out: string, extra: string[] = []) =>
  runWide(limit ? { PS3_MAX_BUFFER_BYTES: limit } : {}, out, synth, extra);
/** Runs 3 steps under a buffer limit ("" for none). */
const train = (limit: string) => trainWide(limit ? { PS3_MAX_BUFFER_BYTES: limit } : {}, synth);

// One after the other: the GPU is shared.
const unlimited = await train("");
const limited = await train(String(LIMIT));
const config = await loadRunConfig(
  "tests/testdata/train_tiny.yaml",
  WIDE.map((a) => a.slice(2)),
);

Deno.test(`a tiny training run under a ${LIMIT}-byte buffer limit equals the run without it`, () => {
  // The tensors that would pass the limit unsplit (a micro-batch of 8).
  const b = config.train.batch_size;
  const over = stepTensors(config.resolvedModel, "f32")
    .filter((x) => x.per === "sample" && numel(x.shape) * x.elementBytes * b > LIMIT)
    .map((x) => x.what);
  for (
    const what of [
      "the images",
      "the box maps",
      "the ConvNet's patches",
      "high-res attn.qkv (and its gradient)",
      "high-res mlp.fc1 (output, pre-activation, gradients)",
    ]
  ) ok(over.includes(what), `${what} in ${over.join("; ")}`);
  ok(
    limited.log.includes(
      "micro-batch of 8 in 4 group(s) of 2: largest tensor per group the images [2, 3, 128, 128] " +
        "f32 384.0 KiB (393216 bytes)",
    ),
    limited.log,
  );
  ok(!unlimited.log.includes("group(s)"), unlimited.log);
  // The held-out evaluation ran too (its batches are split the same way).
  ok(limited.log.includes("eval at step 3"), limited.log);
  // Step 1's forward the same bits; the gradient norm and steps 2-3: the weight gradients
  // regroup their sums (groups of 2 rows' partial sums added in turn); measured at most
  // 1.6e-7 relative; within 1e-6.
  const worst = assertSameRun(limited, unlimited, 1e-6);
  console.log(`largest relative difference after step 1's forward: ${worst.toExponential(2)}`);
});

Deno.test("a sample past the buffer limit stops the run before any step, naming the tensors", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-buffer-refused-" });
  const r = await run("131072", out);
  deepStrictEqual(r.code, 1);
  const err = new TextDecoder().decode(r.stderr);
  ok(
    err.includes(
      "Cannot split the step below the device's largest buffer of 131072 bytes (128.0 KiB, " +
        "maxBufferSize; a tensor is one buffer): 3 tensor(s) pass it at any group size:\n" +
        "  the images (one sample): [1, 3, 128, 128] f32, 196608 bytes\n" +
        "  the ConvNet's patches (one sample): [1, 64, 768] f32, 196608 bytes\n" +
        "  selection_feature_proj.fc1's weight gradient (no batch): [240, 240] f32, 230400 bytes",
    ),
    err,
  );
  throws(() => Deno.statSync(join(out, "metrics.jsonl")), Deno.errors.NotFound);
});

/** A runtime of given limits for the preflight (nothing is allocated). */
function fake(maxBufferBytes: number): Runtime {
  return {
    info: {
      maxBufferBytes,
      maxBindingBytes: 128 * 2 ** 20,
      bindingOffsetAlignment: 256,
      isSoftware: false,
    },
  } as unknown as Runtime;
}

Deno.test("the preflight prints the groups and the largest tensor per group in both precisions", async () => {
  const c4k = await loadRunConfig("configs/ps3-4k.yaml", ["train.batch_size=32"]);
  const lines = describePreflight(c4k, fake(2 ** 31 - 1));
  // 32 x 3 x 3780^2 f32 images are 6.81 GiB; one sample 171460800 bytes: groups of 11 fit 2 GiB.
  ok(
    lines.includes(
      "  buffers (f32, this run): micro-batch of 32 in 3 group(s) of 11: largest tensor per " +
        "group the images [11, 3, 3780, 3780] f32 1.8 GiB (1886068800 bytes), largest of the " +
        "step 1.8 GiB (1886068800 bytes), device's largest buffer 2.0 GiB (2147483392 bytes)",
    ),
    lines.join("\n"),
  );
  ok(lines.some((l) => l.startsWith("  buffers (f16): micro-batch of 32 in 3 group(s) of 11")));
  // Under a limit below one image: both precisions say what does not fit.
  const small = describePreflight(c4k, fake(100 * 2 ** 20));
  ok(
    small.some((l) =>
      l.startsWith("  buffers (f32, this run): does NOT fit: Cannot split the step") &&
      l.includes("the images (one sample): [1, 3, 3780, 3780] f32, 171460800 bytes")
    ),
    small.join("\n"),
  );
});

Deno.test("the plan: fewest groups of even size; ranges cover the micro-batch", () => {
  const m = config.resolvedModel;
  const image = 3 * 128 * 128 * 4;
  const p = planGroups(m, 8, { precision: "f32", maxBufferBytes: 3 * image + 255 });
  // At most 3 per group: 3 groups, sized 3, 3, 2.
  deepStrictEqual([p.groups, p.groupSize, p.largest.bytes], [3, 3, 3 * image]);
  deepStrictEqual(groupRanges({ start: 8, end: 16 }, 3), [
    { start: 8, end: 11 },
    { start: 11, end: 14 },
    { start: 14, end: 16 },
  ]);
  deepStrictEqual(planGroups(m, 8, { precision: "f32", maxBufferBytes: 2 ** 31 - 1 }).groups, 1);
});

Deno.test("a real step's largest buffer is the plan's (the plan counts the step's tensors)", async () => {
  const rt = await initGpu();
  const t = config.train;
  for (const variant of [[], ["model.vision_cfg.mlp_ratio=8"]]) {
    const c = await loadRunConfig("tests/testdata/train_tiny.yaml", [
      ...WIDE.map((a) => a.slice(2)),
      ...variant,
    ]);
    const state = createRunState(c, rt);
    const batch = randomHostBatch(c.resolvedModel, 8, 5);
    for (const g of [1, 2, 8]) {
      state.model.params.zeroGrad();
      await rt.sync();
      rt.pool.resetPeak();
      tidy(() => {
        const l = forwardBackward(state.model, batch, {
          train: trainOptions(t),
          weights: { prior: 1, posterior: 1 },
          micro: 1,
          groupSize: g,
        });
        for (const x of Object.values(l)) x.dispose();
      });
      await rt.sync();
      // The plan's count: each tensor at the group (or micro-batch, or no batch).
      const expected = Math.max(
        ...stepTensors(c.resolvedModel, "f32").map((x) =>
          numel(x.shape) * x.elementBytes * (x.per === "sample" ? g : x.per === "batch" ? 8 : 1)
        ),
      );
      const plan = planGroups(c.resolvedModel, 8, { precision: "f32", maxBufferBytes: 2 ** 40 });
      if (g === 8) deepStrictEqual(plan.largestBytes, expected);
      deepStrictEqual(rt.memory().largestRequestBytes, expected, `${variant} g=${g}`);
    }
  }
});

Deno.test("train.batch_size=auto under the buffer limit confirms and trains in sample groups", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-buffer-auto-" });
  const r = await run(String(LIMIT), out, [
    "--train.batch_size=auto",
    "--train.memory_limit_gb=0.03",
    "--train.steps=1",
  ]);
  const log = new TextDecoder().decode(r.stdout);
  ok(r.success, `${log}\n${new TextDecoder().decode(r.stderr)}`);
  const done = log.match(/batch_size=auto: micro-batch (\d+) \(batch_size \d+\): one step peaked/);
  ok(done, log);
  const chosen = Number(done![1]);
  // Groups of 2 (one image is 196608 bytes of the 400000): the search reports them.
  ok(
    log.includes(
      `batch_size=auto: micro-batch of ${chosen} in ${Math.ceil(chosen / 2)} group(s) of 2:`,
    ),
    log,
  );
  ok(log.includes(`training 1 steps of ${chosen} samples`), log);
});

Deno.test("groups inside accumulated micro-batches: the same losses bit for bit, gradients within float32 regrouping", async () => {
  const rt = await initGpu();
  const t = config.train;
  const state = createRunState(config, rt);
  const batch = randomHostBatch(config.resolvedModel, 8, 9);
  let base: { losses: number[]; grads: Float32Array[] } | null = null;
  // Micro-batches of 4 (accum 2), in groups of 4 (none), 3 (3 + 1) and 1.
  for (const groupSize of [undefined, 3, 1]) {
    state.model.params.zeroGrad();
    const l = tidy(() =>
      forwardBackward(state.model, batch, {
        train: trainOptions(t),
        weights: { prior: 1, posterior: 1 },
        micro: 2,
        groupSize,
      })
    );
    const losses = (await rt.read(Object.values(l))).map((b) => new Float32Array(b)[0]!);
    for (const x of Object.values(l)) x.dispose();
    const grads = (await rt.read(state.model.params.grads)).map((b) => new Float32Array(b));
    if (!base) {
      base = { losses, grads };
      continue;
    }
    deepStrictEqual(losses, base.losses, `groups of ${groupSize}`);
    // Weight gradients sum the groups' rows in another order: measured 9.3e-8 of the
    // largest gradient entry (the tiny 120-wide model); within 1e-6.
    let diff = 0, scale = 0;
    grads.forEach((g, i) =>
      g.forEach((v, j) => {
        diff = Math.max(diff, Math.abs(v - base!.grads[i]![j]!));
        scale = Math.max(scale, Math.abs(base!.grads[i]![j]!));
      })
    );
    console.log(
      `groups of ${groupSize}: largest gradient difference ${
        (diff / scale).toExponential(2)
      } of the largest entry`,
    );
    ok(diff <= 1e-6 * scale, `groups of ${groupSize}: ${diff} vs ${scale}`);
  }
});

Deno.test("the whole-set evaluation runs in the plan's groups: figures equal to the unlimited run's", async () => {
  // At step 0 (before any update) both runs hold the same weights, and every feature is a
  // per-sample forward: the whole-set figures are the same numbers.
  const extra = ["--train.steps=1", "--log.eval_at_start=true", "--log.eval_full=true"];
  const fullAtStart = async (limit: string) => {
    const out = await Deno.makeTempDir({ prefix: "ps3-buffer-evalfull-" });
    const r = await run(limit, out, extra);
    ok(r.success, new TextDecoder().decode(r.stderr));
    const lines = (await Deno.readTextFile(join(out, "metrics.jsonl"))).split("\n")
      .filter((l) => l.trim()).map((l) => JSON.parse(l));
    const ev = lines.find((l) => l.step === 0 && l.eval_full);
    ok(ev, "an eval_full record at step 0");
    return ev.eval_full;
  };
  const limitedFull = await fullAtStart(String(LIMIT));
  const unlimitedFull = await fullAtStart("");
  ok(limitedFull.retrieval || limitedFull.grounding, JSON.stringify(limitedFull));
  deepStrictEqual(limitedFull, unlimitedFull);
});
