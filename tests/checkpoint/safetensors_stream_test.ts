import { deepStrictEqual, fail, ok as assert } from "node:assert";
import { memorySource, openFileSource } from "../../src/checkpoint/safetensors_stream.ts";

Deno.test("openFileSource() serves concurrent reads of different ranges correctly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_src_" });
  try {
    const path = `${dir}/bytes.bin`;
    const bytes = new Uint8Array(1 << 20).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
    await Deno.writeFile(path, bytes);
    const src = await openFileSource(path);
    try {
      deepStrictEqual(src.size, bytes.length);
      const ranges: [number, number][] = [[5, 1000], [900_000, 100_000], [0, 8], [77, 0]];
      const got = await Promise.all(ranges.map(([o, n]) => src.read(o, n)));
      ranges.forEach(([o, n], i) => deepStrictEqual(got[i], bytes.slice(o, o + n)));
      // A read past the end fails alone; later reads still work.
      const bad = src.read(bytes.length - 4, 8);
      const after = src.read(1, 3);
      await bad.then(() => fail("read past the end succeeded"), (err) => {
        assert(err instanceof RangeError, String(err));
        assert(err.message.includes(`the file ended at byte ${bytes.length}`), err.message);
      });
      deepStrictEqual(await after, bytes.slice(1, 4));
    } finally {
      src.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("memorySource() returns aligned copies and rejects ranges past the end", async () => {
  const bytes = Uint8Array.of(1, 2, 3, 4, 5, 6);
  const src = memorySource(bytes);
  const part = await src.read(1, 4);
  deepStrictEqual(part, Uint8Array.of(2, 3, 4, 5));
  deepStrictEqual(part.byteOffset, 0);
  part[0] = 99;
  deepStrictEqual(bytes[1], 2);
  await src.read(4, 3).then(() => fail("read past the end succeeded"), (err) => {
    assert(err instanceof RangeError, String(err));
    deepStrictEqual(err.message, "Cannot read bytes 4..7 of 6");
  });
});
