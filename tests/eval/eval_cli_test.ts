import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../main.ts";
import { rewriteShard, withTmp } from "../data/helpers.ts";
import { writeTinyModel } from "../encode/helpers.ts";
import { initGpu } from "../../src/gpu/runtime.ts";
import { writeSynthDataset } from "../../src/data/tools/synth.ts";
import { readTar } from "../../src/data/formats/tar.ts";
import { writeSynthZeroshot } from "../../src/eval/synth_zeroshot.ts";
import { classPrompts, readZeroshotSet } from "../../src/eval/zeroshot.ts";

await initGpu();

/** Runs `ps3 ...` with the console captured and standard error not a terminal. */
async function ps3(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  const tty = Object.getOwnPropertyDescriptor(Deno.stderr, "isTerminal");
  Object.defineProperty(Deno.stderr, "isTerminal", { value: () => false, configurable: true });
  try {
    const code = await main(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    if (tty) Object.defineProperty(Deno.stderr, "isTerminal", tty);
    else delete (Deno.stderr as { isTerminal?: unknown }).isTerminal;
  }
}

Deno.test("ps3 eval: whole-set figures, bad and partial samples counted, JSON report", async () => {
  await withTmp(async (dir) => {
    const model = join(dir, "model");
    await writeTinyModel(model, { conv: true, seed: 4 });
    const m = await writeSynthDataset(join(dir, "data"), {
      count: 1,
      holdout: 12,
      width: 64,
      height: 48,
      shardSize: 6,
    });
    const images = join(dir, "data", m.holdout!.images);
    const texts = join(dir, "data", m.holdout!.texts);
    // Sample 1: a truncated PNG (skipped); 2: no global caption; 3: no local caption.
    await rewriteShard(
      images.replace("{00000..00001}", "00000"),
      (name, data) => name === "00000003.png" ? data.subarray(0, 100) : data,
    );
    await rewriteShard(texts.replace("{00000..00001}", "00000"), (name, data) => {
      const j = JSON.parse(new TextDecoder().decode(data));
      if (name === "00000004.json") return JSON.stringify({ text: j.text, box: j.box });
      if (name === "00000005.json") return JSON.stringify({ global_text: j.global_text });
      return data;
    });
    await writeSynthZeroshot(join(dir, "zs"), { perClass: 1, width: 32, height: 24 });
    // Every local caption of the usable images is one region.
    let locals = 0;
    for (const shard of ["00000", "00001"]) {
      for await (const { entry, data } of readTar(texts.replace("{00000..00001}", shard))) {
        if (entry.name === "00000003.json") continue;
        locals += (JSON.parse(new TextDecoder().decode(data)).text ?? []).length;
      }
    }
    assert.ok(locals > 11, `${locals} local captions`);
    const report = join(dir, "report.json");
    const r = await ps3([
      "eval",
      "--checkpoint",
      model,
      "--data",
      images,
      texts,
      "--zeroshot",
      join(dir, "zs"),
      "--batch-size",
      "4",
      "--out",
      report,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /image->text R@1\/5\/10 \(10 pairs\)/);
    assert.match(r.out, new RegExp(`caption->region R@1/5 \\(${locals} regions\\)`));
    assert.match(r.out, /skipped: image-truncated 1/);
    assert.match(r.err, /local captions #1: 12\/12/);
    const j = JSON.parse(await Deno.readTextFile(report));
    assert.deepEqual(j.samples, { images: 11, global: 10, local: locals });
    assert.deepEqual(j.skipped, { "image-truncated": 1 });
    assert.equal(j.retrieval.n, 10);
    assert.deepEqual(j.retrieval.chance, { 1: 0.1, 5: 0.5, 10: 1 });
    assert.equal(j.retrieval.imageToText["10"], 1);
    assert.equal(j.grounding.n, locals);
    assert.deepEqual(j.grounding.chance, { 1: 1 / locals, 5: 5 / locals });
    assert.equal(j.grounding.pointingPerScale.length, 2);
    assert.equal(j.zeroshot[0].classes, 40);
    assert.equal(j.zeroshot[0].n, 40);
    for (
      const v of [
        ...Object.values(j.retrieval.imageToText),
        ...Object.values(j.retrieval.textToImage),
        ...Object.values(j.grounding.captionToRegion),
        j.grounding.pointing,
        j.grounding.probInside,
        j.zeroshot[0].top1,
      ] as number[]
    ) assert.ok(v >= 0 && v <= 1, `${v}`);
    assert.ok(j.zeroshot[0].top5 >= j.zeroshot[0].top1);

    const bad = await ps3(["eval", "--checkpoint", model]);
    assert.equal(bad.code, 2);
    await assert.rejects(
      () => ps3(["eval", "--checkpoint", model, "--data", images, texts, "--zeroshot", dir]),
      /zero-shot folder ".*": it has \d+ class sub-folder|no images/,
    );
  });
});

Deno.test("zero-shot folders: class names from folders, a name file, and templates", async () => {
  await withTmp(async (dir) => {
    for (const c of ["b_cat", "a_dog"]) {
      await Deno.mkdir(join(dir, c));
      await Deno.writeFile(join(dir, c, "1.png"), new Uint8Array(1));
      await Deno.writeFile(join(dir, c, "notes.txt"), new Uint8Array(1));
    }
    let s = await readZeroshotSet(dir);
    assert.deepEqual(s.classes, ["a dog", "b cat"]);
    assert.deepEqual(s.images.map((i) => i.label), [0, 1]);
    assert.deepEqual(classPrompts(s), ["a photo of a a dog.", "a photo of a b cat."]);
    await Deno.writeTextFile(join(dir, "classnames.txt"), "b_cat\tkitten\na_dog\tpuppy\n");
    await Deno.writeTextFile(join(dir, "templates.txt"), "# comment\n{c}.\nthe {c}\n");
    s = await readZeroshotSet(dir);
    assert.deepEqual(classPrompts(s), ["puppy.", "the puppy", "kitten.", "the kitten"]);
    await Deno.writeTextFile(join(dir, "names.txt"), "one\ntwo\n");
    s = await readZeroshotSet(dir, { classnames: join(dir, "names.txt") });
    assert.deepEqual(s.classes, ["one", "two"]);
    await Deno.writeTextFile(join(dir, "names.txt"), "one\n");
    await assert.rejects(
      () => readZeroshotSet(dir, { classnames: join(dir, "names.txt") }),
      /1 names for 2 class folders/,
    );
    await Deno.writeTextFile(join(dir, "t.txt"), "a photo\n");
    await assert.rejects(
      () => readZeroshotSet(dir, { templates: join(dir, "t.txt") }),
      /"a photo" has no \{c\}/,
    );
  });
});
