/**
 * The run folder's history, guarded: a new run does not start over an existing one unless
 * asked to (the old one is then moved aside, never deleted), and resuming a run that has
 * already finished changes nothing.
 *
 * @module
 */

import { join } from "node:path";
import { checkpointFolders } from "../checkpoint/recovery.ts";
import { readJsonFile } from "../checkpoint/json_file.ts";

/** The files and folders of a run, moved aside together by a fresh start. */
const RUN_ENTRIES = ["checkpoints", "metrics.jsonl", "summary.json", "loss.png"];

/**
 * What of a run a folder holds: its checkpoint folders and whether it has metrics.
 *
 * @param out The run folder.
 * @returns Checkpoint count, newest step, and whether `metrics.jsonl` has content.
 */
export async function existingRun(
  out: string,
): Promise<{ checkpoints: number; newestStep: number | null; metrics: boolean }> {
  const ckpts = await checkpointFolders(join(out, "checkpoints"));
  const metrics = await Deno.stat(join(out, "metrics.jsonl")).then((s) => s.size > 0, () => false);
  return { checkpoints: ckpts.length, newestStep: ckpts[0]?.step ?? null, metrics };
}

/**
 * Before a run starts from step 0: refuses when the folder already holds a run, unless
 * `fresh`, which moves the old run's files into `<out>/previous-<time>/` (nothing deleted).
 *
 * @param out The run folder.
 * @param options `fresh` (the `--fresh` flag) and a log sink.
 * @throws {Error} When the folder has a run and `fresh` is not set.
 * @example
 * ```ts
 * await guardFreshStart("runs/tiny", { fresh: false, log: console.log });
 * ```
 */
export async function guardFreshStart(
  out: string,
  options: { fresh?: boolean | undefined; log: (s: string) => void },
): Promise<void> {
  const run = await existingRun(out);
  if (!run.checkpoints && !run.metrics) return;
  const what = run.checkpoints
    ? `${run.checkpoints} checkpoint(s), the newest at step ${run.newestStep}`
    : "metrics.jsonl of an earlier run";
  if (!options.fresh) {
    throw new Error(
      `Cannot start a new run in "${out}": it already holds a run (${what}). Resume it with ` +
        `--resume latest, or start over with --fresh (the old run is moved into ` +
        `"${join(out, "previous-<time>")}")`,
    );
  }
  const aside = join(out, `previous-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  await Deno.mkdir(aside);
  for (const name of RUN_ENTRIES) {
    await Deno.rename(join(out, name), join(aside, name)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  options.log(`--fresh: moved the earlier run (${what}) into "${aside}"`);
}

/**
 * The summary of a run that has finished at `step`, or null when `summary.json` is missing,
 * unreadable or from another step (the run stopped before writing it).
 *
 * @param out The run folder.
 * @param step The step of the checkpoint resumed from (the run's last).
 * @returns The parsed summary, or null.
 */
export async function finishedSummary<T extends { steps: number; stopped: string }>(
  out: string,
  step: number,
): Promise<T | null> {
  try {
    const s = await readJsonFile(join(out, "summary.json"), "run summary") as T;
    return s && s.steps === step && s.stopped === "done" ? s : null;
  } catch {
    return null;
  }
}
