/**
 * Zero-shot classification sets in open_clip's layout: a folder with one sub-folder of
 * images per class (classes in sorted folder order, as torchvision's `ImageFolder`), an
 * optional class-name file and optional prompt templates.
 *
 * - `classnames.txt` (in the folder, or given): one line per class, either
 *   `<sub-folder><TAB><class name>`, or just the names in sorted sub-folder order. Without
 *   it a class's name is its sub-folder's, with `_` read as a space.
 * - `templates.txt` (in the folder, or given): one prompt per line with `{c}` where the class
 *   name goes (open_clip's `lambda c: f"a photo of a {c}."`). Default: `a photo of a {c}.`
 *
 * @module
 */

import { extname, join } from "node:path";
import { decodeImage } from "../data/formats/image.ts";
import { resizedCrop } from "../data/pipeline/crop.ts";
import { IMAGE_EXTENSIONS } from "../data/pipeline/pairing.ts";

/** The default prompt template (open_clip's simplest). */
export const DEFAULT_TEMPLATES: readonly string[] = ["a photo of a {c}."];

/** A zero-shot set on disk. */
export interface ZeroshotSet {
  /** The folder. */
  folder: string;
  /** Class names, in label order. */
  classes: string[];
  /** Prompt templates (`{c}` = class name). */
  templates: string[];
  /** Images and their labels. */
  images: { path: string; label: number }[];
}

/** Options of {@linkcode readZeroshotSet}. */
export interface ZeroshotSetOptions {
  /** Class-name file (default `<folder>/classnames.txt` when present). */
  classnames?: string | undefined;
  /** Template file (default `<folder>/templates.txt` when present). */
  templates?: string | undefined;
}

async function readLines(path: string, what: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`Cannot read the ${what} file "${path}": ${(e as Error).message}`);
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith("#"));
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/**
 * Lists a zero-shot folder: classes, names, templates and images.
 *
 * @param folder The folder of class sub-folders.
 * @param options Class-name and template files.
 * @returns The set.
 * @throws {Error} Naming the file and the reason: no class folders, a class-name file whose
 *   lines do not match the folders, a template without `{c}`.
 */
export async function readZeroshotSet(
  folder: string,
  options: ZeroshotSetOptions = {},
): Promise<ZeroshotSet> {
  const dirs: string[] = [];
  try {
    for await (const e of Deno.readDir(folder)) if (e.isDirectory) dirs.push(e.name);
  } catch (e) {
    throw new Error(`Cannot read the zero-shot folder "${folder}": ${(e as Error).message}`);
  }
  dirs.sort();
  if (dirs.length < 2) {
    throw new Error(
      `Cannot use the zero-shot folder "${folder}": it has ${dirs.length} class sub-folder(s), ` +
        "need at least 2",
    );
  }
  let classes = dirs.map((d) => d.replaceAll("_", " "));
  const namesFile = options.classnames ??
    (await exists(join(folder, "classnames.txt")) ? join(folder, "classnames.txt") : undefined);
  if (namesFile) {
    const lines = await readLines(namesFile, "class-name");
    if (lines.every((l) => l.includes("\t"))) {
      const map = new Map(lines.map((l) => [l.split("\t")[0]!.trim(), l.split("\t")[1]!.trim()]));
      const missing = dirs.filter((d) => !map.has(d));
      if (missing.length) {
        throw new Error(
          `Cannot use the class-name file "${namesFile}": no line for the folder(s) ` +
            missing.slice(0, 5).map((m) => `"${m}"`).join(", "),
        );
      }
      classes = dirs.map((d) => map.get(d)!);
    } else if (lines.length === dirs.length) classes = lines;
    else {
      throw new Error(
        `Cannot use the class-name file "${namesFile}": ${lines.length} names for ` +
          `${dirs.length} class folders of "${folder}" (give one name per folder in sorted ` +
          "order, or `folder<TAB>name` lines)",
      );
    }
  }
  const templatesFile = options.templates ??
    (await exists(join(folder, "templates.txt")) ? join(folder, "templates.txt") : undefined);
  const templates = templatesFile
    ? await readLines(templatesFile, "template")
    : [...DEFAULT_TEMPLATES];
  const bad = templates.find((t) => !t.includes("{c}"));
  if (bad !== undefined || templates.length === 0) {
    throw new Error(
      `Cannot use the templates of "${templatesFile}": ` +
        (bad !== undefined ? `"${bad}" has no {c} for the class name` : "none given"),
    );
  }
  const images: { path: string; label: number }[] = [];
  const exts = new Set<string>(IMAGE_EXTENSIONS);
  for (const [label, d] of dirs.entries()) {
    const files: string[] = [];
    for await (const e of Deno.readDir(join(folder, d))) {
      if (e.isFile && exts.has(extname(e.name).slice(1).toLowerCase())) files.push(e.name);
    }
    files.sort();
    for (const f of files) images.push({ path: join(folder, d, f), label });
  }
  if (images.length === 0) {
    throw new Error(`Cannot use "${folder}": its class folders have no images`);
  }
  return { folder, classes, templates, images };
}

/**
 * The prompts of every class, class-major (all templates of class 0 first), as
 * {@linkcode zeroshotClassifier} expects.
 *
 * @param set The set.
 * @returns `classes * templates` prompts.
 */
export function classPrompts(set: ZeroshotSet): string[] {
  return set.classes.flatMap((c) => set.templates.map((t) => t.replaceAll("{c}", c)));
}

/**
 * Prepares one image as the evaluation loader does (EXIF orientation, squash resize to the
 * largest scale, bicubic; `(x / 255 - mean) / std`), CHW float32.
 *
 * @param bytes Encoded image.
 * @param options File name, side, pixel limit, normalisation.
 * @returns `[3, size, size]`.
 * @throws {SampleError} (from `data/sample_error.ts`) For a bad image (counted by kind like the training loader's skips).
 */
export function prepareEvalImage(
  bytes: Uint8Array,
  options: {
    file: string;
    size: number;
    maxPixels: number;
    mean: readonly number[];
    std: readonly number[];
  },
): Float32Array {
  const { image } = decodeImage(bytes, { file: options.file, maxPixels: options.maxPixels });
  const s = options.size;
  const out = resizedCrop(image, [], {
    crop: { left: 0, top: 0, width: image.width, height: image.height },
    width: s,
    height: s,
  }).image.data;
  const n = s * s;
  const chw = new Float32Array(3 * n);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(options.mean[c]!), sd = f(options.std[c]!);
    for (let i = 0; i < n; i++) chw[c * n + i] = f(f(f(out[3 * i + c]! / 255) - m) / sd);
  }
  return chw;
}
