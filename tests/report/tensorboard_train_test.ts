/**
 * A tiny training run with `train.report_to: [tensorboard]` and the whole-set evaluation:
 * the event file is read back with our reader (CRCs of every record checked), and its tags,
 * steps and values are compared with metrics.jsonl.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";
import { readEventFile } from "../../src/report/tfevents.ts";
import { writeSynthZeroshot } from "../../src/eval/synth_zeroshot.ts";

await initGpu();

Deno.test("training writes TensorBoard events: step scalars, eval figures, heat maps", async () => {
  const out = await Deno.makeTempDir({ prefix: "ps3-tb-" });
  const synth = await Deno.makeTempDir({ prefix: "ps3-tb-synth-" });
  try {
    await writeSynthZeroshot(join(synth, "zs"), { perClass: 1, width: 48, height: 36 });
    const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
      `checkpoint.out=${out}`,
      `data.synthesize.out=${synth}`,
      "data.synthesize.holdout=16",
      "train.steps=2",
      "checkpoint.save_every=0",
      "log.eval_every=2",
      "log.eval_full=true",
      "log.eval_heatmaps=2",
      `log.zeroshot=[${join(synth, "zs")}]`,
      "train.report_to=[tensorboard]",
    ]);
    const s = await train(config, { tty: false });
    assert.equal(s.steps, 2);
    const files = [...Deno.readDirSync(join(out, "tensorboard"))].map((e) => e.name);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^events\.out\.tfevents\.\d+\./);
    const events = await readEventFile(join(out, "tensorboard", files[0]!));
    assert.equal(events[0]!.fileVersion, "brain.Event:2");
    const lines = (await Deno.readTextFile(join(out, "metrics.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l));
    const steps = lines.filter((l) => typeof l.loss === "number");
    const scalars = new Map<string, number>();
    for (const e of events) {
      for (const v of e.values) {
        if (v.simpleValue !== undefined) scalars.set(`${e.step} ${v.tag}`, v.simpleValue);
      }
    }
    for (const rec of steps) {
      for (
        const [field, tag] of [
          ["loss", "train/loss"],
          ["contrastive", "train/siglip"],
          ["prior_box", "train/prior_box"],
          ["posterior_box", "train/posterior_box"],
          ["lr", "train/lr"],
          ["grad_norm", "train/grad_norm"],
          ["samples_per_s", "perf/samples_per_second"],
          ["data_wait_s", "perf/data_wait_seconds"],
        ]
      ) {
        assert.equal(scalars.get(`${rec.step} ${tag}`), Math.fround(rec[field!]), `${tag}`);
      }
      assert.ok(scalars.get(`${rec.step} memory/peak_in_use_mib`)! > 0);
    }
    // The evaluation at step 2: figures equal to metrics.jsonl's, heat maps as PNG images.
    const ev = lines.find((l) => l.eval_full)!;
    assert.equal(ev.step, 2);
    const full = ev.eval_full;
    assert.equal(full.samples.images, 16);
    assert.equal(
      scalars.get("2 eval/image_to_text/R@1"),
      Math.fround(full.retrieval.imageToText["1"]),
    );
    assert.equal(
      scalars.get("2 eval/caption_to_region/R@5"),
      Math.fround(full.grounding.captionToRegion["5"]),
    );
    assert.equal(scalars.get("2 eval/pointing/mean"), Math.fround(full.grounding.pointing));
    assert.equal(scalars.get("2 eval/zeroshot/zs/top1"), Math.fround(full.zeroshot[0].top1));
    assert.equal(full.zeroshot[0].classes, 40);
    assert.equal(scalars.get("2 heldout/siglip"), Math.fround(ev.eval.contrastive));
    const images = events.flatMap((e) =>
      e.values.filter((v) => v.image).map((v) => ({ step: e.step, ...v }))
    );
    assert.equal(images.length, 2);
    for (const im of images) {
      assert.equal(im.step, 2);
      assert.match(im.tag, /^eval\/selection\/\d+$/);
      assert.deepEqual([...im.image!.encoded.subarray(0, 4)], [137, 80, 78, 71]);
      assert.equal(im.image!.colorspace, 3);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(synth, { recursive: true });
  }
});
