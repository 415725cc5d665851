import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { checkDataset } from "../../src/data/tools/check.ts";
import { writeSynthDataset } from "../../src/data/tools/synth.ts";
import { TarReader } from "../../src/data/formats/tar.ts";
import { run } from "../../src/cli/check.ts";
import { rewriteShard, withTmp } from "./helpers.ts";

async function damaged(dir: string): Promise<{ images: string; texts: string }> {
  const m = await writeSynthDataset(dir, {
    count: 24,
    holdout: 0,
    shardSize: 8,
    width: 40,
    height: 30,
  });
  // Shard 0: a truncated PNG. Shard 1: invalid JSON for 10, no JSON for 12.
  await rewriteShard(
    `${dir}/images/image_00000.tar`,
    (name, data) => name === "00000002.png" ? data.subarray(0, data.length - 30) : data,
  );
  await rewriteShard(
    `${dir}/text_boxes/text_box_00001.tar`,
    (name, data) => name === "00000010.json" ? "{oops" : name === "00000012.json" ? null : data,
  );
  // Shard 2: its text shard is cut inside the header of its fourth member.
  const path = `${dir}/text_boxes/text_box_00002.tar`;
  let cut = 0;
  {
    await using tar = await TarReader.open(path);
    let i = 0;
    for await (const e of tar.entries()) if (i++ === 3) cut = e.headerOffset + 100;
  }
  await Deno.writeFile(path, (await Deno.readFile(path)).subarray(0, cut));
  return { images: `${dir}/${m.train.images}`, texts: `${dir}/${m.train.texts}` };
}

Deno.test("checkDataset() counts every problem of a damaged dataset by kind", async () => {
  await withTmp(async (dir) => {
    const data = await damaged(dir);
    const r = await checkDataset(data.images, { texts: data.texts, workers: 2 });
    assertEquals([r.shards, r.found, r.usable, r.tokenizerChecked], [3, 24, 16, false]);
    assertEquals(r.skipped, {
      "image-truncated": 1,
      "json-invalid": 1,
      "missing-json": 1,
      "tar-truncated": 5,
    });
    assertEquals(r.problems, { "key-mismatch": 1, "tar-truncated": 1 });
    const first = r.examples.find((e) => e.kind === "image-truncated")!;
    assertEquals(first.key, "00000002");
    assert(first.file.includes("image_00000.tar") && first.message.includes("00000002.png"));
  });
});

Deno.test("checkDataset() with the tokenizer passes a clean synthetic dataset", async () => {
  await withTmp(async (dir) => {
    const m = await writeSynthDataset(dir, {
      count: 12,
      holdout: 4,
      shardSize: 4,
      width: 40,
      height: 30,
    });
    for (const split of [m.train, m.holdout!]) {
      const r = await checkDataset(`${dir}/${split.images}`, {
        texts: `${dir}/${split.texts}`,
        tokenizer: `${dir}/tokenizer.json`,
      });
      assertEquals([r.found, r.usable, r.skipped, r.problems], [
        split.samples,
        split.samples,
        {},
        {},
      ]);
      assert(r.tokenizerChecked);
    }
  });
});

Deno.test("ps3 check exits 1 with --strict on problems, 0 on clean data, 2 on bad usage", async () => {
  await withTmp(async (dir) => {
    const bad = await damaged(`${dir}/bad`);
    const m = await writeSynthDataset(`${dir}/ok`, {
      count: 4,
      holdout: 0,
      shardSize: 4,
      width: 32,
      height: 32,
    });
    const log = console.log, error = console.error;
    const out: string[] = [];
    console.log = (...a: unknown[]) => out.push(a.join(" "));
    console.error = console.log;
    try {
      assertEquals(await run([bad.images, bad.texts, "--strict"]), 1);
      assertEquals(await run([bad.images, bad.texts]), 0);
      assertEquals(
        await run([`${dir}/ok/${m.train.images}`, `${dir}/ok/${m.train.texts}`, "--strict"]),
        0,
      );
      assertEquals(await run([]), 2);
    } finally {
      console.log = log;
      console.error = error;
    }
    const text = out.join("\n");
    assert(text.includes("samples:  24 found, 16 usable, 8 skipped"), text);
    assert(text.includes("image-truncated") && text.includes('key "00000002"'), text);
    assert(text.includes("no problems found"), text);
  });
});
