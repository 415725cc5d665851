/**
 * One trainer per run folder: `ps3 train` holds `<out>/train.lock`, a file created exclusively
 * (`O_CREAT | O_EXCL`, atomic) that records the holder's PID, host and start time. A second
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
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        using f = await Deno.open(path, { write: true, createNew: true });
        const bytes = new TextEncoder().encode(JSON.stringify(info) + "\n");
        let done = 0;
        while (done < bytes.length) done += await f.write(bytes.subarray(done));
        await f.sync();
        return new RunLock(path, info);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      let held: LockInfo | null;
      try {
        held = await readLock(path);
      } catch {
        continue; // released meanwhile: try again
      }
      if (held === null) {
        // Garbled (a holder killed while writing it): stale once it is older than a minute.
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
        continue;
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
    throw new Error(`Cannot train in "${out}": its lock file "${path}" keeps changing`);
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
