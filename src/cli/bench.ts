/**
 * `ps3 bench`: the performance record. Measures the device ceilings (FMA rate, copy
 * bandwidth), then every kernel on the model's shapes as a fraction of them, the matmul
 * against plain JS and jax-js, and training steps with the equal-budget ratios and where the
 * time goes; prints a table (or JSON) and can write Markdown + JSON files.
 * `--device-check` first checks the kernels on this adapter against the float64 references
 * at the model's sizes (see src/bench/device_check.ts).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { gpu, initGpu } from "../gpu/runtime.ts";
import { measureCeilings } from "../bench/ceiling.ts";
import { benchOps, OPS_SECTIONS, type OpsSection } from "../bench/ops.ts";
import { benchSteps, STEP_CONFIG_NAMES, stepConfigs, stepRows } from "../bench/step.ts";
import { deviceCheck } from "../bench/device_check.ts";
import { benchData } from "../bench/data.ts";
import { benchTorchSide } from "../bench/torch_side.ts";
import { benchInferenceSide } from "../bench/torch_inference.ts";
import { type BenchRow, formatMarkdown, formatTable } from "../bench/timing.ts";
import { benchAllreduce, benchDataParallelStep } from "../bench/allreduce.ts";
import { openCommunicator } from "../dist/communicator.ts";
import { reportProfile, takeProfileFlag } from "../profile/output.ts";
import { profileBenchStep } from "../profile/bench_step.ts";

const USAGE = `Usage: ps3 bench [options]

  --quick               small shapes, one timed run per row, reduced step configs
  --runs N              timed runs per row; the median is reported (default 3, quick 1;
                        steps on a CPU adapter: 1)
  --no-ops              skip the kernel table
  --no-jax              skip the jax-js comparison (it runs in a child process)
  --ops-only LIST       comma-separated kernel-table sections to run, from
                        ${OPS_SECTIONS.join(", ")} (default all)
  --no-data             skip the data-loading throughput (decode + crop + resize, 1 and 2
                        workers)
  --data-image FILE     the JPEG the data benchmark decodes (default the 2250x1500 test
                        photo tests/testdata/dock.jpg)
  --step-configs LIST   comma-separated training steps to time, from
                        ${STEP_CONFIG_NAMES.join(", ")}; "none" for no steps
                        (default eq-tiny,eq-1.5k,eq-4k,tiny, and eq-1.5k-vec4 on CPU
                        adapters; quick: eq-tiny,eq-1.5k,eq-4k)
  --step-depth N        trunk and text depth of the eq-* configs (default 2, quick 1)
  --step-budget N       selection budget of the eq-* configs (default 1024, quick 256)
  --step-batch N        batch size of the SO400M-width configs (default 1)
  --step-parts          also time the parts of each step (default unless --quick)
  --no-step-parts       time whole steps only
  --no-torch            skip the side-by-side with PyTorch / Pillow (tests/tools/torch_bench.py;
                        skipped by itself without python3 + torch, or when CI is set)
  --inference-1.5k      also PS3-1.5K vision inference side by side with PyTorch: \`ps3 encode\`
                        of one 1512^2 image (1 round; a child process on a random-init folder
                        written to a temporary folder; minutes on a CPU adapter) against the
                        same model in plain torch (tests/tools/torch_bench.py --inference):
                        times, ratio, peak memories, parameter counts
  --inference-model DIR with --inference-1.5k: encode with this Hugging Face folder instead
                        (its config decides the shapes on both sides)
  --device-check        check every kernel against the float64 references first
  --allreduce           data-parallel benchmarks only, under mpirun (mpirun -n 2 ps3 bench
                        --allreduce): the gradient all-reduce of 64 MiB buckets against
                        MPI_Allreduce alone, and a tiny-config step's share in collectives
  --allreduce-mb N      bytes reduced per timed run, MiB (default 512)
  --out DIR             also write bench.md and bench.json there
  --json                print JSON instead of the table
  --profile[=DIR]       profile one step of each --step-configs config (default tiny) after a
                        warm-up step instead of benchmarking: table, profile.txt, profile.json,
                        trace.json in DIR/<config> (default profile/)`;

/**
 * Runs the benchmarks and prints the table.
 *
 * @param args Command-line arguments (see `ps3 bench --help`).
 * @returns Exit code (1 when a device check failed).
 */
export async function run(allArgs: string[]): Promise<number> {
  const { args, dir: profileDir } = takeProfileFlag(allArgs);
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean" },
      runs: { type: "string" },
      "no-ops": { type: "boolean" },
      "no-jax": { type: "boolean" },
      "ops-only": { type: "string" },
      "no-data": { type: "boolean" },
      "data-image": { type: "string" },
      "step-configs": { type: "string" },
      "step-depth": { type: "string" },
      "step-budget": { type: "string" },
      "step-batch": { type: "string" },
      "step-parts": { type: "boolean" },
      "no-step-parts": { type: "boolean" },
      "no-torch": { type: "boolean" },
      "inference-1.5k": { type: "boolean" },
      "inference-model": { type: "string" },
      "device-check": { type: "boolean" },
      allreduce: { type: "boolean" },
      "allreduce-mb": { type: "string" },
      out: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const int = (name: string, v: string | undefined, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`ps3 bench: --${name} must be a positive integer, got "${v}"`);
    }
    return n;
  };
  const quick = values.quick ?? false;
  const runs = int("runs", values.runs, quick ? 1 : 3);
  const stepNames = (values["step-configs"] ?? (profileDir !== null ? "tiny" : undefined) ??
    (quick ? "eq-tiny,eq-1.5k,eq-4k" : "eq-tiny,eq-1.5k,eq-4k,tiny,eq-1.5k-vec4")).split(",")
    .filter((s) => s !== "none" && s !== "");
  const steps = stepConfigs(stepNames, {
    depth: int("step-depth", values["step-depth"], quick ? 1 : 2),
    budget: int("step-budget", values["step-budget"], quick ? 256 : 1024),
    batch: int("step-batch", values["step-batch"], 1),
  });
  if (values.allreduce) return await runAllreduce(int("allreduce-mb", values["allreduce-mb"], 512));
  if (profileDir !== null) {
    await initGpu({ timestamps: true });
    for (const s of steps) await reportProfile(await profileBenchStep(s), join(profileDir, s.name));
    return 0;
  }
  const rt = await initGpu();
  // The vec4 comparison step belongs to CPU adapters' defaults (GPUs run `tiled`).
  if (values["step-configs"] === undefined && !rt.info.isSoftware) {
    const i = steps.findIndex((s) => s.name === "eq-1.5k-vec4");
    if (i >= 0) steps.splice(i, 1);
  }
  const log = (s: string) => {
    if (!values.json) console.log(s);
  };
  const started = new Date().toISOString();
  log(`adapter: ${rt.info.description} (${rt.info.backend})`);
  const load = loadAverage();
  if (load) log(`load average at start: ${load} (other processes slow the timings)`);

  let checksFailed = 0;
  const checkRows: BenchRow[] = [];
  if (values["device-check"]) {
    log("\nchecking kernels against the float64 references ...");
    const checks = await deviceCheck({ log });
    for (const c of checks) {
      checkRows.push({ name: `check ${c.name}`, ms: c.ms, note: c.detail });
      if (!c.ok) checksFailed++;
    }
  }

  const ceilings = await measureCeilings({ runs });
  const rows: BenchRow[] = [...ceilings.rows];
  log("");
  log(formatTable(ceilings.rows));
  if (!values["no-ops"]) {
    const only = values["ops-only"]?.split(",") as OpsSection[] | undefined;
    const opRows = await benchOps(ceilings, { quick, runs, noJax: values["no-jax"], only });
    rows.push(...opRows);
    log(formatTable(opRows));
  }
  if (!values["no-data"]) {
    const dataRows = await benchData({ quick, image: values["data-image"] });
    rows.push(...dataRows);
    log(formatTable(dataRows));
  }
  if (steps.length > 0) {
    log(`\ntiming training steps: ${steps.map((s) => s.name).join(", ")} ...`);
    const stepRuns = values.runs !== undefined ? runs : rt.info.isSoftware ? 1 : runs;
    const parts = values["step-parts"] ?? (!quick && !values["no-step-parts"]);
    const results = await benchSteps(steps, { runs: stepRuns, parts });
    const sr = stepRows(results);
    rows.push(...sr);
    log(formatTable(sr));
  }
  if (!values["no-torch"]) {
    log("\nside by side with PyTorch / Pillow ...");
    const side = await benchTorchSide({ quick, runs, image: values["data-image"] });
    if (side.skipped) log(`skipped: ${side.skipped}`);
    else {
      rows.push(...side.rows);
      log(formatTable(side.rows));
    }
  }
  if (values["inference-1.5k"]) {
    log("\nPS3-1.5K inference side by side with PyTorch ...");
    const side = await benchInferenceSide({ checkpoint: values["inference-model"], log });
    if (side.skipped) log(`skipped: ${side.skipped}`);
    else {
      rows.push(...side.rows);
      log(formatTable(side.rows));
    }
  }
  await gpu().sync();
  const record = {
    adapter: rt.info,
    started,
    loadAverage: load,
    options: {
      quick,
      runs,
      steps: steps.map((s) => ({ name: s.name, batch: s.batch, note: s.note })),
    },
    checks: checkRows,
    rows,
  };
  if (values.json) console.log(JSON.stringify(record, null, 2));
  if (values.out) {
    await Deno.mkdir(values.out, { recursive: true });
    const md = [
      `# ps3 bench on ${rt.info.description} (${rt.info.backend})`,
      "",
      `Started ${started}; load average ${load ?? "unknown"}; median of ${runs} run(s) per row.`,
      "",
      ...(checkRows.length > 0 ? ["## Device check", "", formatMarkdown(checkRows), ""] : []),
      "## Kernels and steps",
      "",
      formatMarkdown(rows),
      "",
    ].join("\n");
    await Deno.writeTextFile(join(values.out, "bench.md"), md);
    await Deno.writeTextFile(join(values.out, "bench.json"), JSON.stringify(record, null, 2));
    log(`\nwrote ${join(values.out, "bench.md")} and bench.json`);
  }
  if (checksFailed > 0) {
    console.error(`ps3 bench: ${checksFailed} device check(s) failed (see the check rows)`);
    return 1;
  }
  return 0;
}

/** `ps3 bench --allreduce`: the data-parallel rows, printed by rank 0. */
async function runAllreduce(mib: number): Promise<number> {
  const comm = openCommunicator();
  if (comm.size < 2) {
    console.error(
      "ps3 bench --allreduce: run it under an MPI launcher, e.g. mpirun -n 2 ps3 bench --allreduce",
    );
    return 2;
  }
  const rt = await initGpu();
  const rows = [
    ...await benchAllreduce(comm, { bytes: mib * 2 ** 20 }),
    ...await benchDataParallelStep(comm, { config: "configs/ps3-tiny.yaml", batch: 16 }),
  ];
  if (comm.rank === 0) {
    console.log(`adapter: ${rt.info.description}; ${comm.size} ranks (${comm.flavor})`);
    console.log(formatTable(rows));
  }
  comm.finalize();
  return 0;
}

/** The 1-minute load average, where /proc tells it. */
function loadAverage(): string | null {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return null;
  }
}
