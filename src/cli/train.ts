/**
 * `ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]`.
 *
 * @module
 */

import { initGpu } from "../gpu/runtime.ts";
import { loadRunConfig } from "../train/config.ts";
import { train } from "../train/trainer.ts";
import { openCommunicator } from "../dist/communicator.ts";
import { signalExitCode } from "../train/signals.ts";
import type { TrainSummary } from "../train/summary.ts";
import { reportProfile, takeProfileFlag } from "../profile/output.ts";
import { profileTrainStep } from "../profile/train_step.ts";

const USAGE =
  `Usage: ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]
                 [--fresh] [--no-progress] [--profile[=<dir>]]

Trains a PS3 model as the config says (configs/ps3-tiny.yaml trains on generated synthetic
data in minutes on a CPU). Any config value can be overridden, e.g. --train.batch_size=8
--checkpoint.out=runs/try2. Checkpoints go to <checkpoint.out>/checkpoints; metrics.jsonl,
loss.png and summary.json beside them. One trainer per folder (train.lock).

--resume latest takes the newest checkpoint that verifies (skipping damaged ones, saying so);
  --resume <checkpoint> takes that one or refuses. A folder that already holds a run needs
  --resume or --fresh (which moves the old run into <out>/previous-<time>/).
Ctrl-C, SIGTERM or SIGHUP stop after the current step with a checkpoint (exit 130, 143, 129);
  a second signal exits at once.

Data-parallel: mpirun -n N ps3 train <config.yaml> (or srun through MPI) trains on N ranks,
train.batch_size samples each (OpenMPI or MPICH, found like mpicc finds it; override with
--train.distributed.mpi_library=<path>).

--profile[=<dir>] trains nothing: it builds the run's model and data, runs 2 warm-up steps and
  profiles the third (per-kernel GPU time, dispatches, submits, host time), prints the table
  and writes profile.txt, profile.json and trace.json (Chrome trace) to <dir> (default
  profile/), then exits. No checkpoint is read or written.`;

/**
 * Runs the command.
 *
 * @param args Command-line arguments.
 * @returns Exit code (0 done, 1 stopped on a NaN loss, 128 + the signal number when stopped by
 *   SIGINT, SIGTERM or SIGHUP).
 */
export async function run(allArgs: string[]): Promise<number> {
  const { args, dir: profileDir } = takeProfileFlag(allArgs);
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
  if (profileDir !== null) {
    await initGpu({ timestamps: true });
    await reportProfile(await profileTrainStep(config, { log: console.log }), profileDir);
    return 0;
  }
  const d = config.train.distributed;
  const comm = openCommunicator({ library: d.mpi_library, timeoutSeconds: d.timeout_s });
  if (comm.size === 1) {
    await initGpu();
    return exitCode(await train(config, { tty, fresh }));
  }
  // A data-parallel rank: any error ends every rank at once, with this rank's message.
  try {
    await initGpu();
    const summary = await train(config, { tty, comm, fresh });
    comm.finalize();
    return exitCode(summary);
  } catch (e) {
    if (Deno.env.get("PS3_DEBUG")) console.error(e);
    return comm.abort(
      `ps3 (rank ${comm.rank} of ${comm.size}): ${e instanceof Error ? e.message : e}`,
    );
  }
}

/** The exit code of a finished or stopped run. */
function exitCode(summary: TrainSummary): number {
  if (summary.stopped === "signal") return signalExitCode(summary.signal ?? "SIGINT");
  return summary.stopped === "done" ? 0 : 1;
}
