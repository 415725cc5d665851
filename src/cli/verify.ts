/**
 * `ps3 verify <checkpoint or run folder>`: verifies checkpoints against the manifests their
 * `COMPLETE` markers hold and prints a table, for people and scripts.
 *
 * @module
 */

import { basename, join } from "node:path";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { type CheckpointStatus, MARKER, verifyCheckpoint } from "../checkpoint/manifest.ts";
import { checkpointFolders } from "../checkpoint/recovery.ts";

const USAGE = `Usage: ps3 verify <checkpoint folder | run folder | checkpoints folder> [--json]

Verifies every file of each checkpoint against the sizes and CRC-32C digests recorded in its
COMPLETE marker (streaming; a few seconds per GB) and prints one row per checkpoint: step,
complete, verified, size, and what is wrong. --json prints the statuses as JSON instead.

Exit code: 0 when every checkpoint verifies (or, written by an earlier ps3, has no digests),
1 when any is incomplete or fails verification, or none is found, 2 for a usage error.`;

/**
 * The checkpoint folders a path names: itself when it is one (it holds a marker or its name is
 * `step_NNNNNNNN`), else those of `<path>/checkpoints` or of `<path>`, oldest first.
 *
 * @param path A checkpoint, run or checkpoints folder.
 * @returns The checkpoint folders.
 */
export async function checkpointsOf(path: string): Promise<string[]> {
  const isCkpt = /^step_\d{8}$/.test(basename(path)) ||
    await Deno.stat(join(path, MARKER)).then(() => true, () => false);
  if (isCkpt) return [path];
  const under = await checkpointFolders(join(path, "checkpoints"));
  const list = under.length ? under : await checkpointFolders(path);
  return list.map((c) => c.path).reverse();
}

/**
 * Formats statuses as a table.
 *
 * @param rows The statuses.
 * @returns The table's lines.
 */
export function formatTable(rows: readonly CheckpointStatus[]): string[] {
  const cells = rows.map((r) => [
    r.step === null ? "?" : String(r.step),
    r.complete ? "yes" : "no",
    r.verified ? "yes" : r.legacy ? "no digests" : "NO",
    fmtBytes(r.size),
    r.path,
    r.verified ? "" : r.problems.join("; "),
  ]);
  const head = ["step", "complete", "verified", "size", "checkpoint", "problem"];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i === 0 || i === 3 ? x.padStart(w[i]!) : x.padEnd(w[i]!))).join("  ")
      .trimEnd();
  return [line(head), ...cells.map(line)];
}

/**
 * Runs the command.
 *
 * @param args Command-line arguments after `verify`.
 * @returns Exit code: 0 all verified, 1 a checkpoint failed or none found, 2 usage.
 */
export async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const json = args.includes("--json");
  const paths = args.filter((a) => a !== "--json");
  if (paths.length !== 1 || paths[0]!.startsWith("-")) {
    console.error(USAGE);
    return 2;
  }
  const path = paths[0]!;
  if (!(await Deno.stat(path).then((s) => s.isDirectory, () => false))) {
    console.error(`ps3 verify: "${path}" is not a folder`);
    return 2;
  }
  const dirs = await checkpointsOf(path);
  if (!dirs.length) {
    console.error(`ps3 verify: no checkpoint folders (step_NNNNNNNN) in "${path}"`);
    return 1;
  }
  const t0 = performance.now();
  const rows: CheckpointStatus[] = [];
  for (const d of dirs) rows.push(await verifyCheckpoint(d));
  const bad = rows.filter((r) => !r.verified && !r.legacy).length;
  if (json) console.log(JSON.stringify(rows, null, 2));
  else {
    for (const l of formatTable(rows)) console.log(l);
    const bytes = rows.reduce((n, r) => n + r.size, 0);
    console.log(
      `${rows.length - bad} of ${rows.length} checkpoint(s) verified or legacy, ${bad} failed; ` +
        `${fmtBytes(bytes)} read in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  return bad ? 1 : 0;
}
