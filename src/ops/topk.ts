/**
 * Top-k selection entirely on the GPU (no readback): the indices of the k largest scores
 * per row, in ascending index order, as PS3's patch selection needs them.
 *
 * Method: radix select on an order-preserving unsigned key of the float bits, four passes
 * of 8 bits from the top. Each pass builds per-chunk 256-bin histograms of the next digit
 * among the keys matching the prefix found so far (one private histogram per thread, no
 * atomics), sums them per row, and picks the digit that holds the k-th largest key. After
 * four passes the k-th largest key T is known, with `need`, the number of keys equal to T to
 * take. A compaction then writes, in index order, every index with key > T and the first
 * `need` indices with key == T (prefix sums of per-chunk counts). Every loop is bounded by
 * the chunk length (1024), the number of chunks per row, or 256, so llvmpipe's 65535-trip
 * limit holds up to rows of tens of millions of scores.
 *
 * Order: NaN is lower than every number (below -Infinity); -0 equals +0; ties are broken
 * toward the lower index. The op is deterministic and has no gradient.
 *
 * @module
 */

import {
  topk_count as countSrc,
  topk_histogram as histogramSrc,
  topk_pick as pickSrc,
  topk_reduce as reduceSrc,
  topk_write as writeSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";

/** Scores per chunk: the inner loop length of the histogram, count and write kernels. */
const CHUNK = 1024;

/** The order-preserving key of an f32's bits (see the module doc for NaN and -0). */
const KEY_FN = `
fn key_of(bits: u32) -> u32 {
  let mag = bits & 0x7fffffffu;
  if (mag > 0x7f800000u) { return 0u; }
  if (mag == 0u) { return 0x80000000u; }
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}`;

const histogramKernel = defineKernel({
  name: "topk_histogram",
  source: histogramSrc,
  bindings: ["read", "read", "write"],
  params: ["batch:u32", "n:u32", "chunks:u32", "chunk:u32", "shift:u32", "mask:u32", "first:u32"],
  defines: { KEY_FN },
});

const reduceKernel = defineKernel({
  name: "topk_reduce",
  source: reduceSrc,
  bindings: ["read", "write"],
  params: ["batch:u32", "chunks:u32"],
});

const pickKernel = defineKernel({
  name: "topk_pick",
  source: pickSrc,
  bindings: ["read", "write"],
  params: ["batch:u32", "k:u32", "shift:u32", "first:u32"],
});

const countKernel = defineKernel({
  name: "topk_count",
  source: countSrc,
  bindings: ["read", "read", "write"],
  params: ["batch:u32", "n:u32", "chunks:u32", "chunk:u32"],
  defines: { KEY_FN },
});

const writeKernel = defineKernel({
  name: "topk_write",
  source: writeSrc,
  bindings: ["read", "read", "read", "write"],
  params: ["batch:u32", "n:u32", "chunks:u32", "chunk:u32", "k:u32"],
  defines: { KEY_FN },
});

/** Options of {@linkcode topkIndices}. */
export interface TopkOptions {
  /** Order of the returned indices: "index" (ascending index, the only order offered). */
  order?: "index" | undefined;
}

/**
 * The indices of the k largest scores of each row, in ascending index order (the raster
 * order of the selected patches). Ties go to the lower index; NaN ranks below every number.
 * Runs entirely on the GPU; no gradient.
 *
 * @param scores Scores [B, N] f32.
 * @param k How many to select per row, 0 <= k <= N.
 * @param options The order of the result.
 * @returns Indices [B, k] i32, ascending in each row.
 * @example
 * ```ts
 * const ids = topkIndices(probs, 2134, { order: "index" }); // [B, 2134] of [B, 72900]
 * ```
 */
export function topkIndices(scores: Tensor, k: number, options: TopkOptions = {}): Tensor {
  scores.assertAlive();
  if (scores.dtype !== "f32") {
    throw new TypeError(`topkIndices(): scores must be f32, got ${scores.describe()}`);
  }
  if ((options.order ?? "index") !== "index") {
    throw new TypeError(`topkIndices(): unknown order "${options.order}"; only "index" exists`);
  }
  if (scores.rank !== 2) {
    throw new RangeError(`topkIndices(): scores must be [B, N], got ${scores.describe()}`);
  }
  const [batch, n] = scores.shape as [number, number];
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new RangeError(`topkIndices(): cannot select k = ${k} of ${n} scores per row`);
  }
  const out = empty([batch, k], "i32");
  if (k === 0 || batch === 0) return out;
  const rt = gpu();
  const chunks = Math.ceil(n / CHUNK);
  rt.assertLoopTrips("topk_histogram", CHUNK + 256);
  rt.assertLoopTrips("topk_reduce", chunks);
  rt.assertLoopTrips("topk_write", chunks + CHUNK);
  const hist = empty([batch, chunks, 256], "u32");
  const total = empty([batch, 256], "u32");
  const state = empty([batch, 2], "u32");
  const counts = empty([batch, chunks, 2], "u32");
  const rowChunks = grid(batch * chunks, 64);
  for (let pass = 0; pass < 4; pass++) {
    const shift = 24 - 8 * pass;
    const first = pass === 0 ? 1 : 0;
    // The key bits above this pass's digit (>>> 0 keeps the mask unsigned).
    const mask = pass === 0 ? 0 : (0xffffffff << (shift + 8)) >>> 0;
    rt.dispatch(
      histogramKernel,
      [scores, state, hist],
      { batch, n, chunks, chunk: CHUNK, shift, mask, first },
      rowChunks,
    );
    rt.dispatch(reduceKernel, [hist, total], { batch, chunks }, grid(batch * 256, 256));
    rt.dispatch(pickKernel, [total, state], { batch, k, shift, first }, grid(batch, 64));
  }
  rt.dispatch(countKernel, [scores, state, counts], { batch, n, chunks, chunk: CHUNK }, rowChunks);
  rt.dispatch(
    writeKernel,
    [scores, state, counts, out],
    { batch, n, chunks, chunk: CHUNK, k },
    rowChunks,
  );
  for (const t of [hist, total, state, counts]) t.dispose();
  return out;
}
