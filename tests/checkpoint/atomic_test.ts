import { deepStrictEqual, fail, ok as assert, strictEqual } from "node:assert";
import { writeAll, writeAtomic, writeFileAtomic } from "../../src/checkpoint/atomic.ts";

async function listDir(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ps3_atomic_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("writeFileAtomic() creates and then replaces a file, leaving no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/config.json`;
    await writeFileAtomic(path, '{"a": 1}');
    strictEqual(await Deno.readTextFile(path), '{"a": 1}');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    deepStrictEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    deepStrictEqual(await listDir(dir), ["config.json"]);
  });
});

Deno.test("writeAtomic() keeps the old file and removes the temporary one when fill throws", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.bin`;
    await writeFileAtomic(path, "old contents");
    let tmpSeen = "";
    try {
      await writeAtomic(path, async (file) => {
        await writeAll(file, new TextEncoder().encode("half of the new"));
        tmpSeen = (await listDir(dir)).find((n) => n !== "model.bin") ?? "";
        throw new Error("disk on fire");
      });
      fail("writeAtomic() did not rethrow");
    } catch (err) {
      strictEqual((err as Error).message, "disk on fire");
    }
    assert(
      new RegExp(`^model\\.bin\\.tmp-${Deno.pid}-[0-9a-f]{8}$`).test(tmpSeen),
      `temporary file "${tmpSeen}" sits beside the target`,
    );
    strictEqual(await Deno.readTextFile(path), "old contents");
    deepStrictEqual(await listDir(dir), ["model.bin"]);
  });
});

Deno.test("writeAtomic() leaves the old file intact when the process dies mid-write", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.bin`;
    await writeFileAtomic(path, "old contents");
    const module = new URL("../../src/checkpoint/atomic.ts", import.meta.url).href;
    const code = `
      import { writeAll, writeAtomic } from ${JSON.stringify(module)};
      await writeAtomic(${JSON.stringify(path)}, async (file) => {
        await writeAll(file, new Uint8Array(1 << 20));
        Deno.exit(7);
      });`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      stdout: "null",
      stderr: "piped",
    }).output();
    strictEqual(out.code, 7, new TextDecoder().decode(out.stderr));
    strictEqual(await Deno.readTextFile(path), "old contents");
    // The abandoned temporary file is the only trace, and it is not the target.
    const names = await listDir(dir);
    strictEqual(names.length, 2);
    assert(/^model\.bin\.tmp-\d+-[0-9a-f]{8}$/.test(names[1]!), names[1]);
    strictEqual((await Deno.stat(`${dir}/${names[1]}`)).size, 1 << 20);
  });
});

Deno.test("writeAtomic() writes into a fresh file even when a stale one has the same prefix", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.bin`;
    await Deno.writeTextFile(`${path}.tmp-1-00000000`, "stale");
    await writeFileAtomic(path, "new");
    strictEqual(await Deno.readTextFile(path), "new");
    deepStrictEqual(await listDir(dir), ["x.bin", "x.bin.tmp-1-00000000"]);
  });
});

Deno.test("writeAll() keeps writing when the file accepts only a few bytes per call", async () => {
  const received: number[] = [];
  const file = {
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(3, p.length);
      received.push(...p.subarray(0, n));
      return Promise.resolve(n);
    },
  } as unknown as Deno.FsFile;
  const bytes = new Uint8Array(20).map((_, i) => i * 7);
  await writeAll(file, bytes);
  deepStrictEqual(received, Array.from(bytes));
});
