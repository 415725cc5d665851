import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual,
  ok as assert,
  throws,
} from "node:assert";
import {
  braceExpand,
  deriveRng,
  missingShards,
  parseShardSpec,
  shardOrder,
  type ShardUnit,
  shardUnits,
} from "../../src/data/pipeline/shards.ts";
import { withTmp } from "./helpers.ts";

Deno.test("braceExpand() keeps zero padding of numeric ranges", () => {
  assertEquals(braceExpand("image_{00008..00011}.tar"), [
    "image_00008.tar",
    "image_00009.tar",
    "image_00010.tar",
    "image_00011.tar",
  ]);
  assertEquals(braceExpand("{8..11}"), ["8", "9", "10", "11"]);
  assertEquals(braceExpand("{098..101}").length, 4);
  assertEquals(braceExpand("{098..101}")[3], "101");
  assertEquals(braceExpand("{0..99}")[5], "5");
  assertEquals(braceExpand("images/image_{00000..00099}.tar").length, 100);
  assertEquals(braceExpand("images/image_{00000..00099}.tar")[99], "images/image_00099.tar");
});

Deno.test("braceExpand() handles lists, nesting, steps, descending and letter ranges", () => {
  assertEquals(braceExpand("a{b,c{1..2}}d"), ["abd", "ac1d", "ac2d"]);
  assertEquals(braceExpand("{0..10..5}"), ["0", "5", "10"]);
  assertEquals(braceExpand("{3..1}"), ["3", "2", "1"]);
  assertEquals(braceExpand("{a..c}{1,2}"), ["a1", "a2", "b1", "b2", "c1", "c2"]);
  assertEquals(braceExpand("x{,_b}.tar"), ["x.tar", "x_b.tar"]);
  assertEquals(braceExpand("plain.tar"), ["plain.tar"]);
  assertEquals(braceExpand("lit{eral}.tar"), ["lit{eral}.tar"]);
  assertEquals(braceExpand("a\\{1..2\\}.tar"), ["a{1..2}.tar"]);
});

Deno.test("braceExpand() rejects unbalanced braces with a SyntaxError naming the pattern", () => {
  for (const bad of ["a{0..3.tar", "a}b", "a{1,2}}"]) {
    throws(
      () => braceExpand(bad),
      (e: Error) => e instanceof SyntaxError && e.message.includes(bad),
    );
  }
});

Deno.test("parseShardSpec() splits sources on :: and patterns on top-level commas", () => {
  const sources = parseShardSpec("a/{0..2}.tar::b/x.tar,b/{y,z}.tar", { weights: "1::2.5" });
  assertEquals(sources.map((s) => s.shards), [
    ["a/0.tar", "a/1.tar", "a/2.tar"],
    ["b/x.tar", "b/y.tar", "b/z.tar"],
  ]);
  assertEquals(sources.map((s) => s.weight), [1, 2.5]);
  assertEquals(parseShardSpec("x.tar", { baseDir: "/data" })[0]!.shards, ["/data/x.tar"]);
  assertEquals(parseShardSpec("/abs/x.tar", { baseDir: "/data" })[0]!.shards, ["/abs/x.tar"]);
  throws(() => parseShardSpec("a::b", { weights: "1" }), RangeError);
  throws(() => parseShardSpec("a::b", { weights: [1, -2] }), RangeError);
  throws(() => parseShardSpec("a::b", { weights: "1::x" }), RangeError);
});

Deno.test("shardUnits() pairs image and text shards per source and rejects count mismatches", () => {
  const units = shardUnits("i/{0..1}.tar::j/{0..2}.tar", {
    texts: "t/{0..1}.tar::u/{0..2}.tar",
    weights: [1, 3],
  });
  assertEquals(units.map((u) => [u.image, u.text, u.weight, u.source]), [
    ["i/0.tar", "t/0.tar", 1, 0],
    ["i/1.tar", "t/1.tar", 1, 0],
    ["j/0.tar", "u/0.tar", 3, 1],
    ["j/1.tar", "u/1.tar", 3, 1],
    ["j/2.tar", "u/2.tar", 3, 1],
  ]);
  throws(
    () => shardUnits("i/{0..1}.tar", { texts: "t/{0..2}.tar" }),
    (e: Error) => e instanceof RangeError && e.message.includes("2 image shards but"),
  );
  throws(() => shardUnits("i.tar::j.tar", { texts: "t.tar" }), RangeError);
  assertEquals(shardUnits("s/{0..1}.tar")[1], {
    image: "s/1.tar",
    text: undefined,
    weight: 1,
    source: 0,
  });
});

Deno.test("missingShards() lists the shards that are not files", async () => {
  await withTmp(async (dir) => {
    await Deno.writeFile(`${dir}/a.tar`, new Uint8Array(1));
    await Deno.mkdir(`${dir}/d.tar`);
    const units = shardUnits(`${dir}/a.tar,${dir}/b.tar`, { texts: `${dir}/a.tar,${dir}/d.tar` });
    assertEquals(await missingShards(units), [`${dir}/b.tar`, `${dir}/d.tar`]);
  });
});

const UNITS: ShardUnit[] = shardUnits("s/{00..22}.tar");

function take(gen: Generator<ShardUnit>, n: number): string[] {
  const out: string[] = [];
  for (const u of gen) {
    out.push(u.image);
    if (out.length === n) break;
  }
  return out;
}

Deno.test("shardOrder() shuffled epochs are deterministic per (seed, epoch) and differ across them", () => {
  const order = (seed: number, epoch: number) =>
    take(shardOrder(UNITS, { mode: "shuffled", seed, epoch }), 100);
  assertEquals(order(5, 2), order(5, 2));
  assertEquals([...order(5, 2)].sort(), UNITS.map((u) => u.image));
  notDeepStrictEqual(order(5, 2), order(5, 3));
  notDeepStrictEqual(order(5, 2), order(6, 2));
});

for (const mode of ["shuffled", "sequential"] as const) {
  Deno.test(`shardOrder() ${mode} rank split is disjoint and covers every shard`, () => {
    for (const world of [1, 2, 4, 23]) {
      const parts = Array.from(
        { length: world },
        (_, rank) =>
          take(shardOrder(UNITS, { mode, seed: 1, epoch: 7, rank, worldSize: world }), 100),
      );
      const all = parts.flat();
      assertEquals(all.length, UNITS.length, `world ${world}`);
      assertEquals(new Set(all).size, UNITS.length, `world ${world}`);
      const sizes = parts.map((p) => p.length);
      assert(Math.max(...sizes) - Math.min(...sizes) <= 1, `balanced for world ${world}`);
    }
    throws(() => take(shardOrder(UNITS, { mode, seed: 1, epoch: 0, rank: 0, worldSize: 24 }), 1), {
      name: "RangeError",
    });
  });
}

Deno.test("shardOrder() sequential keeps list order", () => {
  assertEquals(
    take(shardOrder(UNITS, { mode: "sequential", seed: 9, epoch: 3, rank: 1, worldSize: 10 }), 5),
    ["s/01.tar", "s/11.tar", "s/21.tar"],
  );
});

Deno.test("shardOrder() resampled draws follow source weights (each shard gets its source's weight)", () => {
  // Source A: 2 shards of weight 1; source B: 1 shard of weight 3 -> P = 0.2, 0.2, 0.6.
  const units = shardUnits("a/{0..1}.tar::b/0.tar", { weights: "1::3" });
  const n = 20000;
  const counts = new Map<string, number>();
  for (const s of take(shardOrder(units, { mode: "resampled", seed: 3, epoch: 0 }), n)) {
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  // Binomial standard deviation at n = 20000 is <= 0.0035; 0.015 is over 4 of them.
  for (const [shard, p] of [["a/0.tar", 0.2], ["a/1.tar", 0.2], ["b/0.tar", 0.6]] as const) {
    assert(Math.abs(counts.get(shard)! / n - p) < 0.015, `${shard}: ${counts.get(shard)! / n}`);
  }
});

Deno.test("shardOrder() resampled streams are deterministic per (seed, epoch, rank) and differ by rank", () => {
  const draw = (epoch: number, rank: number) =>
    take(shardOrder(UNITS, { mode: "resampled", seed: 0, epoch, rank, worldSize: 2 }), 50);
  assertEquals(draw(1, 0), draw(1, 0));
  notDeepStrictEqual(draw(1, 0), draw(1, 1));
  notDeepStrictEqual(draw(1, 0), draw(2, 0));
});

Deno.test("shardOrder() refuses weights without resampling", () => {
  const units = shardUnits("a/{0..1}.tar::b/0.tar", { weights: "1::3" });
  throws(() => take(shardOrder(units, { mode: "shuffled", seed: 0, epoch: 0 }), 1), {
    name: "RangeError",
  });
});

Deno.test("deriveRng() is a pure function of its parts", () => {
  const a = deriveRng([1, 2, 3]).nextU32();
  assertEquals(deriveRng([1, 2, 3]).nextU32(), a);
  assert(deriveRng([1, 2, 4]).nextU32() !== a);
  assert(deriveRng([1, 2 + 2 ** 32, 3]).nextU32() !== a);
  assert(deriveRng([1, 2, 3, 0]).nextU32() !== a);
});
