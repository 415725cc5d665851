/**
 * Whether a process of this host still runs, for stale lock files and for the temporary
 * folders of checkpoint writers that died.
 *
 * @module
 */

/**
 * This machine's host name (what lock files record).
 *
 * @returns The host name, or "unknown-host" where the runtime cannot tell.
 */
export function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
}

/**
 * The start time of a process on Linux (field 22 of `/proc/<pid>/stat`, clock ticks since
 * boot), which tells a reused PID from the original process; null elsewhere or when gone.
 *
 * @param pid A process id.
 * @returns Its start time, or null.
 */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) is parenthesised and may contain spaces: split after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether a process with this id runs on this host: `/proc/<pid>` on Linux (a zombie does
 * not count), `kill -0`
 * elsewhere (assumed alive when neither can tell).
 *
 * @param pid A process id.
 * @returns True when it runs.
 */
export function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  if (Deno.build.os === "linux") {
    try {
      // A zombie (state Z: exited, not yet reaped by its parent) holds nothing any more.
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
      return false;
    }
  }
  try {
    const r = new Deno.Command("kill", { args: ["-0", String(pid)], stderr: "null" }).outputSync();
    return r.code === 0;
  } catch {
    return true;
  }
}
