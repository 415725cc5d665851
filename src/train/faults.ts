/**
 * The trainer's crash-injection seam for tests: `PS3_FAULT="exit-after=N"` exits the process
 * (code 137) right after step N, before any save; `PS3_FAULT="exit-during-save=N"` exits in
 * the middle of writing the checkpoint of step N. Read from the environment by the trainer
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
  const m = /^(exit-after|exit-during-save)=(\d+)$/.exec(f);
  if (!m) throw new Error(`PS3_FAULT "${f}" is not exit-after=N or exit-during-save=N`);
  return m[1] === "exit-after"
    ? { exitAfterStep: Number(m[2]) }
    : { exitDuringSaveAtStep: Number(m[2]) };
}
