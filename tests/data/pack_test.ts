import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { packDataset, PackError } from "../../src/data/tools/pack.ts";
import { pairUnit } from "../../src/data/pipeline/pairing.ts";
import { shardUnits } from "../../src/data/pipeline/shards.ts";
import { encodePng } from "../../src/data/formats/png.ts";
import { TarReader } from "../../src/data/formats/tar.ts";
import { run } from "../../src/cli/pack.ts";
import { rejectsWith, withTmp } from "./helpers.ts";

const dec = new TextDecoder();

async function fixture(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/photos/sub`, { recursive: true });
  const png = (w: number, h: number) =>
    encodePng(new Uint8Array(w * h * 3).fill(90), { width: w, height: h });
  await Deno.writeFile(`${dir}/photos/a.png`, png(40, 30));
  await Deno.writeFile(`${dir}/photos/sub/b.png`, png(20, 50));
  await Deno.writeFile(`${dir}/photos/c.png`, png(16, 16));
  await Deno.writeFile(`${dir}/photos/broken.png`, png(16, 16).subarray(0, 50));
  const records = [
    { image: "a.png", text: ["a grey field."], box: [[0, 0, 10, 10]], global_text: "grey." },
    "{not json",
    { image: "missing.png", text: ["x"], box: [[0, 0, 1, 1]] },
    { image: "sub/b.png", text: ["wide box."], box: [[-5, 0, 30, 40]], global_text: "clipped" },
    { image: "c.png", text: ["inverted."], box: [[10, 10, 2, 2]] },
    { image: "c.png", text: ["one", "two"], box: [[0, 0, 4, 4]] },
    { image: "broken.png", text: ["cut."], box: [[0, 0, 4, 4]] },
    { text: ["no image"], box: [[0, 0, 4, 4]] },
    { image: "c.png", global_text: "only a global caption." },
  ];
  await Deno.writeTextFile(
    `${dir}/captions.jsonl`,
    records.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n\n",
  );
}

Deno.test("packDataset() packs good records into paired shards and reports each bad one", async () => {
  await withTmp(async (dir) => {
    await fixture(dir);
    const r = await packDataset(
      { images: `${dir}/photos`, captions: `${dir}/captions.jsonl` },
      `${dir}/out`,
      {
        shardSize: 2,
      },
    );
    assertEquals([r.records, r.packed, r.shards], [9, 3, 2]);
    assertEquals(r.skipped, {
      "jsonl-invalid": 1,
      "image-missing": 2,
      "box-invalid": 1,
      "box-count-mismatch": 1,
      "image-truncated": 1,
    });
    assertEquals(r.repairs, { "box-clipped": 1 });
    assertEquals(r.examples.map((e) => e.line), [2, 3, 5, 6, 7, 8]);
    assert(r.examples[1]!.message.includes('"missing.png"'));
    assertEquals(r.images, "images/image_{00000..00001}.tar");

    const packed: [string, string, unknown][] = [];
    for (const unit of shardUnits(r.images, { texts: r.texts, baseDir: `${dir}/out` })) {
      for await (const item of pairUnit(unit, { strict: true })) {
        if (!("sample" in item)) continue;
        await using tar = await TarReader.open(item.sample.json.shard);
        const json = JSON.parse(
          dec.decode(await tar.readAt(item.sample.json.offset, item.sample.json.size)),
        );
        packed.push([item.sample.key, item.sample.image.name, json]);
      }
    }
    assertEquals(packed, [
      ["00000001", "00000001.png", {
        text: ["a grey field."],
        box: [[0, 0, 10, 10]],
        global_text: "grey.",
      }],
      ["00000002", "00000002.png", {
        text: ["wide box."],
        box: [[-5, 0, 30, 40]],
        global_text: "clipped",
      }],
      ["00000003", "00000003.png", { global_text: "only a global caption." }],
    ]);
    const index = (await Deno.readTextFile(`${dir}/out/index.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(index, [
      { key: "00000001", image: "a.png" },
      { key: "00000002", image: "sub/b.png" },
      { key: "00000003", image: "c.png" },
    ]);
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/out/text_boxes/sizes.json`)), {
      "text_box_00000.tar": 2,
      "text_box_00001.tar": 1,
    });
  });
});

Deno.test("packDataset() strict mode stops at the first bad record with its line", async () => {
  await withTmp(async (dir) => {
    await fixture(dir);
    const err = await rejectsWith(
      () =>
        packDataset({ images: `${dir}/photos`, captions: `${dir}/captions.jsonl` }, `${dir}/out`, {
          strict: true,
        }),
      PackError,
    );
    assertEquals([err.problem.line, err.problem.kind], [2, "jsonl-invalid"]);
    assert(err.message.startsWith("Cannot pack line 2"), err.message);
  });
});

Deno.test("ps3 pack exits 0 when records were packed and 1 when none were", async () => {
  await withTmp(async (dir) => {
    await fixture(dir);
    await Deno.writeTextFile(`${dir}/empty.jsonl`, '{"image": "missing.png"}\n');
    const log = console.log, error = console.error;
    const out: string[] = [];
    console.log = (...a: unknown[]) => out.push(a.join(" "));
    console.error = console.log;
    try {
      const common = ["--images", `${dir}/photos`, "--out"];
      assertEquals(await run([...common, `${dir}/a`, "--captions", `${dir}/captions.jsonl`]), 0);
      assertEquals(await run([...common, `${dir}/b`, "--captions", `${dir}/empty.jsonl`]), 1);
      assertEquals(await run(["--images", `${dir}/photos`]), 2);
    } finally {
      console.log = log;
      console.error = error;
    }
    const text = out.join("\n");
    assert(text.includes("packed 3 of 9 records into 1 shard pairs"), text);
    assert(
      text.includes("box-clipped") && text.includes("line 3 (missing.png) image-missing"),
      text,
    );
  });
});
