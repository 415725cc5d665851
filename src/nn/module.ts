/**
 * Declaring a model's parameters: modules register named parameter specs on a
 * {@linkcode ParamBuilder} when constructed and keep {@linkcode ParamRef}s; the builder then
 * lays every parameter out in one {@linkcode ParamTable}, and the refs resolve to its views.
 * The builder also carries the model's kernel choices ({@linkcode ModelKernels}), which the
 * modules read when constructed: a value of the model, not a process-wide switch.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import type { MatmulKernel } from "../ops/matmul.ts";
import type { AttentionKernel } from "../ops/attention.ts";
import type { FloatDType } from "../ops/storage_type.ts";
import {
  type GroupFn,
  type ParamSpec,
  ParamTable,
  type ParamTableOptions,
  SINGLE_GROUP,
} from "../params/param_table.ts";

export { type GroupFn, SINGLE_GROUP };

/** A handle on a parameter, usable once the table is built. */
export class ParamRef {
  /** Hugging Face name. */
  readonly name: string;
  /** Shape. */
  readonly shape: readonly number[];
  readonly #builder: ParamBuilder;

  /**
   * Creates a handle; modules get theirs from {@linkcode ParamBuilder} instead.
   *
   * @param builder The builder that owns it.
   * @param name Hugging Face name.
   * @param shape Shape.
   */
  constructor(builder: ParamBuilder, name: string, shape: readonly number[]) {
    this.#builder = builder;
    this.name = name;
    this.shape = shape;
  }

  /** The parameter tensor (throws before the table is built). */
  get value(): Tensor {
    return this.#builder.table.get(this.name).value;
  }
}

/**
 * The kernel choices of a model's ops (default: each adapter's choice) and the storage of its
 * activations. A model in float16 (`train.precision: f16`) passes
 * `{ matmul: { variant: "tiled-f16" }, activations: "f16" }`.
 */
export interface ModelKernels {
  /**
   * Storage of the transformer activations (default f32): with "f16" the patch and token
   * embeddings store their result in f16, the blocks, the selection ConvNet (patches and
   * feature maps) and the selection MLP run on f16 tensors (f32 arithmetic); the input
   * images and the trunk's patches, the pooled features, the text embeddings, the selection logits and
   * probabilities and the losses stay f32.
   */
  activations?: FloatDType | undefined;
  /** The matmuls of the modules (linear layers, projections, patch embeddings). */
  matmul?: MatmulKernel | undefined;
  /** The attention of the blocks and pools. */
  attention?: AttentionKernel | undefined;
}

/** Collects parameter declarations, then builds the table. */
export class ParamBuilder {
  readonly #specs: Omit<ParamSpec, "decay" | "lrGroup">[] = [];
  #table: ParamTable | null = null;
  /** The kernel choices the modules built on this builder use. */
  readonly kernels: ModelKernels;

  /**
   * Starts a model's declarations.
   *
   * @param options The kernel choices of the model's ops (default: the adapter's).
   */
  constructor(options: { kernels?: ModelKernels | undefined } = {}) {
    this.kernels = options.kernels ?? {};
  }

  /**
   * Declares a parameter.
   *
   * @param name Hugging Face name.
   * @param shape Shape.
   * @param init Fills the initial values.
   * @returns A handle for the module.
   */
  add(name: string, shape: readonly number[], init: (out: Float32Array) => void): ParamRef {
    if (this.#table) throw new Error(`Cannot add "${name}": the parameter table is already built`);
    this.#specs.push({ name, shape, init });
    return new ParamRef(this, name, shape);
  }

  /** The declarations so far (name, shape, init). */
  get specs(): readonly Omit<ParamSpec, "decay" | "lrGroup">[] {
    return this.#specs;
  }

  /**
   * Lays out and uploads every declared parameter.
   *
   * @param group Optimizer group of each parameter.
   * @param options Table options (buffer size, gradients, initialisation).
   * @returns The table.
   */
  build(group: GroupFn, options: ParamTableOptions = {}): ParamTable {
    if (this.#table) throw new Error("The parameter table is already built");
    this.#table = new ParamTable(
      this.#specs.map((s) => ({ ...s, ...group(s.name, s.shape) })),
      options,
    );
    return this.#table;
  }

  /** The built table (throws before {@linkcode ParamBuilder.build}). */
  get table(): ParamTable {
    if (!this.#table) throw new Error("The parameter table is not built yet: call build()");
    return this.#table;
  }
}
