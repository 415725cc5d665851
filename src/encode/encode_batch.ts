/**
 * Encoding many images: every JPEG / PNG / WebP of a folder (not recursive, in name order) or
 * of a tar shard (in archive order), one output sub-folder per image. An image that cannot
 * be decoded is counted and skipped and the batch goes on; any other error ends it.
 *
 * @module
 */

import { basename, extname, join } from "node:path";
import { SampleError } from "../data/formats/sample_error.ts";
import { TarReader } from "../data/formats/tar.ts";
import {
  type Ps3EncodeOptions,
  type Ps3Encoder,
  type Ps3Encoding,
  writeEncoding,
} from "./ps3_encoder.ts";

/** File name endings taken as images. */
const IMAGE_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".webp"]);

/** One image of a batch. */
export interface BatchImage {
  /** Its output sub-folder (unique in the batch, safe as a path component). */
  name: string;
  /** Where it comes from, for messages: a path, or `shard.tar:member`. */
  file: string;
  /** Reads its bytes. */
  read: () => Promise<Uint8Array>;
}

/** The images of a folder or shard, and how to release them. */
export interface BatchImages extends AsyncDisposable {
  /** "folder" or "tar". */
  kind: "folder" | "tar";
  /** The images, in order. */
  images: BatchImage[];
}

/**
 * Whether a file name ends like an image ({@linkcode listBatchImages} takes these).
 *
 * @param name A file or member name.
 * @returns True for .jpg, .jpeg, .png, .webp (any case).
 */
export function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Output names: the file name without its extension, path separators and odd characters as
 * "_", made unique with a numeric suffix. */
function uniqueNames(names: readonly string[]): string[] {
  const used = new Set<string>();
  return names.map((n) => {
    const stem = n.slice(0, n.length - extname(n).length).replace(/[^A-Za-z0-9._-]/g, "_")
      .replace(/^\.+/, "_") || "_";
    let name = stem;
    for (let i = 2; used.has(name); i++) name = `${stem}_${i}`;
    used.add(name);
    return name;
  });
}

/**
 * Lists the images of a folder or a `.tar` shard.
 *
 * @param path The folder or shard.
 * @returns The images; dispose it (`await using`) to close a shard.
 * @throws {Error} When the path is neither, naming it.
 *
 * @example
 * ```ts
 * await using batch = await listBatchImages("photos/");
 * batch.images.map((i) => i.name); // ["dock", "harbour"]
 * ```
 */
export async function listBatchImages(path: string): Promise<BatchImages> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch (e) {
    throw new Error(`Cannot read images from "${path}": ${(e as Error).message}`);
  }
  if (stat.isDirectory) {
    const files: string[] = [];
    for await (const e of Deno.readDir(path)) {
      if (e.isFile && isImageName(e.name)) files.push(e.name);
    }
    files.sort();
    const names = uniqueNames(files);
    return {
      kind: "folder",
      images: files.map((f, i) => ({
        name: names[i]!,
        file: join(path, f),
        read: () => Deno.readFile(join(path, f)),
      })),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    };
  }
  if (extname(path).toLowerCase() !== ".tar") {
    throw new Error(`Cannot read images from "${path}": not a folder or a .tar shard`);
  }
  const tar = await TarReader.open(path);
  try {
    const entries = [];
    for await (const e of tar.entries()) {
      if (e.type === "file" && isImageName(e.name)) entries.push(e);
    }
    const names = uniqueNames(entries.map((e) => e.name));
    return {
      kind: "tar",
      images: entries.map((e, i) => ({
        name: names[i]!,
        file: `${basename(path)}:${e.name}`,
        read: () => tar.read(e),
      })),
      [Symbol.asyncDispose]: () => tar[Symbol.asyncDispose](),
    };
  } catch (e) {
    await tar[Symbol.asyncDispose]();
    throw e;
  }
}

/** One finished image of {@linkcode encodeBatch}. */
export interface BatchProgress {
  /** Images finished (encoded or failed). */
  done: number;
  /** Images in the batch. */
  total: number;
  /** The image. */
  image: BatchImage;
  /** Its result, or null when it failed. */
  encoding: Ps3Encoding | null;
  /** Why it failed, or null. */
  error: Error | null;
}

/** What {@linkcode encodeBatch} did. */
export interface BatchReport {
  /** Images found. */
  total: number;
  /** Images encoded and written. */
  encoded: number;
  /** Images that did not decode, with the reason (the message names the file). */
  failed: { file: string; message: string }[];
}

/** Options of {@linkcode encodeBatch}. */
export interface BatchOptions extends Omit<Ps3EncodeOptions, "file"> {
  /** Output folder; each image gets `<out>/<name>/`. */
  out: string;
  /** Called after each image. */
  onProgress?: ((p: BatchProgress) => void) | undefined;
}

/**
 * Encodes every image of a folder or shard and writes each one's files
 * ({@linkcode writeEncoding}) to its own sub-folder.
 *
 * @param encoder The model.
 * @param path A folder or a `.tar` shard.
 * @param options Output folder, progress callback, and the encoding options.
 * @returns Counts and failures.
 *
 * @example
 * ```ts
 * const r = await encodeBatch(enc, "shard-000.tar", { out: "features" });
 * console.log(`${r.encoded}/${r.total} encoded`);
 * ```
 */
export async function encodeBatch(
  encoder: Ps3Encoder,
  path: string,
  options: BatchOptions,
): Promise<BatchReport> {
  const { out, onProgress, ...encodeOptions } = options;
  await using batch = await listBatchImages(path);
  const report: BatchReport = { total: batch.images.length, encoded: 0, failed: [] };
  for (const [i, image] of batch.images.entries()) {
    let encoding: Ps3Encoding | null = null, error: Error | null = null;
    try {
      encoding = await encoder.encode(await image.read(), { ...encodeOptions, file: image.file });
      await writeEncoding(join(out, image.name), encoding);
      report.encoded++;
    } catch (e) {
      if (!(e instanceof SampleError)) throw e;
      error = e;
      report.failed.push({ file: image.file, message: e.message });
    }
    onProgress?.({ done: i + 1, total: report.total, image, encoding, error });
  }
  return report;
}
