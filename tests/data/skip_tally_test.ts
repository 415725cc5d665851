import { deepStrictEqual as assertEquals, match, strictEqual } from "node:assert";
import { DataLoader, type SampleOptions } from "../../src/data/pipeline/loader.ts";
import { newSkipShardLines } from "../../src/data/pipeline/skip_tally.ts";
import { fakeImage, fakeJson, withTmp, writeShard } from "./helpers.ts";

const FAKE = new URL("./fake_sample.ts", import.meta.url).href;
const SAMPLE: SampleOptions = {
  imageSize: 3,
  train: true,
  globalCaptionProb: 0.5,
  sampleNBoxEachImage: 1,
  sentenceMasking: false,
  maxPixels: 1e6,
  contextLength: 4,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

Deno.test("skip counts are samples, not occurrences: one bad image and one bad tar header over 3 epochs, by shard", async () => {
  await withTmp(async (dir) => {
    await Deno.mkdir(`${dir}/i`);
    await Deno.mkdir(`${dir}/t`);
    const keys = (s: number) =>
      Array.from({ length: 8 }, (_, i) => String(s * 8 + i).padStart(4, "0"));
    await writeShard(
      `${dir}/i/0.tar`,
      keys(0).map((k) => [`${k}.jpg`, k === "0003" ? "CORRUPT" : fakeImage(k)]),
    );
    await writeShard(`${dir}/t/0.tar`, keys(0).map((k) => [`${k}.json`, fakeJson(k)]));
    await writeShard(`${dir}/i/1.tar`, keys(1).map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/t/1.tar`, keys(1).map((k) => [`${k}.json`, fakeJson(k)]));
    // A damaged header (checksum mismatch) at the 5th member hides the last 4 samples.
    const t1 = await Deno.readFile(`${dir}/t/1.tar`);
    strictEqual(t1.length >= 8 * 1024, true);
    t1[4 * 1024 + 3]! ^= 0x20;
    await Deno.writeFile(`${dir}/t/1.tar`, t1);
    await Deno.writeTextFile(`${dir}/tok.json`, "{}");
    await using loader = await DataLoader.create({
      images: `${dir}/i/{0..1}.tar`,
      texts: `${dir}/t/{0..1}.tar`,
      tokenizer: `${dir}/tok.json`,
      sampleModule: FAKE,
      tokenizerModule: FAKE,
      sample: SAMPLE,
      batchSize: 4,
      workers: 1,
      shuffleBuffer: 0,
      seed: 1,
      epochs: 3,
      partial: true,
    });
    const logged = new Set<string>();
    const lines: string[] = [];
    let yielded = 0;
    for await (const b of loader) {
      yielded += b.keys.length;
      lines.push(...newSkipShardLines(loader.stats(), logged));
    }
    const stats = loader.stats();
    strictEqual(yielded, 3 * 11); // 16 samples, 5 bad, in each of 3 epochs
    assertEquals(stats.skipped, { "image-corrupt": 1, "tar-checksum": 4 });
    assertEquals(stats.skippedByShard, {
      [`${dir}/i/0.tar / ${dir}/t/0.tar`]: { "image-corrupt": 1 },
      [`${dir}/i/1.tar`]: { "tar-checksum": 4 },
    });
    // The log names each shard once, the first time it skips.
    strictEqual(lines.length, 2);
    const joined = lines.join("\n");
    match(joined, new RegExp(`skipping samples from shard "${dir}/i/0\\.tar / ${dir}/t/0\\.tar"`));
    match(
      joined,
      new RegExp(
        `shard "${dir}/i/1\\.tar" \\(tar-checksum 4 so far\\).*"${dir}/t/1\\.tar" is unreadable`,
      ),
    );
  });
});
