/**
 * One trainer per run folder: `ps3 train` holds `<out>/train.lock`, a file created atomically
 * (written under a private name, then hard-linked to the lock name, which fails if it exists)
 * that records the holder's PID, host and start time. A second
 * trainer refuses, naming the holder. A lock whose process is gone from this host (killed,
 * crashed) is stale and taken over; a lock from another host is never taken over (its
 * process cannot be checked from here).
 *
 * @module
 */

import { join } from "node:path";
import { hostName, processAlive, processStartTicks } from "../checkpoint/process_alive.ts";

/** The lock file's name inside the run folder. */
export const LOCK_FILE = "train.lock";

/** What the lock file records. */
export interface LockInfo {
  /** The holder's process id. */
  pid: number;
  /** The holder's host name. */
  host: string;
  /** The holder's start time in clock ticks since boot (Linux), to tell a reused PID. */
  startTicks: number | null;
  /** When the lock was taken (ISO time). */
  since: string;
}

function describe(l: LockInfo): string {
  return `process ${l.pid} on ${l.host} since ${l.since}`;
}

/** Whether a lock's holder is certainly gone (same host, process not running or PID reused). */
function isStale(l: LockInfo): boolean {
  if (l.host !== hostName()) return false;
  if (l.pid === Deno.pid) return false;
  if (!processAlive(l.pid)) return true;
  const ticks = processStartTicks(l.pid);
  return l.startTicks !== null && ticks !== null && ticks !== l.startTicks;
}

async function readLock(path: string): Promise<LockInfo | null> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    return typeof v?.pid === "number" && typeof v?.host === "string" ? v as LockInfo : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e;
    return null; // torn or garbled: treated as stale below only if old enough
  }
}

/** Removes `train.lock.<pid>-*` files left by processes killed while taking the lock. */
async function removeDeadWritersFiles(out: string): Promise<void> {
  const pattern = new RegExp(`^${LOCK_FILE.replace(".", "\\.")}\\.(?:stale-)?(\\d+)-`);
  for await (const e of Deno.readDir(out)) {
    const m = pattern.exec(e.name);
    if (m && e.isFile && Number(m[1]) !== Deno.pid && !processAlive(Number(m[1]))) {
      await Deno.remove(join(out, e.name)).catch(() => {});
    }
  }
}

/** An exclusive lock on a run folder, released by `release()` or `await using`. */
export class RunLock {
  /** The lock file. */
  readonly path: string;
  /** What it records. */
  readonly info: LockInfo;
  #released = false;

  private constructor(path: string, info: LockInfo) {
    this.path = path;
    this.info = info;
  }

  /**
   * Takes the lock of a run folder, taking over a stale one.
   *
   * @param out The run folder (must exist).
   * @param log Where to say that a stale lock was taken over.
   * @returns The lock.
   * @throws {Error} When another live trainer holds it (naming its PID, host and start).
   * @example
   * ```ts
   * await using lock = await RunLock.acquire("runs/tiny");
   * ```
   */
  static async acquire(out: string, log: (s: string) => void = () => {}): Promise<RunLock> {
    const path = join(out, LOCK_FILE);
    const info: LockInfo = {
      pid: Deno.pid,
      host: hostName(),
      startTicks: processStartTicks(Deno.pid),
      since: new Date().toISOString(),
    };
    // The lock's contents go to a private file first, which is then hard-linked to the lock
    // name: link() fails when the name exists, so taking the lock is atomic and a lock file
    // is never seen half-written.
    const mine = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeTextFile(mine, JSON.stringify(info) + "\n");
    try {
      using f = await Deno.open(mine, { read: true });
      await f.sync();
    } catch {
      // fsync unsupported here: the link below is still atomic
    }
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await Deno.link(mine, path);
          await removeDeadWritersFiles(out);
          return new RunLock(path, info);
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        }
        await RunLock.#clearStale(out, path, log);
      }
    } finally {
      await Deno.remove(mine).catch(() => {});
    }
    throw new Error(`Cannot train in "${out}": its lock file "${path}" keeps changing`);
  }

  /** Throws when a live trainer holds the lock; removes it when stale. */
  static async #clearStale(out: string, path: string, log: (s: string) => void): Promise<void> {
    let held: LockInfo | null;
    try {
      held = await readLock(path);
    } catch {
      return; // released meanwhile: try again
    }
    if (held === null) {
      // Garbled (damaged on disk): taken as stale once it is older than a minute.
      const age = Date.now() - ((await Deno.stat(path).catch(() => null))?.mtime?.getTime() ?? 0);
      if (age < 60_000) {
        throw new Error(
          `Cannot train in "${out}": its lock file "${path}" is unreadable and recent; ` +
            `another trainer may be starting (delete the file if none is)`,
        );
      }
    } else if (!isStale(held)) {
      throw new Error(
        `Cannot train in "${out}": another trainer holds it (${describe(held)}, lock file ` +
          `"${path}"); stop that one first, or use another checkpoint.out`,
      );
    }
    // Take over: move the stale file to a unique name (atomic), check that it is still the
    // stale one (not a fresh lock another process took meanwhile), and try again.
    const moved = `${path}.stale-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.rename(path, moved);
    } catch {
      return;
    }
    const now = await readLock(moved).catch(() => null);
    if (held !== null && (now === null || now.pid !== held.pid || now.since !== held.since)) {
      // Someone else's fresh lock: put it back (if nobody has taken the name) and refuse.
      await Deno.link(moved, path).catch(() => {});
      await Deno.remove(moved).catch(() => {});
      throw new Error(`Cannot train in "${out}": another trainer took its lock just now`);
    }
    await Deno.remove(moved).catch(() => {});
    log(
      held
        ? `took over the stale lock of ${describe(held)} (that process is gone)`
        : `replaced the unreadable lock file "${path}"`,
    );
  }

  /** Removes the lock file if it is still this lock's. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const now = await readLock(this.path).catch(() => null);
    if (now && now.pid === this.info.pid && now.since === this.info.since) {
      await Deno.remove(this.path).catch(() => {});
    }
  }

  /** Releases the lock. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
