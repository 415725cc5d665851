/**
 * An estimate of the device memory a training step needs, printed before the first step and
 * used by `train.batch_size=auto`: the parameter table (values, gradients, both AdamW moments,
 * f32, each parameter padded to 64 elements as the table lays it out) plus what is live at the
 * step's peak, counted the way the model allocates:
 *
 * - Everything the forward creates outside recomputed blocks lives until the step ends (the
 *   step's scope frees it): the batch, the resized images, the embeddings, the selection
 *   branch, the ConvNet (never recomputed), the pooling heads.
 * - A recomputed block keeps only its outputs (low-res: the output and the k, v copies that
 *   form the cache; high-res and text: the output); without recomputation every block keeps
 *   all it created. The residual adds of attn.proj and mlp.fc2 and the MLP's GELU run in the
 *   matmuls' epilogues (no separate sum tensors); fc1 stores its pre-activation for the
 *   backward.
 * - The backward's peak is at the high-res pass: one block's activations recomputed plus its
 *   gradients, while the gradients of every block's low-res cache (k, v) wait for the low-res
 *   backward.
 *
 * Bytes per element: activations 4 in f32 and 2 in f16 (`train.precision: f16` stores the
 * activations of the trunk, the text tower, the selection MLP and the ConvNet's patches and
 * feature maps in float16); the batch itself, the resized images and the trunk's patches, the
 * outputs of the selection MLP and of the ConvNet (they feed the selection logits), the
 * probabilities, layer-norm statistics, attention's log-sum-exp, logits and losses are
 * float32 in both, as the model keeps them. The token embedding's gradient is added into the
 * parameter's gradient buffer (no [vocab, width] temporary). Pool buckets (up to 25% slack per
 * buffer) are not counted; see tests/tools/memory_peak.ts for the measured error.
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
  /** The activations by part, bytes (they add up to `activations`). */
  parts: Record<string, number>;
}

/** Options of {@linkcode estimateMemory}. */
export interface EstimateOptions {
  /** Parameter elements, each padded to the table's 64-element alignment. */
  params: number;
  /** Samples per micro-batch. */
  microBatch: number;
  /** Activation recomputation (gradient checkpointing). */
  checkpointing: boolean;
  /** Activation storage: "f16" stores activations in float16 (default "f32"). */
  precision?: "f32" | "f16" | undefined;
}

/** Elements a transformer block creates per token: [activations, float32 statistics]. */
function blockForward(c: number, h: number, heads: number): [number, number] {
  // norm1 out, qkv, q/k/v copies, attention out, proj (+residual), norm2 out, fc1 (GELU
  // output and stored pre-activation), fc2 (+residual); two norms' mean/rstd, the lse.
  return [c + 3 * c + 3 * c + c + c + c + 2 * h + c, 4 + heads];
}

/** Elements of gradients live at once in a transformer block's backward, per token. */
function blockBackward(c: number, h: number): number {
  // dy, d(fc1 out), d(pre-activation), d(norm2 out), dh, d(attn out), dq/dk/dv, d(qkv), dx.
  return c + 2 * h + 2 * c + c + 3 * c + 3 * c + c;
}

/**
 * Estimates the memory of a training step.
 *
 * @param config Model configuration.
 * @param options Parameters, micro-batch, recomputation, precision.
 * @returns The estimate, with its parts.
 */
export function estimateMemory(config: ModelConfig, options: EstimateOptions): MemoryEstimate {
  const v = config.vision, t = config.text;
  const { width: c, depth, mlpHidden: h, patch, heads } = v.trunk;
  const b = options.microBatch, ckpt = options.checkpointing;
  const a = options.precision === "f16" ? 2 : 4, f = 4;
  const s = v.scales, side = s[s.length - 1]!;
  const n0 = (s[0]! / patch) ** 2;
  const grids = s.slice(1).map((x) => (x / patch) ** 2);
  const counts = selectCounts(v.budgets, grids);
  const m = counts.reduce((x, y) => x + y, 0);
  const pp = 3 * patch * patch;
  const [blk, blkStats] = blockForward(c, h, heads);
  const bytes = (act: number, f32 = 0) => act * a + f32 * f;
  // The final norm (activation dtype); its f32 cast (a copy only in f16), the attention
  // pool's k/v projection and copies (the pool runs in f32), the norm's statistics.
  const pooling = (rows: number, stats: number) =>
    bytes(rows * c, rows * (4 * c + stats + (a < f ? c : 0)));
  const parts: Record<string, number> = {};
  // The host batch on the device: images, box maps (float32), tokens, flags.
  parts.batch = b * (3 * side * side + side * side + t.context + 1) * f;
  // Every scale's image and the ConvNet input, resized from the batch's (not the same size).
  const sizes = [...s, ...(v.conv ? [v.conv.inputSize] : [])].filter((x) => x !== side);
  parts.resized_images = b * 3 * sizes.reduce((x, y) => x + y * y, 0) * f;
  // Low-res embedding: patches, matmul, position add (and the position table).
  const lowKept = ckpt ? 3 * c : blk;
  parts.low_res = bytes(b * n0 * 2 * c + n0 * c, b * n0 * pp) +
    depth * bytes(b * n0 * lowKept, ckpt ? 0 : b * n0 * blkStats) +
    pooling(b * n0, 2);
  // Selection features: concat of the layers, the MLP (fc1 + pre-activation, norm: in the
  // activation dtype; fc2 f32), slice, normalise; the probabilities (f32) per grid for prior
  // and posterior.
  const nl = v.selectLayers.length, k = grids.length;
  parts.selection = bytes(b * n0 * 4 * nl * c, b * n0 * (k * c + 2 * c + 2)) +
    b * grids.reduce((x, g) => x + g, 0) * 8 * f;
  if (v.conv) {
    const cv = v.conv;
    const g = (cv.inputSize / cv.kernel) ** 2, hid = cv.hidden;
    // Patches, stem matmul and norm, per block dwconv, norm, fc1, GELU, fc2, scale, add
    // (the activation dtype); out projection and normalise (f32); the norms' statistics.
    parts.convnet = bytes(
      b * (3 * cv.inputSize ** 2 + g * (2 * hid + cv.depth * 13 * hid)),
      b * g * 2 * cv.out + b * g * 2 * (1 + cv.depth),
    );
  }
  // High-res embedding: gathered patches, matmul, the sum with the position rows and the
  // concat (activation dtype); the position rows and residual rows and their sum, gathered
  // from the resized position tables of each grid (f32, from the f32 parameters). Two tables
  // per grid are counted where the model keeps one (a square grid's residual table is a view
  // of its parameter): the f32 estimate was fitted with them (they cover what is not itemised,
  // e.g. the selection's similarity products and pool bucket slack; -1.7% on eq-1.5k).
  const highKept = ckpt ? c : blk;
  parts.high_res = bytes(
    b * m * 3 * c,
    b * m * (pp + 3 * c) + grids.reduce((x, g) => x + g, 0) * c * 2,
  ) +
    depth * bytes(b * m * highKept, ckpt ? 0 : b * m * blkStats) +
    pooling(b * m, 3);
  const tw = t.width, th = t.mlpHidden;
  const [tblk, tstats] = blockForward(tw, th, t.heads);
  parts.text = bytes(b * t.context * (2 * tw + 2 * tw)) +
    t.layers * bytes(b * t.context * (ckpt ? tw : tblk), ckpt ? 0 : b * t.context * tstats);
  // The backward's peak: the high-res block recomputed (with recomputation) and its
  // gradients, the cache gradients of every block waiting for the low-res backward.
  parts.backward = bytes(
    b * m * ((ckpt ? blk : 0) + blockBackward(c, h)) + depth * b * n0 * 2 * c,
    ckpt ? b * m * blkStats : 0,
  );
  const activations = Object.values(parts).reduce((x, y) => x + y, 0);
  const state = options.params * f * 4;
  return { state, activations, total: state + activations, parts };
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
