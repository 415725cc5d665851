/**
 * An estimate of the device memory a training run needs, printed before the first step:
 * parameters, gradients and AdamW moments (4 copies of f32), plus the activations the step
 * keeps (with activation recomputation: the block inputs and the low-res key/value cache of
 * every block, plus one block's full activations while it is recomputed; without it: every
 * block's), images at every scale, the ConvNet and the text tower.
 *
 * @module
 */

import { fmtBytes } from "../gpu/buffer_pool.ts";
import type { ModelConfig } from "../model/config.ts";
import { selectCounts } from "../model/scales.ts";

/** A memory estimate in bytes. */
export interface MemoryEstimate {
  /** Parameters, gradients and the two AdamW moments. */
  state: number;
  /** Activations and temporaries of one micro-batch step (peak). */
  activations: number;
  /** Sum. */
  total: number;
}

/**
 * Estimates the memory of a training step.
 *
 * @param config Model configuration.
 * @param options Parameter count, micro-batch size, recomputation.
 * @returns The estimate.
 */
export function estimateMemory(
  config: ModelConfig,
  options: { params: number; microBatch: number; checkpointing: boolean },
): MemoryEstimate {
  const v = config.vision, t = config.text;
  const { width: c, depth, mlpHidden: h, patch } = v.trunk;
  const b = options.microBatch;
  const s = v.scales;
  const n0 = (s[0]! / patch) ** 2;
  const grids = s.slice(1).map((x) => (x / patch) ** 2);
  const m = selectCounts(v.budgets, grids).reduce((a, x) => a + x, 0);
  const f = 4;
  // One block's full activations per token: norms, q/k/v, attention out, projection, MLP
  // hidden (pre and post GELU), residuals, and their gradients during the backward.
  const blockPerToken = (10 * c + 3 * h) * 2;
  const lowKept = b * n0 * c * 3 * depth; // block outputs + k + v of every block
  const highKept = options.checkpointing ? b * m * c * depth : b * m * blockPerToken * depth;
  const lowFull = options.checkpointing ? 0 : b * n0 * blockPerToken * depth;
  const oneBlock = b * (n0 + m) * blockPerToken;
  const images = b * 3 * s.reduce((a, x) => a + x * x, 0) * 2 + b * s[s.length - 1]! ** 2 * 2;
  const conv = v.conv
    ? b * (v.conv.inputSize / v.conv.kernel) ** 2 * v.conv.hidden * 14 * Math.max(v.conv.depth, 1)
    : 0;
  const conv3 = v.conv ? b * 3 * v.conv.inputSize ** 2 : 0;
  const selection = b * n0 * c * v.selectLayers.length * 6 +
    b * grids.reduce((a, g) => a + g, 0) * 8;
  const text =
    b * t.context * (10 * t.width + 3 * t.mlpHidden) * 2 * (options.checkpointing ? 1 : t.layers) +
    b * t.context * t.width * t.layers;
  const activations = f *
    (lowKept + highKept + lowFull + oneBlock + images + conv + conv3 + selection + text);
  const state = options.params * f * 4;
  return { state, activations, total: state + activations };
}

/**
 * Formats an estimate for the log.
 *
 * @param e The estimate.
 * @returns One line.
 */
export function describeEstimate(e: MemoryEstimate): string {
  return `estimated device memory ${fmtBytes(e.total)} (parameters, gradients and AdamW moments ` +
    `${fmtBytes(e.state)}, activations ${fmtBytes(e.activations)})`;
}
