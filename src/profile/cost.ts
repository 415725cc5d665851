/**
 * What a dispatch costs, from its arguments alone (no op is asked): the bytes of the storage
 * windows it binds, and for kernels with a matmul's parameters (`M`, `N`, `batch` and the
 * summed K range `k0`..`k1`) the floating-point operations, 2 per multiply-add.
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

/**
 * The cost of one dispatch.
 *
 * @param d The dispatch.
 * @returns Its flops (matmul-shaped kernels) and bytes.
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
  const flops = isMatmul ? 2 * p.M! * p.N! * Math.max(0, p.k1! - p.k0!) * (p.batch ?? 1) : null;
  return { flops, bytes };
}
