/**
 * Free space before a save, and disk-full errors that say what was being written and how much
 * room it needed. Free space comes from `statfs` (Deno's `node:fs`), which Linux and macOS
 * report; where it is unavailable the pre-save check is skipped and only the error remains.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import { fmtBytes } from "../gpu/buffer_pool.ts";

/**
 * Bytes available to this user on the file system of a path (`statfs` `bavail * bsize`).
 *
 * @param path A path on the file system (it must exist).
 * @returns The bytes, or null where the file system does not report them.
 * @example
 * ```ts
 * const free = await freeBytes("runs/tiny");
 * ```
 */
export async function freeBytes(path: string): Promise<number | null> {
  try {
    const s = await statfs(path);
    const v = Number(s.bavail) * Number(s.bsize);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether an error is the operating system's "no space left on device" (ENOSPC, or a disk
 * quota exceeded).
 *
 * @param e An error.
 * @returns True for a full disk.
 */
export function isDiskFull(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = err?.code, msg = String(err?.message ?? "");
  return code === "ENOSPC" || code === "EDQUOT" || /os error (28|122)\b/.test(msg) ||
    /No space left on device|Disk quota exceeded/i.test(msg);
}

/**
 * Refuses a save that cannot fit: throws when the file system reports less free space than
 * needed. Does nothing where free space is not reported.
 *
 * @param dir Where the files go (must exist).
 * @param needed Bytes the save writes.
 * @param what What is saved, for the message (e.g. `checkpoint "runs/x/checkpoints/step_00000004"`).
 * @throws {Error} `Cannot save <what>: it needs about N and "<dir>" has M free`.
 */
export async function checkFreeSpace(dir: string, needed: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free !== null && free < needed) {
    throw new Error(
      `Cannot save ${what}: it needs about ${fmtBytes(needed)} (${needed} bytes) and the disk ` +
        `of "${dir}" has ${fmtBytes(free)} (${free} bytes) free; nothing was overwritten`,
    );
  }
}

/**
 * The error of a write that ran out of space, naming the file and the space needed vs free.
 *
 * @param e The original error.
 * @param what What was saved (e.g. `checkpoint "..."`).
 * @param file The file being written.
 * @param dir The folder to report free space of.
 * @param needed Bytes the whole save writes.
 * @returns A new error (the original as its cause).
 */
export async function diskFullError(
  e: unknown,
  what: string,
  file: string,
  dir: string,
  needed: number,
): Promise<Error> {
  const free = await freeBytes(dir);
  return new Error(
    `Cannot save ${what}: the disk is full while writing "${file}" (the save needs about ` +
      `${fmtBytes(needed)} (${needed} bytes); ${
        free === null ? "free space unknown" : `${fmtBytes(free)} (${free} bytes) free`
      } after removing the partial files); the previous checkpoints are untouched`,
    { cause: e },
  );
}
