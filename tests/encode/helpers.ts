/**
 * Fixtures of the encode tests: a tiny random PS3 model written as a Hugging Face folder, the
 * reduced real photo, a synthetic tokenizer, and picture statistics.
 *
 * @module
 */

import { join } from "node:path";
import { writeHfFolder } from "../../src/checkpoint/hf.ts";
import type { RgbImage } from "../../src/data/formats/image.ts";
import { unigramTokenizerJson } from "../../src/data/tools/synth.ts";
import { resolveModelConfig } from "../../src/model/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";

/** dock.jpg (2250x1500) reduced to 300x200 with the project's decoder and Pillow-exact
 * bicubic, saved by MozJPEG at quality 80 (the same 3:2 aspect ratio as the original). */
export const DOCK_SMALL = new URL("../testdata/dock_300x200.jpg", import.meta.url).pathname;

/**
 * A tiny PS3 config: scales [32, 64, 128], patch 8 (grids 4x4, 8x8, 16x16 for a square
 * input), budget 20 split [4, 16], width 32, two blocks, with or without the selection
 * ConvNet.
 *
 * @param conv Whether the model has the high-res selection ConvNet.
 * @returns The raw model config.
 */
export function tinyModelConfig(conv: boolean): Record<string, unknown> {
  return {
    name: conv ? "encode-test" : "encode-test-noconv",
    embed_dim: 32,
    vision_cfg: {
      embed_dim: 32,
      depth: 2,
      num_heads: 2,
      mlp_ratio: 2,
      patch_size: 8,
      img_size: 32,
      ps3_scales: [32, 64, 128],
      select_based_on_layer: [0, 1],
      max_select_num: 20,
      highres_selection_feature: conv,
      highres_selection_module_hidden_dim: 8,
      highres_selection_module_out_dim: 8,
      highres_selection_module_depth: 1,
      highres_selection_module_kernel_size: 8,
      highres_selection_input_size: 64,
    },
    text_cfg: { context_length: 8, vocab_size: 128, width: 32, heads: 2, layers: 1, mlp_ratio: 2 },
  };
}

/** Words of the test tokenizer. */
export const WORDS = ["a", "red", "boat", "house", "the", "dock", "water", "sky"];

/**
 * Writes a random tiny model as a Hugging Face folder, with a `tokenizer.json` beside it.
 *
 * @param dir Target folder.
 * @param options ConvNet on or off, initialisation seed.
 * @returns The model written.
 */
export async function writeTinyModel(
  dir: string,
  options: { conv: boolean; seed: number },
): Promise<Ps3Clip> {
  const config = resolveModelConfig(tinyModelConfig(options.conv));
  const model = new Ps3Clip(config, { seed: options.seed });
  await writeHfFolder(dir, model.params, config);
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify(unigramTokenizerJson(WORDS)),
  );
  return model;
}

/**
 * Pearson correlation of two pictures' grey levels (how much of one shows in the other).
 *
 * @param a A picture.
 * @param b A picture of the same size.
 * @returns The correlation in [-1, 1].
 */
export function greyCorrelation(a: RgbImage, b: RgbImage): number {
  const n = a.width * a.height;
  const grey = (im: RgbImage) =>
    Float64Array.from(
      { length: n },
      (_, i) => im.data[3 * i]! + im.data[3 * i + 1]! + im.data[3 * i + 2]!,
    );
  const x = grey(a), y = grey(b);
  const mx = x.reduce((s, v) => s + v, 0) / n, my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
