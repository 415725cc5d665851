/**
 * Declaring a model's parameters: modules register named parameter specs on a
 * {@linkcode ParamBuilder} when constructed and keep {@linkcode ParamRef}s; the builder then
 * lays every parameter out in one {@linkcode ParamTable}, and the refs resolve to its views.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { type ParamGroupSpec, type ParamSpec, ParamTable } from "./params.ts";

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

/** Decides a parameter's optimizer group from its name and shape. */
export type GroupFn = (name: string, shape: readonly number[]) => ParamGroupSpec;

/** Collects parameter declarations, then builds the table. */
export class ParamBuilder {
  readonly #specs: Omit<ParamSpec, "decay" | "lrGroup">[] = [];
  #table: ParamTable | null = null;

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
   * @param options Table options (buffer size).
   * @returns The table.
   */
  build(group: GroupFn, options: { chunkBytes?: number | undefined } = {}): ParamTable {
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
