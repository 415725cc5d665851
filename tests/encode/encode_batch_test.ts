import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { TarWriter } from "../../src/data/formats/tar.ts";
import { encodePng } from "../../src/data/formats/png.ts";
import {
  type BatchProgress,
  encodeBatch,
  isImageName,
  listBatchImages,
} from "../../src/encode/encode_batch.ts";
import { Ps3Encoder } from "../../src/encode/ps3_encoder.ts";
import { rejectsWith, withTmp } from "../data/helpers.ts";
import { DOCK_SMALL, writeTinyModel } from "./helpers.ts";

await initGpu();
const root = await Deno.makeTempDir({ prefix: "ps3_encode_batch_" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
await writeTinyModel(join(root, "tiny"), { conv: true, seed: 11 });
const encoder = await Ps3Encoder.load(join(root, "tiny"));
const DOCK = Deno.readFileSync(DOCK_SMALL);
const PNG = encodePng(new Uint8Array(20 * 12 * 3).fill(140), { width: 20, height: 12 });

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

const FILES = [
  "features.safetensors",
  "selected_patches_scale_1.png",
  "selected_patches_scale_2.png",
  "selection_prob_scale_1.png",
  "selection_prob_scale_2.png",
  "summary.json",
];

Deno.test("isImageName() takes JPEG, PNG and WebP names in any case", () => {
  assertEquals(
    ["a.jpg", "b.JPEG", "c.png", "d.WebP", "e.json", "f.txt", "jpg", "g.tar"].map(isImageName),
    [true, true, true, true, false, false, false, false],
  );
});

Deno.test("encodeBatch() encodes every image of a folder into its own sub-folder, skipping unreadable ones", async () => {
  await withTmp(async (dir) => {
    const src = join(dir, "photos");
    await Deno.mkdir(join(src, "nested"), { recursive: true });
    await Deno.writeFile(join(src, "dock.jpg"), DOCK);
    await Deno.writeFile(join(src, "grey.png"), PNG);
    await Deno.writeFile(join(src, "notes.txt"), new TextEncoder().encode("not an image"));
    await Deno.writeFile(join(src, "zz_broken.jpg"), DOCK.subarray(0, 3000));
    await Deno.writeFile(join(src, "nested", "inner.jpg"), DOCK);
    const seen: BatchProgress[] = [];
    const out = join(dir, "out");
    const r = await encodeBatch(encoder, src, { out, onProgress: (p) => seen.push(p) });
    assertEquals([r.total, r.encoded, r.failed.length], [3, 2, 1]);
    assertEquals(r.failed[0]!.file, join(src, "zz_broken.jpg"));
    assert(r.failed[0]!.message.startsWith(`Cannot use "${join(src, "zz_broken.jpg")}"`));
    assertEquals(await listDir(out), ["dock", "grey"]);
    for (const d of ["dock", "grey"]) assertEquals(await listDir(join(out, d)), FILES);
    assertEquals(seen.map((p) => [p.done, p.total, p.image.name, p.error === null]), [
      [1, 3, "dock", true],
      [2, 3, "grey", true],
      [3, 3, "zz_broken", false],
    ]);
    assertEquals(seen[0]!.encoding!.summary.file, join(src, "dock.jpg"));
  });
});

Deno.test("encodeBatch() reads a tar shard's images in order, with unique safe folder names", async () => {
  await withTmp(async (dir) => {
    const shard = join(dir, "shard-000.tar");
    {
      await using tar = await TarWriter.create(shard);
      await tar.add("a/1.jpg", DOCK);
      await tar.add("a/1.json", new TextEncoder().encode("{}"));
      await tar.add("a_1.png", PNG);
      await tar.add("../up.png", PNG);
    }
    {
      await using batch = await listBatchImages(shard);
      assertEquals(batch.kind, "tar");
      assertEquals(batch.images.map((i) => [i.name, i.file]), [
        ["a_1", "shard-000.tar:a/1.jpg"],
        ["a_1_2", "shard-000.tar:a_1.png"],
        ["__up", "shard-000.tar:../up.png"],
      ]);
      assertEquals(await batch.images[1]!.read(), PNG);
    }
    const r = await encodeBatch(encoder, shard, {
      out: join(dir, "out"),
      numLookClose: { rounds: 2 },
    });
    assertEquals([r.total, r.encoded, r.failed], [3, 3, []]);
    assertEquals(await listDir(join(dir, "out")), ["__up", "a_1", "a_1_2"]);
    const summary = JSON.parse(await Deno.readTextFile(join(dir, "out", "a_1", "summary.json")));
    assertEquals([summary.rounds, summary.tokens], [2, 16 + 40]);
  });
});

Deno.test("encodeBatch() stops on errors that are not about one image and names bad paths", async () => {
  await withTmp(async (dir) => {
    await Deno.writeFile(join(dir, "dock.jpg"), DOCK);
    await rejectsWith(
      () => encodeBatch(encoder, dir, { out: join(dir, "out"), prompt: new Float32Array(3) }),
      RangeError,
    );
    const missing = join(dir, "missing");
    let e = await rejectsWith(() => encodeBatch(encoder, missing, { out: dir }), Error);
    assert(e.message.startsWith(`Cannot read images from "${missing}"`), e.message);
    e = await rejectsWith(() => listBatchImages(join(dir, "dock.jpg")), Error);
    assert(e.message.includes("not a folder or a .tar shard"), e.message);
  });
});
