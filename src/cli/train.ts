/**
 * `ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]`.
 *
 * @module
 */

import { initGpu } from "../gpu/runtime.ts";
import { loadRunConfig } from "../train/config.ts";
import { train, type TrainFaults } from "../train/trainer.ts";
import { signalExitCode } from "../train/signals.ts";

const USAGE =
  `Usage: ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]
                 [--fresh] [--no-progress]

Trains a PS3 model as the config says (configs/ps3-tiny.yaml trains on generated synthetic
data in minutes on a CPU). Any config value can be overridden, e.g. --train.batch_size=8
--checkpoint.out=runs/try2. Checkpoints go to <checkpoint.out>/checkpoints; metrics.jsonl,
loss.png and summary.json beside them. One trainer per folder (train.lock).

--resume latest takes the newest checkpoint that verifies (skipping damaged ones, saying so);
  --resume <checkpoint> takes that one or refuses. A folder that already holds a run needs
  --resume or --fresh (which moves the old run into <out>/previous-<time>/).
Ctrl-C, SIGTERM or SIGHUP stop after the current step with a checkpoint (exit 130, 143, 129);
  a second signal exits at once.`;

/** Test hook: PS3_FAULT="exit-after=N" or "exit-during-save=N" simulates a crash. */
function faultsFromEnv(): TrainFaults | undefined {
  const f = Deno.env.get("PS3_FAULT");
  if (!f) return undefined;
  const m = /^(exit-after|exit-during-save)=(\d+)$/.exec(f);
  if (!m) throw new Error(`PS3_FAULT "${f}" is not exit-after=N or exit-during-save=N`);
  return m[1] === "exit-after"
    ? { exitAfterStep: Number(m[2]) }
    : { exitDuringSaveAtStep: Number(m[2]) };
}

/**
 * Runs the command.
 *
 * @param args Command-line arguments.
 * @returns Exit code (0 done, 1 stopped on a NaN loss, 128 + the signal number when stopped by
 *   SIGINT, SIGTERM or SIGHUP).
 */
export async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const overrides: string[] = [];
  let path: string | null = null;
  let tty: boolean | undefined;
  let fresh = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--resume") overrides.push(`checkpoint.resume=${args[++i] ?? "latest"}`);
    else if (a.startsWith("--resume=")) overrides.push(`checkpoint.resume=${a.slice(9)}`);
    else if (a === "--no-progress") tty = false;
    else if (a === "--fresh") fresh = true;
    else if (a.startsWith("--") && a.includes("=")) overrides.push(a.slice(2));
    else if (!a.startsWith("-") && path === null) path = a;
    else {
      console.error(`ps3 train: unexpected argument "${a}"\n\n${USAGE}`);
      return 2;
    }
  }
  if (!path) {
    console.error(USAGE);
    return 2;
  }
  const config = await loadRunConfig(path, overrides);
  await initGpu();
  const summary = await train(config, { faults: faultsFromEnv(), tty, fresh });
  if (summary.stopped === "signal") return signalExitCode(summary.signal ?? "SIGINT");
  return summary.stopped === "done" ? 0 : summary.stopped === "nan" ? 1 : 130;
}
