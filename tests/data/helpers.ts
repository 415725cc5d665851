/**
 * Shared fixtures of the data tests: temporary folders, GNU tar, shard writers, and an
 * assertion that returns the error a promise rejects with.
 *
 * @module
 */

import { ok as assert } from "node:assert";
import { readTar, TarWriter } from "../../src/data/formats/tar.ts";

const enc = new TextEncoder();

/**
 * Runs `fn` with a fresh temporary folder, removed afterwards.
 *
 * @param fn The test body.
 */
export async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ps3_data_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Awaits a promise that must reject with an instance of `cls`.
 *
 * @param fn Produces the promise.
 * @param cls Expected error class.
 * @returns The error.
 */
export async function rejectsWith<T extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => T,
): Promise<T> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  throw new Error(`expected a ${cls.name} rejection, but it resolved`);
}

/**
 * Runs GNU tar.
 *
 * @param args Arguments.
 * @param cwd Working directory.
 */
export async function gnuTar(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("tar", { args, cwd, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`tar ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Writes a tar shard.
 *
 * @param path Shard path.
 * @param members Name and contents (strings are UTF-8 encoded).
 */
export async function writeShard(
  path: string,
  members: [string, Uint8Array | string][],
): Promise<void> {
  await using w = await TarWriter.create(path);
  for (const [name, data] of members) {
    await w.add(name, typeof data === "string" ? enc.encode(data) : data);
  }
}

/**
 * A fake image: the key's UTF-8 bytes, so tests can check which image a sample got.
 *
 * @param key Sample key.
 * @returns Bytes.
 */
export function fakeImage(key: string): Uint8Array {
  return enc.encode(`IMG:${key}`);
}

/**
 * A text-box JSON naming its key.
 *
 * @param key Sample key.
 * @returns JSON text.
 */
export function fakeJson(key: string): string {
  return JSON.stringify({ text: [`caption ${key}`], box: [[0, 0, 1, 1]], global_text: key });
}

/**
 * Writes paired image and text-box shards: shard s holds keys `s*per .. s*per+per-1`.
 *
 * @param dir Folder (gets `images/` and `texts/`).
 * @param options Number of shards and samples per shard.
 * @returns Brace specs of the two lists and every key in order.
 */
export async function pairedDataset(
  dir: string,
  options: { shards: number; per: number },
): Promise<{ images: string; texts: string; keys: string[] }> {
  await Deno.mkdir(`${dir}/images`, { recursive: true });
  await Deno.mkdir(`${dir}/texts`, { recursive: true });
  const keys: string[] = [];
  for (let s = 0; s < options.shards; s++) {
    const ks = Array.from(
      { length: options.per },
      (_, i) => String(s * options.per + i).padStart(6, "0"),
    );
    keys.push(...ks);
    const id = String(s).padStart(3, "0");
    await writeShard(`${dir}/images/image_${id}.tar`, ks.map((k) => [`${k}.jpg`, fakeImage(k)]));
    await writeShard(`${dir}/texts/text_${id}.tar`, ks.map((k) => [`${k}.json`, fakeJson(k)]));
  }
  const last = String(options.shards - 1).padStart(3, "0");
  return {
    images: `${dir}/images/image_{000..${last}}.tar`,
    texts: `${dir}/texts/text_{000..${last}}.tar`,
    keys,
  };
}

/**
 * Rewrites a shard member by member.
 *
 * @param path Shard path.
 * @param edit Returns the new data for a member, or null to drop it.
 */
export async function rewriteShard(
  path: string,
  edit: (name: string, data: Uint8Array) => Uint8Array | string | null,
): Promise<void> {
  const members: [string, Uint8Array | string][] = [];
  for await (const { entry, data } of readTar(path)) {
    const out = edit(entry.name, data);
    if (out !== null) members.push([entry.name, out]);
  }
  await writeShard(path, members);
}
