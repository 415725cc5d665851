/**
 * `ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]`.
 *
 * @module
 */

import { initGpu, type Runtime } from "../gpu/runtime.ts";
import { loadRunConfig, type RunConfig } from "../train/config.ts";
import { estimateBatchFit, fitBatchSize } from "../train/fit_batch.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { describePreflight } from "../train/preflight.ts";
import { train } from "../train/trainer.ts";
import { openCommunicator } from "../dist/communicator.ts";
import { signalExitCode } from "../train/signals.ts";
import type { TrainSummary } from "../train/summary.ts";
import { reportProfile, takeProfileFlag } from "../profile/output.ts";
import { profileTrainStep } from "../profile/train_step.ts";

const USAGE =
  `Usage: ps3 train <config.yaml> [--section.key=value ...] [--resume latest|<checkpoint>]
                 [--fresh] [--no-progress] [--preflight] [--profile[=<dir>]]

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
  profile/), then exits. No checkpoint is read or written.
--preflight prints the memory estimate by part and the ops' smallest units against the
  adapter's limits, and exits (nothing allocated, no data read).
--train.batch_size=auto (or batch_size: auto in the file; one process) takes the largest
  micro-batch (times train.accum_steps) that the memory estimate fits in
  train.memory_limit_gb (on a CPU adapter: 80% of the host's memory) and the storage binding
  limit, confirmed by one step (smaller if it does not fit); with --preflight, the estimate's.`;

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
  let preflight = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--resume") overrides.push(`checkpoint.resume=${args[++i] ?? "latest"}`);
    else if (a.startsWith("--resume=")) overrides.push(`checkpoint.resume=${a.slice(9)}`);
    else if (a === "--no-progress") tty = false;
    else if (a === "--fresh") fresh = true;
    else if (a === "--preflight") preflight = true;
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
  const given = await loadRunConfig(path, overrides);
  if (profileDir !== null) {
    const rt = await initGpu({ timestamps: true });
    const config = given.autoBatch ? await autoBatch(given, rt) : given;
    await reportProfile(await profileTrainStep(config, { log: console.log }), profileDir);
    return 0;
  }
  if (preflight) {
    const rt = await initGpu();
    for (const line of describePreflight(given.autoBatch ? estimatedBatch(given, rt) : given, rt)) {
      console.log(line);
    }
    return 0;
  }
  const d = given.train.distributed;
  const comm = openCommunicator({ library: d.mpi_library, timeoutSeconds: d.timeout_s });
  if (comm.size === 1) {
    const rt = await initGpu();
    const config = given.autoBatch ? await autoBatch(given, rt) : given;
    return exitCode(await train(config, { tty, fresh }));
  }
  if (given.autoBatch) {
    return comm.abort(
      "ps3 train: train.batch_size: auto is for one process (each rank would fit its own); " +
        "give a number",
    );
  }
  const config = given;
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

/** The run config with the batch size `fitBatchSize` found (micro-batch times accum_steps). */
async function autoBatch(config: RunConfig, rt: Runtime): Promise<RunConfig> {
  const fit = await fitBatchSize(config, rt, (s) => console.log(s));
  return withMicroBatch(config, fit.microBatch);
}

/** The run config at the micro-batch the estimate alone allows (the preflight's view). */
function estimatedBatch(config: RunConfig, rt: Runtime): RunConfig {
  const { estimated, limit } = estimateBatchFit(config, rt);
  console.log(
    `batch_size=auto: the estimate allows a micro-batch of ${estimated} in ${fmtBytes(limit)} ` +
      "(a run confirms it with one step)",
  );
  return withMicroBatch(config, estimated);
}

/** The run config with a fitted micro-batch: batch size = micro-batch times accum_steps. */
function withMicroBatch(config: RunConfig, microBatch: number): RunConfig {
  const batch = microBatch * config.train.accum_steps;
  // The raw config (saved in checkpoints) records the batch size trained with.
  const raw = { ...config.raw, train: { ...config.raw.train as object, batch_size: batch } };
  return { ...config, train: { ...config.train, batch_size: batch }, raw, autoBatch: false };
}

/** The exit code of a finished or stopped run. */
function exitCode(summary: TrainSummary): number {
  if (summary.stopped === "signal") return signalExitCode(summary.signal ?? "SIGINT");
  return summary.stopped === "done" ? 0 : 1;
}
