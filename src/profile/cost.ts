/**
 * What a dispatch costs, from its arguments alone (no op is asked): the bytes of the storage
 * windows it binds, and the floating-point operations of the kernels whose formula is known,
 * 2 per multiply-add:
 *
 * - matmul-shaped kernels (params `M`, `N`, `batch` and the summed K range `k0`..`k1`):
 *   2 * M * N * (k1 - k0) * batch;
 * - attention (`attention_*forward_d*`, `attention_*backward_dq_d*`,
 *   `attention_*backward_dkv_d*`, every kernel family): per (query row, key) pair and head
 *   dim, 4 in the forward (the score q.k and the product p v), 6 in dQ (the score, dO.v and
 *   ds k) and 8 in dK/dV (the score, dO.v, ds q and p dO), over the query rows of its first
 *   binding (q, [B, Nq, H*D]: B*Nq*H*D values) times its keys (`nc + nk` in the forward,
 *   `nkeys` per source in the backward). The exps and the softmax's bookkeeping are not
 *   counted, as PyTorch's FLOP counters do not count them.
 *
 * Bytes count each bound window once (read or written), which is what a kernel that streams
 * its inputs and outputs moves; kernels that re-read (matmul tiles, attention) move more
 * inside the caches, and their rate is given in GFLOP/s where the flops are known.
 *
 * @module
 */

import type { DispatchRecord } from "../gpu/runtime.ts";

/** A dispatch's cost. */
export interface DispatchCost {
  /** Floating-point operations, or null when the kernel's formula is not known. */
  flops: number | null;
  /** Bytes of the bound storage windows. */
  bytes: number;
}

/** Attention kernels by name: flops per (query value, key) of each pass. */
const ATTENTION_FLOPS: readonly [RegExp, number, "keys" | "nkeys"][] = [
  [/^attention_(?:\w+_)?forward_d\d+/, 4, "keys"],
  [/^attention_(?:\w+_)?backward_dq_d\d+/, 6, "nkeys"],
  [/^attention_(?:\w+_)?backward_dkv_d\d+/, 8, "nkeys"],
];

/** The flops of an attention kernel, or null when the name or params are not one's. */
function attentionFlops(d: Pick<DispatchRecord, "kernel" | "bindings" | "params">): number | null {
  const name = d.kernel.spec.name, p = d.params;
  const q = d.bindings[0];
  if (!q) return null;
  for (const [re, perPair, keys] of ATTENTION_FLOPS) {
    if (!re.test(name)) continue;
    const n = keys === "keys" ? (p.nc ?? NaN) + (p.nk ?? NaN) : p.nkeys ?? NaN;
    // q holds B*Nq*H*D values, stored as f16 (kernel names end in `_f16`) or f32.
    const values = q.byteLength / (name.endsWith("_f16") ? 2 : 4);
    return Number.isFinite(n) ? perPair * values * n : null;
  }
  return null;
}

/**
 * The cost of one dispatch.
 *
 * @param d The dispatch.
 * @returns Its flops (matmul-shaped and attention kernels; else null) and bytes.
 * @example
 * ```ts
 * const { flops, bytes } = dispatchCost(record);
 * ```
 */
export function dispatchCost(
  d: Pick<DispatchRecord, "kernel" | "bindings" | "params">,
): DispatchCost {
  const bytes = d.bindings.reduce((s, b) => s + b.byteLength, 0);
  const p = d.params;
  const isMatmul = /^matmul/.test(d.kernel.spec.name) && p.M !== undefined &&
    p.N !== undefined && p.k0 !== undefined && p.k1 !== undefined;
  const flops = isMatmul
    ? 2 * p.M! * p.N! * Math.max(0, p.k1! - p.k0!) * (p.batch ?? 1)
    : attentionFlops(d);
  return { flops, bytes };
}
