import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok as assert } from "node:assert";
import {
  captionWords,
  COLORS,
  renderScene,
  unigramTokenizerJson,
  writeSynthDataset,
} from "../../src/data/tools/synth.ts";
import { decodeImage } from "../../src/data/formats/image.ts";
import { encodePng } from "../../src/data/formats/png.ts";
import { loadTokenizer, Tokenizer } from "../../src/data/formats/tokenizer.ts";
import { pairUnit } from "../../src/data/pipeline/pairing.ts";
import { shardUnits } from "../../src/data/pipeline/shards.ts";
import { readTar } from "../../src/data/formats/tar.ts";
import { Rng } from "../../src/util/rng.ts";
import { run } from "../../src/cli/synth.ts";
import { withTmp } from "./helpers.ts";

Deno.test("encodePng() output decodes to the same RGB and RGBA pixels", () => {
  const rng = new Rng(3);
  for (const [w, h, ch] of [[1, 1, 3], [7, 5, 3], [33, 2, 4]] as const) {
    const px = new Uint8Array(w * h * ch).map(() => rng.int(256));
    const { image } = decodeImage(encodePng(px, { width: w, height: h, channels: ch }), {
      file: "x.png",
      maxPixels: 1e6,
    });
    assertEquals([image.width, image.height], [w, h]);
    // The decoder drops alpha: compare the RGB channels.
    const rgb = ch === 3 ? px : px.filter((_, i) => i % 4 !== 3);
    assertEquals(image.data, rgb);
  }
});

Deno.test("renderScene() boxes are tight around each shape and captions name it", () => {
  for (let seed = 0; seed < 20; seed++) {
    const s = renderScene(new Rng(seed), { width: 120, height: 90 });
    assert(s.shapes.length >= 1 && s.shapes.length <= 4);
    assertEquals(s.text.length, s.shapes.length);
    const at = (x: number, y: number) => {
      const o = (y * s.width + x) * 3;
      return [s.pixels[o], s.pixels[o + 1], s.pixels[o + 2]];
    };
    s.shapes.forEach((shape, i) => {
      const [x1, y1, x2, y2] = shape.box;
      assert(x1 >= 0 && y1 >= 0 && x2 <= s.width && y2 <= s.height && x2 > x1 && y2 > y1);
      const rgb = COLORS[shape.color]!;
      const hit = (x: number, y: number) => at(x, y).every((v, c) => v === rgb[c]);
      // Every edge of the box touches the shape.
      const row = (y: number) =>
        Array.from({ length: x2 - x1 }, (_, k) => hit(x1 + k, y)).some(Boolean);
      const col = (x: number) =>
        Array.from({ length: y2 - y1 }, (_, k) => hit(x, y1 + k)).some(Boolean);
      assert(row(y1) && row(y2 - 1) && col(x1) && col(x2 - 1), `seed ${seed} shape ${i}`);
      assert(s.text[i]!.includes(`${shape.color} ${shape.shape}`), s.text[i]);
      assert(s.globalText.includes(`${shape.color} ${shape.shape}`), s.globalText);
    });
  }
});

Deno.test("unigramTokenizerJson() loads and keeps every caption word whole", () => {
  const words = captionWords();
  const tok = Tokenizer.fromJson(unigramTokenizerJson(words));
  assertEquals(tok.padId, 1);
  const vocab = unigramTokenizerJson(words).model.vocab.map(([p]) => p);
  assertEquals(vocab.slice(0, 3), ["<pad>", "</s>", "<unk>"]);
  const wordIds = new Set(words.map((w) => vocab.indexOf(`\u2581${w}`)));
  assert(!wordIds.has(-1));
  for (let seed = 0; seed < 30; seed++) {
    const s = renderScene(new Rng(seed), { width: 64, height: 64 });
    for (const caption of [...s.text, s.globalText]) {
      const ids = [...tok.encode(caption, 64)];
      const end = ids.indexOf(1);
      assert(end > 0, caption);
      // One id per word, each a whole-word piece, then </s>.
      const n = caption.toLowerCase().replace(/[^a-z ]/g, " ").split(/\s+/).filter(Boolean).length;
      assertEquals(end, n, caption);
      for (const id of ids.slice(0, end)) assert(wordIds.has(id), `${caption}: id ${id}`);
    }
  }
});

Deno.test("writeSynthDataset() writes paired, held-out, reproducible shards and a tokenizer", async () => {
  await withTmp(async (dir) => {
    const m = await writeSynthDataset(`${dir}/a`, {
      count: 10,
      holdout: 3,
      shardSize: 4,
      width: 48,
      height: 32,
    });
    assertEquals(m.train, {
      images: "images/image_{00000..00002}.tar",
      texts: "text_boxes/text_box_{00000..00002}.tar",
      samples: 10,
      shards: 3,
    });
    assertEquals(m.holdout!.samples, 3);
    const keys: string[] = [];
    const sizes = new Set<string>();
    for (const split of [m.train, m.holdout!]) {
      for (const unit of shardUnits(split.images, { texts: split.texts, baseDir: `${dir}/a` })) {
        for await (const item of pairUnit(unit, { strict: true })) {
          if ("sample" in item) keys.push(item.sample.key);
        }
      }
    }
    assertEquals(keys, Array.from({ length: 13 }, (_, i) => String(i + 1).padStart(8, "0")));
    for await (const { entry, data } of readTar(`${dir}/a/images/image_00000.tar`)) {
      const { image } = decodeImage(data, { file: entry.name, maxPixels: 1e6 });
      sizes.add(`${image.width}x${image.height}`);
      assert(Math.abs(image.width * image.height - 48 * 32) < 0.1 * 48 * 32);
    }
    assert(sizes.size > 1, "aspect ratios vary");
    const sizesJson = JSON.parse(await Deno.readTextFile(`${dir}/a/images/sizes.json`));
    assertEquals(sizesJson, { "image_00000.tar": 4, "image_00001.tar": 4, "image_00002.tar": 2 });
    assert((await loadTokenizer(`${dir}/a/tokenizer.json`)).vocabSize > 60);

    await writeSynthDataset(`${dir}/b`, {
      count: 10,
      holdout: 3,
      shardSize: 4,
      width: 48,
      height: 32,
    });
    await writeSynthDataset(`${dir}/c`, {
      count: 10,
      holdout: 3,
      shardSize: 4,
      width: 48,
      height: 32,
      seed: 1,
    });
    const read = (d: string) => Deno.readFile(`${d}/text_boxes/text_box_00001.tar`);
    assertEquals(await read(`${dir}/a`), await read(`${dir}/b`));
    notDeepStrictEqual(await read(`${dir}/a`), await read(`${dir}/c`));
  });
});

Deno.test("ps3 synth writes the dataset its options describe", async () => {
  await withTmp(async (dir) => {
    const log = console.log;
    console.log = () => {};
    try {
      const args = ["--out", `${dir}/s`, "--count", "6", "--holdout", "2", "--size", "32x24"];
      assertEquals(await run([...args, "--shard-size", "4", "--fixed-size", "--seed", "5"]), 0);
      assertEquals(await run(["--count", "3"]), 2);
    } finally {
      console.log = log;
    }
    const m = JSON.parse(await Deno.readTextFile(`${dir}/s/dataset.json`));
    assertEquals([m.train.samples, m.train.shards, m.holdout.samples, m.seed], [6, 2, 2, 5]);
    for await (const { data } of readTar(`${dir}/s/holdout/images/image_00000.tar`)) {
      const { image } = decodeImage(data, { file: "x.png", maxPixels: 1e6 });
      assertEquals([image.width, image.height], [32, 24]);
    }
  });
});
