/**
 * Launching MPI jobs from tests: OpenMPI's mpirun with the flags a 2-core CI machine running
 * as root needs.
 *
 * @module
 */

import { ok } from "node:assert";

/** Whether OpenMPI's mpirun can be run here. */
export function mpirunAvailable(): boolean {
  try {
    return new Deno.Command("mpirun", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** The mpirun arguments for n ranks on this machine. */
export function mpirunArgs(n: number): string[] {
  const root = Deno.uid() === 0 ? ["--allow-run-as-root"] : [];
  return [...root, "--oversubscribe", "-n", String(n)];
}

/**
 * Runs a command on n ranks and asserts that it succeeded.
 *
 * @param n Ranks.
 * @param cmd The program and its arguments.
 * @returns Standard output and error.
 */
export async function runMpi(
  n: number,
  cmd: string[],
): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command("mpirun", {
    args: [...mpirunArgs(n), ...cmd],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const res = { stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  ok(out.success, `mpirun -n ${n} failed (${out.code}):\n${res.stdout}\n${res.stderr}`);
  return res;
}
