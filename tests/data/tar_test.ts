import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { BLOCK, readTar, TarError, TarReader, TarWriter } from "../../src/data/formats/tar.ts";
import { gnuTar, rejectsWith as assertRejects, withTmp } from "./helpers.ts";

const enc = new TextEncoder();

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 255;
  return b;
}

async function readAll(path: string, chunkSize?: number): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const { entry, data } of readTar(path, { chunkSize })) out.set(entry.name, data);
  return out;
}

const LONG = "d".repeat(60) + "/" + "n".repeat(70) + "/ünïcode-" + "x".repeat(40) + ".json";
const FILES: [string, Uint8Array][] = [
  ["empty.txt", new Uint8Array(0)],
  ["one.bin", bytes(1, 1)],
  ["b511.bin", bytes(511, 2)],
  ["b512.bin", bytes(512, 3)],
  ["b513.bin", bytes(513, 4)],
  ["big.bin", bytes(70_001, 5)],
  [LONG, enc.encode('{"text": ["a long name"]}')],
];

Deno.test("TarWriter output reads back through TarReader with any chunk size", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/a.tar`;
    const w = await TarWriter.create(path);
    for (const [name, data] of FILES) await w.add(name, data);
    await w.close();
    assertEquals((await Deno.stat(path)).size % 10240, 0);
    for (const chunk of [512, 4096, 1 << 20]) {
      const got = await readAll(path, chunk);
      assertEquals([...got.keys()], FILES.map(([n]) => n));
      for (const [name, data] of FILES) assertEquals(got.get(name), data, `${name} @${chunk}`);
    }
  });
});

Deno.test("TarWriter output is read by GNU tar with identical contents", async () => {
  await withTmp(async (dir) => {
    const w = await TarWriter.create(`${dir}/a.tar`);
    for (const [name, data] of FILES) await w.add(name, data);
    await w.close();
    await Deno.mkdir(`${dir}/x`);
    await gnuTar(["-xf", "../a.tar"], `${dir}/x`);
    for (const [name, data] of FILES) assertEquals(await Deno.readFile(`${dir}/x/${name}`), data);
  });
});

for (const format of ["gnu", "ustar", "pax", "v7"]) {
  Deno.test(`TarReader reads GNU tar --format=${format} archives (long names, ./ prefix)`, async () => {
    await withTmp(async (dir) => {
      const src = `${dir}/src`;
      // ustar stores up to 255 bytes as prefix + name; v7 only 99, so it gets short names.
      const deep = format === "v7" ? "sub/k.json" : "p".repeat(90) + "/" + "q".repeat(80) + ".json";
      const files: [string, Uint8Array][] = [
        ["000001.jpg", bytes(1000, 9)],
        ["000001.json", enc.encode("{}")],
        [deep, bytes(700, 3)],
      ];
      for (const [name, data] of files) {
        await Deno.mkdir(`${src}/${name}`.replace(/\/[^/]*$/, ""), { recursive: true });
        await Deno.writeFile(`${src}/${name}`, data);
      }
      await gnuTar([`--format=${format}`, "-cf", `${dir}/g.tar`, "."], src);
      await using tar = await TarReader.open(`${dir}/g.tar`);
      const seen = new Map<string, Uint8Array>();
      const types = new Set<string>();
      for await (const e of tar.entries()) {
        types.add(e.type);
        assert(!e.name.startsWith("./"), e.name);
        if (e.type === "file") seen.set(e.name, await tar.read(e));
      }
      assert(types.has("directory"));
      assertEquals(seen.size, files.length);
      for (const [name, data] of files) assertEquals(seen.get(name), data, name);
    });
  });
}

Deno.test("TarReader reports a truncated member with the shard and byte offset", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/a.tar`;
    const w = await TarWriter.create(path);
    await w.add("000001.json", bytes(100, 1));
    await w.add("000002.jpg", bytes(5000, 2));
    await w.close();
    const full = await Deno.readFile(path);
    await Deno.writeFile(`${dir}/cut.tar`, full.subarray(0, 1024 + 512 + 3000));
    const names: string[] = [];
    const err = await assertRejects(async () => {
      for await (const { entry } of readTar(`${dir}/cut.tar`)) names.push(entry.name);
    }, TarError);
    assertEquals(names, ["000001.json"]);
    assertEquals(err.kind, "tar-truncated");
    assertEquals(err.offset, 1536);
    assert(err.message.includes(`Cannot read shard "${dir}/cut.tar"`), err.message);
    assert(err.message.includes('member "000002.jpg"') && err.message.includes("at byte 1536"));
  });
});

Deno.test("TarReader reports truncation inside a header and before the end blocks", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/a.tar`;
    const w = await TarWriter.create(path);
    await w.add("000001.json", bytes(10, 1));
    await w.add("000002.json", bytes(10, 2));
    await w.close();
    const full = await Deno.readFile(path);
    for (const [cut, offset] of [[1024 + 100, 1024], [2048, 2048]]) {
      await Deno.writeFile(`${dir}/cut.tar`, full.subarray(0, cut));
      const err = await assertRejects(async () => {
        for await (const _ of readTar(`${dir}/cut.tar`)) { /* drain */ }
      }, TarError);
      assertEquals([err.kind, err.offset], ["tar-truncated", offset]);
    }
  });
});

Deno.test("TarReader rejects a header whose checksum does not match, naming its offset", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/a.tar`;
    const w = await TarWriter.create(path);
    await w.add("000001.json", bytes(600, 1)); // header 0, data 512..1112, next header 1536
    await w.add("000002.json", bytes(10, 2));
    await w.close();
    const full = await Deno.readFile(path);
    full[1536 + 3]! ^= 0x20; // corrupt a name byte of the second header
    await Deno.writeFile(path, full);
    const err = await assertRejects(async () => {
      for await (const _ of readTar(path)) { /* drain */ }
    }, TarError);
    assertEquals([err.kind, err.offset], ["tar-checksum", 1536]);
    assert(
      err.message.includes("header checksum mismatch") && err.message.includes("at byte 1536"),
    );
  });
});

Deno.test("TarReader rejects empty, gzip-compressed and non-tar files clearly", async () => {
  await withTmp(async (dir) => {
    await Deno.writeFile(`${dir}/empty.tar`, new Uint8Array(0));
    await Deno.writeFile(
      `${dir}/gz.tar`,
      new Uint8Array([0x1f, 0x8b, 8, 0, ...new Uint8Array(600)]),
    );
    await Deno.writeFile(`${dir}/text.tar`, enc.encode("hello world\n".repeat(100)));
    const kinds: string[] = [];
    for (const name of ["empty", "gz", "text"]) {
      const err = await assertRejects(async () => {
        for await (const _ of readTar(`${dir}/${name}.tar`)) { /* drain */ }
      }, TarError);
      kinds.push(err.kind);
      if (name === "gz") assert(err.message.includes("gzip"), err.message);
    }
    assertEquals(kinds, ["tar-empty", "tar-header", "tar-checksum"]);
  });
});

Deno.test("TarReader reads base-256 sizes and skips data it is not asked for", async () => {
  await withTmp(async (dir) => {
    const path = `${dir}/a.tar`;
    const w = await TarWriter.create(path);
    await w.add("a.bin", bytes(1234, 1));
    await w.add("b.bin", bytes(7, 2));
    await w.close();
    const full = await Deno.readFile(path);
    // Rewrite the first size field in GNU base-256 form and fix the checksum.
    full.fill(0, 124, 136);
    full[124] = 0x80;
    full[134] = 1234 >> 8;
    full[135] = 1234 & 255;
    full.fill(32, 148, 156);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += full[i]!;
    full.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    await Deno.writeFile(path, full);
    await using tar = await TarReader.open(path);
    const entries = [];
    for await (const e of tar.entries()) entries.push(e);
    assertEquals(entries.map((e) => [e.name, e.size, e.dataOffset]), [
      ["a.bin", 1234, 512],
      ["b.bin", 7, 512 + 1536 + 512],
    ]);
    assertEquals(await tar.read(entries[1]!), bytes(7, 2));
    assertEquals(await tar.read(entries[0]!), bytes(1234, 1));
  });
});
