/**
 * Adaptive max pooling of channels-last maps with PyTorch's `F.adaptive_max_pool2d`
 * semantics (AdaptivePooling.h `start_index` / `end_index`, AdaptiveMaxPoolKernel.cpp's
 * `val > maxval` scan). PS3 pools the ConvNet's 54 x 54 selection logits onto the low-res
 * grid with it. (Adaptive average pooling is `resizeArea` in `resize.ts`.)
 *
 * The forward records each output's argmax (i32); the backward runs one thread per input
 * element over the few outputs whose windows contain it, so it is deterministic and needs no
 * atomics. NaN inputs are not propagated (PyTorch selects them; this kernel skips them).
 *
 * @module
 */

import {
  pool_max_backward as backwardSrc,
  pool_max_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { slabChunks } from "./slab_chunks.ts";

const PARAMS = ["n:u32", "H:u32", "W:u32", "OH:u32", "OW:u32", "C:u32"];

const forwardKernel = defineKernel({
  name: "pool_max_forward",
  source: forwardSrc,
  bindings: ["read", "write", "write"],
  params: [...PARAMS, "xo:u32", "yo:u32", "ao:u32"],
});

const backwardKernel = defineKernel({
  name: "pool_max_backward",
  source: backwardSrc,
  bindings: ["read", "read", "write"],
  params: [...PARAMS, "go:u32", "ao:u32", "xo:u32"],
});

/**
 * Longest run of indices of one axis that one thread visits: the largest pooling window
 * [floor(o * in / out), ceil((o + 1) * in / out)) over the outputs o.
 *
 * @param inSize Length the windows cover.
 * @param outSize Number of windows.
 * @returns The largest window length.
 */
function longestWindow(inSize: number, outSize: number): number {
  let most = 0;
  for (let o = 0; o < outSize; o++) {
    const start = Math.floor((o * inSize) / outSize);
    const end = Math.floor(((o + 1) * inSize + outSize - 1) / outSize);
    most = Math.max(most, end - start);
  }
  return most;
}

/**
 * Adaptive max pooling, `F.adaptive_max_pool2d(x, size)` on a channels-last map: output
 * (i, j) is the max over rows floor(i * H / outH) .. ceil((i + 1) * H / outH) - 1 and the
 * same for columns. The gradient goes to the first maximum of each window in row-major
 * order (PyTorch's tie rule) and sums where overlapping windows share it.
 *
 * @param x Channels-last map [N, H, W, C] (an NCHW map as [N * C, H, W, 1]).
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 * @example
 * ```ts
 * const pooled = adaptiveMaxPool(logits.view([b * k, 54, 54, 1]), [27, 27]);
 * ```
 */
export function adaptiveMaxPool(x: Tensor, size: readonly [number, number]): Tensor {
  x.assertAlive();
  if (x.dtype !== "f32") {
    throw new TypeError(`adaptiveMaxPool() takes an f32 tensor, got ${x.describe()}`);
  }
  if (x.rank !== 4) {
    throw new RangeError(
      `adaptiveMaxPool() takes a channels-last [N, H, W, C] tensor, got ${fmtShape(x.shape)}`,
    );
  }
  const [oh, ow] = size;
  if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh < 1 || ow < 1) {
    throw new RangeError(`adaptiveMaxPool() needs a positive integer size, got [${size}]`);
  }
  const [n, h, w, c] = x.shape as [number, number, number, number];
  if (h < 1 || w < 1) {
    throw new RangeError(`Cannot pool the empty map ${fmtShape(x.shape)}`);
  }
  const rt = gpu();
  const y = empty([n, oh, ow, c]);
  const arg = empty([n, oh, ow, c], "i32");
  const wy = longestWindow(h, oh);
  rt.assertLoopTrips("pool_max_forward", wy * longestWindow(w, ow) + wy);
  const dims = { H: h, W: w, OH: oh, OW: ow, C: c };
  for (
    const ch of slabChunks("pool_max_forward", n * c === 0 ? 0 : n, [
      { tensor: x, slab: h * w * c },
      { tensor: y, slab: oh * ow * c },
      { tensor: arg, slab: oh * ow * c },
    ])
  ) {
    const threads = ch.count * oh * ow * c;
    rt.dispatch(forwardKernel, ch.bindings, {
      n: threads,
      ...dims,
      xo: ch.offsets[0]!,
      yo: ch.offsets[1]!,
      ao: ch.offsets[2]!,
    }, grid(threads, 64));
  }
  record("adaptiveMaxPool", [x], [y], ([g]) => {
    const dx = empty(x.shape);
    const cy = longestWindow(oh, h);
    rt.assertLoopTrips("pool_max_backward", cy * longestWindow(ow, w) + cy);
    for (
      const ch of slabChunks("pool_max_backward", n * c === 0 ? 0 : n, [
        { tensor: g!, slab: oh * ow * c },
        { tensor: arg, slab: oh * ow * c },
        { tensor: dx, slab: h * w * c },
      ])
    ) {
      const threads = ch.count * h * w * c;
      rt.dispatch(backwardKernel, ch.bindings, {
        n: threads,
        ...dims,
        go: ch.offsets[0]!,
        ao: ch.offsets[1]!,
        xo: ch.offsets[2]!,
      }, grid(threads, 64));
    }
    arg.dispose();
    return [dx];
  });
  // Without a recorded backward nothing reads the argmax again.
  if (!y.node) arg.dispose();
  return y;
}
