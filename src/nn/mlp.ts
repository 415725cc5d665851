/**
 * timm's Mlp: fc1 -> activation -> (optional LayerNorm) -> fc2.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import type { MatmulActivation } from "../ops/matmul.ts";
import type { Init } from "./init.ts";
import { LayerNorm, Linear } from "./linear.ts";
import type { ParamBuilder } from "./module.ts";
import type { Rng } from "../util/rng.ts";

/** Activations an Mlp may use (fused into fc1's matmul). */
export type Activation = MatmulActivation;

/** Options of {@linkcode Mlp}. */
export interface MlpOptions {
  /** Activation (default exact GELU). */
  act?: Activation | undefined;
  /** LayerNorm after the activation with this eps (timm `norm_layer`), or none. */
  normEps?: number | undefined;
  /** Names of the two layers (default "fc1", "fc2"; open_clip text uses "c_fc", "c_proj"). */
  names?: readonly [string, string] | undefined;
  /** Weight initialisers of the two layers (default PyTorch's). */
  weightInits?: readonly [Init, Init] | undefined;
  /** Bias initialisers of the two layers (default PyTorch's). */
  biasInits?: readonly [Init, Init] | undefined;
}

/** A two-layer perceptron. */
export class Mlp {
  /** First layer. */
  readonly fc1: Linear;
  /** Optional norm after the activation. */
  readonly norm: LayerNorm | null;
  /** Second layer. */
  readonly fc2: Linear;
  /** Activation. */
  readonly act: Activation;

  /**
   * Declares both layers (and the optional norm) on the builder.
   *
   * @param b Parameter builder.
   * @param name Name prefix.
   * @param rng Generator for initialisation.
   * @param dims [in, hidden, out].
   * @param options Activation, norm, names, initialisers.
   */
  constructor(
    b: ParamBuilder,
    name: string,
    rng: Rng,
    dims: readonly [number, number, number],
    options: MlpOptions = {},
  ) {
    const [n1, n2] = options.names ?? ["fc1", "fc2"];
    const [i, h, o] = dims;
    this.fc1 = new Linear(b, `${name}.${n1}`, rng, i, h, {
      weightInit: options.weightInits?.[0],
      biasInit: options.biasInits?.[0],
    });
    this.norm = options.normEps === undefined
      ? null
      : new LayerNorm(b, `${name}.norm`, h, options.normEps);
    this.fc2 = new Linear(b, `${name}.${n2}`, rng, h, o, {
      weightInit: options.weightInits?.[1],
      biasInit: options.biasInits?.[1],
    });
    this.act = options.act ?? "gelu";
  }

  /**
   * Applies fc1, the activation, the optional norm and fc2 to the last dim of `x`; the
   * activation runs in fc1's matmul and the optional residual add in fc2's.
   *
   * @param x [..., in].
   * @param options A residual [..., out] added to the output (`residual + mlp(x)`), and the
   *   output's storage (default: x's; "f32" keeps an f16 MLP's output in f32, see
   *   `Linear.forward`).
   * @returns [..., out].
   */
  forward(
    x: Tensor,
    options: { residual?: Tensor | undefined; dtype?: FloatDType | undefined } = {},
  ): Tensor {
    let h = this.fc1.forward(x, { activation: this.act });
    if (this.norm) h = this.norm.forward(h);
    return this.fc2.forward(h, { residual: options.residual, dtype: options.dtype });
  }
}
