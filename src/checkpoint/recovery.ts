/**
 * Which checkpoint a run resumes from, and which ones pruning may delete, decided from
 * verification (see `manifest.ts`):
 *
 * - `--resume latest` takes the newest checkpoint that verifies, saying which newer ones it
 *   skipped and why; when checkpoints exist and none verifies it refuses (nothing is changed).
 * - `--resume <folder>` takes that folder or refuses: it never falls back.
 * - Pruning deletes only verified checkpoints beyond the newest `keep` verified ones, and the
 *   temporary folders of writers that are gone; a checkpoint that fails verification is moved
 *   aside into `unreadable/` with a log line, never deleted.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { type CheckpointStatus, describeStatus, verifyCheckpoint } from "./manifest.ts";
import { processAlive } from "./process_alive.ts";

const STEP_DIR = /^step_(\d{8})$/;
const TMP_DIR = /^step_\d{8}\.tmp-(\d+)-/;

/** The folder checkpoints that fail verification are moved into, inside the checkpoints folder. */
export const UNREADABLE_DIR = "unreadable";

/**
 * Checkpoint folders (`step_NNNNNNNN`, complete or not) under a checkpoints folder, newest first.
 *
 * @param root The checkpoints folder.
 * @returns Their steps and paths (none when the folder does not exist).
 */
export async function checkpointFolders(root: string): Promise<{ step: number; path: string }[]> {
  const out: { step: number; path: string }[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      const m = STEP_DIR.exec(e.name);
      if (e.isDirectory && m) out.push({ step: Number(m[1]), path: join(root, e.name) });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => b.step - a.step);
}

/** Verification results kept for the run (a checkpoint is digested once per process). */
export type VerifyCache = Map<string, CheckpointStatus>;

async function status(path: string, cache?: VerifyCache): Promise<CheckpointStatus> {
  const hit = cache?.get(path);
  if (hit) return hit;
  const s = await verifyCheckpoint(path);
  cache?.set(path, s);
  return s;
}

/** A checkpoint usable to resume from: verified, or complete without digests (legacy). */
function usable(s: CheckpointStatus): boolean {
  return s.verified || s.legacy;
}

/**
 * Resolves `--resume`: "latest" (the newest checkpoint of `root` that verifies) or a
 * checkpoint folder (which must verify).
 *
 * @param spec "latest" or a checkpoint folder.
 * @param root The run's checkpoints folder (for "latest").
 * @param options `log` for what was skipped and why; `cache` to remember verifications.
 * @returns The folder, or null when "latest" finds no checkpoint at all.
 * @throws {Error} For an explicit folder that is missing, incomplete or fails verification,
 *   and for "latest" when checkpoints exist but none verifies (naming each and why).
 * @example
 * ```ts
 * const dir = await chooseResume("latest", "runs/tiny/checkpoints", { log: console.log });
 * ```
 */
export async function chooseResume(
  spec: string,
  root: string,
  options: { log?: (s: string) => void; cache?: VerifyCache } = {},
): Promise<string | null> {
  const log = options.log ?? (() => {});
  if (spec !== "latest") {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(spec);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot resume from "${spec}": no such folder`);
      }
      throw new Error(`Cannot resume from "${spec}": ${(e as Error).message}`);
    }
    if (!info.isDirectory) throw new Error(`Cannot resume from "${spec}": it is not a folder`);
    const s = await status(spec, options.cache);
    if (!s.complete) {
      throw new Error(
        `Cannot resume from "${spec}": it is not a complete checkpoint (no COMPLETE marker)`,
      );
    }
    if (s.legacy) log(`checkpoint "${spec}" has no digests (an earlier ps3): not verified`);
    else if (!s.verified) {
      throw new Error(
        `Cannot resume from "${spec}": it fails verification: ${s.problems.join("; ")}`,
      );
    }
    return spec;
  }
  const all = await checkpointFolders(root);
  if (!all.length) return null;
  const bad: CheckpointStatus[] = [];
  for (const c of all) {
    const s = await status(c.path, options.cache);
    if (usable(s)) {
      for (const b of bad) log(`skipping checkpoint ${describeStatus(b)}`);
      if (s.legacy) log(`checkpoint "${c.path}" has no digests (an earlier ps3): not verified`);
      return c.path;
    }
    bad.push(s);
  }
  throw new Error(
    `Cannot resume from the latest checkpoint in "${root}": none of its ${all.length} ` +
      `checkpoint(s) verifies (${bad.map(describeStatus).join("; ")}). Nothing was changed; ` +
      `inspect them with \`ps3 verify ${root}\`, or resume from one explicitly`,
  );
}

/**
 * Removes the temporary folders (`step_N.tmp-<pid>-...`) of checkpoint writers that are gone:
 * this process's earlier failed saves, and those of processes no longer running on this host.
 *
 * @param root The checkpoints folder.
 * @returns The folders removed.
 */
export async function removeStaleTemps(root: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      const m = TMP_DIR.exec(e.name);
      if (!e.isDirectory || !m) continue;
      const pid = Number(m[1]);
      if (pid !== Deno.pid && processAlive(pid)) continue;
      await Deno.remove(join(root, e.name), { recursive: true }).catch(() => {});
      removed.push(join(root, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return removed;
}

/** What {@linkcode pruneVerified} did. */
export interface PruneResult {
  /** Verified checkpoints deleted (beyond `keep`). */
  deleted: string[];
  /** Checkpoints that failed verification, moved aside: from, to. */
  movedAside: { from: string; to: string }[];
}

/**
 * Keeps the newest `keep` verified checkpoints; deletes verified ones beyond them and moves
 * any that fail verification (or have no marker) into `<root>/unreadable/` with a log line.
 * Never deletes the newest verified checkpoint, never deletes an unverified one.
 *
 * @param root The checkpoints folder.
 * @param keep How many verified checkpoints to keep (0 keeps all, and moves nothing).
 * @param options `log` for the folders moved aside; `cache` to remember verifications.
 * @returns What was deleted and moved.
 */
export async function pruneVerified(
  root: string,
  keep: number,
  options: { log?: (s: string) => void; cache?: VerifyCache } = {},
): Promise<PruneResult> {
  const result: PruneResult = { deleted: [], movedAside: [] };
  if (keep <= 0) return result;
  let kept = 0;
  for (const c of await checkpointFolders(root)) {
    const s = await status(c.path, options.cache);
    if (usable(s)) {
      if (kept++ < keep) continue;
      await Deno.remove(c.path, { recursive: true });
      options.cache?.delete(c.path);
      result.deleted.push(c.path);
    } else {
      result.movedAside.push(await moveAside(root, s, options));
    }
  }
  return result;
}

async function moveAside(
  root: string,
  s: CheckpointStatus,
  options: { log?: (s: string) => void; cache?: VerifyCache },
): Promise<{ from: string; to: string }> {
  const aside = join(root, UNREADABLE_DIR);
  await Deno.mkdir(aside, { recursive: true });
  const to = join(aside, `${basename(s.path)}.${Date.now()}`);
  await Deno.rename(s.path, to);
  options.cache?.delete(s.path);
  options.log?.(
    `moved checkpoint "${s.path}" aside to "${to}" (it fails verification: ` +
      `${s.problems.join("; ")})`,
  );
  return { from: s.path, to };
}

/**
 * Moves aside (into `<root>/unreadable/`, with a log line) the checkpoints already found to
 * fail verification, e.g. those `--resume latest` skipped, so that a new save of the same
 * step does not silently replace them.
 *
 * @param root The checkpoints folder.
 * @param cache The verifications made so far.
 * @param log Where to say what was moved.
 * @returns The folders moved: from, to.
 */
export async function moveAsideFailed(
  root: string,
  cache: VerifyCache,
  log?: (s: string) => void,
): Promise<{ from: string; to: string }[]> {
  const moved: { from: string; to: string }[] = [];
  for (const s of [...cache.values()]) {
    if (!usable(s) && dirname(s.path) === root) {
      moved.push(await moveAside(root, s, log ? { log, cache } : { cache }));
    }
  }
  return moved;
}
