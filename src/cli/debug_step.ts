/**
 * `ps3 debug-step`: one training forward + backward of a Hugging Face PS3 folder on a given
 * batch, with every loss term, output and gradient written to a safetensors file, for
 * comparison with the reference implementation.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { initGpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { loadSafetensorsInto, readHfConfig } from "../checkpoint/hf.ts";
import { writeSafetensors } from "../checkpoint/safetensors.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { debugStep, readDebugBatch } from "../compare/debug_step.ts";
import { parseLookClose } from "../model/ps3_inference.ts";

const USAGE =
  `Usage: ps3 debug-step --checkpoint <HF folder> --batch <batch.safetensors> --out <out.safetensors>
         [--infer --num-look-close n|all|tokens:N] [--no-checkpointing] [--gpu-topk]
         [--prior-weight W] [--posterior-weight W]

Training mode: one forward + backward as the reference trains (select_w_gt, pool_gt_token_only,
global captions), writing loss/*, out/* and grad/<parameter> tensors (f32).
--infer: the bottom-up inference path instead, writing out/last_hidden_state and
out/selection_probs/<i>.
The batch file holds images f32 [B,3,H,W] (normalised), text i32 [B,T],
gt_selection_maps f32 [B,H,W], is_global_text u8 [B].
Selection probabilities are tied in blocks by construction; ties are broken as PyTorch's
CPU topk breaks them (the reference's choice), unless --gpu-topk asks for ps3's own GPU rule
(lower index first, what training uses).`;

/**
 * Runs the command.
 *
 * @param args Command-line arguments.
 * @returns Exit code.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      checkpoint: { type: "string" },
      batch: { type: "string" },
      out: { type: "string" },
      infer: { type: "boolean" },
      "num-look-close": { type: "string" },
      "no-checkpointing": { type: "boolean" },
      "gpu-topk": { type: "boolean" },
      "prior-weight": { type: "string", default: "1" },
      "posterior-weight": { type: "string", default: "1" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.checkpoint || !values.batch || !values.out) {
    console.error(USAGE);
    return 2;
  }
  const rt = await initGpu();
  const t0 = performance.now();
  const config = await readHfConfig(values.checkpoint);
  const model = new Ps3Clip(config);
  const report = await loadSafetensorsInto(
    model.params,
    join(values.checkpoint, "model.safetensors"),
  );
  console.log(
    `model: ${config.name}, ${model.params.describe()}; loaded ${report.loaded.length}` +
      (report.unused.length ? `, ${report.unused.length} unused tensors` : ""),
  );
  const batch = await readDebugBatch(values.batch, !values.infer);
  const [b, , h, w] = batch.images.shape as [number, number, number, number];
  rt.pool.resetPeak();
  const outputs = await debugStep(model, batch, {
    infer: values.infer ? parseLookClose(values["num-look-close"] ?? "1") : undefined,
    gpuTopk: values["gpu-topk"],
    train: { checkpoint: !values["no-checkpointing"] },
    weights: {
      prior: Number(values["prior-weight"]),
      posterior: Number(values["posterior-weight"]),
    },
  });
  const ms = performance.now() - t0;
  await writeSafetensors(
    values.out,
    outputs.map((o) => ({ name: o.name, dtype: "F32", shape: o.shape, data: o.data })),
    { metadata: { adapter: rt.info.description } },
  );
  const scalar = (name: string) => outputs.find((o) => o.name === name)?.data[0]?.toFixed(6) ?? "-";
  if (!values.infer) {
    console.log(
      `loss: total ${scalar("loss/total")} = contrastive ${
        scalar("loss/contrastive")
      } + prior box ` +
        `${scalar("loss/prior_box")} + posterior box ${scalar("loss/posterior_box")}`,
    );
  }
  const mem = rt.memory();
  console.log(
    `batch ${b} x ${h}x${w}; ${
      (ms / 1000).toFixed(1)
    } s on ${rt.info.description}; peak GPU memory ` +
      `${fmtBytes(mem.peakInUseBytes + model.params.bytes())} (activations ` +
      `${fmtBytes(mem.peakInUseBytes)}, parameters + gradients ${
        fmtBytes(model.params.bytes())
      }); ` +
      `wrote ${outputs.length} tensors to ${values.out}`,
  );
  return 0;
}
