/**
 * Side by side with PyTorch and Pillow: ps3's tiny training step, its matmuls at the model's
 * shapes and its decode + crop + resize rate, next to the same work run by the committed
 * Python script `tests/tools/torch_bench.py` (torch on the CPU, Pillow), in one run, with the
 * ratio. Only existing benchmark functions time the ps3 side (`benchSteps`, `timeMatmul`,
 * `benchData`), so the rows move with them.
 *
 * The section needs `python3` with torch, Pillow and numpy; without them (or when `CI` is
 * set: CI never runs Python) it is skipped with a message. Same work on both sides:
 *
 * - step: PS3-tiny (configs/ps3-tiny.yaml), batch 16, forward + loss + backward, no gradient
 *   checkpointing (ps3's step row); the PyTorch figure with its AdamW step is in the note;
 * - matmul: float32 [m, k] @ [k, n] at 1024^3, 729x3456x1152 and 2560x4304x1152;
 * - data: the 2250x1500 JPEG decoded, cropped to ~95% of its area, bicubic-resized to
 *   1512^2 and normalised to float32 CHW, in 1 and 2 workers / processes; ps3 and Pillow
 *   alternate `runs` times and the medians are paired.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { benchSteps, stepConfigs } from "./step.ts";
import { timeMatmul } from "./ops.ts";
import { benchData, DOCK_JPG } from "./data.ts";
import { type BenchRow, median } from "./timing.ts";

/** The committed Python half of the comparison. */
export const TORCH_BENCH_SCRIPT: string = fileURLToPath(
  new URL("../../tests/tools/torch_bench.py", import.meta.url),
);

/** The matmul shapes compared, [m, n, k]: square, low-res qkv, high-res MLP fc2's dX. */
export const SIDE_MATMULS: readonly (readonly [number, number, number])[] = [
  [1024, 1024, 1024],
  [729, 3456, 1152],
  [2560, 4304, 1152],
];

/** What `torch_bench.py` prints (the fields this module reads). */
export interface TorchBenchJson {
  /** torch version. */
  torch: string;
  /** Pillow version. */
  pillow: string;
  /** Intra-op threads. */
  threads: number;
  /** The load average when the script started (1, 5, 15 minutes). */
  load_average?: number[] | undefined;
  /** `OMP_WAIT_POLICY` as the script saw it ("" when unset). */
  omp_wait_policy?: string | undefined;
  /** The tiny step. */
  step?: { batch: number; fwd_bwd_ms: number; fwd_bwd_adamw_ms: number } | undefined;
  /** One entry per matmul shape. */
  matmul?: { m: number; n: number; k: number; ms: number; gflops: number }[] | undefined;
  /** One entry per process count. */
  data?: { processes: number; ms_per_image: number; images_per_s: number }[] | undefined;
  /** PS3 vision inference (`--inference`; see `torch_inference.ts`). */
  inference?: {
    /** Model name. */
    name: string;
    /** Parameters of the torch model. */
    params: number;
    /** Input [h, w]. */
    input: [number, number];
    /** Rows of the last hidden state. */
    tokens: number;
    /** Milliseconds building the model (random init). */
    build_ms: number;
    /** Milliseconds of the inference (median of `runs` after a warm-up). */
    ms: number;
    /** Timed runs. */
    runs: number;
    /** The process's peak resident memory (bytes). */
    peak_rss_bytes: number;
  } | undefined;
}

/** ps3's figures for the same work. */
export interface Ps3SideFigures {
  /** Tiny step (batch 16, forward + loss + backward), ms. */
  stepMs?: number | undefined;
  /** Matmul ms per shape of {@link SIDE_MATMULS}, in order. */
  matmulMs?: number[] | undefined;
  /** Decode + crop + resize ms per image, per worker count ([1, 2]). */
  dataMs?: { workers: number; ms: number }[] | undefined;
}

/** Options of {@link benchTorchSide}. */
export interface TorchSideOptions {
  /** Python interpreter (default `python3`). */
  python?: string | undefined;
  /** Fewer runs and images (the sizes stay the model's). */
  quick?: boolean | undefined;
  /** Timed runs per figure, median kept (default 3; quick 1). */
  runs?: number | undefined;
  /** JPEG of the data rows (default the 2250x1500 test photo). */
  image?: string | undefined;
  /** Environment to read `CI` from (default the process's). */
  env?: { get(name: string): string | undefined } | undefined;
}

/** Result of {@link benchTorchSide}: rows, or why the section was skipped. */
export interface TorchSideResult {
  /** The side-by-side rows (empty when skipped). */
  rows: BenchRow[];
  /** Why nothing ran, or undefined. */
  skipped?: string | undefined;
}

/**
 * Why PyTorch cannot be compared here, or null when it can: `CI` set, no interpreter, or
 * torch / Pillow / numpy missing.
 *
 * @param python The interpreter.
 * @param env Environment (for `CI`).
 * @returns The reason, or null.
 * @example
 * ```ts
 * (await torchUnavailable("/nonexistent/python3", Deno.env)) !== null; // true
 * ```
 */
export async function torchUnavailable(
  python: string,
  env: { get(name: string): string | undefined },
): Promise<string | null> {
  if (env.get("CI")) return "CI is set (CI never runs Python)";
  try {
    const out = await new Deno.Command(python, {
      args: ["-c", "import torch, PIL, numpy"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return null;
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
    return `"${python} -c 'import torch, PIL, numpy'" failed: ${err}`;
  } catch (e) {
    return `cannot run "${python}": ${(e as Error).message}`;
  }
}

/**
 * Times ps3's tiny step and matmuls, then the script's; then the data rows, ps3 and Pillow
 * alternating `runs` times; and pairs the figures.
 *
 * @param options Interpreter, runs, image.
 * @returns Rows, or the reason the section was skipped.
 * @example
 * ```ts
 * const { rows, skipped } = await benchTorchSide({ quick: true });
 * console.log(skipped ?? formatTable(rows));
 * ```
 */
export async function benchTorchSide(options: TorchSideOptions = {}): Promise<TorchSideResult> {
  const python = options.python ?? "python3";
  const why = await torchUnavailable(python, options.env ?? Deno.env);
  if (why) return { rows: [], skipped: why };
  const quick = options.quick ?? false;
  const runs = options.runs ?? (quick ? 1 : 3);
  const image = options.image ?? DOCK_JPG;
  const images = quick ? 6 : 12;

  const [tiny] = stepConfigs(["tiny"]);
  const [step] = await benchSteps([{ ...tiny!, batch: 16 }], { runs, parts: false });
  const matmulMs: number[] = [];
  for (const [m, n, k] of SIDE_MATMULS) {
    matmulMs.push(await timeMatmul({ m, n, k, transA: false, transB: false }, runs));
  }
  const torch = await runTorchBench(python, ["--runs", String(runs), "--skip", "data"]);
  // The data rows alternate ps3 and Pillow `runs` times (medians kept), so that the swings of
  // a shared machine's load fall on both.
  const ps3Data: number[][] = [];
  const pillow: NonNullable<TorchBenchJson["data"]>[] = [];
  for (let r = 0; r < runs; r++) {
    const rows = await benchData({ image, imageSize: 1512, images, workers: [1, 2] });
    ps3Data.push(rows.map((row) => row.ms));
    const py = await runTorchBench(python, [
      "--skip",
      "step,matmul",
      "--image",
      image,
      "--images",
      String(images),
    ]);
    pillow.push(py.data ?? []);
  }
  const ps3: Ps3SideFigures = {
    stepMs: step!.stepMs,
    matmulMs,
    dataMs: [1, 2].map((workers, i) => ({ workers, ms: median(ps3Data.map((d) => d[i]!)) })),
  };
  torch.data = [1, 2].map((processes) => {
    const ms = median(pillow.map((d) => d.find((x) => x.processes === processes)!.ms_per_image));
    return { processes, ms_per_image: ms, images_per_s: 1000 / ms };
  });
  return { rows: sideBySideRows(ps3, torch) };
}

/**
 * Runs `torch_bench.py` with 2 threads and returns its JSON.
 *
 * @param python The interpreter.
 * @param args The script's arguments besides `--threads`.
 * @returns The JSON it printed.
 * @throws {Error} When the script fails, with the end of its stderr.
 */
export async function runTorchBench(python: string, args: string[]): Promise<TorchBenchJson> {
  const out = await new Deno.Command(python, {
    args: [TORCH_BENCH_SCRIPT, "--threads", "2", ...args],
    // Spinning OpenMP threads make torch many times slower on a busy machine (the script's
    // doc); the policy used is named in the rows.
    env: { OMP_WAIT_POLICY: Deno.env.get("OMP_WAIT_POLICY") ?? "PASSIVE" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot compare with PyTorch: ${TORCH_BENCH_SCRIPT} exited with ${out.code}: ` +
        new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" / "),
    );
  }
  const text = new TextDecoder().decode(out.stdout).trim();
  return JSON.parse(text.split("\n").at(-1)!) as TorchBenchJson;
}

/**
 * Pairs ps3's figures with the script's: for each work a ps3 row whose note names the
 * PyTorch / Pillow figure and the ratio (how many times slower ps3 is), then the PyTorch
 * row. Work missing on either side is left out.
 *
 * @param ps3 ps3's figures.
 * @param torch The script's JSON.
 * @returns Rows.
 * @example
 * ```ts
 * sideBySideRows({ stepMs: 1000 }, { torch: "2.13", pillow: "12", threads: 2,
 *   step: { batch: 16, fwd_bwd_ms: 250, fwd_bwd_adamw_ms: 270 } })[0]!.note;
 * // "PyTorch 2.13 (2 threads) 250.0 ms: ps3 takes 4.00x as long"
 * ```
 */
export function sideBySideRows(ps3: Ps3SideFigures, torch: TorchBenchJson): BenchRow[] {
  const rows: BenchRow[] = [];
  const policy = torch.omp_wait_policy ? `, OMP_WAIT_POLICY=${torch.omp_wait_policy}` : "";
  const pt = `PyTorch ${torch.torch} (${torch.threads} threads${policy})`;
  const ratio = (mine: number, theirs: number) =>
    `ps3 takes ${(mine / theirs).toFixed(2)}x as long`;
  if (ps3.stepMs !== undefined && torch.step) {
    const s = torch.step;
    rows.push(
      {
        name: `side: ps3 tiny step, batch ${s.batch} (fwd+loss+bwd)`,
        ms: ps3.stepMs,
        rate: (1000 * s.batch) / ps3.stepMs,
        unit: "samples/s",
        note: `${pt} ${s.fwd_bwd_ms.toFixed(1)} ms: ${ratio(ps3.stepMs, s.fwd_bwd_ms)}`,
      },
      {
        name: `side: PyTorch tiny step, batch ${s.batch} (fwd+loss+bwd)`,
        ms: s.fwd_bwd_ms,
        rate: (1000 * s.batch) / s.fwd_bwd_ms,
        unit: "samples/s",
        note: `with the AdamW step ${s.fwd_bwd_adamw_ms.toFixed(1)} ms`,
      },
    );
  }
  SIDE_MATMULS.forEach(([m, n, k], i) => {
    const mine = ps3.matmulMs?.[i];
    const theirs = torch.matmul?.find((r) => r.m === m && r.n === n && r.k === k);
    if (mine === undefined || !theirs) return;
    const flops = 2 * m * n * k;
    rows.push(
      {
        name: `side: ps3 matmul ${m}x${n}x${k}`,
        ms: mine,
        rate: flops / mine / 1e6,
        unit: "GFLOP/s",
        note: `${pt} ${theirs.ms.toFixed(2)} ms: ${ratio(mine, theirs.ms)}`,
      },
      {
        name: `side: PyTorch matmul ${m}x${n}x${k}`,
        ms: theirs.ms,
        rate: flops / theirs.ms / 1e6,
        unit: "GFLOP/s",
      },
    );
  });
  for (const d of ps3.dataMs ?? []) {
    const theirs = torch.data?.find((r) => r.processes === d.workers);
    if (!theirs) continue;
    const what = `JPEG -> 1512^2, ${d.workers} worker${d.workers > 1 ? "s" : ""}`;
    rows.push(
      {
        name: `side: ps3 decode+crop+resize ${what}`,
        ms: d.ms,
        rate: 1000 / d.ms,
        unit: "images/s",
        note: `Pillow ${torch.pillow} ${theirs.images_per_s.toFixed(2)} images/s: ${
          ratio(d.ms, theirs.ms_per_image)
        }`,
      },
      {
        name: `side: Pillow decode+crop+resize ${what}`,
        ms: theirs.ms_per_image,
        rate: theirs.images_per_s,
        unit: "images/s",
        note: "processes, not workers",
      },
    );
  }
  return rows;
}
