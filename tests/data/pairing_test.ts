import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import {
  DataError,
  type DataProblem,
  type PairedSample,
  pairUnit,
  splitKey,
} from "../../src/data/pipeline/pairing.ts";
import { TarReader } from "../../src/data/formats/tar.ts";
import { fakeImage, fakeJson, gnuTar, rejectsWith, withTmp, writeShard } from "./helpers.ts";

const dec = new TextDecoder();

async function collect(
  image: string,
  text?: string,
): Promise<{ samples: PairedSample[]; problems: DataProblem[] }> {
  const samples: PairedSample[] = [];
  const problems: DataProblem[] = [];
  for await (const item of pairUnit({ image, text, weight: 1, source: 0 })) {
    if ("sample" in item) samples.push(item.sample);
    else problems.push(item.problem);
  }
  return { samples, problems };
}

function skipped(problems: DataProblem[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of problems) if (p.skipped > 0) out[p.kind] = (out[p.kind] ?? 0) + p.skipped;
  return out;
}

async function member(ref: { shard: string; offset: number; size: number }): Promise<string> {
  await using tar = await TarReader.open(ref.shard);
  return dec.decode(await tar.readAt(ref.offset, ref.size));
}

/** Every emitted pair joins an image and a JSON that belong to the same key. */
async function assertTruePairs(samples: PairedSample[]): Promise<void> {
  for (const s of samples) {
    const base = s.key.slice(s.key.lastIndexOf("/") + 1);
    assertEquals(await member(s.image), dec.decode(fakeImage(base)));
    assertEquals(JSON.parse(await member(s.json)).global_text, base);
  }
}

const keys = (n: number) => Array.from({ length: n }, (_, i) => String(i).padStart(4, "0"));

async function pair(dir: string, imageKeys: string[], textKeys: string[]) {
  await writeShard(`${dir}/i.tar`, imageKeys.map((k) => [`${k}.jpg`, fakeImage(k)]));
  await writeShard(`${dir}/t.tar`, textKeys.map((k) => [`${k}.json`, fakeJson(k)]));
  return await collect(`${dir}/i.tar`, `${dir}/t.tar`);
}

Deno.test("splitKey() follows webdataset rules: the extension starts at the basename's first dot", () => {
  assertEquals(splitKey("000017.jpg"), { key: "000017", ext: "jpg" });
  assertEquals(splitKey("a.b/000017.seg.PNG"), { key: "a.b/000017", ext: "seg.png" });
  assertEquals(splitKey("dir/README"), undefined);
  assertEquals(splitKey(".hidden"), undefined);
  assertEquals(splitKey("x/.DS_Store"), undefined);
  assertEquals(splitKey("trailing."), undefined);
});

Deno.test("pairUnit() pairs matching shards in order with correct member references", async () => {
  await withTmp(async (dir) => {
    const { samples, problems } = await pair(dir, keys(5), keys(5));
    assertEquals(samples.map((s) => s.key), keys(5));
    assertEquals(problems, []);
    await assertTruePairs(samples);
  });
});

Deno.test("pairUnit() pairs GNU tar shards whose members sit in different folders", async () => {
  await withTmp(async (dir) => {
    await Deno.mkdir(`${dir}/a/img`, { recursive: true });
    await Deno.mkdir(`${dir}/b/txt`, { recursive: true });
    for (const k of keys(3)) {
      await Deno.writeFile(`${dir}/a/img/${k}.jpg`, fakeImage(k));
      await Deno.writeTextFile(`${dir}/a/img/${k}.txt`, "ignored member");
      await Deno.writeTextFile(`${dir}/b/txt/${k}.json`, fakeJson(k));
    }
    await gnuTar(["--sort=name", "-cf", `${dir}/i.tar`, "."], `${dir}/a`);
    await gnuTar(["--sort=name", "-cf", `${dir}/t.tar`, "."], `${dir}/b`);
    const { samples, problems } = await collect(`${dir}/i.tar`, `${dir}/t.tar`);
    assertEquals(samples.map((s) => s.key), keys(3).map((k) => `img/${k}`));
    assertEquals(problems, []);
    await assertTruePairs(samples);
  });
});

Deno.test("pairUnit() reports a key mismatch with both keys and shards, then skips the lone image", async () => {
  await withTmp(async (dir) => {
    const img = keys(6);
    const txt = img.filter((k) => k !== "0002");
    const { samples, problems } = await pair(dir, img, txt);
    assertEquals(samples.map((s) => s.key), txt);
    await assertTruePairs(samples);
    assertEquals(skipped(problems), { "missing-json": 1 });
    const mismatch = problems.find((p) => p.kind === "key-mismatch")!;
    for (const part of ['"0002"', '"0003"', `${dir}/i.tar`, `${dir}/t.tar`]) {
      assert(mismatch.message.includes(part), mismatch.message);
    }
  });
});

Deno.test("pairUnit() re-synchronises when the image shard misses members", async () => {
  await withTmp(async (dir) => {
    const txt = keys(8);
    const img = txt.filter((k) => k !== "0001" && k !== "0005" && k !== "0006");
    const { samples, problems } = await pair(dir, img, txt);
    assertEquals(samples.map((s) => s.key), img);
    await assertTruePairs(samples);
    assertEquals(skipped(problems), { "missing-image": 3 });
  });
});

Deno.test("pairUnit() never pairs different keys when orders differ or keys never meet", async () => {
  await withTmp(async (dir) => {
    const swapped = await pair(dir, ["a", "b", "c", "d", "e"], ["a", "c", "b", "d", "e"]);
    await assertTruePairs(swapped.samples);
    assertEquals(swapped.samples.map((s) => s.key), ["a", "c", "d", "e"]);
    assertEquals(skipped(swapped.problems), { "missing-json": 1, "missing-image": 1 });

    const disjoint = await pair(dir, ["a", "b", "c"], ["x", "y"]);
    assertEquals(disjoint.samples, []);
    assertEquals(skipped(disjoint.problems), { "missing-json": 3, "missing-image": 2 });

    const tail = await pair(dir, ["a", "b"], ["a", "b", "c", "d"]);
    assertEquals(tail.samples.map((s) => s.key), ["a", "b"]);
    assertEquals(skipped(tail.problems), { "missing-image": 2 });
  });
});

Deno.test("pairUnit() strict mode throws a DataError naming both keys and shards", async () => {
  await withTmp(async (dir) => {
    await writeShard(`${dir}/i.tar`, ["a", "b"].map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/t.tar`, ["a", "c"].map((k) => [`${k}.json`, fakeJson(k)]));
    const seen: string[] = [];
    const err = await rejectsWith(async () => {
      const unit = { image: `${dir}/i.tar`, text: `${dir}/t.tar`, weight: 1, source: 0 };
      for await (const item of pairUnit(unit, { strict: true })) {
        if ("sample" in item) seen.push(item.sample.key);
      }
    }, DataError);
    assertEquals(seen, ["a"]);
    assertEquals(err.problem.kind, "key-mismatch");
    assert(
      err.message.includes('"b"') && err.message.includes('"c"') && err.message.includes("i.tar"),
    );
  });
});

Deno.test("pairUnit() single layout pairs key.jpg with key.json and counts incomplete samples", async () => {
  await withTmp(async (dir) => {
    await writeShard(`${dir}/s.tar`, [
      ["0000.jpg", fakeImage("0000")],
      ["0000.json", fakeJson("0000")],
      ["0001.png", fakeImage("0001")],
      ["0002.json", fakeJson("0002")],
      ["0003.json", fakeJson("0003")],
      ["0003.webp", fakeImage("0003")],
      ["0004.seg.png", fakeImage("0004")],
      ["0004.json", fakeJson("0004")],
    ]);
    const { samples, problems } = await collect(`${dir}/s.tar`);
    assertEquals(samples.map((s) => [s.key, s.image.name]), [
      ["0000", "0000.jpg"],
      ["0003", "0003.webp"],
    ]);
    await assertTruePairs(samples);
    assertEquals(skipped(problems), { "missing-json": 1, "missing-image": 2 });
  });
});

Deno.test("pairUnit() keeps the readable part of a truncated shard and counts its partner's rest", async () => {
  await withTmp(async (dir) => {
    const ks = keys(6);
    await writeShard(`${dir}/i.tar`, ks.map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/t.tar`, ks.map((k) => [`${k}.json`, fakeJson(k)]));
    const full = await Deno.readFile(`${dir}/i.tar`);
    await Deno.writeFile(`${dir}/i.tar`, full.subarray(0, 3 * 1024 + 100)); // inside header 3
    const { samples, problems } = await collect(`${dir}/i.tar`, `${dir}/t.tar`);
    assertEquals(samples.map((s) => s.key), ks.slice(0, 3));
    await assertTruePairs(samples);
    assertEquals(skipped(problems), { "tar-truncated": 3 });
    const shardProblem = problems.find((p) => p.skipped === 0)!;
    assertEquals(shardProblem.kind, "tar-truncated");
    assert(
      shardProblem.message.includes(`"${dir}/i.tar"`) && shardProblem.message.includes("at byte"),
    );
  });
});
