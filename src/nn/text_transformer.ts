/**
 * The SigLIP text tower (open_clip TextTransformer as PS3 configures it): token and position
 * embeddings, pre-norm blocks attending both ways (no causal or padding mask), final
 * LayerNorm, pooling of the LAST position, and a Linear projection with bias.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { add } from "../ops/elementwise.ts";
import { embedding } from "../ops/gather.ts";
import { slice, split } from "../ops/layout.ts";
import { attention } from "../ops/attention.ts";
import { matmul } from "../ops/matmul.ts";
import { cast } from "../ops/cast.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import { reshape } from "../ops/shape.ts";
import { checkpoint } from "../autograd/checkpoint.ts";
import { normal, zeros } from "./init.ts";
import { LayerNorm, Linear } from "./linear.ts";
import { Mlp } from "./mlp.ts";
import type { ModelKernels, ParamBuilder, ParamRef } from "./module.ts";
import type { Rng } from "../util/rng.ts";

/** Resolved text configuration. */
export interface TextConfig {
  /** Tokens per caption. */
  context: number;
  /** Vocabulary. */
  vocab: number;
  /** Width. */
  width: number;
  /** Heads. */
  heads: number;
  /** Blocks. */
  layers: number;
  /** MLP hidden. */
  mlpHidden: number;
  /** LayerNorm eps. */
  eps: number;
  /** Output width (joint embedding). */
  outputDim: number;
  /** prompt_proj width (vision width). */
  promptProjDim: number;
  /** MLP activation (exact GELU when absent; tanh GELU for SigLIP2's `act_kwargs`). */
  act?: "gelu" | "gelu_tanh" | undefined;
  /** The fields as given (no defaults filled in), for converted configs. */
  raw: Record<string, unknown>;
}

/** One open_clip ResidualAttentionBlock (ln_1, attn in_proj/out_proj, ln_2, mlp c_fc/c_proj). */
export class TextBlock {
  /** Pre-attention norm. */
  readonly ln1: LayerNorm;
  /** Fused q, k, v projection weight [3W, W]. */
  readonly inProjWeight: ParamRef;
  /** Its bias [3W]. */
  readonly inProjBias: ParamRef;
  /** Attention output projection. */
  readonly outProj: Linear;
  /** Pre-MLP norm. */
  readonly ln2: LayerNorm;
  /** The MLP (c_fc, c_proj). */
  readonly mlp: Mlp;
  /** Width. */
  readonly width: number;
  /** Heads. */
  readonly heads: number;
  /** The model's kernel choices. */
  readonly kernels: ModelKernels;

  /**
   * Declares the block's norms, attention projections and MLP on the builder.
   *
   * @param b Parameter builder.
   * @param name Prefix, e.g. "text_model.transformer.resblocks.0".
   * @param rng Generator (open_clip's initialisation).
   * @param t Sizes.
   */
  constructor(b: ParamBuilder, name: string, rng: Rng, t: TextConfig) {
    const w = t.width;
    const attnStd = w ** -0.5,
      projStd = w ** -0.5 * (2 * t.layers) ** -0.5,
      fcStd = (2 * w) ** -0.5;
    this.width = w;
    this.heads = t.heads;
    this.kernels = b.kernels;
    this.ln1 = new LayerNorm(b, `${name}.ln_1`, w, t.eps);
    this.inProjWeight = b.add(`${name}.attn.in_proj_weight`, [3 * w, w], normal(rng, attnStd));
    this.inProjBias = b.add(`${name}.attn.in_proj_bias`, [3 * w], zeros);
    this.outProj = new Linear(b, `${name}.attn.out_proj`, rng, w, w, {
      weightInit: normal(rng, projStd),
      biasInit: zeros,
    });
    this.ln2 = new LayerNorm(b, `${name}.ln_2`, w, t.eps);
    this.mlp = new Mlp(b, `${name}.mlp`, rng, [w, t.mlpHidden, w], {
      names: ["c_fc", "c_proj"],
      act: t.act ?? "gelu",
      weightInits: [normal(rng, fcStd), normal(rng, projStd)],
    });
  }

  /**
   * Runs the block: bidirectional attention, then the MLP, both residual.
   *
   * @param x [B, T, W].
   * @returns [B, T, W].
   */
  forward(x: Tensor): Tensor {
    const w = this.width;
    const h = this.ln1.forward(x);
    // nn.MultiheadAttention's fused input projection (rows q; k; v).
    const qkv = matmul(h, this.inProjWeight.value, {
      transB: true,
      bias: this.inProjBias.value,
      kernel: this.kernels.matmul,
    });
    const [q, k, v] = split(qkv, [w, w, w], { axis: -1 }) as [Tensor, Tensor, Tensor];
    // Both residual adds run in the matmuls of out_proj and c_proj.
    const y = this.outProj.forward(
      attention(q, k, v, { heads: this.heads, kernel: this.kernels.attention }),
      { residual: x },
    );
    return this.mlp.forward(this.ln2.forward(y), { residual: y });
  }
}

/** The text tower. */
export class TextTransformer {
  /** Token embedding [V, W]. */
  readonly tokenEmbedding: ParamRef;
  /** Position embedding [T, W]. */
  readonly positionalEmbedding: ParamRef;
  /** Blocks. */
  readonly blocks: TextBlock[];
  /** Final norm. */
  readonly lnFinal: LayerNorm;
  /** Projection to the joint embedding. */
  readonly projection: Linear;
  /** Sizes. */
  readonly config: TextConfig;
  /** Storage of the blocks' activations (the builder's `kernels.activations`). */
  readonly activations: FloatDType;

  /**
   * Declares the embeddings, blocks, final norm and projection on the builder.
   *
   * @param b Parameter builder.
   * @param name Prefix ("text_model").
   * @param rng Generator.
   * @param t Sizes.
   */
  constructor(b: ParamBuilder, name: string, rng: Rng, t: TextConfig) {
    this.config = t;
    this.activations = b.kernels.activations ?? "f32";
    // PyTorch's state_dict order: the module's own parameter before the embedding module's.
    this.positionalEmbedding = b.add(
      `${name}.positional_embedding`,
      [t.context, t.width],
      normal(rng, 0.01),
    );
    this.tokenEmbedding = b.add(
      `${name}.token_embedding.weight`,
      [t.vocab, t.width],
      normal(rng, 0.02),
    );
    this.blocks = [...Array(t.layers).keys()].map((i) =>
      new TextBlock(b, `${name}.transformer.resblocks.${i}`, rng, t)
    );
    this.lnFinal = new LayerNorm(b, `${name}.ln_final`, t.width, t.eps);
    this.projection = new Linear(b, `${name}.text_projection`, rng, t.width, t.outputDim, {
      weightInit: normal(rng, t.width ** -0.5),
      biasInit: zeros,
    });
  }

  /**
   * Encodes token ids into text embeddings (the last position's features, projected).
   *
   * @param tokens Token ids [B, T] i32 (T = context length).
   * @param options Recompute block activations in the backward pass.
   * @returns Text embeddings [B, outputDim] (not normalised).
   */
  forward(tokens: Tensor, options: { checkpoint?: boolean | undefined } = {}): Tensor {
    const [batch, len] = tokens.shape as [number, number];
    if (len !== this.config.context) {
      throw new RangeError(
        `Text tower takes ${this.config.context} tokens per caption, got ${len}`,
      );
    }
    let x = add(embedding(this.tokenEmbedding.value, tokens), this.positionalEmbedding.value);
    // The blocks run in the activation dtype: the f32 embeddings are cast here.
    x = cast(x, this.activations);
    for (const blk of this.blocks) {
      x = options.checkpoint ? checkpoint((h) => [blk.forward(h)], [x])[0]! : blk.forward(x);
    }
    x = this.lnFinal.forward(x);
    const last = reshape(slice(x, { axis: 1, start: len - 1, end: len }), [
      batch,
      this.config.width,
    ]);
    // The text embeddings are f32 (they feed the logits): cast before the projection.
    return this.projection.forward(cast(last, "f32"));
  }
}
