/**
 * Initialisation from SigLIP weights, as the reference does with `--pretrained webli`: it
 * builds the PS3 CLIP model, then loads the OpenCLIP `ViT-SO400M-14-SigLIP-384` checkpoint
 * into it with `load_state_dict(strict=False)`. Every tensor whose name is also a parameter is
 * copied; the PS3-only parameters (prior prompt, selection projection, per-scale position
 * residuals, selection ConvNet, prompt projections) keep their fresh initialisation; names
 * of the file that are not parameters are ignored. As in PyTorch's non-strict load, a shape
 * mismatch is an error, with one exception: a trunk position table of another square grid is
 * resized to the model's grid with antialiased bicubic (timm's `resample_abs_pos_embed`).
 *
 * Two layouts are read (detected from the names):
 * - OpenCLIP (`open_clip_model.safetensors` of `timm/ViT-SO400M-14-SigLIP-384`):
 *   `visual.trunk.*` (the timm ViT, MAP head `visual.trunk.attn_pool.*`), `text.*`,
 *   `logit_scale`, `logit_bias`; renamed as the reference's converter renames
 *   (`visual.` -> `vision_model.`, `text.` -> `text_model.`, `prompt_proj.` ->
 *   `text_model.prompt_proj.`). A `module.` prefix on every name (DDP) is dropped, as
 *   open_clip's loader does.
 * - timm (`model.safetensors` of `timm/vit_so400m_patch14_siglip_384.webli`): the bare
 *   vision trunk, `patch_embed.*`, `pos_embed`, `blocks.*`, `norm.*`, `attn_pool.*`, mapped
 *   under `vision_model.trunk.`; recognised by `patch_embed.proj.weight` with no `visual.` or
 *   `text.` name. The text tower then keeps its fresh initialisation.
 *
 * @module
 */

import { fmtShape } from "../autograd/tensor.ts";
import { tidy } from "../autograd/scope.ts";
import { gpu } from "../gpu/runtime.ts";
import { tensor } from "../ops/creation.ts";
import { resizeBicubicAA } from "../ops/resize.ts";
import type { ParamTable } from "../params/param_table.ts";
import { FLOAT_DTYPES } from "./hf.ts";
import { openWeightsFile } from "./torch_checkpoint.ts";

/** The name layouts {@linkcode initFromSiglip} reads. */
export type SiglipLayout = "open_clip" | "timm";

/** What {@linkcode initFromSiglip} did. */
export interface SiglipInitReport {
  /** The file read. */
  path: string;
  /** Its name layout. */
  layout: SiglipLayout;
  /** Parameters copied from the file (Hugging Face names, table order), resized ones too. */
  loaded: string[];
  /** Position tables resized on load: name and the file's and the model's shapes. */
  resized: { name: string; from: number[]; to: number[] }[];
  /** Parameters the file lacks, which keep their fresh initialisation (PS3-only ones). */
  fresh: string[];
  /** Tensors of the file (names as in the file) that are not parameters of the model. */
  unused: string[];
}

const POS_EMBED = "vision_model.trunk.pos_embed";

/**
 * The Hugging Face name of a tensor of a SigLIP file.
 *
 * @param name The name in the file (after dropping a `module.` prefix).
 * @param layout The file's layout.
 * @returns The name of the matching PS3 parameter (which may not exist).
 * @example
 * ```ts
 * siglipToHfName("visual.trunk.attn_pool.latent", "open_clip");
 * // "vision_model.trunk.attn_pool.latent"
 * siglipToHfName("blocks.0.attn.qkv.weight", "timm"); // "vision_model.trunk.blocks.0.attn.qkv.weight"
 * ```
 */
export function siglipToHfName(name: string, layout: SiglipLayout): string {
  if (layout === "timm") return `vision_model.trunk.${name}`;
  if (name.startsWith("visual.")) return `vision_model.${name.slice("visual.".length)}`;
  if (name.startsWith("text.")) return `text_model.${name.slice("text.".length)}`;
  if (name.startsWith("prompt_proj.")) return `text_model.${name}`;
  return name;
}

/** The layout of a file's names, or a SyntaxError naming what was expected. */
function detectLayout(names: readonly string[], path: string): SiglipLayout {
  const has = new Set(names);
  if (has.has("visual.trunk.patch_embed.proj.weight")) return "open_clip";
  if (
    has.has("patch_embed.proj.weight") &&
    !names.some((n) => n.startsWith("visual.") || n.startsWith("text."))
  ) {
    return "timm";
  }
  throw new SyntaxError(
    `Cannot read "${path}" as SigLIP weights: it has neither the OpenCLIP layout ` +
      '("visual.trunk.patch_embed.proj.weight", "text.*", "logit_scale", ...) nor timm\'s ' +
      '("patch_embed.proj.weight", "blocks.*", "attn_pool.*", ...)',
  );
}

/** The side of a square grid of n cells, or null. */
function squareSide(n: number): number | null {
  const g = Math.round(Math.sqrt(n));
  return g * g === n ? g : null;
}

/**
 * Resizes a position table [1, g*g, C] to [1, G*G, C] on the GPU (antialiased bicubic, as
 * timm's `resample_abs_pos_embed` and the model's own `posTable`).
 */
async function resizePosTable(
  data: Float32Array<ArrayBuffer>,
  from: number,
  to: number,
  c: number,
): Promise<Float32Array<ArrayBuffer>> {
  const out = tidy(() => resizeBicubicAA(tensor(data, [1, from, from, c]), [to, to]));
  try {
    const [bytes] = await gpu().read([out]);
    return new Float32Array(bytes!, 0, to * to * c);
  } finally {
    out.dispose();
  }
}

/**
 * Initialises a PS3 model from a SigLIP checkpoint (OpenCLIP or timm layout, see the module
 * documentation), as the reference's `--pretrained webli`: copies every tensor whose name and
 * shape match a parameter, resizes a trunk position table of another grid, and leaves the
 * other parameters at their fresh initialisation. The header is checked in full before any
 * value is copied.
 *
 * @param table The model's parameters, freshly initialised.
 * @param path The SigLIP safetensors file.
 * @returns Loaded, resized, fresh and unused tensors.
 * @throws {SyntaxError} When the names are neither layout.
 * @throws {RangeError} Naming the shape mismatches (other than a resizable position table).
 * @throws {TypeError} For a tensor that is not a float type.
 * @example
 * ```ts
 * const model = new Ps3Clip(await loadModelConfig("configs/ps3-1.5k.yaml"));
 * const report = await initFromSiglip(model.params, "open_clip_model.safetensors");
 * console.log(formatSiglipReport(report));
 * ```
 */
export async function initFromSiglip(
  table: ParamTable,
  path: string,
): Promise<SiglipInitReport> {
  const reader = await openWeightsFile(path);
  try {
    const raw = reader.names();
    const ddp = raw.length > 0 && raw.every((n) => n.startsWith("module."));
    const names = ddp ? raw.map((n) => n.slice("module.".length)) : raw;
    const layout = detectLayout(names, path);
    const report: SiglipInitReport = {
      path,
      layout,
      loaded: [],
      resized: [],
      fresh: [],
      unused: [],
    };
    const source = new Map<string, string>(); // HF name -> name in the file
    names.forEach((n, i) => {
      const hf = siglipToHfName(n, layout);
      const twin = source.get(hf);
      if (twin !== undefined) {
        throw new SyntaxError(
          `Cannot initialise from "${path}": "${twin}" and "${raw[i]}" both map to "${hf}"`,
        );
      }
      if (table.has(hf)) source.set(hf, raw[i]!);
      else report.unused.push(raw[i]!);
    });
    const mismatches: string[] = [];
    for (const p of table.params) {
      const name = p.spec.name;
      const file = source.get(name);
      if (file === undefined) {
        report.fresh.push(name);
        continue;
      }
      const e = reader.entry(file);
      if (!FLOAT_DTYPES.has(e.dtype)) {
        throw new TypeError(
          `Cannot initialise from "${path}": "${file}" has dtype ${e.dtype}, not a float type`,
        );
      }
      const want = p.spec.shape;
      if (fmtShape(e.shape) !== fmtShape(want)) {
        const g = e.shape.length === 3 && e.shape[0] === 1 && e.shape[2] === want[2]
          ? squareSide(e.shape[1]!)
          : null;
        if (name === POS_EMBED && g !== null) {
          report.resized.push({ name, from: [...e.shape], to: [...want] });
        } else {
          mismatches.push(`"${file}" is ${fmtShape(e.shape)}, "${name}" ${fmtShape(want)}`);
        }
      }
      report.loaded.push(name);
    }
    if (mismatches.length) {
      throw new RangeError(
        `Cannot initialise from "${path}": ${mismatches.length} shapes do not match the model ` +
          `(PyTorch's non-strict load_state_dict refuses them too): ` +
          mismatches.slice(0, 5).join("; ") +
          (mismatches.length > 5 ? `; and ${mismatches.length - 5} more` : ""),
      );
    }
    for (const name of report.loaded) {
      const file = source.get(name)!;
      const v = await reader.read(file);
      let data = v instanceof Float32Array ? v : Float32Array.from(v as Float64Array);
      const r = report.resized.find((x) => x.name === name);
      if (r) {
        const c = r.to[2]!;
        data = await resizePosTable(data, squareSide(r.from[1]!)!, squareSide(r.to[1]!)!, c);
      }
      table.load(name, data);
    }
    return report;
  } finally {
    reader.close();
  }
}

/**
 * A readable summary of an initialisation: counts, resized tables, and the names of the
 * fresh and unused tensors.
 *
 * @param report The report.
 * @returns Lines of text.
 * @example
 * ```ts
 * console.log(formatSiglipReport(await initFromSiglip(model.params, "siglip.safetensors")));
 * ```
 */
export function formatSiglipReport(report: SiglipInitReport): string {
  const lines = [
    `SigLIP initialisation from "${report.path}" (${report.layout} layout): ` +
    `${report.loaded.length} loaded, ${report.fresh.length} kept fresh, ` +
    `${report.unused.length} unused`,
  ];
  for (const r of report.resized) {
    lines.push(
      `  resized ${r.name}: ${fmtShape(r.from)} -> ${fmtShape(r.to)} (bicubic, antialiased)`,
    );
  }
  if (report.fresh.length) lines.push("  fresh (PS3-only or absent from the file):");
  for (const n of report.fresh) lines.push(`    ${n}`);
  if (report.unused.length) lines.push("  unused (not parameters of this model):");
  for (const n of report.unused) lines.push(`    ${n}`);
  return lines.join("\n");
}
