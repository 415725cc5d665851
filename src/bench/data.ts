/**
 * Data pipeline throughput: the loader's full path (tar read, JPEG decode, random resized
 * crop and antialiased bicubic resize, normalisation, box map, tokenization) on a large photo,
 * with 1 and 2 decode workers.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DataLoader } from "../data/pipeline/loader.ts";
import { readImageInfo } from "../data/formats/image.ts";
import { unigramTokenizerJson } from "../data/tools/synth.ts";
import { TarWriter } from "../data/formats/tar.ts";
import type { BenchRow } from "./timing.ts";

/** The photo of the issue: 2250x1500 JPEG, in the shared data folder beside the repo. */
export const DOCK_JPG: string = fileURLToPath(
  new URL("../../tests/testdata/dock.jpg", import.meta.url),
);

/** Options of {@link benchData}. */
export interface DataBenchOptions {
  /** JPEG to decode (default {@link DOCK_JPG}). */
  image?: string | undefined;
  /** Output side S (default 1512, PS3-1.5K's largest scale; 512 with `quick`). */
  imageSize?: number | undefined;
  /** Worker counts to measure (default [1, 2]). */
  workers?: number[] | undefined;
  /** Images timed per worker count (default 24; 8 with `quick`). */
  images?: number | undefined;
  /** Fewer, smaller images. */
  quick?: boolean | undefined;
}

/**
 * Measures decode + crop + resize throughput through the data loader.
 *
 * @param options Photo, output size, worker counts, images timed.
 * @returns One row per worker count: ms per image, MP/s of source pixels, images/s in the note.
 * @example
 * ```ts
 * for (const r of await benchData({ quick: true })) console.log(r.name, r.rate, r.unit, r.note);
 * ```
 */
export async function benchData(options: DataBenchOptions = {}): Promise<BenchRow[]> {
  const image = options.image ?? DOCK_JPG;
  const size = options.imageSize ?? (options.quick ? 512 : 1512);
  const timed = options.images ?? (options.quick ? 8 : 24);
  const workerCounts = options.workers ?? [1, 2];
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(image);
  } catch (e) {
    throw new Error(
      `Cannot run the data benchmark: cannot read "${image}" (${(e as Error).message})`,
    );
  }
  const info = readImageInfo(bytes, { key: "", file: image });
  const mp = (info.width * info.height) / 1e6;
  const { width: W, height: H } = info;
  const json = JSON.stringify({
    text: ["The water and the dock in the foreground.", "Buildings on the far shore."],
    box: [[0, H * 0.6, W * 0.5, H], [W * 0.3, H * 0.2, W * 0.9, H * 0.5]],
    global_text: "A harbour with a dock and a city behind it.",
  });
  const dir = await Deno.makeTempDir({ prefix: "ps3_bench_data_" });
  const rows: BenchRow[] = [];
  try {
    const batch = 2;
    const warm = 2 * Math.max(...workerCounts);
    const total = warm + timed;
    await using images = await TarWriter.create(join(dir, "images.tar"));
    await using texts = await TarWriter.create(join(dir, "texts.tar"));
    for (let i = 0; i < total; i++) {
      const key = String(i).padStart(8, "0");
      await images.add(`${key}.jpg`, bytes);
      await texts.add(`${key}.json`, new TextEncoder().encode(json));
    }
    await images.close();
    await texts.close();
    const tokenizer = join(dir, "tokenizer.json");
    await Deno.writeTextFile(tokenizer, JSON.stringify(unigramTokenizerJson([])));
    for (const workers of workerCounts) {
      await using loader = await DataLoader.create({
        images: join(dir, "images.tar"),
        texts: join(dir, "texts.tar"),
        tokenizer,
        batchSize: batch,
        workers,
        prefetch: Math.max(2, Math.ceil((2 * workers) / batch)),
        shards: "sequential",
        shuffleBuffer: 0,
        epochs: 1,
        partial: true,
        sample: {
          imageSize: size,
          train: true,
          globalCaptionProb: 0.25,
          sampleNBoxEachImage: 1,
          sentenceMasking: true,
          maxPixels: 178956970,
          contextLength: 64,
          mean: [0.5, 0.5, 0.5],
          std: [0.5, 0.5, 0.5],
        },
      });
      let seen = 0;
      while (seen < warm) seen += (await loader.next())!.keys.length;
      const t0 = performance.now();
      let n = 0;
      for (let b = await loader.next(); b; b = await loader.next()) n += b.keys.length;
      const ms = (performance.now() - t0) / n;
      rows.push({
        name: `data: decode+crop+resize ${W}x${H} JPEG -> ${size}, ${workers} worker${
          workers > 1 ? "s" : ""
        }`,
        ms,
        rate: (mp * 1000) / ms,
        unit: "MP/s",
        note: `${(1000 / ms).toFixed(2)} images/s`,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return rows;
}
