/**
 * Atomic file replacement: the new contents go to a temporary file beside the target
 * (`<path>.tmp-<pid>-<random>`), which is flushed to disk and then renamed over the target, and
 * the directory entry is flushed too (POSIX). Readers see either the old file or the complete
 * new one; a crash or an error mid-write leaves the old file untouched (after a hard crash a
 * stray temporary file may remain beside it).
 *
 * @module
 */

import { dirname } from "node:path";

/**
 * Writes all of `bytes` to `file` (a single `write` may write fewer bytes).
 *
 * @param file An open file.
 * @param bytes The bytes to write at the current position.
 * @returns Resolves when every byte has been handed to the OS.
 * @example
 * ```ts
 * using file = await Deno.open("out.bin", { write: true, create: true });
 * await writeAll(file, new Uint8Array([1, 2, 3]));
 * ```
 */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/**
 * Replaces `path` atomically with what `fill` writes into a fresh temporary file.
 *
 * @param path The target file (created or replaced).
 * @param fill Writes the new contents into the temporary file (sequentially from offset 0); it
 * must not close the file. If it throws, the temporary file is removed and the target keeps its
 * old contents.
 * @returns Resolves once the new file is durable and in place.
 * @example
 * ```ts
 * await writeAtomic("run/state.json", async (file) => {
 *   await writeAll(file, new TextEncoder().encode('{"step": 10}'));
 * });
 * ```
 */
export async function writeAtomic(
  path: string,
  fill: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => {
    return b.toString(16).padStart(2, "0");
  }).join("");
  const tmp = `${path}.tmp-${Deno.pid}-${suffix}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  let open = true;
  try {
    await fill(file);
    await file.sync();
    file.close();
    open = false;
    await Deno.rename(tmp, path);
  } catch (err) {
    if (open) file.close();
    await Deno.remove(tmp).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    throw err;
  }
  // Flush the rename itself (the directory entry); Windows cannot open directories for this.
  if (Deno.build.os !== "windows") {
    using dir = await Deno.open(dirname(path), { read: true });
    await dir.sync();
  }
}

/**
 * Replaces `path` atomically with `data` (for small files: configs, JSON state).
 *
 * @param path The target file.
 * @param data The contents; a string is written as UTF-8.
 * @returns Resolves once the new file is durable and in place.
 * @example
 * ```ts
 * await writeFileAtomic("out/config.json", JSON.stringify({ hidden_size: 1152 }, null, 2));
 * ```
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await writeAtomic(path, (file) => writeAll(file, bytes));
}
