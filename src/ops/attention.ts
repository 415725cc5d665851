/**
 * Multi-head scaled dot-product attention as one fused op, with keys and values optionally
 * prefixed by a cache (PS3's high-res pass attends to [cached low-res k, v ; own k, v]) and an
 * optional key mask (PS3's MAP pool over selected tokens).
 *
 * No B x H x Nq x Nk score matrix is ever stored. The forward runs an online softmax over the
 * keys, saving each row's logsumexp; the backward follows FlashAttention: per-row statistics
 * (logsumexp, delta = rowsum(dO * O)), then dQ per query row and dK/dV per key row, both
 * recomputing the probabilities from the logsumexp. The cache is read in place (key index
 * j < Nc reads it) and receives its own gradients; the dQ and dK/dV kernels are dispatched
 * once per key source (cache, own keys), so every kernel binds at most 8 storage buffers
 * (WebGPU's guaranteed minimum).
 *
 * Four kernel families, chosen per adapter and shape unless the caller's
 * {@linkcode AttentionKernel} says otherwise: `uniform` (`attention_uniform.ts`, a forward
 * with 16 query rows per thread and a workgroup per (batch, head) and block of queries; its
 * backward runs `rows`) and `texture` (the same forward reading keys and values from textures
 * that `texture.ts` fills, which llvmpipe fetches for all SIMD lanes at once; D % 4 == 0, and
 * samples whose keys overflow the largest texture run `uniform`) for CPU adapters from 256
 * queries on, `rows` (`attention_rows.ts`) for CPU adapters below, and
 * `tiled` for GPUs (`attention_tiled.ts`); their shared WGSL builder is
 * `attention_common.ts`, the choice and plan `attention_kernel.ts`. Kernels are generated per head dim D: the loops over D
 * are unrolled in vec4 registers (plus a scalar tail when D % 4 != 0), since llvmpipe sums
 * loop trips over all loops of an invocation; only the loops over rows, tiles and a tile's
 * rows remain.
 *
 * q, k, v and the cache are f32, or f16 activations (issue 14's `train.precision: f16`), all
 * of one storage type; out and the gradients of q, k, v and the cache are stored in it too.
 * The scores, the softmax, the saved logsumexp and the backward's statistics stay f32 (the
 * kernels widen every load and round only at the store). With a cache and f16 storage, dQ
 * of the second key source is added to the first's stored (f16) partial.
 *
 * @module
 */

import { grid } from "../gpu/kernel.ts";
import { type Binding, gpu, type GpuBinding, type GpuTextureBinding } from "../gpu/runtime.ts";
import { isGradEnabled, record } from "../autograd/tape.ts";
import { type DType, DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty } from "./creation.ts";
import { prepKernel, WG } from "./attention_common.ts";
import { dkvKernel, dqKernel, forwardKernel } from "./attention_rows.ts";
import { tiledDkvKernel, tiledDqKernel, tiledForwardKernel } from "./attention_tiled.ts";
import { uniformForwardKernel } from "./attention_uniform.ts";
import { type AttentionKernel, attentionPlan } from "./attention_kernel.ts";
import type { FloatDType } from "./storage_type.ts";
import { releaseTextures, textureFits, toTexture } from "./texture.ts";

export * from "./attention_kernel.ts";

/** Options of {@linkcode attention}. */
export interface AttentionOptions {
  /** Number of heads H; the last dim of q, k and v is H*D. */
  heads: number;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number | undefined;
  /**
   * Cached keys and values [B, Nc, H*D], attended before the own keys; they receive
   * gradients like k and v.
   */
  cache?: { k: Tensor; v: Tensor } | undefined;
  /**
   * Key mask [B, Nc+Nk] f32 over [cache keys ; own keys]: 0 = masked, anything else =
   * attend. A query row whose keys are all masked outputs zeros (and passes no gradient).
   */
  keyMask?: Tensor | undefined;
  /** The kernel family and sizes (default: the adapter's choice). */
  kernel?: AttentionKernel | undefined;
}

/** Checks one [B, N, H*D] operand (stored like q) and returns N. */
function tokens(name: string, t: Tensor, batch: number, width: number, dt: string): number {
  t.assertAlive();
  if (t.dtype !== dt) {
    throw new TypeError(
      `attention() takes q, k, v and the cache all f32 or all f16, got q ${dt} and ${name} ` +
        t.describe(),
    );
  }
  if (t.rank !== 3 || t.shape[0] !== batch || t.shape[2] !== width) {
    throw new RangeError(
      `attention() needs ${name} of shape [${batch}, N, ${width}], got ${fmtShape(t.shape)}`,
    );
  }
  return t.shape[1]!;
}

/** The sizes of one attention. */
interface AttentionDims {
  batch: number;
  heads: number;
  /** Head dim. */
  d: number;
  /** Queries. */
  nq: number;
  /** Own keys. */
  nk: number;
  /** Cached keys. */
  nc: number;
  /** Score scale. */
  scale: number;
  /** Storage type of q, k, v, the cache, out and their gradients. */
  dtype: FloatDType;
}

/** Validates the operands of {@linkcode attention} and returns its sizes. */
function attentionDims(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionDims {
  const { heads, cache, keyMask } = opts;
  q.assertAlive();
  if (q.rank !== 3) {
    throw new RangeError(`attention() needs q of shape [B, Nq, H*D], got ${fmtShape(q.shape)}`);
  }
  const [batch, nq, width] = q.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0 || width === 0) {
    throw new RangeError(
      `attention() cannot split width ${width} of q ${fmtShape(q.shape)} into ${heads} heads`,
    );
  }
  const d = width / heads;
  if (q.dtype !== "f32" && q.dtype !== "f16") {
    throw new TypeError(`attention() takes f32 or f16 tensors, got q ${q.describe()}`);
  }
  const dtype = q.dtype;
  tokens("q", q, batch, width, dtype);
  const nk = tokens("k", k, batch, width, dtype);
  if (tokens("v", v, batch, width, dtype) !== nk) {
    throw new RangeError(
      `attention() needs k and v of one shape, got ${fmtShape(k.shape)} and ${fmtShape(v.shape)}`,
    );
  }
  const nc = cache ? tokens("cache.k", cache.k, batch, width, dtype) : 0;
  if (cache && tokens("cache.v", cache.v, batch, width, dtype) !== nc) {
    throw new RangeError(
      `attention() needs cache.k and cache.v of one shape, got ${fmtShape(cache.k.shape)} ` +
        `and ${fmtShape(cache.v.shape)}`,
    );
  }
  const nt = nc + nk;
  if (nt === 0) throw new RangeError("attention() needs at least one key (Nc + Nk = 0)");
  if (keyMask) {
    keyMask.assertAlive();
    if (keyMask.dtype !== "f32") {
      throw new TypeError(`attention() takes an f32 keyMask, got ${keyMask.describe()}`);
    }
    if (keyMask.rank !== 2 || keyMask.shape[0] !== batch || keyMask.shape[1] !== nt) {
      throw new RangeError(
        `attention() needs keyMask of shape [${batch}, ${nt}] (batch, Nc + Nk), got ` +
          `${fmtShape(keyMask.shape)}`,
      );
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new RangeError(`attention() scale ${scale} is not finite`);
  return { batch, heads, d, nq, nk, nc, scale, dtype };
}

/** A block of samples of one attention: the first and how many. */
interface BatchBlock {
  first: number;
  count: number;
}

/** The sizes of one sample of {@linkcode attention}, for {@linkcode attentionSampleBytes}. */
export interface AttentionSample {
  /** Heads. */
  heads: number;
  /** Head dim. */
  d: number;
  /** Queries. */
  nq: number;
  /** Own keys. */
  nk: number;
  /** Cached keys (0 without a cache). */
  nc: number;
  /** Whether a key mask is bound. */
  mask: boolean;
}

/**
 * The bytes of one sample's largest binding of {@linkcode attention} (q, out, dO, dq; k, v;
 * the cache, all stored as `dtype`; the mask; lse; the backward's statistics, f32): the
 * smallest unit attention splits into past the storage binding limit (blocks of whole
 * samples). The preflight uses it too.
 *
 * @param s One sample's sizes.
 * @param dtype Storage of q, k, v and the cache (default f32).
 * @returns Bytes.
 */
export function attentionSampleBytes(s: AttentionSample, dtype: DType = "f32"): number {
  const w = s.heads * s.d, rb = DTYPE_BYTES[dtype];
  return Math.max(
    s.nq * w * rb,
    s.nk * w * rb,
    s.nc * w * rb,
    s.mask ? (s.nc + s.nk) * 4 : 0,
    s.heads * s.nq * 4,
    2 * s.heads * s.nq * 4,
  );
}

/**
 * Bytes one attention binding may hold under a binding limit (whole 16-byte vectors).
 *
 * @param maxBindingBytes The device's storage binding limit.
 * @returns Bytes.
 */
export function attentionBindingBytes(maxBindingBytes: number): number {
  return Math.floor(maxBindingBytes / 16) * 16;
}

/**
 * Blocks of samples whose bindings (q, k, v, the cache, the mask, out, lse, the backward's
 * statistics and gradients) fit the device's storage binding limit: the whole batch when it
 * fits, else blocks whose windows start at aligned offsets. Samples are independent (each
 * (batch, head) runs alone), so every value equals one dispatch's.
 *
 * @throws {RangeError} Before any dispatch, when one sample's bindings do not fit.
 */
function batchBlocks(
  q: Tensor,
  dims: AttentionDims,
  hasCache: boolean,
  hasMask: boolean,
): BatchBlock[] {
  const { batch, heads, d, nq, nk, nc } = dims;
  const w = heads * d, rb = DTYPE_BYTES[dims.dtype];
  // Bytes per sample of each binding: q/out/dO/dq, k/v, cache (all stored as dims.dtype),
  // mask, lse, stats (f32).
  const per = [
    nq * w * rb,
    nk * w * rb,
    hasCache ? nc * w * rb : 0,
    hasMask ? (nc + nk) * 4 : 0,
    heads * nq * 4,
    2 * heads * nq * 4,
  ];
  const info = gpu().info;
  const cap = attentionBindingBytes(info.maxBindingBytes);
  const most1 = attentionSampleBytes({
    heads,
    d,
    nq,
    nk,
    nc: hasCache ? nc : 0,
    mask: hasMask,
  }, dims.dtype);
  if (batch * most1 <= cap) return [{ first: 0, count: batch }];
  const fail = (why: string): never => {
    throw new RangeError(
      `attention() cannot split q ${fmtShape(q.shape)} (${heads} heads, Nc ${nc}, Nk ${nk}) ` +
        `to fit the device's storage binding limit of ${info.maxBindingBytes} bytes: ${why}`,
    );
  };
  const most = Math.floor(cap / most1);
  if (most < 1) {
    const eb = per.indexOf(most1) < 3 ? rb : 4;
    fail(`one sample's binding of ${most1 / eb} ${eb === 4 ? "floats" : "f16 values"} passes it`);
  }
  // Blocks of g samples keep every window aligned; when g samples do not fit, blocks of any
  // size (their unaligned windows are staged through copies, see blockViews).
  const align = info.bindingOffsetAlignment;
  let g = 1;
  while (per.some((n) => (g * n) % align !== 0)) g *= 2;
  const count = most >= g ? Math.floor(most / g) * g : most;
  const blocks: BatchBlock[] = [];
  for (let b = 0; b < batch; b += count) {
    blocks.push({ first: b, count: Math.min(count, batch - b) });
  }
  return blocks;
}

/**
 * Windows of [B, ...] tensors over one block of samples; `dispose` releases them. A window
 * whose start is not aligned to the binding offset alignment is staged: a copy of the block
 * is bound instead, and for a tensor the kernels write (`written`) copied back at `dispose`
 * (buffer copies, ordered with the dispatches: the same values as a window).
 */
function blockViews(block: BatchBlock, batch: number) {
  const held: Tensor[] = [];
  const back: { from: Tensor; to: GpuBinding }[] = [];
  const rt = gpu();
  return {
    /** The block's window of t (t itself when the block is the whole batch). */
    of(t: Tensor, written = false): Tensor {
      if (block.count === batch) return t;
      const per = t.size / batch, eb = DTYPE_BYTES[t.dtype];
      const shape = [block.count, ...t.shape.slice(1)];
      const start = t.byteOffset + block.first * per * eb;
      if (start % rt.info.bindingOffsetAlignment === 0) {
        const v = t.window(block.first * per, shape);
        held.push(v);
        return v;
      }
      const region = { buffer: t.buffer, byteOffset: start, byteLength: block.count * per * eb };
      if (start % 4 !== 0 || region.byteLength % 4 !== 0) {
        throw new RangeError(
          `attention(): a block of ${block.count} samples of ${t.describe()} starts or ends ` +
            `mid-word and cannot be staged; use an even number of f16 values per sample`,
        );
      }
      const staged = empty(shape, t.dtype);
      rt.copy(region, {
        buffer: staged.buffer,
        byteOffset: staged.byteOffset,
        byteLength: region.byteLength,
      });
      held.push(staged);
      if (written) back.push({ from: staged, to: region });
      return staged;
    },
    dispose(): void {
      for (const { from, to } of back) {
        rt.copy(
          { buffer: from.buffer, byteOffset: from.byteOffset, byteLength: to.byteLength },
          to,
        );
      }
      for (const t of held) t.dispose();
      held.length = 0;
      back.length = 0;
    },
  };
}

/**
 * Multi-head scaled dot-product attention over [cached keys ; own keys], optionally masked:
 * `out[b, i, h] = sum_j softmax_j(scale * q[b, i, h] . key[b, j, h]) value[b, j, h]` with
 * key = [cache.k ; k] and value = [cache.v ; v] along the token axis. Tensors are
 * token-major with the heads side by side in a row (the plain reshape of a Linear output):
 * head h uses columns h*D .. h*D+D-1, as PyTorch's `.reshape(B, N, H, D)`.
 *
 * Gradients flow to q, k, v and both cache tensors. A query row whose keys are all masked
 * outputs zeros and passes no gradient (PyTorch's SDPA would give NaN; PS3 never relies on
 * it: its MAP pool unmasks every token of a sample whose mask is empty).
 *
 * @param q Queries [B, Nq, H*D].
 * @param k Own keys [B, Nk, H*D] (Nk may be 0 when a cache is given).
 * @param v Own values [B, Nk, H*D].
 * @param opts Heads, scale (default 1/sqrt(D)), cache {k, v} [B, Nc, H*D], key mask
 *   [B, Nc+Nk], and the kernel choice.
 * @returns The attention output [B, Nq, H*D] (before the output projection).
 * @throws {RangeError} Before any dispatch, when one sample's q, k, v, cache, mask or
 *   statistics pass the device's storage binding limit (larger batches run in blocks of
 *   samples, with the same values as one dispatch).
 * @example
 * ```ts
 * // PS3 high-res block: own queries attend to the low-res cache and their own keys.
 * const y = attention(q, k, v, { heads: 16, cache: { k: lowK, v: lowV } });
 * // MAP pool: one latent query over the tokens of a selected region.
 * const pooled = attention(latentQ, k, v, { heads: 16, keyMask: regionMask });
 * ```
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const { cache, keyMask } = opts;
  const dims = attentionDims(q, k, v, opts);
  const { batch, heads, d, nq, nk, nc, scale } = dims;
  const plan = attentionPlan(dims, opts.kernel);
  const hasMask = keyMask !== undefined;
  // Past the storage binding limit, blocks of samples (planned before any dispatch).
  const blocks = batchBlocks(q, dims, cache !== undefined, hasMask);
  const out = empty([batch, nq, heads * d], dims.dtype);
  const lse = empty([batch, heads, nq]);
  const fp = plan.forward;
  // Texture rows: every sample's keys of a block, stacked (checked on the whole batch).
  const texture = fp.texture && nk + nc > 0 && textureFits(batch * Math.max(nk, nc), heads * d);
  const fwd = fp.uniform
    ? uniformForwardKernel(d, hasMask, fp.uniform, dims.dtype, texture)
    : plan.tiled
    ? tiledForwardKernel(d, hasMask, plan.block, plan.tile, dims.dtype)
    : forwardKernel(d, hasMask, plan.rows, dims.dtype);
  const rt = gpu();
  rt.assertLoopTrips(fwd.spec.name, fp.trips(nc, nk));
  for (const block of blocks) {
    const w = blockViews(block, batch);
    const bp = attentionPlan({ ...dims, batch: block.count }, opts.kernel).forward;
    const [qb, kb, vb] = [w.of(q), w.of(k), w.of(v)];
    let kv: Binding[] = [kb, vb, cache ? w.of(cache.k) : kb, cache ? w.of(cache.v) : vb];
    const textures: GpuTextureBinding[] = [];
    if (texture) {
      const pack = (t: Tensor, n: number) => {
        const made = toTexture(t, { rows: n, k: heads * d, batch: block.count, trans: false });
        textures.push(made);
        return made;
      };
      const own = nk > 0 ? [pack(kb, nk), pack(vb, nk)] : null;
      const cached = cache && nc > 0
        ? [pack(kv[2] as Tensor, nc), pack(kv[3] as Tensor, nc)]
        : null;
      // A source without keys binds the other's textures (never read: its loop is empty).
      kv = [...(own ?? cached!), ...(cached ?? own!)];
    }
    rt.dispatch(
      fwd,
      [
        qb,
        ...kv,
        keyMask ? w.of(keyMask) : qb,
        w.of(out, true),
        w.of(lse, true),
      ],
      { [bp.unitParam]: bp.units(nq), nq, heads, nc, nk, scale },
      bp.gridOf(bp.units(nq)),
    );
    releaseTextures(textures);
    w.dispose();
  }

  const inputs = [q, k, v, ...(cache ? [cache.k, cache.v] : []), ...(keyMask ? [keyMask] : [])];
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) {
    lse.dispose();
    return out;
  }
  record("attention", inputs, [out], ([g]) => {
    const { dq, kv } = attentionBackward({ q, k, v, out, lse, dO: g! }, opts, dims, blocks);
    // Gradients in input order: q, k, v, then the cache's k and v, then none for the mask.
    const [dk, dv] = kv[kv.length - 1]!;
    const cacheGrads = cache ? kv[0]! : [];
    return [dq, dk, dv, ...cacheGrads, ...(keyMask ? [null] : [])];
  });
  return out;
}

/**
 * The FlashAttention backward: per-row statistics, then dQ per query row and dK/dV per key
 * row of each key source (cache, own keys), recomputing the probabilities from the
 * logsumexp.
 *
 * @returns dQ (or null), and [dK, dV] per key source in key order (nulls where none needed).
 */
function attentionBackward(
  t: { q: Tensor; k: Tensor; v: Tensor; out: Tensor; lse: Tensor; dO: Tensor },
  opts: AttentionOptions,
  dims: AttentionDims,
  blocks: readonly BatchBlock[],
): { dq: Tensor | null; kv: [Tensor | null, Tensor | null][] } {
  const { q, k, v, out, lse, dO } = t;
  const { cache, keyMask } = opts;
  const { batch, heads, d, nq, nk, nc, scale, dtype } = dims;
  if (dO.dtype !== dtype) {
    throw new TypeError(`attention() backward takes a ${dtype} gradient, got ${dO.describe()}`);
  }
  const rt = gpu();
  const hasMask = keyMask !== undefined;
  const stats = empty([batch, heads, nq, 2]);
  // The key sources in key order: j < Nc reads the cache, the rest the own keys.
  const sources = [
    ...(cache ? [{ k: cache.k, v: cache.v, n: nc, off: 0 }] : []),
    { k, v, n: nk, off: nc },
  ];
  const dq = q.requiresGrad ? empty(q.shape, dtype) : null;
  const kv = sources.map((s): [Tensor | null, Tensor | null] =>
    s.k.requiresGrad || s.v.requiresGrad
      ? [empty(s.k.shape, dtype), empty(s.v.shape, dtype)]
      : [null, null]
  );
  const common = { nq, heads, maskStride: nc + nk, scale };
  for (const block of blocks) {
    const w = blockViews(block, batch);
    const plan = attentionPlan({ ...dims, batch: block.count }, opts.kernel);
    const rows = block.count * heads * nq;
    const [qb, dOb, statsb] = [w.of(q), w.of(dO), w.of(stats, true)];
    rt.dispatch(
      prepKernel(d, dtype),
      [w.of(out), w.of(lse), dOb, statsb],
      { rows, nq, heads },
      grid(rows, WG),
    );
    const mask = keyMask ? w.of(keyMask) : qb;
    const srcs = sources.map((s) => ({ ...s, k: w.of(s.k), v: w.of(s.v) }));
    if (dq) {
      const dqb = w.of(dq, true);
      const kern = plan.tiled
        ? tiledDqKernel(d, hasMask, plan.block, plan.tile, dtype)
        : dqKernel(d, hasMask, plan.rows, dtype);
      let accumulate = 0;
      for (const s of srcs) {
        if (s.n === 0) continue;
        rt.assertLoopTrips(kern.spec.name, plan.trips(s.n));
        rt.dispatch(
          kern,
          [qb, s.k, s.v, mask, statsb, dOb, dqb],
          {
            [plan.unitParam]: plan.units(nq),
            ...common,
            nkeys: s.n,
            maskOff: s.off,
            accumulate,
          },
          plan.gridOf(plan.units(nq)),
        );
        accumulate = 1;
      }
    }
    srcs.forEach((s, i) => {
      const [dk, dv] = kv[i]!;
      if (!dk || !dv || s.n === 0) return;
      const kern = plan.tiled
        ? tiledDkvKernel(d, hasMask, plan.block, plan.tile, dtype)
        : dkvKernel(d, hasMask, plan.rows, dtype);
      rt.assertLoopTrips(kern.spec.name, plan.trips(nq));
      rt.dispatch(
        kern,
        [qb, s.k, s.v, mask, statsb, dOb, w.of(dk, true), w.of(dv, true)],
        { [plan.unitParam]: plan.units(s.n), ...common, nkeys: s.n, maskOff: s.off },
        plan.gridOf(plan.units(s.n)),
      );
    });
    w.dispose();
  }
  return { dq, kv };
}
