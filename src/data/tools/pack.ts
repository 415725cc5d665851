/**
 * Packs a folder of images and a JSONL of captions and boxes into the reference's two paired
 * webdatasets, validating every record with the same checks the training path applies
 * (image header, annotation shape, box geometry; optionally a full decode).
 *
 * Input, one JSON object per line:
 * `{"image": "name.jpg", "text": [...], "box": [[x1, y1, x2, y2], ...], "global_text": "..."}`.
 * Output: `out/images/image_NNNNN.tar` with `KEY.jpg|png|webp`, `out/text_boxes/text_box_NNNNN.tar`
 * with `KEY.json` (the record without its `image` field), keys `00000001`, `00000002` ... in
 * record order; `sizes.json` in both folders, `index.jsonl` (key -> source image) and
 * `dataset.json` (the shard specs) in `out`.
 *
 * @module
 */

import { join } from "node:path";
import { TarWriter } from "../formats/tar.ts";
import { decodeImage, readImageInfo } from "../formats/image.ts";
import { clipBoxes, parseAnnotation } from "../pipeline/annotations.ts";
import { SampleError } from "../formats/sample_error.ts";

const ENC = new TextEncoder();

/** A record that was not packed, or packed with a fix. */
export interface PackProblem {
  /** Line of the JSONL (1-based). */
  line: number;
  /** Image named by the record ("" when none). */
  image: string;
  /** Reason, e.g. "jsonl-invalid", "image-missing", "box-invalid". */
  kind: string;
  /** What is wrong. */
  message: string;
}

/** Options of {@link packDataset}. */
export interface PackOptions {
  /** Samples per shard (default 1000). */
  shardSize?: number | undefined;
  /** Stop at the first bad record (throws) instead of skipping and reporting it. */
  strict?: boolean | undefined;
  /** Decode every image fully (slower; catches corrupt pixel data, not just bad headers). */
  verify?: boolean | undefined;
  /** Largest image accepted, in pixels (default 178956970, Pillow's limit). */
  maxPixels?: number | undefined;
  /** Problems kept as examples (default 20). */
  keepExamples?: number | undefined;
  /** Called after each record with the number of records read so far. */
  onProgress?: ((records: number) => void) | undefined;
}

/** What {@link packDataset} did. */
export interface PackReport {
  /** Records read. */
  records: number;
  /** Samples written. */
  packed: number;
  /** Shard pairs written. */
  shards: number;
  /** Image shard spec (relative to the output folder); "" when nothing was packed. */
  images: string;
  /** Text-box shard spec. */
  texts: string;
  /** Records skipped, by reason. */
  skipped: Record<string, number>;
  /** Fixes the loader will apply to packed samples (e.g. "box-clipped"), by kind. */
  repairs: Record<string, number>;
  /** The first problems. */
  examples: PackProblem[];
}

/** A bad record in strict mode. */
export class PackError extends Error {
  /** The problem. */
  readonly problem: PackProblem;

  /**
   * @param problem The problem.
   */
  constructor(problem: PackProblem) {
    super(`Cannot pack line ${problem.line} (${problem.image || "no image"}): ${problem.message}`);
    this.name = "PackError";
    this.problem = problem;
  }
}

const EXT: Record<string, string> = { jpeg: "jpg", png: "png", webp: "webp" };

async function* lines(path: string): AsyncGenerator<string> {
  using file = await Deno.open(path, { read: true });
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let rest = "";
  for await (const chunk of file.readable) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, "");
      rest = rest.slice(nl + 1);
    }
  }
  rest += decoder.decode();
  if (rest.length > 0) yield rest.replace(/\r$/, "");
}

/**
 * Builds paired shards from images and a JSONL of annotations.
 *
 * @param sources The image folder and the JSONL file.
 * @param out Output folder (created).
 * @param options Shard size, strictness, full decoding.
 * @returns The report.
 * @example
 * ```ts
 * const r = await packDataset({ images: "photos", captions: "captions.jsonl" }, "data");
 * console.log(`${r.packed} of ${r.records} records packed into ${r.shards} shards`);
 * ```
 */
export async function packDataset(
  sources: { images: string; captions: string },
  out: string,
  options: PackOptions = {},
): Promise<PackReport> {
  const shardSize = options.shardSize ?? 1000;
  if (!Number.isInteger(shardSize) || shardSize < 1) {
    throw new RangeError(`Cannot pack with shard size ${shardSize}: need a positive integer`);
  }
  const maxPixels = options.maxPixels ?? 178956970;
  const keep = options.keepExamples ?? 20;
  const report: PackReport = {
    records: 0,
    packed: 0,
    shards: 0,
    images: "",
    texts: "",
    skipped: {},
    repairs: {},
    examples: [],
  };
  const imgDir = join(out, "images");
  const txtDir = join(out, "text_boxes");
  await Deno.mkdir(imgDir, { recursive: true });
  await Deno.mkdir(txtDir, { recursive: true });
  const sizes: Record<string, number> = {};
  const textSizes: Record<string, number> = {};
  const index: string[] = [];
  let writers: [TarWriter, TarWriter] | undefined;
  let inShard = 0;

  const problem = (p: PackProblem) => {
    if (options.strict) throw new PackError(p);
    report.skipped[p.kind] = (report.skipped[p.kind] ?? 0) + 1;
    if (report.examples.length < keep) report.examples.push(p);
  };
  const closeShard = async () => {
    if (!writers) return;
    const id = String(report.shards - 1).padStart(5, "0");
    await writers[0].close();
    await writers[1].close();
    sizes[`image_${id}.tar`] = inShard;
    textSizes[`text_box_${id}.tar`] = inShard;
    writers = undefined;
  };

  try {
    let line = 0;
    for await (const text of lines(sources.captions)) {
      line++;
      if (text.trim() === "") continue;
      report.records++;
      options.onProgress?.(report.records);
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (e) {
        problem({
          line,
          image: "",
          kind: "jsonl-invalid",
          message: `not JSON (${(e as Error).message})`,
        });
        continue;
      }
      if (typeof record !== "object" || record === null || Array.isArray(record)) {
        problem({ line, image: "", kind: "jsonl-invalid", message: "not a JSON object" });
        continue;
      }
      const { image, ...annotation } = record as Record<string, unknown>;
      if (typeof image !== "string" || image === "") {
        problem({ line, image: "", kind: "image-missing", message: 'no "image" file name' });
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(join(sources.images, image));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory)) throw e;
        problem({
          line,
          image,
          kind: "image-missing",
          message: `no file "${image}" in "${sources.images}"`,
        });
        continue;
      }
      const key = String(report.packed + 1).padStart(8, "0");
      const json = ENC.encode(JSON.stringify(annotation));
      let ext: string;
      try {
        const where = { key, file: image };
        const info = readImageInfo(bytes, where);
        if (info.width * info.height > maxPixels) {
          throw new SampleError(
            "image-too-large",
            `${info.width}x${info.height} is over ${maxPixels} pixels`,
            where,
          );
        }
        if (options.verify) decodeImage(bytes, { file: image, key, maxPixels });
        const checked = clipBoxes(parseAnnotation(json, { key, file: `line ${line}` }), {
          ...info,
          key,
          file: `line ${line}`,
        });
        for (const r of checked.repairs) report.repairs[r] = (report.repairs[r] ?? 0) + 1;
        ext = EXT[info.format]!;
      } catch (e) {
        if (!(e instanceof SampleError)) throw e;
        problem({ line, image, kind: e.kind, message: e.reason });
        continue;
      }
      if (!writers || inShard >= shardSize) {
        await closeShard();
        const id = String(report.shards).padStart(5, "0");
        const a = await TarWriter.create(join(imgDir, `image_${id}.tar`));
        const b = await TarWriter.create(join(txtDir, `text_box_${id}.tar`)).catch(async (e) => {
          await a.close();
          throw e;
        });
        writers = [a, b];
        report.shards++;
        inShard = 0;
      }
      await writers[0].add(`${key}.${ext}`, bytes);
      await writers[1].add(`${key}.json`, json);
      index.push(JSON.stringify({ key, image }));
      inShard++;
      report.packed++;
    }
  } finally {
    await closeShard();
  }
  if (report.shards > 0) {
    const last = String(report.shards - 1).padStart(5, "0");
    report.images = `images/image_{00000..${last}}.tar`;
    report.texts = `text_boxes/text_box_{00000..${last}}.tar`;
  }
  await Deno.writeTextFile(join(imgDir, "sizes.json"), JSON.stringify(sizes, null, 1) + "\n");
  await Deno.writeTextFile(join(txtDir, "sizes.json"), JSON.stringify(textSizes, null, 1) + "\n");
  await Deno.writeTextFile(join(out, "index.jsonl"), index.map((l) => l + "\n").join(""));
  await Deno.writeTextFile(
    join(out, "dataset.json"),
    JSON.stringify(
      {
        train: {
          images: report.images,
          texts: report.texts,
          samples: report.packed,
          shards: report.shards,
        },
      },
      null,
      2,
    ) + "\n",
  );
  return report;
}
