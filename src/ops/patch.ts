/**
 * Patch extraction for the patch embedding: a p x p Conv2d with stride p and weight
 * [Cout, Cin, p, p] equals {@linkcode patchify} followed by
 * `matmul(patches, weight.view([Cout, Cin * p * p]), { transB: true, bias })`.
 * {@linkcode gatherPatches} cuts only selected patches, so PS3's high-res scales never
 * unfold a whole 4K image (the reference's `SelectedPatchEmbed.selected_proj` unfolds
 * everything and then indexes).
 *
 * Patch features are ordered (cin, ky, kx), F.unfold's order. Images are NCHW
 * `[B, Cin, H, W]`; H and W must be multiples of p. Large images are processed in chunks of
 * samples or planes that fit one storage binding.
 *
 * @module
 */

import {
  patch_fold as foldSrc,
  patch_gather as gatherSrc,
  patch_gather_backward as gatherBackwardSrc,
  patch_inverse as inverseSrc,
  patch_unfold as unfoldSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty, fillInto } from "./creation.ts";
import { slabChunks } from "./slab_chunks.ts";
import { enableF16, type FloatDType, wgslType } from "./storage_type.ts";

const GEOMETRY = ["Cin:u32", "H:u32", "W:u32", "p:u32", "GW:u32", "P:u32"];

const kernels = new KernelCache();

/** The unfold storing patches of `dt` (f32, or f16 for f16 activations). */
function unfoldKernel(dt: FloatDType) {
  return kernels.get(`unfold:${dt}`, () =>
    defineKernel({
      name: "patch_unfold",
      source: unfoldSrc,
      bindings: ["read", "write"],
      params: ["n:u32", ...GEOMETRY, "xo:u32", "yo:u32"],
      defines: { TY: dt, ENABLE: enableF16(dt) },
    }));
}

/** The fold reading a patch gradient of `dt`. */
function foldKernel(dt: FloatDType) {
  return kernels.get(`fold:${dt}`, () =>
    defineKernel({
      name: "patch_fold",
      source: foldSrc,
      bindings: ["read", "write"],
      params: ["n:u32", ...GEOMETRY, "go:u32", "xo:u32"],
      defines: { TG: dt, ENABLE: enableF16(dt) },
    }));
}

const gatherKernel = defineKernel({
  name: "patch_gather",
  source: gatherSrc,
  bindings: ["read", "read", "write"],
  params: ["n:u32", "first:u32", ...GEOMETRY, "K:u32", "xo:u32", "io:u32", "yo:u32"],
});

const inverseKernel = defineKernel({
  name: "patch_inverse",
  source: inverseSrc,
  bindings: ["read", "write"],
  params: ["n:u32", "K:u32", "P:u32", "io:u32", "vo:u32"],
});

const gatherBackwardKernel = defineKernel({
  name: "patch_gather_backward",
  source: gatherBackwardSrc,
  bindings: ["read", "read", "write"],
  params: ["n:u32", "first:u32", ...GEOMETRY, "K:u32", "go:u32", "vo:u32", "xo:u32"],
});

/** Validates an image and patch size; returns the geometry the kernels take. */
function geometry(op: string, img: Tensor, p: number) {
  img.assertAlive();
  if (img.dtype !== "f32") throw new TypeError(`${op}() takes an f32 image, got ${img.describe()}`);
  if (img.rank !== 4) {
    throw new RangeError(`${op}() takes an NCHW image [B, Cin, H, W], got ${fmtShape(img.shape)}`);
  }
  const [b, cin, h, w] = img.shape as [number, number, number, number];
  if (!Number.isInteger(p) || p < 1) {
    throw new RangeError(`${op}() needs a positive integer patch size, got ${p}`);
  }
  if (h % p !== 0 || w % p !== 0) {
    throw new RangeError(
      `${op}() cannot cut ${p} x ${p} patches from ${fmtShape(img.shape)}: H and W must be ` +
        `multiples of ${p}`,
    );
  }
  const gw = w / p;
  const P = (h / p) * gw;
  return { b, cin, h, w, F: cin * p * p, params: { Cin: cin, H: h, W: w, p, GW: gw, P } };
}

/**
 * The slab (elements) {@linkcode patchify} splits its images into past the binding limit: one
 * whole image (its patches, the output's slab, hold as many elements). With
 * `slabUnitBytes` it gives the bytes the preflight checks.
 *
 * @param cin Channels.
 * @param h Height.
 * @param w Width.
 * @returns Elements of one image.
 */
export function patchifySlab(cin: number, h: number, w: number): number {
  return cin * h * w;
}

/**
 * The slab (elements) {@linkcode gatherPatches} splits its output into past the binding
 * limit: one sample's selected patches (the index splits per sample too, the images per
 * plane).
 *
 * @param k Patches selected per sample.
 * @param cin Channels.
 * @param p Patch size.
 * @returns Elements of one sample's patches.
 */
export function gatherPatchesSlab(k: number, cin: number, p: number): number {
  return k * cin * p * p;
}

/**
 * The slab (elements) {@linkcode gatherPatches} splits its images into past the binding
 * limit: one image plane.
 *
 * @param h Height.
 * @param w Width.
 * @returns Elements of one plane.
 */
export function gatherPatchesPlaneSlab(h: number, w: number): number {
  return h * w;
}

/**
 * All p x p patches of NCHW images in row-major patch order, features (cin, ky, kx):
 * `F.unfold(img, p, stride=p).transpose(1, 2)`. The gradient folds back (patches do not
 * overlap, so it is a permutation).
 *
 * The patches are stored as `dtype` (default f32; "f16" rounds each value once, for f16
 * activations: the input of an f16 patch-embedding matmul, whose tiles hold f16 anyway);
 * their gradient has that dtype, the image's gradient is f32.
 *
 * @param img Images [B, Cin, H, W] f32, H and W multiples of p.
 * @param p Patch size.
 * @param dtype Storage of the patches (default f32).
 * @returns Patches [B, (H / p) * (W / p), Cin * p * p].
 * @throws {RangeError} When H or W is not a multiple of p.
 * @example
 * ```ts
 * const tokens = matmul(patchify(img, 14), w.view([c, 3 * 14 * 14]), { transB: true, bias });
 * ```
 */
export function patchify(img: Tensor, p: number, dtype: FloatDType = "f32"): Tensor {
  const { b, cin, h, w, F, params } = geometry("patchify", img, p);
  const P = params.P;
  const y = empty([b, P, F], wgslType(dtype), "patchify()'s patches");
  const rt = gpu();
  const slabs = y.size === 0 ? 0 : b;
  rt.assertLoopTrips("patch_unfold", p);
  for (
    const ch of slabChunks("patch_unfold", slabs, [
      { tensor: img, slab: patchifySlab(cin, h, w) },
      { tensor: y, slab: P * F },
    ])
  ) {
    const n = ch.count * P * cin * p; // one thread per patch row of p values
    rt.dispatch(unfoldKernel(dtype), ch.bindings, {
      n,
      ...params,
      xo: ch.offsets[0]!,
      yo: ch.offsets[1]!,
    }, grid(n, 64));
  }
  record("patchify", [img], [y], ([g]) => {
    if (g!.dtype !== dtype) {
      throw new TypeError(`patchify() backward takes a ${dtype} gradient, got ${g!.describe()}`);
    }
    const dimg = empty(img.shape);
    for (
      const ch of slabChunks("patch_fold", slabs, [
        { tensor: g!, slab: P * F },
        { tensor: dimg, slab: cin * h * w },
      ])
    ) {
      const n = ch.count * cin * h * w;
      rt.dispatch(foldKernel(dtype), ch.bindings, {
        n,
        ...params,
        go: ch.offsets[0]!,
        xo: ch.offsets[1]!,
      }, grid(n, 64));
    }
    return [dimg];
  });
  return y;
}

/** Options of {@linkcode gatherPatches}. */
export interface GatherPatchesOptions {
  /** Patch size p. */
  patch: number;
  /**
   * Selected patches [B, K] i32, row-major patch numbers q = py * (W / p) + px. Indices must
   * be unique within a row (the gradient inverts the selection); an index outside
   * [0, (H / p) * (W / p)) gives a zero patch and no gradient.
   */
  index: Tensor;
}

/**
 * The selected p x p patches of NCHW images: row k of sample b is patch `index[b, k]`,
 * features (cin, ky, kx) as in {@linkcode patchify}; equals `patchify(img, p)` with its rows
 * gathered, without cutting the other patches. The gradient scatters each patch back to its
 * pixels (through an inverse index map, so no atomics; unselected pixels get 0).
 *
 * @param img Images [B, Cin, H, W], H and W multiples of p.
 * @param options Patch size and the selection [B, K] (unique per row).
 * @returns Patches [B, K, Cin * p * p].
 * @throws {RangeError} When H or W is not a multiple of p or the index is not [B, K].
 * @example
 * ```ts
 * const sel = gatherPatches(img3780, { patch: 14, index: topk }); // [B, 2134, 588]
 * ```
 */
export function gatherPatches(img: Tensor, options: GatherPatchesOptions): Tensor {
  const { patch: p, index } = options;
  const { b, cin, h, w, F, params } = geometry("gatherPatches", img, p);
  index.assertAlive();
  if (index.dtype !== "i32") {
    throw new TypeError(`gatherPatches() takes an i32 index, got ${index.describe()}`);
  }
  if (index.rank !== 2 || index.shape[0] !== b) {
    throw new RangeError(
      `gatherPatches() index must be [${b}, K] for image ${fmtShape(img.shape)}, got ` +
        fmtShape(index.shape),
    );
  }
  const K = index.shape[1]!;
  const rt = gpu();
  const y = empty([b, K, F], "f32", "gatherPatches()'s patches");
  const plane = gatherPatchesPlaneSlab(h, w);
  for (
    const sc of slabChunks("patch_gather", y.size === 0 ? 0 : b, [
      { tensor: index, slab: K },
      { tensor: y, slab: gatherPatchesSlab(K, cin, p) },
    ])
  ) {
    const imgs = img.window(sc.first * cin * plane, [sc.count * cin, plane]);
    for (const ch of slabChunks("patch_gather", sc.count * cin, [{ tensor: imgs, slab: plane }])) {
      const n = ch.count * K * p * p;
      rt.dispatch(gatherKernel, [ch.bindings[0]!, ...sc.bindings], {
        n,
        first: ch.first,
        ...params,
        K,
        xo: ch.offsets[0]!,
        io: sc.offsets[0]!,
        yo: sc.offsets[1]!,
      }, grid(n, 64));
    }
    imgs.dispose();
  }
  // The index is listed so the tape checks it is still alive; it takes no gradient.
  record("gatherPatches", [img, index], [y], ([g]) => {
    const inv = empty([b, params.P], "i32");
    fillInto(inv, -1);
    for (
      const ch of slabChunks("patch_inverse", b * K === 0 ? 0 : b, [
        { tensor: index, slab: K },
        { tensor: inv, slab: params.P },
      ])
    ) {
      const n = ch.count * K;
      rt.dispatch(inverseKernel, ch.bindings, {
        n,
        K,
        P: params.P,
        io: ch.offsets[0]!,
        vo: ch.offsets[1]!,
      }, grid(n, 64));
    }
    const dimg = empty(img.shape);
    for (
      const sc of slabChunks("patch_gather_backward", img.size === 0 ? 0 : b, [
        { tensor: g!, slab: gatherPatchesSlab(K, cin, p) },
        { tensor: inv, slab: params.P },
      ])
    ) {
      const planes = dimg.window(sc.first * cin * plane, [sc.count * cin, plane]);
      for (
        const ch of slabChunks("patch_gather_backward", sc.count * cin, [
          { tensor: planes, slab: plane },
        ])
      ) {
        const n = ch.count * plane;
        rt.dispatch(gatherBackwardKernel, [...sc.bindings, ch.bindings[0]!], {
          n,
          first: ch.first,
          ...params,
          K,
          go: sc.offsets[0]!,
          vo: sc.offsets[1]!,
          xo: ch.offsets[0]!,
        }, grid(n, 64));
      }
      planes.dispose();
    }
    return [dimg, null];
  });
  return y;
}
