/**
 * The optimizer's parameter-group policy of the reference (open_clip `main.py`): which
 * parameters get weight decay, and which form the token-selection group with its own
 * learning rate.
 *
 * @module
 */

import type { GroupFn } from "../params/param_table.ts";

/**
 * The open_clip name of a Hugging Face parameter name (the converter's renaming reversed).
 *
 * @param hf Hugging Face name.
 * @returns open_clip name.
 */
export function openClipName(hf: string): string {
  if (hf.startsWith("text_model.prompt_proj.")) {
    return hf.replace("text_model.prompt_proj.", "prompt_proj.");
  }
  if (hf.startsWith("vision_model.")) return "visual." + hf.slice("vision_model.".length);
  if (hf.startsWith("text_model.")) return "text." + hf.slice("text_model.".length);
  return hf;
}

const SELECTION_PREFIXES = [
  "prompt_proj",
  "visual.selection_feature_proj",
  "visual.prior_prompt",
  "visual.highres_selection_feature_module",
  "visual.prompt_proj_for_highres",
];

/**
 * The reference's AdamW parameter groups (open_clip main.py): no weight decay for 1-d
 * parameters, norms ("bn"/"ln"), biases and logit_scale; with a separate token-selection
 * learning rate, the token-selection parameters form their own group without decay.
 *
 * @param separateSelectionLr Whether a token-selection learning rate is set.
 * @returns The group function.
 */
export function referenceGroups(separateSelectionLr: boolean): GroupFn {
  return (hf, shape) => {
    const n = openClipName(hf);
    if (separateSelectionLr && SELECTION_PREFIXES.some((p) => n.includes(p))) {
      return { decay: false, lrGroup: "selection" };
    }
    const exclude = shape.length < 2 || n.includes("bn") || n.includes("ln") ||
      n.includes("bias") ||
      n.includes("logit_scale");
    return { decay: !exclude, lrGroup: "base" };
  };
}
