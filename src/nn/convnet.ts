/**
 * PS3's high-res selection ConvNet (ShallowConvNet): a stride-k patch stem with channel
 * LayerNorm, ConvNeXt blocks, and a 1x1 output projection. Feature maps are channels-last
 * [B, H, W, C] throughout (the reference is NCHW; the math is the same).
 *
 * Storage (issue 14): the feature maps are stored in the model's activation dtype (f16 with
 * `train.precision: f16`, as the reference's conv and linear layers run under AMP autocast):
 * the image's unfolded patches (the stem matmul's A operand), the stem's output and the
 * blocks. What stays f32: the input image, the layer-norm statistics (inside the kernel), and
 * the output projection, which sums in f32 and stores f32 (the features feed the selection
 * logits, which stay f32).
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { add, gelu, mul } from "../ops/elementwise.ts";
import { depthwiseConv2d } from "../ops/conv.ts";
import { matmul, type MatmulKernel } from "../ops/matmul.ts";
import { patchify } from "../ops/patch.ts";
import { reshape } from "../ops/shape.ts";
import { constant, torchDefault } from "./init.ts";
import { LayerNorm, Linear } from "./linear.ts";
import type { ParamBuilder, ParamRef } from "./module.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import type { Rng } from "../util/rng.ts";

/** A ConvNeXt block (timm, channels-last MLP): dwconv 7x7 -> LN -> MLP -> scale -> +x. */
export class ConvNextBlock {
  /** Depthwise conv weight [C, 1, 7, 7]. */
  readonly dwWeight: ParamRef;
  /** Depthwise conv bias [C]. */
  readonly dwBias: ParamRef;
  /** Norm over channels. */
  readonly norm: LayerNorm;
  /** Expansion. */
  readonly fc1: Linear;
  /** Projection. */
  readonly fc2: Linear;
  /** Layer scale ("weight" in the HF checkpoint; timm's gamma), init 1e-6. */
  readonly scale: ParamRef;

  /**
   * Declares the depthwise conv, norm, MLP and layer scale on the builder.
   *
   * @param b Parameter builder.
   * @param name Prefix, e.g. "...highres_selection_feature_module.blocks.0".
   * @param rng Generator.
   * @param c Channels.
   */
  constructor(b: ParamBuilder, name: string, rng: Rng, c: number) {
    this.scale = b.add(`${name}.weight`, [c], constant(1e-6));
    this.dwWeight = b.add(`${name}.conv_dw.weight`, [c, 1, 7, 7], torchDefault(rng, 49));
    this.dwBias = b.add(`${name}.conv_dw.bias`, [c], torchDefault(rng, 49));
    this.norm = new LayerNorm(b, `${name}.norm`, c, 1e-6);
    this.fc1 = new Linear(b, `${name}.mlp.fc1`, rng, c, 4 * c);
    this.fc2 = new Linear(b, `${name}.mlp.fc2`, rng, 4 * c, c);
  }

  /**
   * Applies the block to a channels-last feature map.
   *
   * @param x [B, H, W, C].
   * @returns [B, H, W, C].
   */
  forward(x: Tensor): Tensor {
    const h = depthwiseConv2d(x, this.dwWeight.value, { bias: this.dwBias.value, padding: 3 });
    const m = this.fc2.forward(gelu(this.fc1.forward(this.norm.forward(h))));
    return add(x, mul(m, this.scale.value));
  }
}

/** Sizes of the ConvNet. */
export interface ConvNetDims {
  /** Hidden channels. */
  hidden: number;
  /** Output channels. */
  out: number;
  /** ConvNeXt blocks. */
  depth: number;
  /** Stem kernel = stride. */
  kernel: number;
}

/** The ShallowConvNet. */
export class ShallowConvNet {
  /** Stem conv weight [hidden, 3, k, k]. */
  readonly stemWeight: ParamRef;
  /** Stem conv bias. */
  readonly stemBias: ParamRef;
  /** Channel LayerNorm after the stem (LayerNorm2d, eps 1e-6). */
  readonly stemNorm: LayerNorm;
  /** Blocks. */
  readonly blocks: ConvNextBlock[];
  /** 1x1 output conv. */
  readonly outProj: Linear;
  /** Sizes. */
  readonly dims: ConvNetDims;
  /** The matmul kernel choice of the model (the stem). */
  readonly kernel: MatmulKernel | undefined;
  /** Storage of the feature maps (the builder's `kernels.activations`, default f32). */
  readonly activations: FloatDType;

  /**
   * Declares the stem, the ConvNeXt blocks and the output conv on the builder.
   *
   * @param b Parameter builder.
   * @param name Prefix ("vision_model.highres_selection_feature_module").
   * @param rng Generator.
   * @param dims Sizes.
   */
  constructor(b: ParamBuilder, name: string, rng: Rng, dims: ConvNetDims) {
    const { hidden, out, depth, kernel } = dims;
    this.dims = dims;
    this.kernel = b.kernels.matmul;
    this.activations = b.kernels.activations ?? "f32";
    const fan = 3 * kernel * kernel;
    this.stemWeight = b.add(
      `${name}.stem.0.weight`,
      [hidden, 3, kernel, kernel],
      torchDefault(rng, fan),
    );
    this.stemBias = b.add(`${name}.stem.0.bias`, [hidden], torchDefault(rng, fan));
    this.stemNorm = new LayerNorm(b, `${name}.stem.1`, hidden, 1e-6);
    this.blocks = [...Array(depth).keys()].map((i) =>
      new ConvNextBlock(b, `${name}.blocks.${i}`, rng, hidden)
    );
    this.outProj = new Linear(b, `${name}.out_proj`, rng, hidden, out, {
      weightShape: [out, hidden, 1, 1],
    });
  }

  /**
   * Computes the selection feature map of an image.
   *
   * @param image [B, 3, S, S] (S a multiple of the kernel), f32.
   * @returns Features [B, S/k, S/k, out], f32.
   */
  forward(image: Tensor): Tensor {
    const [batch, , h, w] = image.shape as [number, number, number, number];
    const { hidden, kernel } = this.dims;
    const gh = h / kernel, gw = w / kernel;
    const wStem = reshape(this.stemWeight.value, [hidden, 3 * kernel * kernel]);
    // The image is f32; its patches are stored in the activation dtype (the stem matmul's
    // f16 tiles round them the same way).
    const tokens = matmul(patchify(image, kernel, this.activations), wStem, {
      transB: true,
      bias: this.stemBias.value,
      kernel: this.kernel,
      dtype: this.activations,
    });
    let x = reshape(this.stemNorm.forward(tokens), [batch, gh, gw, hidden]);
    for (const blk of this.blocks) x = blk.forward(x);
    // f32 from here: the features feed the selection logits.
    return this.outProj.forward(x, { dtype: "f32" });
  }
}
