/**
 * What every `--profile` run does with its profile: measures the device's ceilings (after the
 * step, so they do not disturb it), prints the table and writes the files.
 *
 * @module
 */

import { measureCeilings } from "../bench/ceiling.ts";
import type { StepProfile } from "./profiler.ts";
import { formatProfile, writeProfile } from "./report.ts";

/**
 * Prints a profile with the ceilings measured now and writes `profile.txt`, `profile.json`
 * and `trace.json` into a folder.
 *
 * @param profile The profile.
 * @param dir The folder.
 * @param log Where the table goes (default `console.log`).
 * @returns The paths written.
 * @example
 * ```ts
 * await reportProfile(await profileBenchStep(tiny), "profile");
 * ```
 */
export async function reportProfile(
  profile: StepProfile,
  dir: string,
  log: (s: string) => void = console.log,
): Promise<string[]> {
  const c = await measureCeilings({ runs: 1 });
  const ceilings = { gflops: c.gflops, gbps: c.gbps };
  log(formatProfile(profile, ceilings));
  const files = await writeProfile(dir, profile, ceilings);
  log(`wrote ${files.join(", ")}`);
  return files;
}

/**
 * Takes `--profile` or `--profile=<dir>` out of a command's arguments.
 *
 * @param args Command-line arguments.
 * @returns The other arguments, and the profile folder (`profile` when none is given) or null
 *   without the flag.
 * @example
 * ```ts
 * takeProfileFlag(["a.yaml", "--profile=out"]); // { args: ["a.yaml"], dir: "out" }
 * ```
 */
export function takeProfileFlag(args: readonly string[]): { args: string[]; dir: string | null } {
  let dir: string | null = null;
  const rest: string[] = [];
  for (const a of args) {
    if (a === "--profile") dir = "profile";
    else if (a.startsWith("--profile=")) dir = a.slice("--profile=".length) || "profile";
    else rest.push(a);
  }
  return { args: rest, dir };
}
