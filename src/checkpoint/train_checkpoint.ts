/**
 * Training checkpoints: one folder per saved step, written under a temporary name and
 * renamed into place once every byte is on disk, with a `COMPLETE` marker written last.
 *
 * ```
 * <out>/checkpoints/step_00000100/
 *   model.safetensors      parameters, f32, Hugging Face names (as in an HF PS3 folder)
 *   optimizer.safetensors  AdamW moments: "exp_avg/<name>", "exp_avg_sq/<name>"
 *   state.json             step, optimizer step, data position, RNG states, configs
 *   COMPLETE               marker and manifest (size + CRC-32C of each file), written last
 * ```
 *
 * A folder without the marker (a crash mid-write) is never picked by `latest` and is
 * removed by the next save. Verification, fallback and pruning policy: `recovery.ts`.
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";
import { readJsonFile } from "./json_file.ts";
import { sealCheckpoint } from "./manifest.ts";
import { checkFreeSpace, diskFullError, isDiskFull } from "./disk_space.ts";
import { removeStaleTemps } from "./recovery.ts";
import { openSafetensors, writeSafetensors, type WriteTensor } from "./safetensors.ts";
import { gpu } from "../gpu/runtime.ts";
import { numel, type Tensor } from "../autograd/tensor.ts";
import type { ParamTable } from "../params/param_table.ts";

/** What `state.json` holds. */
export interface TrainState {
  /** Format tag. */
  format: "ps3-train-checkpoint";
  /** Format version. */
  version: 1;
  /** Optimizer steps taken. */
  step: number;
  /** The run configuration (validated input, as given). */
  runConfig: unknown;
  /** The model configuration (validated input, as given): what `convert` needs. */
  modelConfig: unknown;
  /** The data loader's position (opaque to this module). */
  data: unknown;
  /** RNG states and any other trainer state (opaque to this module). */
  trainer: unknown;
  /** The last logged metrics. */
  metrics: Record<string, number>;
  /** ISO time of the save. */
  savedAt: string;
}

const STEP_DIR = /^step_(\d{8})$/;

/**
 * The folder name of a step.
 *
 * @param step Step number.
 * @returns e.g. "step_00000100".
 */
export function stepDirName(step: number): string {
  return `step_${String(step).padStart(8, "0")}`;
}

/**
 * Reads tensors back in the order the safetensors writer asks for them (all F32: name
 * order), many per GPU readback: one wait per ~64 MiB instead of one per tensor.
 */
function batchedReader(items: readonly { name: string; t: Tensor; shape: readonly number[] }[]) {
  const order = items.map((_, i) => i).sort((a, b) => (items[a]!.name < items[b]!.name ? -1 : 1));
  const rank = new Map(order.map((i, r) => [i, r]));
  const cache = new Map<number, Float32Array<ArrayBuffer>>();
  const budget = 64 * 2 ** 20;
  return async (i: number): Promise<Float32Array<ArrayBuffer>> => {
    if (!cache.has(i)) {
      const batch: number[] = [];
      let bytes = 0;
      for (let r = rank.get(i)!; r < order.length && (batch.length === 0 || bytes < budget); r++) {
        batch.push(order[r]!);
        bytes += items[order[r]!]!.t.byteLength;
      }
      const host = await gpu().read(batch.map((k) => items[k]!.t));
      batch.forEach((k, j) => cache.set(k, new Float32Array(host[j]!, 0, numel(items[k]!.shape))));
    }
    const v = cache.get(i)!;
    cache.delete(i);
    return v;
  };
}

/**
 * Saves a checkpoint of the parameters, the AdamW moments and the trainer state.
 *
 * @param root The checkpoints folder (`<out>/checkpoints`).
 * @param table The parameters (and moments, when the optimizer created them).
 * @param state Everything else.
 * @param hooks Test hook: called after the parameters are written, before the rest (crash
 *   tests exit the process there).
 * @returns The folder written.
 */
export async function saveCheckpoint(
  root: string,
  table: ParamTable,
  state: Omit<TrainState, "format" | "version" | "savedAt">,
  hooks: { crashMidway?: (() => void) | undefined } = {},
): Promise<string> {
  await Deno.mkdir(root, { recursive: true });
  await removeStaleTemps(root);
  const final = join(root, stepDirName(state.step));
  const tmp = `${final}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  // Parameters and both moments: 3/4 of the table's memory (values, gradients, m, v), plus
  // headers and state.json (an over-estimate before the moments exist).
  const needed = Math.ceil(table.bytes() * 3 / 4) + (1 << 20);
  await checkFreeSpace(root, needed, `checkpoint "${final}"`);
  await Deno.mkdir(tmp);
  let writing = join(tmp, "model.safetensors");
  try {
    const readParam = batchedReader(
      table.params.map((p) => ({ name: p.spec.name, t: p.value, shape: p.spec.shape })),
    );
    const params: WriteTensor[] = table.params.map((p, i) => ({
      name: p.spec.name,
      dtype: "F32",
      shape: p.spec.shape,
      data: () => readParam(i),
    }));
    await writeSafetensors(join(tmp, "model.safetensors"), params, { metadata: { format: "pt" } });
    hooks.crashMidway?.();
    const moments = table.momentViews();
    if (moments) {
      const items = table.params.flatMap((p, i) => [
        { name: `exp_avg/${p.spec.name}`, t: moments.m[i]!, shape: p.spec.shape },
        { name: `exp_avg_sq/${p.spec.name}`, t: moments.v[i]!, shape: p.spec.shape },
      ]);
      const readMoment = batchedReader(items);
      const opt: WriteTensor[] = items.map((it, i) => ({
        name: it.name,
        dtype: "F32",
        shape: it.shape,
        data: () => readMoment(i),
      }));
      writing = join(tmp, "optimizer.safetensors");
      await writeSafetensors(writing, opt);
      for (const t of [...moments.m, ...moments.v]) t.dispose();
    }
    const full: TrainState = {
      format: "ps3-train-checkpoint",
      version: 1,
      ...state,
      savedAt: new Date().toISOString(),
    };
    writing = join(tmp, "state.json");
    await writeFileAtomic(writing, JSON.stringify(full, null, 2) + "\n");
    writing = join(tmp, "COMPLETE");
    const files = [
      "model.safetensors",
      ...(moments ? ["optimizer.safetensors"] : []),
      "state.json",
    ];
    await sealCheckpoint(tmp, state.step, files);
    await Deno.remove(final, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, final);
    await syncDir(root);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    if (isDiskFull(e)) throw await diskFullError(e, `checkpoint "${final}"`, writing, root, needed);
    throw e;
  }
  return final;
}

async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    using f = await Deno.open(dir, { read: true });
    await f.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename itself is atomic
  }
}

/**
 * Completed checkpoints under a folder, oldest first.
 *
 * @param root The checkpoints folder.
 * @returns Their steps and paths.
 */
export async function listCheckpoints(root: string): Promise<{ step: number; path: string }[]> {
  const out: { step: number; path: string }[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      const m = STEP_DIR.exec(e.name);
      if (!e.isDirectory || !m) continue;
      try {
        await Deno.stat(join(root, e.name, "COMPLETE"));
        out.push({ step: Number(m[1]), path: join(root, e.name) });
      } catch {
        // incomplete: ignored
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * Reads a checkpoint's `state.json`.
 *
 * @param dir The checkpoint folder.
 * @returns The state.
 */
export async function readTrainState(dir: string): Promise<TrainState> {
  const path = join(dir, "state.json");
  // deno-lint-ignore no-explicit-any
  const s = await readJsonFile(path, "checkpoint state") as any;
  if (s?.format !== "ps3-train-checkpoint" || s.version !== 1) {
    throw new SyntaxError(`Cannot read "${path}": not a ps3 training checkpoint (version 1)`);
  }
  return s as TrainState;
}

/**
 * Loads the AdamW moments of a checkpoint into a table (which creates them if needed).
 *
 * @param table The parameters.
 * @param dir The checkpoint folder.
 */
export async function loadMoments(table: ParamTable, dir: string): Promise<void> {
  const path = join(dir, "optimizer.safetensors");
  const r = await openSafetensors(path);
  try {
    table.moments();
    const views = table.momentViews()!;
    for (const [i, p] of table.params.entries()) {
      for (const [kind, list] of [["exp_avg", views.m], ["exp_avg_sq", views.v]] as const) {
        const name = `${kind}/${p.spec.name}`;
        if (!r.has(name)) throw new Error(`Cannot resume from "${path}": it has no "${name}"`);
        const data = await r.read(name);
        if (!(data instanceof Float32Array) || data.length !== p.value.size) {
          throw new RangeError(
            `Cannot resume from "${path}": "${name}" has the wrong size or dtype`,
          );
        }
        gpu().upload(list[i]!, data);
      }
    }
    for (const t of [...views.m, ...views.v]) t.dispose();
  } finally {
    r.close();
  }
}
