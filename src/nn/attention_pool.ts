/**
 * The MAP head (timm AttentionPoolLatent): one learned latent query attends over the tokens
 * (optionally only a masked subset), then `x + mlp(norm(x))`.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { broadcastTo } from "../ops/elementwise.ts";
import { split } from "../ops/layout.ts";
import { attention, type AttentionKernel } from "../ops/attention.ts";
import { reshape } from "../ops/shape.ts";
import type { Init } from "./init.ts";
import { LayerNorm, Linear } from "./linear.ts";
import { type Activation, Mlp } from "./mlp.ts";
import type { ParamBuilder, ParamRef } from "./module.ts";
import type { Rng } from "../util/rng.ts";

/** Attention pooling with a latent query. */
export class AttentionPool {
  /** Latent query [1, 1, C]. */
  readonly latent: ParamRef;
  /** Query projection. */
  readonly q: Linear;
  /** Key/value projection [2C, C] (rows k; v). */
  readonly kv: Linear;
  /** Output projection. */
  readonly proj: Linear;
  /** Norm before the MLP. */
  readonly norm: LayerNorm;
  /** The MLP. */
  readonly mlp: Mlp;
  /** Heads. */
  readonly heads: number;
  /** Width. */
  readonly width: number;
  /** The attention kernel choice of the model. */
  readonly kernel: AttentionKernel | undefined;

  /**
   * Declares the latent query, projections, norm and MLP on the builder.
   *
   * @param b Parameter builder.
   * @param name Name prefix ("vision_model.trunk.attn_pool").
   * @param rng Generator.
   * @param dims Width, heads, MLP hidden, eps.
   * @param init Initialisers: latent, linear weights, linear biases.
   * @param act MLP activation.
   */
  constructor(
    b: ParamBuilder,
    name: string,
    rng: Rng,
    dims: { width: number; heads: number; mlpHidden: number; eps: number },
    init: { latent: Init; weight: Init; bias: Init },
    act: Activation,
  ) {
    const c = dims.width;
    const lin = { weightInit: init.weight, biasInit: init.bias };
    this.width = c;
    this.heads = dims.heads;
    this.kernel = b.kernels.attention;
    this.latent = b.add(`${name}.latent`, [1, 1, c], init.latent);
    this.q = new Linear(b, `${name}.q`, rng, c, c, lin);
    this.kv = new Linear(b, `${name}.kv`, rng, c, 2 * c, lin);
    this.proj = new Linear(b, `${name}.proj`, rng, c, c, lin);
    this.norm = new LayerNorm(b, `${name}.norm`, c, dims.eps);
    this.mlp = new Mlp(b, `${name}.mlp`, rng, [c, dims.mlpHidden, c], {
      act,
      weightInits: [init.weight, init.weight],
      biasInits: [init.bias, init.bias],
    });
  }

  /**
   * Pools tokens into one feature per sample by attention from the latent query.
   *
   * @param x Tokens [B, N, C].
   * @param mask Key mask [B, N] (0 = ignore) or null.
   * @returns Pooled features [B, C].
   */
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [batch] = x.shape as [number];
    const c = this.width;
    const q = broadcastTo(this.q.forward(this.latent.value), [batch, 1, c]);
    const [k, v] = split(this.kv.forward(x), [c, c], { axis: -1 }) as [Tensor, Tensor];
    const a = this.proj.forward(
      attention(q, k, v, { heads: this.heads, keyMask: mask ?? undefined, kernel: this.kernel }),
    );
    // The residual add runs in the matmul of mlp.fc2.
    const y = this.mlp.forward(this.norm.forward(a), { residual: a });
    return reshape(y, [batch, c]);
  }
}
