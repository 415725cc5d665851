/**
 * The training tests' runs of the test config (`tests/testdata/train_tiny.yaml`) in a process
 * of their own; the lowered-limit tests' shared run: 3 steps of the test config with its trunk
 * widened to 120 (4 heads of 30) and 80 high-res tokens, in a process of its own under a
 * lowered device limit given by environment (`PS3_MAX_BINDING_BYTES`, `PS3_MAX_BUFFER_BYTES`),
 * and the comparison of such a run's step records with the same run without the limit.
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert";
import { join } from "node:path";

/** The test model with a 120-wide trunk (4 heads of 30) and 80 high-res tokens (overrides). */
export const WIDE = [
  "--model.embed_dim=120",
  "--model.vision_cfg.embed_dim=120",
  "--model.vision_cfg.num_heads=4",
  "--model.vision_cfg.max_select_num=80",
];

/** The step record's figures compared: the four losses, then the gradient norm. */
const KEYS = ["loss", "contrastive", "prior_box", "posterior_box", "grad_norm"] as const;

/**
 * Runs `ps3 train tests/testdata/train_tiny.yaml` with more arguments, in a process of its own.
 *
 * @param env Environment (a lowered device limit, or {}).
 * @param args The arguments after the config.
 * @returns The process's output.
 */
export async function runTiny(
  env: Record<string, string>,
  args: string[],
): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "train", "tests/testdata/train_tiny.yaml", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

/**
 * Runs `ps3 train` on the wide test model for 3 steps.
 *
 * @param env The lowered limit ({} for none).
 * @param out The run folder.
 * @param synth The synthetic dataset's folder (shared by the runs of a test file).
 * @param extra More arguments.
 * @returns The process's output.
 */
export async function runWide(
  env: Record<string, string>,
  out: string,
  synth: string,
  extra: string[] = [],
): Promise<Deno.CommandOutput> {
  return await runTiny(env, [
    "--train.steps=3",
    `--checkpoint.out=${out}`,
    `--data.synthesize.out=${synth}`,
    "--no-progress",
    ...WIDE,
    ...extra,
  ]);
}

/** A finished run: its step records, stdout and folder. */
export interface WideRun {
  /** The metrics.jsonl records of the steps. */
  records: Record<string, number>[];
  /** Standard output. */
  log: string;
  /** The run folder. */
  out: string;
}

/**
 * Runs {@linkcode runWide} in a new folder and reads its step records; throws with the
 * process's stderr when it fails.
 *
 * @param env The lowered limit ({} for none).
 * @param synth The synthetic dataset's folder.
 * @returns The run.
 */
export async function trainWide(env: Record<string, string>, synth: string): Promise<WideRun> {
  const out = await Deno.makeTempDir({ prefix: "ps3-wide-" });
  const r = await runWide(env, out, synth);
  if (!r.success) {
    throw new Error(`ps3 train failed (${r.code}):\n${new TextDecoder().decode(r.stderr)}`);
  }
  const records = (await Deno.readTextFile(join(out, "metrics.jsonl"))).split("\n")
    .filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((x) => typeof x.loss === "number") as Record<string, number>[];
  return { records, log: new TextDecoder().decode(r.stdout), out };
}

/**
 * Checks a limited run against the unlimited one: 3 steps each, step 1's losses the same bits
 * (the forward splits along batches, samples and rows only), the gradient norm and the later
 * steps within `tolerance` relative (split sums regroup their additions).
 *
 * @param limited The run under the limit.
 * @param unlimited The run without it.
 * @param tolerance Relative bound after step 1's forward.
 * @returns The largest relative difference after step 1's forward.
 */
export function assertSameRun(limited: WideRun, unlimited: WideRun, tolerance: number): number {
  deepStrictEqual(limited.records.length, 3);
  deepStrictEqual(unlimited.records.length, 3);
  for (const k of KEYS.slice(0, 4)) {
    deepStrictEqual(limited.records[0]![k], unlimited.records[0]![k], k);
  }
  let worst = 0;
  for (let s = 0; s < 3; s++) {
    for (const k of s === 0 ? KEYS.slice(4) : KEYS) {
      const x = limited.records[s]![k]!, y = unlimited.records[s]![k]!;
      const rel = Math.abs(x - y) / Math.abs(y);
      worst = Math.max(worst, rel);
      ok(rel <= tolerance, `step ${s + 1} ${k}: ${x} vs ${y} (${rel.toExponential(2)})`);
    }
  }
  return worst;
}
