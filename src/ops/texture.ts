/**
 * Tensors copied into textures, for kernels that read their operands with `textureLoad` on
 * CPU adapters (the `texture` matmul): llvmpipe fetches a texel for all SIMD lanes at once,
 * where it loads storage lane by lane with a branch per lane. A texture is a pooled
 * rgba32float texture whose texel (x, y) holds floats 4x..4x+3 of row y of a [rows, K]
 * matrix (zero past K), the rows of every batch entry stacked; f16 tensors widen exactly.
 *
 * @module
 */

import { texture_pack as packSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, KernelCache } from "../gpu/kernel.ts";
import { TEXEL_BYTES } from "../gpu/buffer_pool.ts";
import { gpu, type GpuTextureBinding } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";

const kernels = new KernelCache();

/** The kernel that fills a texture (see wgsl/texture_pack.wgsl). */
function packKernel(trans: boolean, dtype: FloatDType) {
  const tag = `${trans ? "_transposed" : ""}${dtype === "f16" ? "_f16" : ""}`;
  return kernels.get(`pack${tag}`, () =>
    defineKernel({
      name: `texture_pack${tag}`,
      source: packSrc,
      bindings: ["read", "texture-write"],
      params: ["R:u32", "K:u32", "kq:u32", "batch:u32", "stride:u32"],
      defines: { TRANS: String(trans), T: dtype, ENABLE: enableF16(dtype) },
    }));
}

/**
 * Whether a [rows, K] matrix fits the device's largest texture: `rows` texel rows of
 * ceil(K/4) texels.
 *
 * @param rows Rows (every batch entry's, stacked).
 * @param k Floats per row.
 * @returns Whether it fits.
 */
export function textureFits(rows: number, k: number): boolean {
  const side = gpu().info.maxTextureSide;
  return rows <= side && Math.ceil(k / 4) <= side;
}

/**
 * Records the copy of `t` into a pooled texture: the [rows, K] matrices op(t[b]) as texel
 * rows of ceil(K/4) texels, batch entries stacked (op transposes a tensor stored [K, rows]).
 * Release the texture with {@linkcode releaseTextures} once the kernels reading it are
 * recorded.
 *
 * @param t The tensor, stored [batch, rows, K] (or [batch, K, rows] with `trans`).
 * @param dims Rows, K, batch entries, and whether t is stored transposed.
 * @returns The texture binding.
 * @example
 * ```ts
 * const ta = toTexture(a, { rows: m, k, batch: 1, trans: false });
 * // ... dispatch a kernel reading ta ...
 * releaseTextures([ta]);
 * ```
 */
export function toTexture(
  t: Tensor,
  dims: { rows: number; k: number; batch: number; trans: boolean },
): GpuTextureBinding {
  const { rows, k, batch, trans } = dims;
  const kq = Math.ceil(k / 4);
  const rt = gpu();
  const texture = rt.pool.acquireTexture(kq, batch * rows, "operand texture");
  const binding = { texture, byteLength: kq * batch * rows * TEXEL_BYTES };
  rt.dispatch(
    packKernel(trans, t.dtype as FloatDType),
    [t, binding],
    { R: rows, K: k, kq, batch, stride: rows * k },
    grid(batch * rows * kq, 64),
  );
  return binding;
}

/**
 * Returns textures from {@linkcode toTexture} to the pool (recorded work still reads them
 * first: the queue runs in order).
 *
 * @param textures The texture bindings.
 */
export function releaseTextures(textures: readonly GpuTextureBinding[]): void {
  for (const t of textures) gpu().pool.releaseTexture(t.texture);
}
