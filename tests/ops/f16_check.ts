/**
 * Checks of ops on f16 activations (issue 14): the same op run twice on the same inputs,
 * once with its activation operands stored as f16 and once all f32, against the float64
 * reference and against each other.
 *
 * - Inputs: activations are f16-representable (rounded on the host first), parameters f32;
 *   the float64 reference is computed from exactly those values.
 * - Forward: the f16 output against the reference within the stated tolerance (f16 output
 *   rounding, relative 2^-11, on top of the f32 kernel's own error), and, where the op's
 *   arithmetic is the f32 path's (loads widen exactly, all math in f32, one rounding at the
 *   store), bit for bit equal to the f16 rounding of the f32 path's output.
 * - Backward: the gradients of `<w, y>` (w f16-representable) against central finite
 *   differences of the reference (on sampled entries) and against the f32 path's gradients:
 *   f16 gradients of activations equal the f16 rounding of the f32 ones, f32 gradients of
 *   parameters equal them bit for bit (where `exact`), else within the tolerance.
 *
 * @module
 */

import { deepStrictEqual as assertEquals } from "node:assert";
import { type Arr, assertClose, fdGrad, randArr, Rng, roundF32, rt } from "../harness.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { roundF16 } from "../../src/reference/cast.ts";

/** 2^-11: the largest relative rounding error of a value stored as f16 (normal range). */
export const F16_EPS = 2 ** -11;

/** Tolerances of an f16 check (each `atol + rtol * |ref|`). */
export interface F16Tolerances {
  /** Forward against float64. */
  atol: number;
  /** Forward against float64, relative. */
  rtol: number;
  /** Gradients against finite differences. */
  gradAtol: number;
  /** Gradients against finite differences, relative. */
  gradRtol: number;
}

/** One f16 check. */
export interface F16Case {
  /** Label for messages. */
  name: string;
  /** Inputs in float64 (rounded here: f16 for activations, f32 otherwise). */
  inputs: Arr[];
  /** Which inputs are activations (stored as f16 in the f16 run). */
  f16: boolean[];
  /** The GPU op. */
  op: (xs: Tensor[]) => Tensor;
  /** The float64 reference. */
  ref: (xs: Arr[]) => Arr;
  /** Tolerances against the reference. */
  tol: F16Tolerances;
  /** Inputs that take no gradient (indices). */
  noGrad?: number[];
  /**
   * Whether the f16 run's gradients equal the f16 rounding of the f32 run's bit for bit
   * (default true; false where the backward reads a stored f16 output, such as softmax's y or
   * attention's O, or rounds an intermediate result: then they are compared within the
   * gradient tolerance). The forward output always must.
   */
  exactGrads?: boolean;
  /** Entries per input checked against finite differences (default: all up to 64). */
  fdSamples?: number;
  /**
   * A float64 gradient that models what the f16 run computes (e.g. from its stored f16
   * output), given the inputs, the f16 run's output and the weights w: the f16 gradients
   * must match it within `modelTol` (tighter than the bounds against the exact gradient).
   */
  gradModel?: (xs: Arr[], y: Float32Array, w: Arr) => (Arr | null)[];
  /** Tolerance against `gradModel`. */
  modelTol?: { atol: number; rtol: number };
  /**
   * Whether the case is sized to pass a lowered storage binding limit: when the process runs
   * under `PS3_MAX_BINDING_BYTES` (`f16_binding_limit_test.ts`), its largest f16 tensor must
   * exceed the limit, so the op must have split its work (the runtime refuses any binding
   * past the limit).
   */
  split?: boolean;
}

/** One run of the op: output and gradients on the host, and their dtypes. */
interface Run {
  y: Float32Array;
  yType: string;
  grads: (Float32Array | null)[];
  gradTypes: (string | null)[];
}

/**
 * Under a lowered binding limit, asserts that some f16 tensor of a case passes it (so the op
 * ran split: the runtime refuses a binding past the limit).
 */
function checkSplit(name: string, ts: readonly Tensor[]): void {
  if (!Deno.env.get("PS3_MAX_BINDING_BYTES")) return;
  const largest = Math.max(...ts.filter((t) => t.dtype === "f16").map((t) => t.byteLength));
  const limit = rt.info.maxBindingBytes;
  if (!(largest > limit)) {
    throw new Error(
      `${name}: its largest f16 tensor (${largest} bytes) fits the ${limit}-byte limit`,
    );
  }
}

async function runOp(c: F16Case, w: Arr, half: boolean): Promise<Run> {
  const noGrad = c.noGrad ?? [];
  const { y, grads } = tidy(() => {
    const xs = c.inputs.map((x, i) => {
      const t = half && c.f16[i]
        ? tensorF16(Float32Array.from(x.data), x.shape)
        : tensor(Float32Array.from(x.data), x.shape);
      t.requiresGrad = !noGrad.includes(i);
      return t;
    });
    const y = c.op(xs);
    const seed = half && y.dtype === "f16"
      ? tensorF16(Float32Array.from(w.data), w.shape)
      : tensor(Float32Array.from(w.data), w.shape);
    backward(y, seed);
    if (half && c.split) checkSplit(c.name, [...xs, y]);
    return { y, grads: xs.map((x) => x.grad) };
  });
  const present = grads.filter((g): g is Tensor => g !== null);
  const host = await Promise.all([y, ...present].map((t) => t.read()));
  const out: Run = {
    y: host[0] as Float32Array,
    yType: y.dtype,
    grads: [],
    gradTypes: grads.map((g) => g?.dtype ?? null),
  };
  let k = 1;
  for (const g of grads) out.grads.push(g ? host[k++] as Float32Array : null);
  y.dispose();
  for (const g of grads) g?.dispose();
  return out;
}

/** Evenly spread entries of an array of n: all when n <= count. */
function samples(n: number, count: number): number[] {
  if (n <= count) return [...Array(n).keys()];
  return [...new Set([0, n - 1, ...[...Array(count - 2).keys()].map((i) => (i * 7919) % n)])];
}

/**
 * Runs one f16 check (see the module doc).
 *
 * @param c The case.
 */
export async function checkF16(c: F16Case): Promise<void> {
  const noGrad = c.noGrad ?? [];
  for (const [i, x] of c.inputs.entries()) {
    if (c.f16[i]) x.data.set(x.data.map(roundF16));
    else roundF32(x);
  }
  const expected = c.ref(c.inputs);
  const w = randArr(expected.shape, new Rng(99));
  w.data.set(w.data.map(roundF16));
  const half = await runOp(c, w, true);
  const full = await runOp(c, w, false);
  assertEquals(half.yType, c.f16.some((f) => f) ? "f16" : "f32", `${c.name}: output dtype`);
  assertEquals(
    half.gradTypes,
    c.inputs.map((_, i) => (noGrad.includes(i) ? null : c.f16[i] ? "f16" : "f32")),
    `${c.name}: gradient dtypes`,
  );
  const { atol, rtol, gradAtol, gradRtol } = c.tol;
  assertClose(half.y, expected.data, { atol, rtol, label: `${c.name} f16 forward` });
  const vsF32 = (a: Float32Array, b: Float32Array, f16: boolean, label: string, exact: boolean) => {
    const want = f16 ? Float64Array.from(b, roundF16) : Float64Array.from(b);
    if (exact) {
      const bad = a.findIndex((v, i) => !Object.is(v, want[i]));
      if (bad >= 0) {
        throw new Error(`${label}: [${bad}] = ${a[bad]}, the f32 path's rounding ${want[bad]}`);
      }
    } else {
      assertClose(a, want, { atol: gradAtol, rtol: gradRtol, label });
    }
  };
  vsF32(half.y, full.y, half.yType === "f16", `${c.name} forward vs the f32 path`, true);
  const model = c.gradModel?.(c.inputs, half.y, w);
  for (let k = 0; k < c.inputs.length; k++) {
    if (noGrad.includes(k)) continue;
    const g = half.grads[k]!, g32 = full.grads[k]!;
    const m = model?.[k];
    if (m) {
      assertClose(g, m.data, { ...c.modelTol!, label: `${c.name} f16 gradient ${k} vs its model` });
    }
    vsF32(g, g32, c.f16[k]!, `${c.name} gradient ${k} vs the f32 path`, c.exactGrads ?? true);
    const x = c.inputs[k]!;
    for (const i of samples(x.data.length, c.fdSamples ?? 64)) {
      const one: Arr = { data: Float64Array.of(x.data[i]!), shape: [1] };
      const fd = fdGrad(
        (ys) => {
          const xs = c.inputs.slice();
          const copy = { data: x.data.slice(), shape: x.shape };
          copy.data[i] = ys[0]!.data[0]!;
          xs[k] = copy;
          return c.ref(xs);
        },
        [one],
        w,
        0,
        1e-5,
      );
      assertClose(g.subarray(i, i + 1), fd.data, {
        atol: gradAtol,
        rtol: gradRtol,
        label: `${c.name} f16 gradient ${k}[${i}] vs finite differences`,
      });
    }
  }
}
