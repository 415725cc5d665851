/**
 * The matmul cases of `binding_limit_test.ts`, run in a process of their own (the GPU runtime
 * is one per process): each case's forward and gradients, written to a safetensors file, with
 * the inputs made from fixed seeds so the test rebuilds them for the float64 references.
 * `binding_limit_test.ts` runs this under `PS3_MAX_BINDING_BYTES` and without it.
 *
 * ```sh
 * PS3_MAX_BINDING_BYTES=65536 deno run -A tests/ops/binding_limit_cases.ts out.safetensors
 * ```
 *
 * @module
 */

import { type Arr, randArr, Rng, roundF32, rt } from "../harness.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import { tensor } from "../../src/ops/creation.ts";
import { matmul, type MatmulOptions } from "../../src/ops/matmul.ts";
import { writeSafetensors, type WriteTensor } from "../../src/checkpoint/safetensors.ts";

/** One matmul case: operand shapes and options (bias and residual are made when asked). */
export interface LimitCase {
  /** Name of the case. */
  name: string;
  /** Shape of A as stored. */
  a: number[];
  /** Shape of B as stored. */
  b: number[];
  /** Options other than the bias and residual tensors. */
  opts: Pick<MatmulOptions, "transA" | "transB" | "activation">;
  /** Add a bias. */
  bias?: boolean;
  /** Add a residual. */
  residual?: boolean;
}

/**
 * Cases that pass a 64 KiB binding limit (16384 floats) in the forward or the backward: a
 * flat row split (its weight gradient splits K), a batch split with aligned blocks, one with
 * unaligned blocks (copies), rows with a GELU epilogue, and a K split with bias and residual.
 */
export const CASES: readonly LimitCase[] = [
  { name: "rows", a: [3, 70, 100], b: [24, 100], opts: { transB: true }, bias: true },
  { name: "batch", a: [6, 40, 72], b: [6, 72, 36], opts: {} },
  { name: "copies", a: [5, 37, 91], b: [5, 91, 13], opts: {} },
  { name: "gelu", a: [210, 80], b: [80, 32], opts: { activation: "gelu" }, bias: true },
  {
    name: "ksplit",
    a: [300, 20],
    b: [300, 60],
    opts: { transA: true },
    bias: true,
    residual: true,
  },
];

/**
 * The case's float64 inputs (rounded to f32), output weights of the gradient check, in the
 * order A, B, bias?, residual?.
 *
 * @param c The case.
 * @returns Inputs and the output weights.
 */
export function caseInputs(c: LimitCase): { inputs: Arr[]; w: Arr } {
  const rng = new Rng(c.name.length * 7919 + c.a[0]!);
  const transA = !!c.opts.transA, transB = !!c.opts.transB;
  const m = transA ? c.a.at(-1)! : c.a.at(-2)!;
  const n = transB ? c.b.at(-2)! : c.b.at(-1)!;
  const outShape = [...c.a.slice(0, -2), m, n];
  const inputs = [randArr(c.a, rng), randArr(c.b, rng)];
  if (c.bias) inputs.push(randArr([n], rng));
  if (c.residual) inputs.push(randArr(outShape, rng));
  for (const x of inputs) roundF32(x);
  return { inputs, w: roundF32(randArr(outShape, rng)) };
}

if (import.meta.main) {
  const out: WriteTensor[] = [];
  const dispatches: Record<string, number> = {};
  for (const c of CASES) {
    const { inputs, w } = caseInputs(c);
    const start = rt.counters.dispatches;
    const ts = tidy(() => {
      const xs = inputs.map((x) => {
        const t = tensor(Float32Array.from(x.data), x.shape);
        t.requiresGrad = true;
        return t;
      });
      const y = matmul(xs[0]!, xs[1]!, {
        ...c.opts,
        bias: c.bias ? xs[2] : undefined,
        residual: c.residual ? xs[c.bias ? 3 : 2] : undefined,
      });
      backward(y, tensor(Float32Array.from(w.data), w.shape));
      return [y, ...xs.map((x) => x.grad!)];
    });
    dispatches[c.name] = rt.counters.dispatches - start;
    const host = await rt.read(ts);
    ts.forEach((t: Tensor, i) => {
      out.push({
        name: `${c.name}/${i === 0 ? "y" : `grad${i - 1}`}`,
        dtype: "F32",
        shape: t.shape,
        data: new Float32Array(host[i]!),
      });
      t.dispose();
    });
  }
  // A matmul no split can fit: its error, and that nothing was dispatched.
  let error = "";
  const before = rt.counters.dispatches;
  try {
    tidy(() =>
      matmul(
        tensor(new Float32Array(4 * 20000), [4, 20000]),
        tensor(new Float32Array(20000 * 4), [20000, 4]),
      )
    );
  } catch (e) {
    error = (e as Error).message;
  }
  await writeSafetensors(Deno.args[0]!, out, {
    metadata: {
      maxBindingBytes: String(rt.info.maxBindingBytes),
      error,
      dispatchedBeforeError: String(rt.counters.dispatches - before),
      dispatches: JSON.stringify(dispatches),
    },
  });
}
