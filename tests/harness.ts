/**
 * Test harness shared by the op tests: GPU results against float64 references, gradients
 * against central finite differences of those references.
 *
 * Tolerances are `atol + rtol * |reference|` per element; a failure prints the first
 * mismatches and the largest error.
 *
 * @module
 */

import { initGpu } from "../src/gpu/runtime.ts";
import { backward } from "../src/autograd/tape.ts";
import type { Tensor } from "../src/autograd/tensor.ts";
import { tidy } from "../src/autograd/scope.ts";
import { tensor } from "../src/ops/creation.ts";
import { type Arr, arr, randArr } from "../src/reference/array.ts";
import { Rng } from "../src/util/rng.ts";

export { type Arr, arr, randArr, Rng };

/** Initialises the shared GPU runtime (one device per test file). */
export const rt = await initGpu();

/**
 * Rounds float64 values to float32 in place, so the reference sees the GPU's inputs.
 *
 * @param a Array to round.
 * @returns The same array.
 */
export function roundF32(a: Arr): Arr {
  a.data.set(Float32Array.from(a.data));
  return a;
}

/**
 * Asserts elementwise closeness and reports the first mismatches and the largest error.
 *
 * @param actual Values under test.
 * @param expected Reference values.
 * @param tol Tolerances and a label.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol: number; rtol: number; label?: string },
): void {
  const label = tol.label ?? "values";
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = 0, worstAt = -1, bad = 0;
  const first: string[] = [];
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const lim = tol.atol + tol.rtol * Math.abs(e);
    const ratio = Number.isNaN(a) !== Number.isNaN(e) ? Infinity : Number.isNaN(a) ? 0 : err / lim;
    if (ratio > worst) {
      worst = ratio;
      worstAt = i;
    }
    if (ratio > 1) {
      bad++;
      if (first.length < 5) {
        first.push(`  [${i}] got ${a}, expected ${e} (|diff| ${err.toExponential(2)})`);
      }
    }
  }
  if (bad > 0) {
    throw new Error(
      `${label}: ${bad} of ${actual.length} outside atol ${tol.atol} + rtol ${tol.rtol}; ` +
        `worst at [${worstAt}] (${worst.toFixed(1)}x the tolerance)\n${first.join("\n")}`,
    );
  }
}

/** Tolerances of {@linkcode checkOp}. */
export interface OpTolerances {
  /** Forward tolerance. */
  atol?: number;
  /** Forward relative tolerance. */
  rtol?: number;
  /** Gradient tolerance. */
  gradAtol?: number;
  /** Gradient relative tolerance. */
  gradRtol?: number;
  /** Finite-difference step on the float64 reference. */
  h?: number;
}

/**
 * Central finite differences of `<w, f(xs)>` with respect to input k (float64).
 *
 * @param f Reference forward.
 * @param xs Inputs (restored after use).
 * @param w Output weights.
 * @param k Input index.
 * @param h Step.
 * @returns The gradient estimate, shaped like xs[k].
 */
export function fdGrad(f: (xs: Arr[]) => Arr, xs: Arr[], w: Arr, k: number, h: number): Arr {
  const x = xs[k]!;
  const g = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const o = x.data[i]!;
    x.data[i] = o + h;
    const yp = f(xs);
    x.data[i] = o - h;
    const ym = f(xs);
    x.data[i] = o;
    let s = 0;
    for (let j = 0; j < w.data.length; j++) s += w.data[j]! * (yp.data[j]! - ym.data[j]!);
    g.data[i] = s / (2 * h);
  }
  return g;
}

/**
 * Checks a GPU op: forward against the float64 reference on the same (f32-rounded) inputs,
 * then the GPU gradients of `<w, y>` for random weights w against finite differences of the
 * reference.
 *
 * @param name Label for messages.
 * @param inputs Float64 inputs (rounded to f32 here).
 * @param op The GPU op.
 * @param ref The float64 reference.
 * @param tol Tolerances; gradients are skipped for inputs listed in `noGrad`.
 * @param noGrad Indices of inputs that take no gradient (indices, masks).
 */
export async function checkOp(
  name: string,
  inputs: Arr[],
  op: (xs: Tensor[]) => Tensor,
  ref: (xs: Arr[]) => Arr,
  tol: OpTolerances = {},
  noGrad: number[] = [],
): Promise<void> {
  const { atol = 1e-5, rtol = 1e-4, gradAtol = 1e-4, gradRtol = 1e-3, h = 1e-5 } = tol;
  for (const x of inputs) roundF32(x);
  const expected = ref(inputs);
  const rng = new Rng(99);
  const w = roundF32(randArr(expected.shape, rng));
  const { y, grads } = tidy(() => {
    const xs = inputs.map((x, i) => {
      const t = tensor(Float32Array.from(x.data), x.shape);
      t.requiresGrad = !noGrad.includes(i);
      return t;
    });
    const y = op(xs);
    if (y.shape.join() !== expected.shape.join()) {
      throw new Error(`${name}: shape [${y.shape}] != reference [${expected.shape}]`);
    }
    backward(y, tensor(Float32Array.from(w.data), w.shape));
    const grads = xs.map((x) => x.grad);
    return { y, grads };
  });
  const [yh, ...gh] = await rt.read([y, ...grads.filter((g): g is Tensor => g !== null)]);
  assertClose(new Float32Array(yh!), expected.data, { atol, rtol, label: `${name} forward` });
  let gi = 0;
  for (let k = 0; k < inputs.length; k++) {
    if (noGrad.includes(k)) continue;
    const g = grads[k];
    if (!g) throw new Error(`${name}: input ${k} received no gradient`);
    const fd = fdGrad(ref, inputs, w, k, h);
    assertClose(new Float32Array(gh[gi++]!), fd.data, {
      atol: gradAtol,
      rtol: gradRtol,
      label: `${name} gradient of input ${k}`,
    });
  }
  y.dispose();
  for (const g of grads) g?.dispose();
}
