/**
 * The trainer's crash-injection seam for tests: `PS3_FAULT="exit-after=N"` exits the process
 * (code 137) right after step N, before any save; `PS3_FAULT="exit-during-save=N"` exits in
 * the middle of writing the checkpoint of step N; `PS3_FAULT="throw-at=N"` throws an error
 * during step N (a rank that raises). Read from the environment by the trainer
 * only (not part of the library API); without permission to read it, there are no faults.
 *
 * @module
 */

/** Faults a test can inject to check crash safety (never set in normal runs). */
export interface Faults {
  /** Exit the process (code 137) right after this step, before any save. */
  exitAfterStep?: number | undefined;
  /** Exit the process (code 137) in the middle of writing the checkpoint of this step. */
  exitDuringSaveAtStep?: number | undefined;
  /** Throw an error during this step. */
  throwAtStep?: number | undefined;
}

/**
 * The faults `PS3_FAULT` asks for.
 *
 * @returns The faults (none when the variable is unset or cannot be read).
 */
export function faultsFromEnv(): Faults {
  const allowed = Deno.permissions.querySync({ name: "env", variable: "PS3_FAULT" });
  if (allowed.state !== "granted") return {};
  const f = Deno.env.get("PS3_FAULT");
  if (!f) return {};
  const m = /^(exit-after|exit-during-save|throw-at)=(\d+)$/.exec(f);
  if (!m) {
    throw new Error(`PS3_FAULT "${f}" is not exit-after=N, exit-during-save=N or throw-at=N`);
  }
  const n = Number(m[2]);
  return m[1] === "exit-after"
    ? { exitAfterStep: n }
    : m[1] === "throw-at"
    ? { throwAtStep: n }
    : { exitDuringSaveAtStep: n };
}
