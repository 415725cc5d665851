/**
 * Concatenation of small 1-d tensors by buffer copies (no autograd), for optimizer bookkeeping.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty } from "../ops/creation.ts";

/**
 * @param parts f32 tensors.
 * @returns Their elements end to end.
 */
export function concat1d(parts: readonly Tensor[]): Tensor {
  const out = empty([parts.reduce((n, p) => n + p.size, 0)]);
  let off = 0;
  for (const p of parts) {
    gpu().copy(p, {
      buffer: out.buffer,
      byteOffset: out.byteOffset + off * 4,
      byteLength: p.byteLength,
    });
    off += p.size;
  }
  return out;
}
