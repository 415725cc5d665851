/**
 * Splitting work on large tensors into dispatches whose storage bindings fit the device's
 * binding limit (128 MiB on most adapters): a batch of 4K images, [B, 3, 3780, 3780] f32, is
 * 171 MB per sample, more than one binding may span.
 *
 * A tensor is seen as `slabs` equal slabs (images, planes, samples) along its first dims.
 * {@linkcode slabChunks} groups consecutive slabs into chunks; for each chunk it gives every
 * tensor a binding window that starts at an aligned byte offset at or before the chunk's
 * first element, plus the element offset of that first element inside the window, which the
 * kernel adds to its local indices.
 *
 * @module
 */

import { gpu, type GpuBinding } from "../gpu/runtime.ts";
import { DTYPE_BYTES, type Tensor } from "../autograd/tensor.ts";

/** A tensor and the number of its elements per slab (0: bound whole in every chunk). */
export interface SlabPart {
  /** The tensor. */
  tensor: Tensor;
  /** Elements per slab, or 0 for a tensor bound whole (weights, index tables). */
  slab: number;
}

/** One dispatch's share of the slabs. */
export interface SlabChunk {
  /** First slab of the chunk. */
  first: number;
  /** Number of slabs in the chunk. */
  count: number;
  /** A binding per part, in the order given. */
  bindings: GpuBinding[];
  /** Per part, the element offset of the chunk's first element inside its binding. */
  offsets: number[];
}

/**
 * A binding window holding elements [start, start + count) of a tensor: it starts at the
 * aligned byte offset at or before the first element, which sits `offset` elements in.
 *
 * @param tensor The tensor.
 * @param start First element.
 * @param count Number of elements.
 * @param elemBytes Bytes per element (4, or 2 for f16; the window's length is rounded up to
 *   whole 4-byte words, which the buffer always holds).
 * @returns The binding and the element offset of `start` inside it.
 */
export function elementWindow(
  tensor: Tensor,
  start: number,
  count: number,
  elemBytes = 4,
): { binding: GpuBinding; offset: number } {
  const align = gpu().info.bindingOffsetAlignment;
  const byte = tensor.byteOffset + start * elemBytes;
  const aligned = byte - (byte % align);
  const length = Math.ceil((byte - aligned + count * elemBytes) / 4) * 4;
  return {
    binding: { buffer: tensor.buffer, byteOffset: aligned, byteLength: length },
    offset: (byte - aligned) / elemBytes,
  };
}

/**
 * Elements one binding window may hold wherever it starts (the window may begin up to
 * alignment - elemBytes bytes before its first element, and ends on a 4-byte word).
 *
 * @param elemBytes Bytes per element (4, or 2 for f16).
 * @returns The count.
 */
export function maxWindowElements(elemBytes = 4): number {
  const { maxBindingBytes, bindingOffsetAlignment } = gpu().info;
  const roundUp = 4 - elemBytes; // a 2-byte element may end mid-word
  return Math.floor((maxBindingBytes - (bindingOffsetAlignment - elemBytes) - roundUp) / elemBytes);
}

/**
 * Bytes one binding of a slab of `elems` elements may span: the slab plus the alignment slack
 * (a window may start up to alignment - elemBytes bytes before it, and ends on a 4-byte
 * word). The smallest unit {@linkcode slabChunks} binds; the preflight uses it too.
 *
 * @param elems Elements of one slab.
 * @param alignment The device's storage binding offset alignment, bytes.
 * @param elemBytes Bytes per element (4, or 2 for f16; default 4).
 * @returns Bytes.
 */
export function slabUnitBytes(elems: number, alignment: number, elemBytes = 4): number {
  return elems * elemBytes + alignment - elemBytes + (4 - elemBytes);
}

/**
 * Groups `slabs` slabs into chunks whose binding windows all fit the device's limit.
 *
 * @param what Kernel name, for the error message.
 * @param slabs Number of slabs.
 * @param parts The tensors and their slab sizes (4-byte element types, or f16).
 * @returns The chunks, covering slabs 0..slabs-1 in order (none when slabs is 0).
 * @throws {RangeError} When a single slab of some tensor exceeds the binding limit.
 * @example
 * ```ts
 * const parts = [{ tensor: x, slab: h * w }, { tensor: y, slab: oh * ow }];
 * for (const c of slabChunks("pool", n, parts)) {
 *   const threads = c.count * oh * ow;
 *   const params = { n: threads, xo: c.offsets[0]!, yo: c.offsets[1]! };
 *   gpu().dispatch(kernel, c.bindings, params, grid(threads, 64));
 * }
 * ```
 */
export function slabChunks(what: string, slabs: number, parts: readonly SlabPart[]): SlabChunk[] {
  let perChunk = Math.max(slabs, 1);
  for (const { tensor, slab } of parts) {
    tensor.assertAlive();
    const eb = DTYPE_BYTES[tensor.dtype];
    if (eb !== 4 && eb !== 2) {
      throw new TypeError(
        `Kernel "${what}" cannot split ${tensor.describe()}: slab chunks need 4- or 2-byte ` +
          "elements",
      );
    }
    if (slab === 0) continue;
    const { maxBindingBytes, bindingOffsetAlignment } = gpu().info;
    if (slabUnitBytes(slab, bindingOffsetAlignment, eb) > maxBindingBytes) {
      throw new RangeError(
        `Kernel "${what}" cannot split ${tensor.describe()}: one slab spans ${slab * eb} ` +
          `bytes, more than the device's storage binding limit of ${maxBindingBytes} bytes`,
      );
    }
    perChunk = Math.min(perChunk, Math.floor(maxWindowElements(eb) / slab));
  }
  const chunks: SlabChunk[] = [];
  for (let first = 0; first < slabs; first += perChunk) {
    const count = Math.min(perChunk, slabs - first);
    const bindings: GpuBinding[] = [];
    const offsets: number[] = [];
    for (const { tensor, slab } of parts) {
      const win = slab === 0
        ? { binding: tensor, offset: 0 }
        : elementWindow(tensor, first * slab, count * slab, DTYPE_BYTES[tensor.dtype]);
      bindings.push(win.binding);
      offsets.push(win.offset);
    }
    chunks.push({ first, count, bindings, offsets });
  }
  return chunks;
}
