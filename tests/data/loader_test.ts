import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok as assert } from "node:assert";
import {
  type Batch,
  DataLoader,
  type LoaderOptions,
  type SampleOptions,
} from "../../src/data/pipeline/loader.ts";
import { DataError } from "../../src/data/pipeline/pairing.ts";
import { fakeImage, fakeJson, pairedDataset, rejectsWith, withTmp, writeShard } from "./helpers.ts";

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

async function open(
  dir: string,
  data: { images: string; texts?: string | undefined },
  o: Partial<LoaderOptions> = {},
): Promise<DataLoader> {
  await Deno.writeTextFile(`${dir}/tok.json`, "{}");
  return await DataLoader.create({
    ...data,
    tokenizer: `${dir}/tok.json`,
    sampleModule: FAKE,
    tokenizerModule: FAKE,
    sample: SAMPLE,
    batchSize: 4,
    workers: 2,
    shuffleBuffer: 16,
    seed: 11,
    ...o,
  });
}

/** Everything a batch holds, as plain data. */
function snap(b: Batch) {
  return {
    keys: b.keys,
    epoch: b.epoch,
    index: b.index,
    images: Array.from(b.images),
    tokens: Array.from(b.tokens),
    boxMaps: Array.from(b.boxMaps),
    isGlobal: Array.from(b.isGlobal),
  };
}

async function drain(loader: DataLoader, n = Infinity): Promise<ReturnType<typeof snap>[]> {
  const out = [];
  while (out.length < n) {
    const b = await loader.next();
    if (!b) break;
    out.push(snap(b));
  }
  return out;
}

Deno.test("DataLoader yields every sample once per shuffled epoch, reshuffled each epoch", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 4, per: 10 });
    await using loader = await open(dir, data, { epochs: 2 });
    const batches = await drain(loader);
    const epoch0 = batches.filter((b) => b.epoch === 0).flatMap((b) => b.keys);
    const epoch1 = batches.filter((b) => b.epoch === 1).flatMap((b) => b.keys);
    assertEquals([...epoch0].sort(), data.keys);
    assertEquals([...epoch1].sort(), data.keys);
    notDeepStrictEqual(epoch0, epoch1);
    notDeepStrictEqual(epoch0, data.keys);
    assertEquals(batches.map((b) => [b.epoch, b.index]), [
      [0, 0],
      [0, 1],
      [0, 2],
      [0, 3],
      [0, 4],
      [0, 5],
      [0, 6],
      [0, 7],
      [0, 8],
      [0, 9],
      [1, 0],
      [1, 1],
      [1, 2],
      [1, 3],
      [1, 4],
      [1, 5],
      [1, 6],
      [1, 7],
      [1, 8],
      [1, 9],
    ]);
    for (const b of batches) {
      // The fake writes the key number into image[1] of its row, so rows follow keys.
      b.keys.forEach((k, i) => assertEquals(b.images[i * 27 + 1], Number(k)));
    }
    assertEquals(loader.stats().yielded, 80);
  });
});

Deno.test("DataLoader batches do not depend on the number of workers or prefetch", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 3, per: 9 });
    const runs = [];
    for (const [workers, prefetch] of [[1, 1], [3, 4]]) {
      await using loader = await open(dir, data, { workers, prefetch, epochs: 2 });
      runs.push(await drain(loader));
    }
    assertEquals(runs[0], runs[1]);
    assertEquals(runs[0]!.length, 12); // 27 samples -> 6 full batches per epoch
  });
});

async function badDataset(dir: string): Promise<{ images: string; texts: string }> {
  // Shard 0: a corrupt image (0003), invalid JSON (0005), an image without JSON (0006).
  // Shard 1: fine. Shard 2: its text shard is truncated after 4 of 8 samples.
  await Deno.mkdir(`${dir}/i`, { recursive: true });
  await Deno.mkdir(`${dir}/t`, { recursive: true });
  const keys = (s: number) =>
    Array.from({ length: 8 }, (_, i) => String(s * 8 + i).padStart(4, "0"));
  const k0 = keys(0);
  await writeShard(
    `${dir}/i/0.tar`,
    k0.map((k) => [`${k}.jpg`, k === "0003" ? "CORRUPT" : fakeImage(k)]),
  );
  await writeShard(
    `${dir}/t/0.tar`,
    k0.filter((k) => k !== "0006").map((k) => [`${k}.json`, k === "0005" ? "{oops" : fakeJson(k)]),
  );
  await writeShard(`${dir}/i/1.tar`, keys(1).map((k) => [`${k}.jpg`, fakeImage(k)]));
  await writeShard(`${dir}/t/1.tar`, keys(1).map((k) => [`${k}.json`, fakeJson(k)]));
  await writeShard(`${dir}/i/2.tar`, keys(2).map((k) => [`${k}.jpg`, fakeImage(k)]));
  await writeShard(`${dir}/t/2.tar`, keys(2).map((k) => [`${k}.json`, fakeJson(k)]));
  const t2 = await Deno.readFile(`${dir}/t/2.tar`);
  await Deno.writeFile(`${dir}/t/2.tar`, t2.subarray(0, 4 * 1024 + 300));
  return { images: `${dir}/i/{0..2}.tar`, texts: `${dir}/t/{0..2}.tar` };
}

Deno.test("DataLoader counts skipped samples exactly, by reason, with examples", async () => {
  await withTmp(async (dir) => {
    const data = await badDataset(dir);
    await using loader = await open(dir, data, { epochs: 1, partial: true, batchSize: 5 });
    const batches = await drain(loader);
    const keys = batches.flatMap((b) => b.keys);
    const stats = loader.stats();
    assertEquals(stats.skipped, {
      "image-corrupt": 1,
      "json-invalid": 1,
      "missing-json": 1,
      "tar-truncated": 4,
    });
    assertEquals(stats.problems, { "key-mismatch": 1, "tar-truncated": 1 });
    assertEquals(keys.length, 24 - 7);
    assertEquals(stats.yielded, 17);
    assertEquals(stats.samples, 19); // 17 good + 2 that failed in the per-sample function
    assertEquals(stats.repaired, { "box-clipped": keys.filter((k) => Number(k) % 4 === 0).length });
    for (const bad of ["0003", "0005", "0006", "0020", "0023"]) assert(!keys.includes(bad), bad);
    const corrupt = stats.examples.find((e) => e.kind === "image-corrupt")!;
    assertEquals([corrupt.key, corrupt.file], ["0003", `${dir}/i/0.tar / ${dir}/t/0.tar`]);
    assert(corrupt.message.includes("0003") && corrupt.message.includes(`${dir}/i/0.tar`));
    const trunc = stats.examples.find((e) => e.kind === "tar-truncated" && e.skipped === 0)!;
    assert(trunc.message.includes(`"${dir}/t/2.tar"`) && trunc.message.includes("at byte"));
  });
});

Deno.test("DataLoader drops and counts an epoch's partial batch unless partial is set", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 2, per: 7 });
    await using loader = await open(dir, data, { epochs: 1, batchSize: 4 });
    const batches = await drain(loader);
    assertEquals(batches.length, 3);
    assertEquals(loader.stats().dropped, 2);
  });
});

Deno.test("DataLoader strict mode throws at the first bad sample naming shard, key and reason", async () => {
  await withTmp(async (dir) => {
    const data = await badDataset(dir);
    await using loader = await open(dir, data, {
      strict: true,
      shards: "sequential",
      shuffleBuffer: 0,
    });
    const err = await rejectsWith(() => drain(loader), DataError);
    assertEquals([err.problem.kind, err.problem.key], ["image-corrupt", "0003"]);
    assert(err.message.includes('"0003"') && err.message.includes(`${dir}/i/0.tar`), err.message);
    await rejectsWith(() => loader.next(), DataError); // stays failed
  });
});

Deno.test("DataLoader strict mode throws a key mismatch with both keys and both shards", async () => {
  await withTmp(async (dir) => {
    await writeShard(`${dir}/i.tar`, ["0001", "0002"].map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/t.tar`, ["0001", "0003"].map((k) => [`${k}.json`, fakeJson(k)]));
    await using loader = await open(dir, { images: `${dir}/i.tar`, texts: `${dir}/t.tar` }, {
      strict: true,
      batchSize: 1,
    });
    const err = await rejectsWith(() => drain(loader), DataError);
    assertEquals(err.problem.kind, "key-mismatch");
    for (const s of ['"0002"', '"0003"', `${dir}/i.tar`, `${dir}/t.tar`]) {
      assert(err.message.includes(s));
    }
  });
});

Deno.test("DataLoader does not swallow errors that are not SampleErrors", async () => {
  await withTmp(async (dir) => {
    await writeShard(`${dir}/i.tar`, ["0001", "0002"].map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/t.tar`, [["0001.json", fakeJson("0001")], [
      "0002.json",
      '{"bug": true}',
    ]]);
    await using loader = await open(dir, { images: `${dir}/i.tar`, texts: `${dir}/t.tar` }, {
      batchSize: 2,
    });
    const err = await rejectsWith(() => loader.next(), Error);
    assert(err.message.includes('Preparing sample "0002" failed: fake bug'), err.message);
  });
});

for (const shards of ["shuffled", "resampled"] as const) {
  Deno.test(`DataLoader.resume() continues exactly like an uninterrupted run (${shards})`, async () => {
    await withTmp(async (dir) => {
      const data = await badDataset(dir);
      const o = {
        shards,
        epochs: 3,
        batchSize: 3,
        batchesPerEpoch: shards === "resampled" ? 4 : 0,
      };
      let full: ReturnType<typeof snap>[];
      let finalStats;
      {
        await using loader = await open(dir, data, o);
        full = await drain(loader);
        finalStats = loader.stats();
      }
      assert(full.length >= 10, `${full.length} batches`);
      // Stop after k batches (mid-epoch, at an epoch's end, at the very start), save, resume.
      for (const k of [0, 2, 5, full.findIndex((b) => b.epoch === 1), full.length - 1]) {
        let saved: string;
        {
          await using a = await open(dir, data, { ...o, workers: 1, prefetch: 3 });
          assertEquals(await drain(a, k), full.slice(0, k));
          saved = JSON.stringify(a.state());
        }
        await using b = await open(dir, data, { ...o, workers: 3 });
        await b.resume(JSON.parse(saved));
        assertEquals(await drain(b), full.slice(k), `resume after ${k} batches`);
        assertEquals(b.stats(), finalStats);
      }
    });
  });
}

Deno.test("DataLoader.resume() refuses a state saved with other settings", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 2, per: 4 });
    let state;
    {
      await using a = await open(dir, data, { batchSize: 2 });
      await a.next();
      state = a.state();
    }
    await using b = await open(dir, data, { batchSize: 4 });
    const err = await rejectsWith(() => b.resume(state), RangeError);
    assert(err.message.includes("batchSize was 2"), err.message);
  });
});

Deno.test("DataLoader ranks read disjoint samples that together cover the epoch", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 5, per: 4 });
    const perRank: string[][] = [];
    for (const rank of [0, 1]) {
      await using loader = await open(dir, data, { rank, worldSize: 2, epochs: 1, partial: true });
      perRank.push((await drain(loader)).flatMap((b) => b.keys));
    }
    assertEquals(perRank[0]!.filter((k) => perRank[1]!.includes(k)), []);
    assertEquals([...perRank[0]!, ...perRank[1]!].sort(), data.keys);
    // Shards are split whole: 5 shards over 2 ranks is 3 + 2 shards of 4 samples.
    assertEquals(perRank.map((k) => k.length).sort((a, b) => a - b), [8, 12]);
  });
});

Deno.test("DataLoader resampled epochs last batchesPerEpoch batches and differ per epoch", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 4, per: 6 });
    await using loader = await open(dir, data, {
      shards: "resampled",
      batchesPerEpoch: 3,
      epochs: 3,
    });
    const batches = await drain(loader);
    assertEquals(batches.map((b) => `${b.epoch}.${b.index}`), [
      "0.0",
      "0.1",
      "0.2",
      "1.0",
      "1.1",
      "1.2",
      "2.0",
      "2.1",
      "2.2",
    ]);
    notDeepStrictEqual(batches[0]!.keys, batches[3]!.keys);
  });
});

Deno.test("DataLoader reads the single-dataset layout (key.jpg + key.json in one shard)", async () => {
  await withTmp(async (dir) => {
    const keys = Array.from({ length: 6 }, (_, i) => String(i).padStart(4, "0"));
    await writeShard(
      `${dir}/s.tar`,
      keys.flatMap((k) => [[`${k}.json`, fakeJson(k)], [`${k}.png`, fakeImage(k)]]),
    );
    await using loader = await open(dir, { images: `${dir}/s.tar` }, { epochs: 1, batchSize: 3 });
    const batches = await drain(loader);
    assertEquals(batches.flatMap((b) => b.keys).sort(), keys);
  });
});

Deno.test("DataLoader.create() names missing shards and a tokenizer that fails to load", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 2, per: 2 });
    await Deno.remove(`${dir}/texts/text_001.tar`);
    const err = await rejectsWith(() => open(dir, data), Error);
    assert(err.message.includes("1 shard(s) are missing") && err.message.includes("text_001.tar"));
    const ok = await pairedDataset(`${dir}/ok`, { shards: 1, per: 2 });
    const bad = await rejectsWith(
      () => open(dir, ok, { tokenizer: `${dir}/no_such_tokenizer.json` }),
      Error,
    );
    assert(bad.message.includes("Cannot start a decode worker"), bad.message);
  });
});

Deno.test("DataLoader fails clearly instead of spinning when resampled shards hold no sample", async () => {
  await withTmp(async (dir) => {
    await writeShard(`${dir}/i.tar`, [["0001.jpg", fakeImage("0001")]]);
    await writeShard(`${dir}/t.tar`, [["0002.json", fakeJson("0002")]]);
    await using loader = await open(dir, { images: `${dir}/i.tar`, texts: `${dir}/t.tar` }, {
      shards: "resampled",
    });
    const err = await rejectsWith(() => loader.next(), Error);
    assert(err.message.includes("No usable sample in 18 shards drawn in a row"), err.message);
  });
});

Deno.test("DataLoader fails clearly when an epoch cannot fill a single batch", async () => {
  await withTmp(async (dir) => {
    const data = await pairedDataset(dir, { shards: 1, per: 3 });
    await using loader = await open(dir, data, { batchSize: 4 });
    const err = await rejectsWith(() => loader.next(), Error);
    assert(err.message.includes("Epoch 0 ended without a single batch of 4"), err.message);
  });
});
