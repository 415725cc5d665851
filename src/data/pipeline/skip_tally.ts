/**
 * Skip counts in samples, not occurrences: a bad sample met again in a later epoch (or a
 * resampled shard read twice) is counted once, by kind and by shard. The tally lives in the
 * loader's stats, so it is saved in checkpoints and survives a resume.
 *
 * @module
 */

import type { DataProblem } from "./pairing.ts";

/** The skip tally kept in the loader's stats (fields absent in older checkpoints). */
export interface SkipTally {
  /** Distinct samples skipped, by shard (the problem's `file`), then by kind. */
  skippedByShard?: Record<string, Record<string, number>> | undefined;
  /** Identities of the problems already counted (kind, shard, first key). */
  skipSeen?: string[] | undefined;
}

/** The identity of a skip: the same bad samples give the same identity in every epoch. */
function identity(p: DataProblem): string {
  return JSON.stringify([p.kind, p.file, p.key, p.key ? "" : p.message]);
}

/**
 * Counts a skip once: returns the samples it adds to the totals (its `skipped` the first
 * time it is seen, 0 after) and records them by shard.
 *
 * @param tally The stats to update (fields created when absent, e.g. in older checkpoints).
 * @param p A problem that skipped samples (`skipped > 0`).
 * @returns The samples newly skipped.
 * @example
 * ```ts
 * const stats = { skippedByShard: {}, skipSeen: [] };
 * countSkipOnce(stats, problem); // problem.skipped
 * countSkipOnce(stats, problem); // 0: the same samples, met again
 * ```
 */
export function countSkipOnce(tally: SkipTally, p: DataProblem): number {
  const seen = tally.skipSeen ??= [];
  const id = identity(p);
  if (seen.includes(id)) return 0;
  seen.push(id);
  const shard = (tally.skippedByShard ??= {})[p.file] ??= {};
  shard[p.kind] = (shard[p.kind] ?? 0) + p.skipped;
  return p.skipped;
}

/**
 * Log lines for the shards that skipped samples for the first time, with the first example
 * from each (the caller keeps `logged` across steps).
 *
 * @param stats The loader's stats (skip tally and examples).
 * @param logged Shards already reported; updated.
 * @returns One line per newly reported shard.
 */
export function newSkipShardLines(
  stats: SkipTally & { examples: readonly DataProblem[] },
  logged: Set<string>,
): string[] {
  const lines: string[] = [];
  for (const [shard, kinds] of Object.entries(stats.skippedByShard ?? {})) {
    if (logged.has(shard)) continue;
    logged.add(shard);
    const counts = Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ");
    const ex = stats.examples.find((e) => e.file === shard && e.skipped > 0);
    lines.push(
      `skipping samples from shard "${shard}" (${counts} so far)` + (ex ? `: ${ex.message}` : ""),
    );
  }
  return lines;
}
