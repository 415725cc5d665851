/**
 * Storage types of float tensors (issue 14's f16 activations): the WGSL element type of a
 * binding and the `enable f16;` line a shader needs when any of its bindings stores f16.
 *
 * Kernels take the element type of each binding through a `{{T}}`-style placeholder (one per
 * binding when an op mixes dtypes, e.g. `{{TA}}`, `{{TY}}`) and `{{ENABLE}}` as the shader's
 * first line; kernel cache keys include the dtypes.
 *
 * @module
 */

import type { DType } from "../autograd/tensor.ts";

/** Storage type of a float tensor: f32, or f16 (activations with `train.precision: f16`). */
export type FloatDType = "f32" | "f16";

/**
 * The WGSL scalar type that stores a float dtype.
 *
 * @param dtype Storage type.
 * @returns `"f32"` or `"f16"`.
 * @example
 * ```ts
 * const src = `var<storage, read> x: array<${wgslType("f16")}>;`;
 * ```
 */
export function wgslType(dtype: FloatDType): "f32" | "f16" {
  if (dtype !== "f32" && dtype !== "f16") {
    throw new TypeError(`Cannot store floats as "${dtype}": not f32 or f16`);
  }
  return dtype;
}

/**
 * The `{{ENABLE}}` line of a shader whose bindings have these dtypes.
 *
 * @param dtypes The dtypes of the shader's bindings.
 * @returns `"enable f16;"` when any is f16, else the empty string.
 * @example
 * ```ts
 * enableF16("f16", "f32"); // "enable f16;"
 * ```
 */
export function enableF16(...dtypes: DType[]): string {
  return dtypes.includes("f16") ? "enable f16;" : "";
}

/**
 * Asserts that a tensor dtype is a float storage type.
 *
 * @param dtype The dtype.
 * @param what The op and operand, for the error.
 * @returns The dtype, narrowed.
 */
export function floatDType(dtype: DType, what: string): FloatDType {
  if (dtype !== "f32" && dtype !== "f16") {
    throw new TypeError(`${what} takes f32 or f16 tensors, got ${dtype}`);
  }
  return dtype;
}
