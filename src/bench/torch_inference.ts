/**
 * Side by side with PyTorch: PS3 vision inference of one square image at the largest scale
 * (PS3-1.5K: 1512^2), one round of look-close. The ps3 side is `ps3 encode --json` in a
 * child process on a random-init Hugging Face folder (written here unless one is given), so
 * its process peak is the encoding's own; the PyTorch side is the plain-torch PS3 vision tower
 * of `tests/tools/torch_bench.py --inference`, built from the same configuration's dims
 * ({@link inferenceDims}) and timed after a warm-up with 2 threads. The rows give both times
 * (ps3: the model, read-back included, without decoding and drawing; PyTorch: the forward),
 * the ratio, both peak memories and both parameter counts.
 *
 * Opt-in (`ps3 bench --inference-1.5k`): the ps3 side takes minutes on a CPU adapter.
 * Skipped like the other side-by-side rows without Python or under CI.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { loadModelConfig, type ModelConfig } from "../model/config.ts";
import type { VisionModelConfig } from "../model/ps3_vision_model.ts";
import { Ps3VisionEncoder } from "../model/ps3_vision.ts";
import { ParamBuilder } from "../nn/module.ts";
import { Rng } from "../util/rng.ts";
import { featureSize, selectCounts } from "../model/scales.ts";
import { readHfFolderConfig, writeHfConfigFiles } from "../checkpoint/hf.ts";
import { writeSafetensors } from "../checkpoint/safetensors.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { DOCK_JPG } from "./data.ts";
import type { BenchRow } from "./timing.ts";
import {
  runTorchBench,
  type TorchBenchJson,
  type TorchSideResult,
  torchUnavailable,
} from "./torch_side.ts";

/** The configuration the opt-in section compares by default. */
export const PS3_1_5K_CONFIG: string = fileURLToPath(
  new URL("../../configs/ps3-1.5k.yaml", import.meta.url),
);

/** The program whose `encode` command times the ps3 side. */
const MAIN_TS = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** The PS3 vision tower's shapes, as `torch_bench.py --inference` reads them. */
export interface InferenceDims {
  /** Model name. */
  name: string;
  /** Trunk width C. */
  width: number;
  /** Blocks. */
  depth: number;
  /** Attention heads. */
  heads: number;
  /** MLP hidden size. */
  mlp: number;
  /** Patch size. */
  patch: number;
  /** Side of the learned position grid. */
  pos_grid: number;
  /** LayerNorm eps of the trunk. */
  eps: number;
  /** Trunk MLP activation. */
  act: "gelu" | "gelu_tanh";
  /** MAP head MLP activation. */
  pool_act: "gelu" | "gelu_tanh";
  /** Scales, ascending (the input is the largest, square). */
  scales: number[];
  /** Blocks whose outputs feed the selection. */
  select_layers: number[];
  /** Tokens selected per high-res scale (one round). */
  counts: number[];
  /** Per-scale position residuals. */
  separate_pos_emb: boolean;
  /** The selection ConvNet, or null. */
  conv: { hidden: number; out: number; depth: number; kernel: number; input: number } | null;
}

/**
 * The dims of a configuration's vision tower for one square image of its largest scale.
 *
 * @param config Model configuration.
 * @returns The JSON the script reads.
 * @example
 * ```ts
 * inferenceDims(await loadModelConfig("configs/ps3-1.5k.yaml")).counts; // [512, 2048]
 * ```
 */
export function inferenceDims(config: VisionModelConfig): InferenceDims {
  const v = config.vision, t = v.trunk;
  const s = v.scales.at(-1)!;
  const grids = v.scales.slice(1).map((_, i) => featureSize(v.scales, t.patch, [s, s], i + 1));
  return {
    name: config.name,
    width: t.width,
    depth: t.depth,
    heads: t.heads,
    mlp: t.mlpHidden,
    patch: t.patch,
    pos_grid: t.posGrid,
    eps: t.eps,
    act: t.act ?? "gelu",
    pool_act: v.poolAct,
    scales: [...v.scales],
    select_layers: [...v.selectLayers],
    counts: selectCounts(v.budgets, grids.map(([h, w]) => h * w)),
    separate_pos_emb: v.separatePosEmb,
    conv: v.conv
      ? {
        hidden: v.conv.hidden,
        out: v.conv.out,
        depth: v.conv.depth,
        kernel: v.conv.kernel,
        input: v.conv.inputSize,
      }
      : null,
  };
}

/** The vision tower's parameters (`vision_model.*`, what `ps3 encode` loads), declared. */
function visionSpecs(config: VisionModelConfig) {
  const b = new ParamBuilder();
  new Ps3VisionEncoder(b, new Rng(0), config.vision);
  return b.specs;
}

/**
 * Parameters of a configuration's vision tower (`vision_model.*`, what `ps3 encode` loads).
 *
 * @param config Model configuration.
 * @returns The count.
 * @example
 * ```ts
 * visionParamCount(await loadModelConfig("configs/ps3-tiny.yaml"));
 * ```
 */
export function visionParamCount(config: VisionModelConfig): number {
  return visionSpecs(config).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * Writes a random-init vision-only Hugging Face folder of a configuration (float32, the
 * model's own initialisers, one tensor in host memory at a time).
 *
 * @param config Model configuration.
 * @param folder Target folder (created).
 */
export async function writeRandomVisionFolder(config: ModelConfig, folder: string): Promise<void> {
  await Deno.mkdir(folder, { recursive: true });
  const specs = visionSpecs(config);
  await writeSafetensors(
    join(folder, "model.safetensors"),
    specs.map((s) => ({
      name: s.name,
      dtype: "F32" as const,
      shape: [...s.shape],
      data: () => {
        const a = new Float32Array(s.shape.reduce((x, y) => x * y, 1));
        s.init(a);
        return a;
      },
    })),
    { metadata: { format: "pt" } },
  );
  await writeHfConfigFiles(folder, config, { visionOnly: true });
}

/** ps3's figures of one encoding (from `ps3 encode --json`). */
export interface Ps3InferenceFigures {
  /** The model run, read-back included (ms). */
  ms: number;
  /** Loading the folder (ms), when the output names it. */
  loadMs?: number | undefined;
  /** Rows of last_hidden_state. */
  tokens: number;
  /** Parameters of the vision tower. */
  params: number;
  /** Process peak resident memory (bytes), or null where unknown. */
  processPeak: number | null;
  /** Device pool: peak in use during the run (bytes). */
  devicePeak: number;
  /** Device pool held after the run (bytes). */
  devicePool: number;
}

/**
 * Reads `ps3 encode --json`'s output: the summary JSON on stdout, the load time on stderr.
 *
 * @param stdout Standard output (the summary, then "wrote N files ...").
 * @param stderr Standard error ("model: ... (loaded in X s)").
 * @param params The vision tower's parameter count (not in the summary).
 * @returns The figures.
 * @throws {SyntaxError} When stdout holds no summary.
 * @example
 * ```ts
 * parseEncodeOutput('{"tokens": 3, "ms": {"model": 5}, "memory": {"processPeak": 1, ' +
 *   '"devicePeak": 2, "devicePool": 3}}\nwrote 6 files', "(loaded in 1.5 s)", 10).loadMs; // 1500
 * ```
 */
export function parseEncodeOutput(
  stdout: string,
  stderr: string,
  params: number,
): Ps3InferenceFigures {
  const start = stdout.indexOf("{"), end = stdout.lastIndexOf("}");
  if (start < 0 || end < start) {
    throw new SyntaxError(`ps3 encode printed no JSON summary: ${stdout.slice(0, 200)}`);
  }
  const s = JSON.parse(stdout.slice(start, end + 1)) as {
    tokens: number;
    ms: { model: number };
    memory: { processPeak: number | null; devicePeak: number; devicePool: number };
  };
  const load = /loaded in ([\d.]+) s/.exec(stderr);
  return {
    ms: s.ms.model,
    loadMs: load ? Number(load[1]) * 1000 : undefined,
    tokens: s.tokens,
    params,
    processPeak: s.memory.processPeak,
    devicePeak: s.memory.devicePeak,
    devicePool: s.memory.devicePool,
  };
}

/**
 * Runs `ps3 encode <image> --checkpoint <folder> --json` in a child process (one round).
 *
 * @param folder Hugging Face folder.
 * @param image The image (squashed to the largest scale).
 * @param params The vision tower's parameter count, for the figures.
 * @returns The figures.
 */
export async function ps3Encode(
  folder: string,
  image: string,
  params: number,
): Promise<Ps3InferenceFigures> {
  const out = await Deno.makeTempDir({ prefix: "ps3_bench_encode_" });
  try {
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN_TS, "encode", image, "--checkpoint", folder, "--out", out, "--json"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(res.stdout);
    const stderr = new TextDecoder().decode(res.stderr);
    if (!res.success) {
      throw new Error(
        `ps3 encode exited with ${res.code}: ${stderr.trim().split("\n").slice(-3).join(" / ")}`,
      );
    }
    return parseEncodeOutput(stdout, stderr, params);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/**
 * The side-by-side rows of the inference: ps3's time with the ratio, both peaks and both
 * parameter counts in the note, then PyTorch's row.
 *
 * @param name Model name.
 * @param ps3 ps3's figures.
 * @param torch The script's JSON (its `inference`).
 * @returns Two rows, or none when the script has no inference figures.
 * @example
 * ```ts
 * inferenceRows("PS3-1.5K", ps3, json)[0]!.note; // "PyTorch ... ms: ps3 takes 10.3x as long; ..."
 * ```
 */
export function inferenceRows(
  name: string,
  ps3: Ps3InferenceFigures,
  torch: TorchBenchJson,
): BenchRow[] {
  const t = torch.inference;
  if (!t) return [];
  const gb = (b: number | null) => (b === null ? "unknown" : fmtBytes(b));
  const what = `${name} inference, ${t.input[0]}x${t.input[1]}, 1 round`;
  const tokens = ps3.tokens === t.tokens
    ? `${t.tokens} tokens`
    : `tokens ps3 ${ps3.tokens} vs PyTorch ${t.tokens} (shapes differ!)`;
  const params = ps3.params === t.params
    ? `${t.params} parameters on both sides`
    : `parameters ps3 ${ps3.params} vs PyTorch ${t.params} (differ!)`;
  const policy = torch.omp_wait_policy ? `, OMP_WAIT_POLICY=${torch.omp_wait_policy}` : "";
  const load = ps3.loadMs === undefined ? "" : `; loading ${(ps3.loadMs / 1000).toFixed(1)} s`;
  return [
    {
      name: `side: ps3 ${what}`,
      ms: ps3.ms,
      note: `PyTorch ${torch.torch} (${torch.threads} threads${policy}) ${t.ms.toFixed(0)} ms: ` +
        `ps3 takes ${(ps3.ms / t.ms).toFixed(2)}x as long; process peak ps3 ` +
        `${gb(ps3.processPeak)} vs PyTorch ${gb(t.peak_rss_bytes)}; device pool peak ` +
        `${gb(ps3.devicePeak)}, held after ${gb(ps3.devicePool)}${load}; ${tokens}; ${params}; ` +
        "ps3: one encoding in a fresh process (pipeline compilation included)",
    },
    {
      name: `side: PyTorch ${what}`,
      ms: t.ms,
      note: `median of ${t.runs} after a warm-up; peak RSS ${gb(t.peak_rss_bytes)} (torch, ` +
        `the model, the inference)`,
    },
  ];
}

/** Options of {@link benchInferenceSide}. */
export interface InferenceSideOptions {
  /** Model configuration (default configs/ps3-1.5k.yaml); ignored with `checkpoint`. */
  config?: string | undefined;
  /** A Hugging Face folder to encode with (its config decides); default: a random-init
   * vision-only folder of `config`, written to a temporary folder and removed after. */
  checkpoint?: string | undefined;
  /** The image ps3 encodes (default the 2250x1500 test photo, squashed). */
  image?: string | undefined;
  /** Python interpreter (default `python3`). */
  python?: string | undefined;
  /** PyTorch's timed runs after its warm-up (default 1). */
  runs?: number | undefined;
  /** Environment to read `CI` from (default the process's). */
  env?: { get(name: string): string | undefined } | undefined;
  /** Progress messages. */
  log?: ((line: string) => void) | undefined;
}

/**
 * Times the inference on both sides: `ps3 encode` in a child process, then the script's
 * plain-torch model of the same dims.
 *
 * @param options Configuration or folder, image, interpreter, runs.
 * @returns Rows, or why the section was skipped.
 * @example
 * ```ts
 * const { rows, skipped } = await benchInferenceSide({ checkpoint: "/tmp/inf15k" });
 * ```
 */
export async function benchInferenceSide(
  options: InferenceSideOptions = {},
): Promise<TorchSideResult> {
  const python = options.python ?? "python3";
  const why = await torchUnavailable(python, options.env ?? Deno.env);
  if (why) return { rows: [], skipped: why };
  const log = options.log ?? (() => {});
  let config: VisionModelConfig;
  let folder = options.checkpoint;
  let temp: string | null = null;
  if (folder) config = (await readHfFolderConfig(folder)).config;
  else {
    const full = await loadModelConfig(options.config ?? PS3_1_5K_CONFIG);
    config = full;
    temp = await Deno.makeTempDir({ prefix: "ps3_bench_model_" });
    folder = temp;
    log(`writing a random-init ${config.name} vision tower to ${temp} ...`);
    await writeRandomVisionFolder(full, temp);
  }
  const params = visionParamCount(config);
  let ps3: Ps3InferenceFigures;
  try {
    log(`ps3 encode with ${folder} ...`);
    ps3 = await ps3Encode(folder, options.image ?? DOCK_JPG, params);
  } finally {
    if (temp) await Deno.remove(temp, { recursive: true });
  }
  log("PyTorch ...");
  const torch = await runTorchBench(python, [
    "--skip",
    "step,matmul,data",
    "--inference",
    JSON.stringify(inferenceDims(config)),
    "--inference-runs",
    String(options.runs ?? 1),
  ]);
  return { rows: inferenceRows(config.name, ps3, torch) };
}
