import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { join } from "node:path";
import { resizeBicubic } from "../../src/data/pipeline/resize.ts";
import { resolveModelConfig } from "../../src/model/config.ts";
import {
  configPreprocessing,
  modelInputSize,
  preprocessImage,
  readPreprocessing,
} from "../../src/encode/preprocess.ts";
import { rejectsWith, withTmp } from "../data/helpers.ts";
import { tinyModelConfig } from "./helpers.ts";

const config = resolveModelConfig(tinyModelConfig(true));

Deno.test("modelInputSize() squashes to the processor size whatever the aspect ratio", () => {
  for (const [w, h] of [[2250, 1500], [1, 40], [5, 3], [128, 128]]) {
    assertEquals(
      modelInputSize({ width: w!, height: h! }, { imageSize: [128, 128], mode: "squash" }),
      [
        128,
        128,
      ],
    );
  }
});

Deno.test("modelInputSize() keep-aspect fits the long side and rounds the short side", () => {
  const fit = (w: number, h: number, s: number) =>
    modelInputSize({ width: w, height: h }, { imageSize: [s, s], mode: "keep-aspect" });
  assertEquals(fit(2250, 1500, 3780), [2520, 3780]); // 1500 * 3780 / 2250
  assertEquals(fit(300, 200, 128), [85, 128]); // 85.33
  assertEquals(fit(1500, 2250, 1512), [1512, 1008]);
  assertEquals(fit(1, 40, 128), [128, 3]); // 3.2
  assertEquals(fit(1, 1000, 128), [128, 1]); // never below one pixel
  assertEquals(fit(5, 3, 128), [77, 128]); // enlarged: 76.8
});

Deno.test("preprocessImage() is Pillow's bicubic resize then (v / 255 - mean) / std, channel-major", () => {
  const w = 7, h = 5;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 256;
  const image = { width: w, height: h, data };
  const mean = [0.5, 0.25, 0.125], std = [0.5, 0.2, 0.1];
  const x = preprocessImage(image, { size: [4, 3], mean, std });
  assertEquals(x.shape, [1, 3, 4, 3]);
  const resized = resizeBicubic(image, { width: 3, height: 4 });
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 12; i++) {
      const want = (resized.data[3 * i + c]! / 255 - mean[c]!) / std[c]!;
      assert(Math.abs(x.data[c * 12 + i]! - want) < 1e-6, `channel ${c} pixel ${i}`);
    }
  }
});

Deno.test("readPreprocessing() reads the processor config as PS3ImageProcessor does", async () => {
  await withTmp(async (dir) => {
    const file = join(dir, "preprocessor_config.json");
    assertEquals(await readPreprocessing(dir, config), configPreprocessing(config));
    assertEquals(configPreprocessing(config).imageSize, [128, 128]);
    await Deno.writeTextFile(
      file,
      JSON.stringify({ image_size: 96, mean: 0.4, std: [0.1, 0.2, 0.3] }),
    );
    const p = await readPreprocessing(dir, config);
    assertEquals([p.imageSize, p.mean, p.std, p.source], [[96, 96], [0.4, 0.4, 0.4], [
      0.1,
      0.2,
      0.3,
    ], file]);
    // Without mean / std the processor falls back to OpenAI CLIP's.
    await Deno.writeTextFile(
      file,
      JSON.stringify({ image_size: [64, 80], interpolation: "random" }),
    );
    const q = await readPreprocessing(dir, config);
    assertEquals([q.imageSize, q.mean[0], q.std[0]], [[64, 80], 0.48145466, 0.26862954]);
  });
});

Deno.test("readPreprocessing() rejects what the processor would not run, naming the file and field", async () => {
  await withTmp(async (dir) => {
    const file = join(dir, "preprocessor_config.json");
    const cases: [unknown, string][] = [
      [{ image_size: 64, interpolation: "bilinear" }, "interpolation"],
      [{ image_size: 64, resize_mode: "shortest" }, "resize_mode"],
      [{ image_size: 0 }, "image_size"],
      [{ image_size: 64, std: [0.5, 0, 0.5] }, "std"],
      [{ image_size: 64, mean: [0.5, 0.5] }, "mean"],
    ];
    for (const [json, field] of cases) {
      await Deno.writeTextFile(file, JSON.stringify(json));
      const e = await rejectsWith(() => readPreprocessing(dir, config), SyntaxError);
      assert(e.message.includes(file) && e.message.includes(field), e.message);
    }
    await Deno.writeTextFile(file, "{ not json");
    const e = await rejectsWith(() => readPreprocessing(dir, config), SyntaxError);
    assert(e.message.startsWith(`Cannot parse "${file}"`), e.message);
  });
});
