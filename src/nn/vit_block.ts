/**
 * The ViT block of PS3 (timm Block with a key/value cache): pre-norm attention whose keys
 * and values are [cached low-res k, v ; own k, v], then a pre-norm MLP, both residual.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { split } from "../ops/layout.ts";
import { attention, type AttentionKernel } from "../ops/attention.ts";
import type { Init } from "./init.ts";
import { LayerNorm, Linear } from "./linear.ts";
import { type Activation, Mlp } from "./mlp.ts";
import type { ParamBuilder } from "./module.ts";
import type { Rng } from "../util/rng.ts";

/** Sizes of a block. */
export interface BlockDims {
  /** Width C. */
  width: number;
  /** Heads. */
  heads: number;
  /** MLP hidden size. */
  mlpHidden: number;
  /** LayerNorm eps. */
  eps: number;
}

/** Key/value cache of one block: [B, N, C] each (heads contiguous inside C). */
export interface KvCache {
  /** Keys. */
  k: Tensor;
  /** Values. */
  v: Tensor;
}

/** What a block returns. */
export interface BlockOutput {
  /** The block output [B, N, C]. */
  x: Tensor;
  /** The block's own keys and values (the low-res pass keeps them as the cache). */
  kv: KvCache;
}

/** One transformer block with timm's names (norm1, attn.qkv, attn.proj, norm2, mlp). */
export class VitBlock {
  /** Pre-attention norm. */
  readonly norm1: LayerNorm;
  /** Fused q, k, v projection [3C, C] (rows q; k; v). */
  readonly qkv: Linear;
  /** Output projection. */
  readonly proj: Linear;
  /** Pre-MLP norm. */
  readonly norm2: LayerNorm;
  /** The MLP. */
  readonly mlp: Mlp;
  /** Sizes. */
  readonly dims: BlockDims;
  /** The attention kernel choice of the model. */
  readonly kernel: AttentionKernel | undefined;

  /**
   * Declares the block's norms, attention projections and MLP on the builder.
   *
   * @param b Parameter builder.
   * @param name Name prefix, e.g. "vision_model.trunk.blocks.3".
   * @param rng Generator for initialisation.
   * @param dims Sizes.
   * @param init Weight and bias initialisers of the linear layers.
   * @param act MLP activation.
   */
  constructor(
    b: ParamBuilder,
    name: string,
    rng: Rng,
    dims: BlockDims,
    init: { weight: Init; bias: Init },
    act: Activation = "gelu",
  ) {
    const c = dims.width;
    const lin = { weightInit: init.weight, biasInit: init.bias };
    this.dims = dims;
    this.kernel = b.kernels.attention;
    this.norm1 = new LayerNorm(b, `${name}.norm1`, c, dims.eps);
    this.qkv = new Linear(b, `${name}.attn.qkv`, rng, c, 3 * c, lin);
    this.proj = new Linear(b, `${name}.attn.proj`, rng, c, c, lin);
    this.norm2 = new LayerNorm(b, `${name}.norm2`, c, dims.eps);
    this.mlp = new Mlp(b, `${name}.mlp`, rng, [c, dims.mlpHidden, c], {
      act,
      weightInits: [init.weight, init.weight],
      biasInits: [init.bias, init.bias],
    });
  }

  /**
   * Runs the block: attention over the cache and the own keys, then the MLP, both residual.
   *
   * @param x Tokens [B, N, C].
   * @param cache Keys and values attended before the own ones (the low-res cache), or null.
   * @returns The output and the block's own keys and values.
   */
  forward(x: Tensor, cache: KvCache | null): BlockOutput {
    const c = this.dims.width;
    const qkv = this.qkv.forward(this.norm1.forward(x));
    const [q, k, v] = split(qkv, [c, c, c], { axis: -1 }) as [Tensor, Tensor, Tensor];
    const a = attention(q, k, v, {
      heads: this.dims.heads,
      cache: cache ?? undefined,
      kernel: this.kernel,
    });
    // Both residual adds run in the matmuls of attn.proj and mlp.fc2.
    const h = this.proj.forward(a, { residual: x });
    return { x: this.mlp.forward(this.norm2.forward(h), { residual: h }), kv: { k, v } };
  }
}
