/**
 * A tiny training run under a lowered storage binding limit (`PS3_MAX_BINDING_BYTES`, 196 KiB)
 * against the same run without it, each in a process of its own. The test model's trunk is
 * widened to 120 (4 heads) with 80 high-res tokens so that its attention tensors pass the
 * limit too: the high-res blocks' q, k, v, out and their gradients ([8, 80, 120] f32, 300 KiB)
 * and the attention pool's keys and values run in blocks of samples, as do the selection
 * ConvNet's patch unfold, the high-res patch gather ([8, 64, 192] at the 128-px scale), the
 * resizes of the 128-px input, the larger matmuls (forward and backward), the norms and
 * elementwise ops over [8, 80, 120], the high-res position rows' gather ([8, 64, 120] out,
 * 240 KiB) and the selection MLP's [240, 240] weight (225 KiB, split along its rows). A limit
 * under 192 KiB is refused: one 3 x 128 x 128 image of the ConvNet input. The forward splits
 * along batches, samples, rows and weight rows only, so step 1's losses are the same bits; weight gradients summed over K ranges
 * regroup their additions, so the gradient norm and the later steps differ by float32 rounding
 * only.
 *
 * @module
 */

import { deepStrictEqual, ok, throws } from "node:assert";
import { join } from "node:path";
import type { Runtime } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { checkRunBindings } from "../../src/train/preflight.ts";
import { assertSameRun, runWide, trainWide, WIDE } from "./tiny_run.ts";

const LIMIT = 200704;
const synth = await Deno.makeTempDir({ prefix: "ps3-limit-synth-" });

/** The wide test model's run under a binding limit ("" for none). */
const env = (limit: string): Record<string, string> =>
  limit ? { PS3_MAX_BINDING_BYTES: limit } : {};

/** Runs 3 steps under a binding limit; returns the step records and the dispatch summary. */
async function train(limit: string) {
  const run = await trainWide(env(limit), synth);
  const summary = JSON.parse(await Deno.readTextFile(join(run.out, "summary.json")));
  return { ...run, dispatches: summary.dispatches as { count: number; maxBindingBytes: number } };
}

// One after the other: the GPU is shared.
const unlimited = await train("");
const limited = await train(String(LIMIT));

Deno.test(`a tiny training run under a ${LIMIT}-byte binding limit equals the run without it`, async () => {
  // The tensors that split: the ConvNet's input batch and the high-res attention's q (each
  // whole over the limit; one image and one sample under it).
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml", WIDE.map((a) => a.slice(2)));
  const v = config.resolvedModel.vision, b = config.train.batch_size;
  const m = v.maxSelect;
  ok(b * 3 * v.conv!.inputSize ** 2 * 4 > LIMIT);
  ok(b * m * v.trunk.width * 4 > LIMIT, `attention q ${b * m * v.trunk.width * 4} bytes`);
  // The selection MLP's fc1 weight and the high-res position rows' gather output (the
  // positions of the 128-px scale's 64 patches per sample).
  const sel = v.selectLayers.length * v.trunk.width;
  ok(sel * sel * 4 > LIMIT, `selection fc1 weight ${sel * sel * 4} bytes`);
  ok(b * 64 * v.trunk.width * 4 > LIMIT);
  deepStrictEqual(limited.dispatches.maxBindingBytes, LIMIT);
  ok(unlimited.dispatches.maxBindingBytes > LIMIT);
  // The limit split ops: more kernels dispatched for the same steps and evaluation.
  console.log(
    `dispatches: ${limited.dispatches.count} under the limit, ${unlimited.dispatches.count} without`,
  );
  ok(
    limited.dispatches.count > unlimited.dispatches.count,
    `${limited.dispatches.count} dispatches vs ${unlimited.dispatches.count} unlimited`,
  );
  // Step 1's forward the same bits; the gradient norm and steps 2-3 (parameters updated from
  // gradients regrouped by K splits, a few ulps each): measured at most 3.2e-7 relative (the
  // 120-wide model); float32 rounding, within 1e-6.
  const worst = assertSameRun(limited, unlimited, 1e-6);
  console.log(`largest relative difference after step 1's forward: ${worst.toExponential(2)}`);
});

Deno.test("the preflight refuses a limit below one image of the ConvNet's patch unfold, before any step", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-limit-refused-" });
  const r = await runWide(env("131072"), out, synth);
  deepStrictEqual(r.code, 1);
  const err = new TextDecoder().decode(r.stderr);
  ok(
    err.includes(
      "1 op(s) cannot split below the device's storage binding limit of 131072 bytes:\n" +
        "  patch_unfold (one image): [3, 128, 128] f32, 196860 bytes\n",
    ),
    err,
  );
  throws(() => Deno.statSync(join(out, "metrics.jsonl")), Deno.errors.NotFound);
});

Deno.test("the preflight's units follow the ops' rules at the edge (alignment slack)", async () => {
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml");
  const fake = (maxBindingBytes: number) =>
    ({ info: { maxBindingBytes, bindingOffsetAlignment: 256 } }) as unknown as Runtime;
  // One image of 3 x 128 x 128 floats plus a window that may start 252 bytes early.
  checkRunBindings(config, fake(196860));
  throws(() => checkRunBindings(config, fake(196856)), /patch_unfold \(one image\)/);
});

Deno.test("the high-res patch gather splits per sample: a 256-patch budget passes the preflight", async () => {
  const fake = {
    info: { maxBindingBytes: 196864, bindingOffsetAlignment: 256 },
  } as unknown as Runtime;
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
    "model.vision_cfg.max_select_num=256",
  ]);
  // 205 of the 256 patches go to the 128-px scale: [8, 205, 192] f32 is 1259520 bytes, over
  // the limit, and split per sample (157440 bytes each).
  checkRunBindings(config, fake);
});
