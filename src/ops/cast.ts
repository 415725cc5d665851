/**
 * Converting float storage, f32 <-> f16 (issue 14's f16 activations): `cast()` with autograd,
 * the gradient cast back to the input's dtype.
 *
 * The f32 -> f16 store rounds to nearest even, values past the f16 range become infinity
 * and NaN stays NaN (tests/ops/cast_test.ts checks this bit for bit against the host
 * reference `roundF16` of src/reference/cast.ts). f16 -> f32 is exact.
 *
 * @module
 */

import { cast as castSrc } from "../../wgsl/sources.ts";
import { defineKernel, grid, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { empty, tensor } from "./creation.ts";
import { enableF16, type FloatDType, floatDType, wgslType } from "./storage_type.ts";

const kernels = new KernelCache();

/**
 * Converts a tensor's storage type; the same tensor (an alias) when it already has it.
 *
 * @param x Input (f32 or f16).
 * @param dtype The storage type of the result.
 * @returns x in `dtype`; its gradient is cast back to x's dtype.
 * @example
 * ```ts
 * const h = cast(tensor([1, 2, 3]), "f16");
 * ```
 */
export function cast(x: Tensor, dtype: FloatDType): Tensor {
  x.assertAlive();
  const from = floatDType(x.dtype, "cast()");
  wgslType(dtype);
  if (from === dtype) {
    const y = x.alias(x.shape);
    record("cast", [x], [y], ([g]) => [g!]);
    return y;
  }
  const y = castRaw(x, dtype);
  record("cast", [x], [y], ([g]) => [castRaw(g!, from)]);
  return y;
}

/**
 * Uploads f32 host data and stores it as f16 (for tests and fixtures): each value becomes
 * its float16 rounding.
 *
 * @param data Values in row-major order.
 * @param shape Dimensions (default 1-d).
 * @returns An f16 tensor.
 */
export function tensorF16(data: ArrayLike<number>, shape?: readonly number[]): Tensor {
  const t = tensor(data, shape);
  const h = castRaw(t, "f16");
  t.dispose();
  return h;
}

/** The conversion kernel over the whole tensor, in windows past the binding limit. */
function castRaw(x: Tensor, dtype: FloatDType): Tensor {
  const from = floatDType(x.dtype, "cast()");
  const y = empty(x.shape, dtype);
  const k = kernels.get(`${from}>${dtype}`, () =>
    defineKernel({
      name: `cast_${from}_${dtype}`,
      source: castSrc,
      bindings: ["read", "write"],
      params: ["n:u32"],
      defines: { ENABLE: enableF16(from, dtype), TX: from, TY: dtype },
    }));
  const rt = gpu();
  // Windows of whole 256-byte blocks of the f16 side (128 elements), small enough for
  // the f32 side's binding.
  const step = Math.floor(rt.info.maxBindingBytes / 4 / 128) * 128;
  for (let start = 0; start < x.size; start += step) {
    const n = Math.min(step, x.size - start);
    const whole = n === x.size;
    const xs = whole ? x : x.window(start, [n]);
    const ys = whole ? y : y.window(start, [n]);
    rt.dispatch(k, [xs, ys], { n }, grid(n, 256));
    if (!whole) {
      xs.dispose();
      ys.dispose();
    }
  }
  return y;
}
