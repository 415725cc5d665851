/**
 * `checkpoint.init` from a PyTorch training checkpoint of the reference (open_clip's
 * `epoch_N.pt`: `{"epoch", "name", "state_dict", "optimizer", ...}`, names with DDP's
 * `module.` prefix and open_clip's `visual.` / `text.` / `prompt_proj.`), read with the
 * restricted reader of torch_checkpoint.ts.
 *
 * Weights are renamed as the reference converter renames them and loaded like a Hugging Face
 * folder (non-strict: missing and unused names reported, shapes must match). The AdamW state
 * is loaded only where the mapping is exact: the optimizer's parameter indices are rebuilt
 * from the state dict order and open_clip's parameter groups
 * (`train/src/open_clip_train/main.py`: gain/bias first, then the rest; with
 * `--token_selection_lr` a token-selection group between them), every group's weight decay
 * must agree with ps3's, every moment's shape with its parameter's, and every parameter of the
 * model must be covered with one common step count. Otherwise the report says why it was not
 * loaded and the run starts with fresh moments.
 *
 * @module
 */

import { fmtShape } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";
import type { ParamTable } from "../params/param_table.ts";
import { FLOAT_DTYPES, type LoadReport } from "./hf.ts";
import { isTensorRef, type TorchTensorRef } from "./pickle.ts";
import { siglipToHfName } from "./siglip_init.ts";
import { TorchCheckpoint } from "./torch_checkpoint.ts";

/** What {@linkcode initFromTorchCheckpoint} did. */
export interface TorchInitReport extends LoadReport {
  /** The AdamW step count loaded, or null when the optimizer state was not loaded. */
  optimizerStep: number | null;
  /** Why the optimizer state was not loaded ("" when it was). */
  optimizerNote: string;
  /** The checkpoint's `epoch`, when it has one. */
  epoch: number | null;
}

const TOKEN_SELECTION = [
  "selection_feature_proj",
  "highres_selection_feature_module",
  "prompt_proj_for_highres",
];

/** open_clip's `exclude` rule of main.py (no weight decay). */
function gainOrBias(name: string, ndim: number): boolean {
  return ndim < 2 || name.includes("bn") || name.includes("ln") || name.includes("bias") ||
    name.includes("logit_scale");
}

/**
 * Loads the weights (and, where exact, the AdamW moments and step) of an open_clip / PS3
 * training checkpoint or a bare torch state dict into a freshly built model.
 *
 * @param table The model's parameters.
 * @param path The `.pt` / `.bin` file.
 * @returns Loaded / missing / unused names and the optimizer outcome.
 * @throws {RangeError} Listing shape mismatches (nothing is loaded then).
 * @throws {Error} For a file the restricted reader refuses, naming the reason.
 * @example
 * ```ts
 * const r = await initFromTorchCheckpoint(model.params, "logs/run/checkpoints/epoch_3.pt");
 * console.log(r.loaded.length, r.optimizerNote || `AdamW step ${r.optimizerStep}`);
 * ```
 */
export async function initFromTorchCheckpoint(
  table: ParamTable,
  path: string,
): Promise<TorchInitReport> {
  const ck = await TorchCheckpoint.open(path);
  try {
    const sd = ck.stateDict();
    const report: TorchInitReport = {
      loaded: [],
      missing: [],
      unused: [],
      optimizerStep: null,
      optimizerNote: "",
      epoch: null,
    };
    const root = ck.root instanceof Map ? ck.root : new Map();
    const epoch = root.get("epoch");
    if (typeof epoch === "number") report.epoch = epoch;
    const byHf = new Map<string, TorchTensorRef>();
    for (const [name, t] of sd) {
      const hf = siglipToHfName(name, "open_clip");
      if (table.has(hf)) byHf.set(hf, t);
      else report.unused.push(name);
    }
    const shapes: string[] = [];
    for (const p of table.params) {
      const t = byHf.get(p.spec.name);
      if (!t) {
        report.missing.push(p.spec.name);
        continue;
      }
      if (!FLOAT_DTYPES.has(t.storage.dtype)) {
        throw new TypeError(
          `Cannot initialise from "${path}": "${p.spec.name}" has dtype ${t.storage.dtype}, ` +
            "not a float type",
        );
      }
      if (fmtShape(t.shape) !== fmtShape(p.spec.shape)) {
        shapes.push(
          `"${p.spec.name}" is ${fmtShape(t.shape)}, the model's ${fmtShape(p.spec.shape)}`,
        );
      }
      report.loaded.push(p.spec.name);
    }
    if (shapes.length) {
      throw new RangeError(
        `Cannot initialise from "${path}": ${shapes.length} shapes do not match the model: ` +
          shapes.join("; "),
      );
    }
    for (const name of report.loaded) {
      table.load(name, await ck.readTensor(byHf.get(name)!) as Float32Array);
    }
    const opt = root.get("optimizer");
    if (!(opt instanceof Map)) {
      report.optimizerNote = "the file has no optimizer state";
    } else {
      report.optimizerNote = await loadOptimizer(table, ck, sd, opt, report);
    }
    return report;
  } finally {
    ck.close();
  }
}

/** Loads the AdamW moments when the mapping is exact; returns "" or why not. */
async function loadOptimizer(
  table: ParamTable,
  ck: TorchCheckpoint,
  sd: Map<string, TorchTensorRef>,
  opt: Map<unknown, unknown>,
  report: TorchInitReport,
): Promise<string> {
  const groups = opt.get("param_groups"), state = opt.get("state");
  if (!Array.isArray(groups) || !(state instanceof Map)) {
    return "the optimizer state is not a PyTorch optimizer state_dict";
  }
  const names = [...sd.keys()];
  const ndim = (n: string) => sd.get(n)!.shape.length;
  const isSel = (n: string) => TOKEN_SELECTION.some((s) => n.includes(s));
  let order: string[][];
  if (groups.length === 2) {
    order = [
      names.filter((n) => gainOrBias(n, ndim(n))),
      names.filter((n) => !gainOrBias(n, ndim(n))),
    ];
  } else if (groups.length === 3) {
    order = [
      names.filter((n) => gainOrBias(n, ndim(n)) && !isSel(n)),
      names.filter(isSel),
      names.filter((n) => !gainOrBias(n, ndim(n)) && !isSel(n)),
    ];
  } else {
    return `it has ${groups.length} parameter groups (open_clip's AdamW has 2, or 3 with ` +
      "--token_selection_lr)";
  }
  const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
  let step: number | null = null;
  for (const [gi, g] of groups.entries()) {
    const ids = g instanceof Map ? g.get("params") : null;
    const wd = g instanceof Map ? g.get("weight_decay") : null;
    if (!Array.isArray(ids) || typeof wd !== "number") return `parameter group ${gi} is malformed`;
    if (ids.length !== order[gi]!.length) {
      return `parameter group ${gi} has ${ids.length} parameters where the state dict order ` +
        `gives ${order[gi]!.length} (frozen parameters or buffers make the mapping inexact)`;
    }
    for (const [j, id] of ids.entries()) {
      const name = order[gi]![j]!;
      const hf = siglipToHfName(name, "open_clip");
      if (!table.has(hf)) return `"${name}" is not a parameter of the model`;
      const spec = table.get(hf).spec;
      if (spec.decay !== wd > 0) {
        return `"${hf}" has weight decay ${wd} in the file, ${spec.decay ? "some" : "none"} in ps3`;
      }
      const s = state.get(id);
      if (!(s instanceof Map)) return `parameter ${id} ("${name}") has no optimizer state`;
      const [a, b, st] = [s.get("exp_avg"), s.get("exp_avg_sq"), s.get("step")];
      if (!isTensorRef(a) || !isTensorRef(b)) return `parameter ${id} has no exp_avg / exp_avg_sq`;
      for (const t of [a, b]) {
        if (fmtShape(t.shape) !== fmtShape(spec.shape) || !FLOAT_DTYPES.has(t.storage.dtype)) {
          return `the moments of "${hf}" are ${fmtShape(t.shape)} ${t.storage.dtype}, the ` +
            `parameter ${fmtShape(spec.shape)}`;
        }
      }
      const n = isTensorRef(st) ? Number((await ck.readTensor(st))[0]) : st;
      if (typeof n !== "number" || !Number.isInteger(n)) return `parameter ${id} has no step count`;
      if (step !== null && n !== step) return `step counts differ (${step} and ${n})`;
      step = n;
      m.set(hf, await ck.readTensor(a) as Float32Array);
      v.set(hf, await ck.readTensor(b) as Float32Array);
    }
  }
  const uncovered = table.params.filter((p) => !m.has(p.spec.name));
  if (uncovered.length) {
    return `${uncovered.length} parameters of the model have no optimizer state ` +
      `("${uncovered[0]!.spec.name}", ...)`;
  }
  table.moments();
  const views = table.momentViews()!;
  try {
    for (const [i, p] of table.params.entries()) {
      gpu().upload(views.m[i]!, m.get(p.spec.name)!);
      gpu().upload(views.v[i]!, v.get(p.spec.name)!);
    }
  } finally {
    for (const t of [...views.m, ...views.v]) t.dispose();
  }
  report.optimizerStep = step;
  return "";
}
