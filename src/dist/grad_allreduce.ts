/**
 * Sums device buffers over the ranks (a parameter table's gradients): the buffers are read
 * back in buckets, each bucket is summed with `MPI_Allreduce` on a helper thread, and
 * uploaded back. Buckets are pipelined: while bucket k is being reduced, bucket k+1 is read
 * back from the device, and bucket k-1's upload is recorded; host memory holds at most two
 * buckets.
 *
 * @module
 */

import { gpu, type GpuBinding } from "../gpu/runtime.ts";
import type { Communicator } from "./communicator.ts";

/** One bucket: a byte range of one gradient buffer. */
interface Bucket extends GpuBinding {
  /** Elements. */
  n: number;
}

/** What one reduction cost. */
export interface AllreduceTiming {
  /** Seconds from the first readback to the last upload recorded. */
  seconds: number;
  /** Seconds spent inside MPI_Allreduce (waiting for it on the main thread). */
  mpiSeconds: number;
  /** Bytes reduced per rank. */
  bytes: number;
}

/**
 * The buckets of some buffers: windows of at most `bucketBytes` over each buffer, aligned to
 * the device's binding offset alignment.
 *
 * @param buffers The buffers (f32).
 * @param bucketBytes Bucket size.
 * @returns The buckets, in buffer order.
 */
export function bucketsOf(buffers: readonly GpuBinding[], bucketBytes: number): Bucket[] {
  const align = gpu().info.bindingOffsetAlignment;
  const step = Math.max(align, Math.floor(bucketBytes / align) * align);
  const out: Bucket[] = [];
  for (const g of buffers) {
    for (let off = 0; off < g.byteLength; off += step) {
      const byteLength = Math.min(step, g.byteLength - off);
      out.push({
        buffer: g.buffer,
        byteOffset: g.byteOffset + off,
        byteLength,
        n: byteLength / 4,
      });
    }
  }
  return out;
}

/**
 * Sums f32 device buffers over the ranks, in place (a table's gradients: `table.grads`).
 *
 * @param buffers The buffers (this rank's values on entry, the sums on return).
 * @param comm The ranks.
 * @param bucketBytes Bucket size.
 * @returns Time and bytes.
 */
export async function allreduceBuffers(
  buffers: readonly GpuBinding[],
  comm: Communicator,
  bucketBytes: number,
): Promise<AllreduceTiming> {
  const t0 = performance.now();
  const rt = gpu();
  const buckets = bucketsOf(buffers, bucketBytes);
  let mpiMs = 0, bytes = 0;
  let next: Promise<ArrayBuffer[]> | null = buckets.length > 0 ? rt.read([buckets[0]!]) : null;
  for (let k = 0; k < buckets.length; k++) {
    const host = new Float32Array((await next!)[0]!);
    // The next bucket's readback runs while this one is reduced.
    next = k + 1 < buckets.length ? rt.read([buckets[k + 1]!]) : null;
    const m0 = performance.now();
    await comm.allreduceSum(host);
    mpiMs += performance.now() - m0;
    rt.upload(buckets[k]!, host);
    bytes += host.byteLength;
  }
  rt.flush();
  return { seconds: (performance.now() - t0) / 1000, mpiSeconds: mpiMs / 1000, bytes };
}
