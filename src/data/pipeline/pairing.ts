/**
 * Webdataset samples from tar shards, and pairing of images with their text-box JSON by key.
 *
 * A member's key is its name up to the first dot of the basename (`dir/000017.seg.png` has key
 * `dir/000017` and extension `seg.png`); consecutive members with the same key form a sample.
 * Only member headers are read here: samples carry {@link MemberRef}s (file, offset, size)
 * and the bytes are read later, in the decode workers.
 *
 * Pairing never pairs different keys. Two paired shards are compared sample by sample; on a
 * mismatch the problem is reported with both keys and both shard names and, unless strict,
 * the two streams are re-synchronised on the nearest common key, the samples passed over
 * counted as skipped ("missing-json" for images without JSON, "missing-image" for JSON
 * without image).
 *
 * @module
 */

import { TarError, TarReader } from "../formats/tar.ts";
import type { ShardUnit } from "./shards.ts";

/** Image extensions, in order of preference when a sample has several. */
export const IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "bmp", "tiff", "tif"] as const;

/** Where a member's bytes lie. */
export interface MemberRef {
  /** Path of the shard. */
  shard: string;
  /** Member name inside the shard. */
  name: string;
  /** Byte offset of the data. */
  offset: number;
  /** Data size in bytes. */
  size: number;
}

/** One webdataset sample of one shard: its members by (lower-case) extension. */
export interface ShardSample {
  /** Sample key. */
  key: string;
  /** Path of the shard. */
  shard: string;
  /** Members by extension. */
  members: Map<string, MemberRef>;
}

/** An image and its text-box JSON, with the same key. */
export interface PairedSample {
  /** Sample key (of the image member). */
  key: string;
  /** The image member. */
  image: MemberRef;
  /** The JSON member. */
  json: MemberRef;
}

/** Something wrong with the data, found while reading shards or samples. */
export interface DataProblem {
  /** Reason, e.g. "missing-json", "key-mismatch", "tar-truncated", "image-corrupt". */
  kind: string;
  /** Samples skipped because of it (0 for a report that skips nothing by itself). */
  skipped: number;
  /** The shard (or shards, joined by " / ") concerned. */
  file: string;
  /** The first sample key concerned ("" when none). */
  key: string;
  /** What happened, in a sentence. */
  message: string;
}

/** Output of {@link pairUnit}: a sample to use, or a problem to count. */
export type PairItem = { sample: PairedSample } | { problem: DataProblem };

/**
 * A data problem raised in strict mode (or as an unrecoverable error), naming the file, the
 * sample key and the reason.
 */
export class DataError extends Error {
  /** The problem. */
  readonly problem: DataProblem;

  /**
   * @param problem The problem.
   */
  constructor(problem: DataProblem) {
    super(problem.message);
    this.name = "DataError";
    this.problem = problem;
  }
}

/**
 * Splits a member name into webdataset key and extension.
 *
 * @param name Member name.
 * @returns Key and lower-case extension, or undefined when the basename has no extension (or
 *   starts with a dot): such members belong to no sample.
 * @example
 * ```ts
 * splitKey("a/000017.seg.png"); // { key: "a/000017", ext: "seg.png" }
 * ```
 */
export function splitKey(name: string): { key: string; ext: string } | undefined {
  const slash = name.lastIndexOf("/");
  const dot = name.indexOf(".", slash + 1);
  if (dot <= slash + 1 || dot === name.length - 1) return undefined;
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

/** The part of a key compared between paired shards (its basename, as in the reference). */
function baseKey(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/**
 * Reads a shard's samples (headers only).
 *
 * @param path Path of the shard.
 * @returns The samples and, when the shard is malformed or unreadable, the problem that
 *   stopped the scan (the samples before it are complete and usable).
 */
export async function scanShard(
  path: string,
): Promise<{ samples: ShardSample[]; error?: DataProblem | undefined }> {
  const samples: ShardSample[] = [];
  let current: ShardSample | undefined;
  try {
    await using tar = await TarReader.open(path);
    for await (const e of tar.entries()) {
      if (e.type !== "file") continue;
      const k = splitKey(e.name);
      if (!k) continue;
      if (!current || current.key !== k.key || current.members.has(k.ext)) {
        current = { key: k.key, shard: path, members: new Map() };
        samples.push(current);
      }
      current.members.set(k.ext, { shard: path, name: e.name, offset: e.dataOffset, size: e.size });
    }
  } catch (e) {
    if (e instanceof TarError) {
      return {
        samples,
        error: { kind: e.kind, skipped: 0, file: path, key: "", message: e.message },
      };
    }
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
      const message = `Cannot read shard "${path}": ${e.message}`;
      return {
        samples,
        error: { kind: "shard-unreadable", skipped: 0, file: path, key: "", message },
      };
    }
    throw e;
  }
  return { samples };
}

/** The image member of a sample, if any. */
export function imageMember(s: ShardSample): MemberRef | undefined {
  for (const ext of IMAGE_EXTENSIONS) {
    const m = s.members.get(ext);
    if (m) return m;
  }
  return undefined;
}

function describe(s: ShardSample): string {
  return [...s.members.values()].map((m) => m.name).join(", ");
}

/** Options of {@link pairUnit}. */
export interface PairOptions {
  /** Throw a {@link DataError} at the first problem instead of skipping and counting. */
  strict?: boolean | undefined;
}

/**
 * Pairs the samples of one shard unit: an image shard with its text-box shard, or the image
 * and JSON members of one single-layout shard.
 *
 * @param unit The shard unit.
 * @param options Strict mode.
 * @returns A generator of samples and problems, in shard order.
 * @example
 * ```ts
 * for await (const item of pairUnit({ image: "i.tar", text: "t.tar", weight: 1, source: 0 })) {
 *   if ("sample" in item) console.log(item.sample.key);
 *   else console.warn(item.problem.message);
 * }
 * ```
 */
export async function* pairUnit(
  unit: ShardUnit,
  options: PairOptions = {},
): AsyncGenerator<PairItem> {
  const strict = options.strict ?? false;
  const emit = (p: DataProblem): PairItem => {
    if (strict) throw new DataError(p);
    return { problem: p };
  };
  if (unit.text === undefined) {
    const scan = await scanShard(unit.image);
    for (const s of scan.samples) {
      const image = imageMember(s);
      const json = s.members.get("json");
      if (image && json) yield { sample: { key: s.key, image, json } };
      else {
        yield emit({
          kind: image ? "missing-json" : "missing-image",
          skipped: 1,
          file: unit.image,
          key: s.key,
          message: `Sample "${s.key}" in "${unit.image}" has no ${image ? "JSON" : "image"} ` +
            `member (members: ${describe(s)})`,
        });
      }
    }
    if (scan.error) yield emit(scan.error);
    return;
  }

  const [a, b] = await Promise.all([scanShard(unit.image), scanShard(unit.text)]);
  const A = a.samples, B = b.samples;
  const where = `"${unit.image}" / "${unit.text}"`;
  const indexA = keyIndex(A), indexB = keyIndex(B);
  const skipRun = function* (
    side: ShardSample[],
    from: number,
    to: number,
    kind: string,
    shard: string,
    why: string,
  ): Generator<PairItem> {
    if (to <= from) return;
    yield emit({
      kind,
      skipped: to - from,
      file: shard,
      key: side[from]!.key,
      message: `Skipped ${to - from} sample(s) from "${side[from]!.key}" in "${shard}": ${why}`,
    });
  };
  let i = 0, j = 0;
  while (i < A.length && j < B.length) {
    const sa = A[i]!, sb = B[j]!;
    if (baseKey(sa.key) === baseKey(sb.key)) {
      const image = imageMember(sa);
      const json = sb.members.get("json");
      if (image && json) yield { sample: { key: sa.key, image, json } };
      else {
        yield emit({
          kind: image ? "missing-json" : "missing-image",
          skipped: 1,
          file: image ? unit.text : unit.image,
          key: sa.key,
          message: image
            ? `Sample "${sb.key}" in "${unit.text}" has no JSON member (members: ${describe(sb)})`
            : `Sample "${sa.key}" in "${unit.image}" has no image member (members: ${
              describe(sa)
            })`,
        });
      }
      i++, j++;
      continue;
    }
    yield emit({
      kind: "key-mismatch",
      skipped: 0,
      file: where,
      key: sa.key,
      message: `Key mismatch: image sample "${sa.key}" in "${unit.image}" faces text-box ` +
        `sample "${sb.key}" in "${unit.text}"`,
    });
    // Re-synchronise on the nearest common key: the image side's next occurrence of sb's key
    // or the text side's next occurrence of sa's key, whichever skips fewer samples.
    const ia = nextIndex(indexA, baseKey(sb.key), i);
    const jb = nextIndex(indexB, baseKey(sa.key), j);
    if (ia >= 0 && (jb < 0 || ia - i <= jb - j)) {
      yield* skipRun(A, i, ia, "missing-json", unit.image, `no text-box sample in "${unit.text}"`);
      i = ia;
    } else if (jb >= 0) {
      yield* skipRun(B, j, jb, "missing-image", unit.text, `no image sample in "${unit.image}"`);
      j = jb;
    } else {
      yield* skipRun(
        A,
        i,
        i + 1,
        "missing-json",
        unit.image,
        `no text-box sample in "${unit.text}"`,
      );
      yield* skipRun(B, j, j + 1, "missing-image", unit.text, `no image sample in "${unit.image}"`);
      i++, j++;
    }
  }
  // A broken shard is reported where its readable part ends; the leftovers of its partner
  // are counted under the same reason.
  if (a.error) yield emit(a.error);
  if (b.error) yield emit(b.error);
  yield* skipRun(
    A,
    i,
    A.length,
    b.error ? b.error.kind : "missing-json",
    unit.image,
    b.error
      ? `"${unit.text}" is unreadable past this point`
      : `no text-box sample in "${unit.text}"`,
  );
  yield* skipRun(
    B,
    j,
    B.length,
    a.error ? a.error.kind : "missing-image",
    unit.text,
    a.error
      ? `"${unit.image}" is unreadable past this point`
      : `no image sample in "${unit.image}"`,
  );
}

function keyIndex(samples: ShardSample[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  samples.forEach((s, i) => {
    const k = baseKey(s.key);
    const list = m.get(k);
    if (list) list.push(i);
    else m.set(k, [i]);
  });
  return m;
}

/** First position > `after` holding `key`, or -1. */
function nextIndex(index: Map<string, number[]>, key: string, after: number): number {
  const list = index.get(key);
  if (!list) return -1;
  for (const p of list) if (p > after) return p;
  return -1;
}
