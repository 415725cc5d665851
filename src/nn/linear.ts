/**
 * Linear layers (`y = x W^T + b`, PyTorch's nn.Linear layout) and LayerNorm.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import { matmul, type MatmulActivation, type MatmulKernel } from "../ops/matmul.ts";
import { layerNorm } from "../ops/norm.ts";
import { reshape } from "../ops/shape.ts";
import { type Init, ones, torchDefault, zeros } from "./init.ts";
import type { ParamBuilder, ParamRef } from "./module.ts";
import type { Rng } from "../util/rng.ts";

/** Options of {@linkcode Linear}. */
export interface LinearOptions {
  /** With a bias (default true). */
  bias?: boolean | undefined;
  /** Weight initialiser (default PyTorch's uniform bound 1/sqrt(in)). */
  weightInit?: Init | undefined;
  /** Bias initialiser (default PyTorch's uniform bound 1/sqrt(in)). */
  biasInit?: Init | undefined;
  /** Store the weight with this shape (e.g. [out, in, 1, 1] for a 1x1 conv). */
  weightShape?: readonly number[] | undefined;
}

/** Epilogues {@linkcode Linear.forward} fuses into the layer's matmul. */
export interface LinearForwardOptions {
  /** Added to the output ([..., out]): a residual connection, `residual + x W^T + b`. */
  residual?: Tensor | undefined;
  /** Applied to the output: `act(x W^T + b)`. Not with `residual`. */
  activation?: MatmulActivation | undefined;
  /**
   * Storage of the output (default: f16 when x is an f16 activation, else f32): "f32" gives
   * an f16 input an f32 output, summed in f32 and stored without rounding to f16.
   */
  dtype?: FloatDType | undefined;
}

/** `y = x W^T + b` over the last dim. */
export class Linear {
  /** Weight [out, in]. */
  readonly weight: ParamRef;
  /** Bias [out], or null. */
  readonly bias: ParamRef | null;
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;
  /** The matmul kernel choice of the model. */
  readonly kernel: MatmulKernel | undefined;

  /**
   * Declares the weight (and bias) on the builder.
   *
   * @param b Parameter builder.
   * @param name Name prefix (".weight" and ".bias" are appended).
   * @param rng Generator for the default initialisation.
   * @param inFeatures Input size.
   * @param outFeatures Output size.
   * @param options Bias and initialisers.
   */
  constructor(
    b: ParamBuilder,
    name: string,
    rng: Rng,
    inFeatures: number,
    outFeatures: number,
    options: LinearOptions = {},
  ) {
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.kernel = b.kernels.matmul;
    this.weight = b.add(
      `${name}.weight`,
      options.weightShape ?? [outFeatures, inFeatures],
      options.weightInit ?? torchDefault(rng, inFeatures),
    );
    this.bias = options.bias === false
      ? null
      : b.add(`${name}.bias`, [outFeatures], options.biasInit ?? torchDefault(rng, inFeatures));
  }

  /**
   * Applies the layer to the last dim of `x`, with an optional residual add or activation
   * fused into the same pass (results equal to the separate ops; see `matmul()`).
   *
   * @param x [..., in].
   * @param options Residual or activation.
   * @returns [..., out].
   */
  forward(x: Tensor, options: LinearForwardOptions = {}): Tensor {
    const w = this.weight.value;
    const w2 = w.rank === 2 ? w : reshape(w, [this.outFeatures, this.inFeatures]);
    return matmul(x, w2, {
      transB: true,
      bias: this.bias?.value,
      residual: options.residual,
      activation: options.activation,
      kernel: this.kernel,
      dtype: options.dtype,
    });
  }
}

/** LayerNorm over the last dim with weight and bias. */
export class LayerNorm {
  /** Scale [C]. */
  readonly weight: ParamRef;
  /** Shift [C]. */
  readonly bias: ParamRef;
  /** Epsilon. */
  readonly eps: number;

  /**
   * Declares the weight (ones) and bias (zeros) on the builder.
   *
   * @param b Parameter builder.
   * @param name Name prefix.
   * @param dim Normalised size.
   * @param eps Epsilon (PyTorch's default 1e-5; timm and open_clip use 1e-6).
   */
  constructor(b: ParamBuilder, name: string, dim: number, eps: number) {
    this.weight = b.add(`${name}.weight`, [dim], ones);
    this.bias = b.add(`${name}.bias`, [dim], zeros);
    this.eps = eps;
  }

  /**
   * Normalises `x` over its last dim, then scales and shifts it.
   *
   * @param x [..., C].
   * @returns The normalised tensor.
   */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, { eps: this.eps });
  }
}
