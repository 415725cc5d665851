/**
 * Checkpoint integrity: the `COMPLETE` marker of a checkpoint folder is its manifest, a JSON
 * file that records the size and CRC-32C of every other file of the checkpoint. It is written
 * last (atomically), so it seals exactly the bytes that were saved; verifying a checkpoint
 * streams each file through the digest again and compares.
 *
 * ```json
 * { "format": "ps3-checkpoint-manifest", "version": 1, "algorithm": "crc32c", "step": 100,
 *   "files": { "model.safetensors": { "size": 1234, "crc32c": "e3069283" }, ... } }
 * ```
 *
 * Markers written by earlier versions of ps3 hold just `ok`: such a checkpoint is complete
 * but cannot be verified (`legacy`).
 *
 * @module
 */

import { basename, join } from "node:path";
import { digestFile, type FileDigest } from "./digest.ts";
import { writeFileAtomic } from "./atomic.ts";

/** The marker file name: present only in finished checkpoints; it holds the manifest. */
export const MARKER = "COMPLETE";

/** The manifest a `COMPLETE` marker holds. */
export interface CheckpointManifest {
  /** Format tag. */
  format: "ps3-checkpoint-manifest";
  /** Format version. */
  version: 1;
  /** The digest of every file. */
  algorithm: "crc32c";
  /** The checkpoint's step. */
  step: number;
  /** Size and digest of each file of the checkpoint, by name. */
  files: Record<string, FileDigest>;
}

/**
 * Digests the files of a checkpoint folder and writes its `COMPLETE` marker with the manifest
 * (atomically, last): from then on the folder is a complete checkpoint.
 *
 * @param dir The checkpoint folder (still under its temporary name, typically).
 * @param step The checkpoint's step.
 * @param files The names of its files, inside `dir`.
 * @returns The manifest written.
 * @example
 * ```ts
 * await sealCheckpoint(tmp, 100, ["model.safetensors", "optimizer.safetensors", "state.json"]);
 * ```
 */
export async function sealCheckpoint(
  dir: string,
  step: number,
  files: readonly string[],
): Promise<CheckpointManifest> {
  const manifest: CheckpointManifest = {
    format: "ps3-checkpoint-manifest",
    version: 1,
    algorithm: "crc32c",
    step,
    files: {},
  };
  for (const f of files) manifest.files[f] = await digestFile(join(dir, f));
  await writeFileAtomic(join(dir, MARKER), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/** What {@linkcode verifyCheckpoint} found about one checkpoint folder. */
export interface CheckpointStatus {
  /** The folder. */
  path: string;
  /** Its step, from the folder name (`step_00000100`), or null for another name. */
  step: number | null;
  /** Whether it has its `COMPLETE` marker. */
  complete: boolean;
  /** Whether every file matches the manifest (false for legacy checkpoints). */
  verified: boolean;
  /** Complete, but written without digests (a marker of an earlier ps3): cannot be verified. */
  legacy: boolean;
  /** Total bytes of the files in the folder. */
  size: number;
  /** What is wrong, one entry per file: `"model.safetensors: digest mismatch (...)"`. */
  problems: string[];
}

/** The step of a checkpoint folder name, or null. */
function stepOf(path: string): number | null {
  const m = /^step_(\d{8})$/.exec(basename(path));
  return m ? Number(m[1]) : null;
}

async function folderSize(dir: string): Promise<number> {
  let size = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile) size += (await Deno.stat(join(dir, e.name))).size;
    }
  } catch {
    // unreadable: size unknown
  }
  return size;
}

/**
 * Verifies a checkpoint folder: the marker is present and a valid manifest, and every file
 * it lists exists with the recorded size and CRC-32C (streamed, one 8 MiB buffer).
 *
 * @param dir The checkpoint folder.
 * @returns Its status; `problems` names each bad file and why (missing, truncated, longer than
 *   recorded, digest mismatch, no marker, unreadable manifest).
 * @example
 * ```ts
 * const s = await verifyCheckpoint("runs/tiny/checkpoints/step_00000100");
 * if (!s.verified) console.log(s.problems.join("; "));
 * ```
 */
export async function verifyCheckpoint(dir: string): Promise<CheckpointStatus> {
  const status: CheckpointStatus = {
    path: dir,
    step: stepOf(dir),
    complete: false,
    verified: false,
    legacy: false,
    size: await folderSize(dir),
    problems: [],
  };
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, MARKER));
  } catch (e) {
    status.problems.push(
      e instanceof Deno.errors.NotFound
        ? `${MARKER}: missing (the checkpoint was never finished)`
        : `${MARKER}: unreadable (${(e as Error).message})`,
    );
    return status;
  }
  status.complete = true;
  if (text.trim() === "ok") {
    status.legacy = true;
    status.problems.push(`${MARKER}: written without digests by an earlier ps3 (not verifiable)`);
    return status;
  }
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(text);
    if (manifest?.format !== "ps3-checkpoint-manifest" || manifest.version !== 1) {
      throw new SyntaxError("not a ps3 checkpoint manifest (version 1)");
    }
    if (manifest.algorithm !== "crc32c") {
      throw new SyntaxError(`unknown digest algorithm "${manifest.algorithm}"`);
    }
  } catch (e) {
    status.problems.push(`${MARKER}: not a valid manifest (${(e as Error).message})`);
    return status;
  }
  for (const [name, want] of Object.entries(manifest.files ?? {})) {
    let got: FileDigest;
    try {
      got = await digestFile(join(dir, name));
    } catch (e) {
      status.problems.push(
        e instanceof Deno.errors.NotFound
          ? `${name}: missing`
          : `${name}: unreadable (${(e as Error).message})`,
      );
      continue;
    }
    if (got.size < want.size) {
      status.problems.push(`${name}: truncated (${got.size} of ${want.size} bytes)`);
    } else if (got.size > want.size) {
      status.problems.push(`${name}: longer than recorded (${got.size}, not ${want.size} bytes)`);
    } else if (got.crc32c !== want.crc32c) {
      status.problems.push(
        `${name}: digest mismatch (CRC-32C ${got.crc32c}, the manifest records ${want.crc32c})`,
      );
    }
  }
  status.verified = status.problems.length === 0;
  return status;
}

/**
 * One line on what is wrong with a checkpoint, for messages.
 *
 * @param s A status from {@linkcode verifyCheckpoint}.
 * @returns e.g. `"runs/x/checkpoints/step_00000004": model.safetensors: truncated (...)`.
 */
export function describeStatus(s: CheckpointStatus): string {
  return `"${s.path}": ${s.problems.join("; ") || "verified"}`;
}
