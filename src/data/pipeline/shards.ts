/**
 * Shard lists: brace expansion (`image_{00000..00099}.tar`), sources with weights, pairing of
 * the image and text-box lists into shard units, and the order in which a rank reads them
 * (resampled with replacement, shuffled per epoch, or sequential), all seeded
 * deterministically from (seed, epoch, rank).
 *
 * Spec syntax: `::` separates sources; inside a source, commas outside braces separate
 * patterns; each pattern is brace-expanded. `a/{0..9}.tar::b/x.tar,b/y.tar` is two sources.
 *
 * @module
 */

import { isAbsolute, join } from "node:path";
import { Rng } from "../../util/rng.ts";

/** Independent random streams derived from one seed (the last word of the derivation). */
export const STREAM = {
  /** Order of shards in a shuffled epoch (shared by all ranks). */
  shards: 1,
  /** Shards drawn with replacement (per rank). */
  resample: 2,
  /** The sample shuffle buffer (per rank). */
  buffer: 3,
  /** Per-sample randomness handed to the per-sample function. */
  sample: 4,
} as const;

/**
 * A generator seeded by a tuple of integers (seed, epoch, rank, index, stream...), so that
 * every consumer of randomness is independent of every other and of scheduling.
 *
 * @param parts Integers (each used modulo 2^53; negative values allowed).
 * @returns A fresh generator.
 * @example
 * ```ts
 * const rng = deriveRng([seed, epoch, rank, sampleIndex, STREAM.sample]);
 * ```
 */
export function deriveRng(parts: number[]): Rng {
  let h0 = 0x243f6a88, h1 = 0x85a308d3, h2 = 0x13198a2e, h3 = 0x03707344;
  for (const p of parts) {
    if (!Number.isInteger(p)) throw new TypeError(`Cannot derive a seed from ${p}: not an integer`);
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    for (const w of [lo, hi]) {
      h0 = mix32((h0 ^ w) + 0x9e3779b9);
      h1 = mix32(h1 ^ h0);
      h2 = mix32((h2 + h1) ^ w);
      h3 = mix32(h3 ^ h2 ^ 0x7f4a7c15);
    }
  }
  if ((h0 | h1 | h2 | h3) === 0) h0 = 1;
  return new Rng([h0 >>> 0, h1 >>> 0, h2 >>> 0, h3 >>> 0]);
}

function mix32(x: number): number {
  x = Math.imul((x ^ (x >>> 16)) >>> 0, 0x85ebca6b);
  x = Math.imul((x ^ (x >>> 13)) >>> 0, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Expands brace patterns the way bash and Python's `braceexpand` do: alternatives
 * `{a,b}`, numeric ranges `{0..9}` with optional step `{0..10..2}` (zero padding kept when
 * an end has a leading zero), letter ranges `{a..e}`, nesting, and `\` escapes.
 *
 * @param pattern The pattern.
 * @returns Every expansion, in order.
 * @example
 * ```ts
 * braceExpand("image_{00008..00010}.tar"); // ["image_00008.tar", "image_00009.tar", "image_00010.tar"]
 * ```
 */
export function braceExpand(pattern: string): string[] {
  return expand(pattern, pattern);
}

function expand(s: string, whole: string): string[] {
  const open = findUnescaped(s, "{", 0);
  const strayClose = findUnescaped(s, "}", 0);
  if (open < 0) {
    if (strayClose >= 0) throw unbalanced(whole, "}");
    return [unescape(s)];
  }
  if (strayClose >= 0 && strayClose < open) throw unbalanced(whole, "}");
  const close = matchBrace(s, open);
  if (close < 0) throw unbalanced(whole, "{");
  const inner = s.slice(open + 1, close);
  const parts = splitTopLevel(inner, ",");
  let alts: string[];
  if (parts.length > 1) alts = parts.flatMap((p) => expand(p, whole));
  else {
    const range = expandRange(inner, whole);
    alts = range ?? expand(inner, whole).map((x) => `{${x}}`);
  }
  const prefix = unescape(s.slice(0, open));
  const rest = expand(s.slice(close + 1), whole);
  const out: string[] = [];
  for (const a of alts) for (const r of rest) out.push(prefix + a + r);
  return out;
}

function unbalanced(whole: string, ch: string): SyntaxError {
  return new SyntaxError(
    `Cannot expand shard pattern "${whole}": unbalanced "${ch}" (escape literal braces with \\)`,
  );
}

function findUnescaped(s: string, ch: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === ch) return i;
  }
  return -1;
}

function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

function splitTopLevel(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === sep && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, "$1");
}

function expandRange(inner: string, whole: string): string[] | undefined {
  const num = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/.exec(inner);
  if (num) {
    const [, a, b, st] = num as unknown as [string, string, string, string | undefined];
    const start = Number(a), end = Number(b);
    const step = Math.abs(Number(st ?? "1")) || 1;
    const padded = hasLeadingZero(a) || hasLeadingZero(b);
    const width = padded ? Math.max(a.replace("-", "").length, b.replace("-", "").length) : 0;
    const count = Math.floor(Math.abs(end - start) / step) + 1;
    if (count > 10_000_000) {
      throw new RangeError(`Cannot expand shard pattern "${whole}": {${inner}} has ${count} items`);
    }
    const dir = end >= start ? 1 : -1;
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const v = start + dir * i * step;
      const digits = String(Math.abs(v)).padStart(width, "0");
      out.push(v < 0 ? `-${digits}` : digits);
    }
    return out;
  }
  const chr = /^([a-zA-Z])\.\.([a-zA-Z])(?:\.\.(-?\d+))?$/.exec(inner);
  if (chr) {
    const [, a, b, st] = chr as unknown as [string, string, string, string | undefined];
    const start = a.charCodeAt(0), end = b.charCodeAt(0);
    const step = Math.abs(Number(st ?? "1")) || 1;
    const dir = end >= start ? 1 : -1;
    const out: string[] = [];
    for (let c = start; dir > 0 ? c <= end : c >= end; c += dir * step) {
      out.push(String.fromCharCode(c));
    }
    return out;
  }
  return undefined;
}

function hasLeadingZero(s: string): boolean {
  const d = s.replace("-", "");
  return d.length > 1 && d[0] === "0";
}

/** One source of shards. */
export interface ShardSource {
  /** The patterns as written. */
  patterns: string[];
  /** Expanded shard paths. */
  shards: string[];
  /** Sampling weight of each of its shards (resampled mode). */
  weight: number;
}

/** Options of {@link parseShardSpec}. */
export interface ShardSpecOptions {
  /** Weights per source: `"1::3"` or `[1, 3]` (default 1 each). */
  weights?: string | number[] | undefined;
  /** Directory that relative paths are resolved against (default: as given). */
  baseDir?: string | undefined;
}

/**
 * Parses a shard spec into sources.
 *
 * @param spec `a/{0..9}.tar::b/{0..3}.tar`, or an array with one source per element.
 * @param options Weights and base directory.
 * @returns The sources with their expanded shards.
 * @example
 * ```ts
 * const [a, b] = parseShardSpec("a/{0..9}.tar::b/{0..3}.tar", { weights: "1::2" });
 * ```
 */
export function parseShardSpec(
  spec: string | string[],
  options: ShardSpecOptions = {},
): ShardSource[] {
  const parts = Array.isArray(spec) ? spec : spec.split("::");
  const weights = options.weights === undefined
    ? parts.map(() => 1)
    : typeof options.weights === "string"
    ? options.weights.split("::").map((w) => Number(w.trim()))
    : options.weights;
  if (weights.length !== parts.length) {
    throw new RangeError(
      `Cannot use ${weights.length} weights for ${parts.length} shard sources in "${spec}"`,
    );
  }
  return parts.map((part, i) => {
    const w = weights[i]!;
    if (!Number.isFinite(w) || w <= 0) {
      throw new RangeError(`Cannot use weight "${w}" for source "${part}": not a positive number`);
    }
    const patterns = splitTopLevel(part, ",").map((p) => p.trim()).filter((p) => p.length > 0);
    if (patterns.length === 0) throw new SyntaxError(`Shard source ${i + 1} of "${spec}" is empty`);
    const shards = patterns.flatMap((p) => braceExpand(p)).map((p) =>
      options.baseDir !== undefined && !isAbsolute(p) ? join(options.baseDir, p) : p
    );
    return { patterns, shards, weight: w };
  });
}

/** The unit that shard order works on: an image shard and its text-box shard, or one shard. */
export interface ShardUnit {
  /** Image shard (or the single-layout shard holding both members). */
  image: string;
  /** Text-box shard of the paired layout; undefined for the single layout. */
  text?: string | undefined;
  /** Sampling weight (resampled mode). */
  weight: number;
  /** Index of its source. */
  source: number;
}

/** Options of {@link shardUnits}. */
export interface ShardUnitsOptions extends ShardSpecOptions {
  /** Text-box shard spec of the paired layout (same sources and shard counts as `images`). */
  texts?: string | string[] | undefined;
}

/**
 * Builds the shard units of a dataset: image shard i of each source paired with text-box
 * shard i of the same source, or single-layout shards alone.
 *
 * @param images Image (or single-layout) shard spec.
 * @param options Text-box spec, weights, base directory.
 * @returns The units, sources in order.
 * @example
 * ```ts
 * const units = shardUnits("images/image_{00000..00009}.tar", {
 *   texts: "text_boxes/text_box_{00000..00009}.tar",
 * });
 * ```
 */
export function shardUnits(
  images: string | string[],
  options: ShardUnitsOptions = {},
): ShardUnit[] {
  const imageSources = parseShardSpec(images, options);
  const textSources = options.texts === undefined
    ? undefined
    : parseShardSpec(options.texts, { baseDir: options.baseDir });
  if (textSources && textSources.length !== imageSources.length) {
    throw new RangeError(
      `Cannot pair ${imageSources.length} image sources with ${textSources.length} text-box ` +
        `sources: give both lists the same "::"-separated sources`,
    );
  }
  const units: ShardUnit[] = [];
  imageSources.forEach((src, s) => {
    const texts = textSources?.[s];
    if (texts && texts.shards.length !== src.shards.length) {
      throw new RangeError(
        `Cannot pair source ${s + 1}: "${src.patterns.join(",")}" has ${src.shards.length} ` +
          `image shards but "${
            texts.patterns.join(",")
          }" has ${texts.shards.length} text-box shards`,
      );
    }
    src.shards.forEach((image, i) => {
      units.push({ image, text: texts?.shards[i], weight: src.weight, source: s });
    });
  });
  if (units.length === 0) throw new RangeError(`Shard spec "${images}" names no shards`);
  return units;
}

/**
 * Lists the shards of units that do not exist or are not files.
 *
 * @param units Shard units.
 * @returns Missing paths (empty when all exist).
 */
export async function missingShards(units: ShardUnit[]): Promise<string[]> {
  const paths = units.flatMap((u) => (u.text === undefined ? [u.image] : [u.image, u.text]));
  const missing: string[] = [];
  await Promise.all(paths.map(async (p) => {
    try {
      if (!(await Deno.stat(p)).isFile) missing.push(p);
    } catch {
      missing.push(p);
    }
  }));
  return missing.sort();
}

/** How shards are ordered within an epoch. */
export type ShardMode = "resampled" | "shuffled" | "sequential";

/** Options of {@link shardOrder}. */
export interface ShardOrderOptions {
  /** Order: drawn with replacement (infinite), shuffled each epoch, or as listed. */
  mode: ShardMode;
  /** Base seed. */
  seed: number;
  /** Epoch (re-seeds the order). */
  epoch: number;
  /** This process's rank (default 0). */
  rank?: number | undefined;
  /** Number of processes (default 1). */
  worldSize?: number | undefined;
}

/**
 * The shard units one rank reads in one epoch.
 *
 * - `shuffled`: all ranks shuffle the full list with the same (seed, epoch) and rank r takes
 *   positions r, r + W, r + 2W ...: ranks read disjoint shards that together cover the list.
 * - `sequential`: the same split without shuffling (evaluation).
 * - `resampled`: an endless draw with replacement, weighted by source weight (each shard of a
 *   source has the source's weight, as in the reference's upsampling factors), seeded per
 *   (seed, epoch, rank); ranks draw independently.
 *
 * @param units Shard units from {@link shardUnits}.
 * @param options Mode, seed, epoch, rank, world size.
 * @returns A generator of units (endless for `resampled`).
 * @example
 * ```ts
 * for (const u of shardOrder(units, { mode: "shuffled", seed: 0, epoch: 3, rank: 1, worldSize: 4 })) {
 *   console.log(u.image, u.text);
 * }
 * ```
 */
export function* shardOrder(units: ShardUnit[], options: ShardOrderOptions): Generator<ShardUnit> {
  const rank = options.rank ?? 0;
  const world = options.worldSize ?? 1;
  if (
    !Number.isInteger(world) || world < 1 || !Number.isInteger(rank) || rank < 0 || rank >= world
  ) {
    throw new RangeError(`Cannot use rank ${rank} of world size ${world}`);
  }
  if (units.length === 0) throw new RangeError("Cannot order an empty shard list");
  if (options.mode === "resampled") {
    const rng = deriveRng([options.seed, options.epoch, rank, STREAM.resample]);
    const cum: number[] = [];
    let total = 0;
    for (const u of units) cum.push(total += u.weight);
    while (true) {
      const x = rng.next() * total;
      let lo = 0, hi = cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid]! > x) hi = mid;
        else lo = mid + 1;
      }
      yield units[lo]!;
    }
  }
  if (units.some((u) => u.weight !== units[0]!.weight)) {
    throw new RangeError(
      "Cannot apply source weights without resampled shards: weights only change how often " +
        "shards are drawn with replacement",
    );
  }
  if (units.length < world) {
    throw new RangeError(
      `Cannot split ${units.length} shards over ${world} ranks: every rank needs at least one ` +
        "shard (use resampled shards or more shards)",
    );
  }
  const order = units.map((_, i) => i);
  if (options.mode === "shuffled") {
    deriveRng([options.seed, options.epoch, STREAM.shards]).shuffle(order);
  }
  for (let i = rank; i < order.length; i += world) yield units[order[i]!]!;
}
