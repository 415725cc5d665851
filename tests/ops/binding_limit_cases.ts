/**
 * The cases of `binding_limit_test.ts`, run in a process of their own (the GPU runtime
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
import { add, gelu, mul, tanh } from "../../src/ops/elementwise.ts";
import { mean, sum } from "../../src/ops/reduce.ts";
import { layerNorm, layerNormChannels } from "../../src/ops/norm.ts";
import { layerNormChannelsRef, layerNormRef } from "../../src/reference/norm.ts";
import { softmax } from "../../src/ops/softmax.ts";
import { softmaxRef } from "../../src/reference/softmax.ts";
import { attention, type AttentionKernel } from "../../src/ops/attention.ts";
import { gatherPatches } from "../../src/ops/patch.ts";
import { concat, permute, split } from "../../src/ops/layout.ts";
import { concatRef, permuteRef, sliceRef } from "../../src/reference/layout.ts";
import { gatherPatchesRef } from "../../src/reference/patch.ts";
import { attentionRef } from "../../src/reference/attention.ts";
import { matmulRef } from "../../src/reference/matmul.ts";
import { binaryRef, unaryRef } from "../../src/reference/elementwise.ts";
import { reduceRef } from "../../src/reference/reduce.ts";
import { writeSafetensors, type WriteTensor } from "../../src/checkpoint/safetensors.ts";

/** One case: input shapes, the GPU op and its float64 reference. */
export interface LimitCase {
  /** Name of the case. */
  name: string;
  /** Shapes of the inputs (random in [-1, 1], from a seed of the name). */
  shapes: number[][];
  /** The op on the GPU. */
  op: (xs: Tensor[]) => Tensor;
  /** The float64 reference. */
  ref: (xs: Arr[]) => Arr;
  /**
   * Outputs ("y", "grad<i>") whose additions a split groups otherwise than one binding does
   * (compared with the unsplit run within the forward tolerance, not bit for bit).
   */
  regrouped?: string[];
}

/** A matmul case from its operands' stored shapes and options. */
function matmulCase(
  name: string,
  a: number[],
  b: number[],
  opts: Pick<MatmulOptions, "transA" | "transB" | "activation">,
  extra: { bias?: boolean; residual?: boolean; regrouped?: string[] } = {},
): LimitCase {
  const m = opts.transA ? a.at(-1)! : a.at(-2)!;
  const n = opts.transB ? b.at(-2)! : b.at(-1)!;
  const shapes = [a, b];
  if (extra.bias) shapes.push([n]);
  if (extra.residual) shapes.push([...a.slice(0, -2), m, n]);
  const r = extra.bias ? 3 : 2;
  return {
    name,
    shapes,
    op: (xs) =>
      matmul(xs[0]!, xs[1]!, {
        ...opts,
        bias: extra.bias ? xs[2] : undefined,
        residual: extra.residual ? xs[r] : undefined,
      }),
    ref: (xs) =>
      matmulRef(xs[0]!, xs[1]!, {
        ...opts,
        bias: extra.bias ? xs[2] : undefined,
        residual: extra.residual ? xs[r] : undefined,
      }),
    regrouped: extra.regrouped ?? [],
  };
}

/** The masked attention case (cache, every fifth key masked) with a kernel choice. */
function maskedAttentionCase(name: string, kernel?: AttentionKernel): LimitCase {
  return {
    name,
    shapes: [[10, 40, 64], [10, 40, 64], [10, 40, 64], [10, 24, 64], [10, 24, 64]],
    op: ([q, k, v, ck, cv]) =>
      attention(q!, k!, v!, {
        heads: 4,
        cache: { k: ck!, v: cv! },
        keyMask: tensor(Float32Array.from(attentionMask().data), [10, 64]),
        kernel,
      }),
    ref: ([q, k, v, ck, cv]) =>
      attentionRef(q!, k!, v!, { heads: 4, cache: { k: ck!, v: cv! }, keyMask: attentionMask() }),
  };
}

/**
 * Cases that pass a 64 KiB binding limit (16384 floats) in the forward or the backward.
 * Matmuls: a flat row split (its weight gradient splits K), a batch split with aligned
 * blocks, one with unaligned blocks (copies), rows with a GELU epilogue (its weight gradient
 * splits K), a K split with bias and residual. Elementwise ops in windows (vec4 and scalar,
 * broadcasting along the outer dim or an inner one, whose gradient reduces the leading axes in
 * windows of fewer rows than a part), and reductions over leading axes (a long one whose
 * windows are whole parts). Layer norms in blocks of rows (of whole parameter-gradient chunks
 * of rows, and of fewer rows), over the last axis and over channels.
 */
export const CASES: readonly LimitCase[] = [
  matmulCase("rows", [3, 70, 100], [24, 100], { transB: true }, {
    bias: true,
    regrouped: ["grad1"],
  }),
  matmulCase("batch", [6, 40, 72], [6, 72, 36], {}),
  matmulCase("copies", [5, 37, 91], [5, 91, 13], {}),
  matmulCase("gelu", [210, 80], [80, 32], { activation: "gelu" }, {
    bias: true,
    regrouped: ["grad1"],
  }),
  matmulCase("ksplit", [300, 20], [300, 60], { transA: true }, {
    bias: true,
    residual: true,
    regrouped: ["y"],
  }),
  {
    name: "gelu_vec4",
    shapes: [[100, 200]],
    op: ([x]) => gelu(x!),
    ref: ([x]) => unaryRef("gelu", x!),
  },
  {
    name: "tanh_scalar",
    shapes: [[3, 6667]],
    op: ([x]) => tanh(x!),
    ref: ([x]) => unaryRef("tanh", x!),
  },
  {
    name: "mul_vec4",
    shapes: [[100, 200], [100, 200]],
    op: ([u, v]) => mul(u!, v!),
    ref: ([u, v]) => binaryRef("mul", u!, v!),
  },
  {
    name: "mul_inner",
    shapes: [[50, 20, 24], [24]],
    op: ([u, v]) => mul(u!, v!),
    ref: ([u, v]) => binaryRef("mul", u!, v!),
    regrouped: ["grad1"],
  },
  {
    name: "add_outer",
    shapes: [[40, 30, 20], [30, 20]],
    op: ([u, v]) => add(u!, v!),
    ref: ([u, v]) => binaryRef("add", u!, v!),
    regrouped: ["grad1"],
  },
  {
    name: "sum_leading",
    shapes: [[300, 7, 10]],
    op: ([x]) => sum(x!, [0, 1]),
    ref: ([x]) => reduceRef(x!, [0, 1], "sum"),
    regrouped: ["y"],
  },
  {
    name: "mean_long",
    shapes: [[40000, 1]],
    op: ([x]) => mean(x!, 0),
    ref: ([x]) => reduceRef(x!, [0], "mean"),
  },
  {
    name: "layer_norm_rows",
    shapes: [[800, 24], [24], [24]],
    op: ([x, w, b]) => layerNorm(x!, w!, b!),
    ref: ([x, w, b]) => layerNormRef(x!, w!, b!),
  },
  {
    name: "layer_norm_short_blocks",
    shapes: [[300, 70], [70], [70]],
    op: ([x, w, b]) => layerNorm(x!, w!, b!),
    ref: ([x, w, b]) => layerNormRef(x!, w!, b!),
    regrouped: ["grad1", "grad2"],
  },
  {
    name: "layer_norm_channels",
    shapes: [[5, 4, 32, 32], [4], [4]],
    op: ([x, w, b]) => layerNormChannels(x!, w!, b!),
    ref: ([x, w, b]) => layerNormChannelsRef(x!, w!, b!),
  },
  {
    name: "softmax_rows",
    shapes: [[600, 40]],
    op: ([x]) => softmax(x!),
    ref: ([x]) => softmaxRef(x!),
  },
  {
    name: "softmax_middle_axis",
    shapes: [[8, 40, 64]],
    op: ([x]) => softmax(x!, { axis: 1 }),
    ref: ([x]) => softmaxRef(x!, { axis: 1 }),
  },
  {
    name: "attention_cache",
    shapes: [[10, 40, 64], [10, 24, 64], [10, 24, 64], [10, 20, 64], [10, 20, 64]],
    op: ([q, k, v, ck, cv]) => attention(q!, k!, v!, { heads: 4, cache: { k: ck!, v: cv! } }),
    ref: ([q, k, v, ck, cv]) => attentionRef(q!, k!, v!, { heads: 4, cache: { k: ck!, v: cv! } }),
  },
  maskedAttentionCase("attention_masked"),
  // The uniform forward (several blocks of 12 queries, chunks of 3 keys) in blocks of
  // samples; its backward runs the rows kernels.
  maskedAttentionCase("attention_masked_uniform", {
    variant: "uniform",
    uniform: { wg: 4, rows: 3, chunk: 3 },
  }),
  {
    // The attention pool's shape: one query per sample over 80 keys of 4 heads of 30. One
    // sample's keys (37.5 KiB) fit, two do not, and blocks of one sample leave the windows of
    // q, out and lse unaligned: those are staged through copies.
    name: "attention_unaligned",
    shapes: [[8, 1, 120], [8, 80, 120], [8, 80, 120]],
    op: ([q, k, v]) => attention(q!, k!, v!, { heads: 4 }),
    ref: ([q, k, v]) => attentionRef(q!, k!, v!, { heads: 4 }),
  },
  {
    // [20, 30, 96] (225 KiB) split at column 40 and joined the other way round: both parts
    // and the result pass the limit; copies in blocks of rows.
    name: "split_concat",
    shapes: [[20, 30, 96]],
    op: ([x]) => {
      const [a, b] = split(x!, [40, 56], { axis: -1 });
      return concat([b!, a!], -1);
    },
    ref: ([x]) =>
      concatRef([
        sliceRef(x!, { axis: 2, start: 40, end: 96 }),
        sliceRef(x!, { axis: 2, start: 0, end: 40 }),
      ], 2),
  },
  {
    // A transpose of the two inner dims of [40, 24, 32] (120 KiB): blocks of the outer dim.
    name: "permute",
    shapes: [[40, 24, 32]],
    op: ([x]) => permute(x!, [0, 2, 1]),
    ref: ([x]) => permuteRef(x!, [0, 2, 1]),
  },
  {
    // 6 images of 3 x 64 x 64 (48 KiB each), 20 of their 64 patches: the output (90 KiB),
    // the index and the backward's inverse map run in blocks of samples.
    name: "patch_gather",
    shapes: [[6, 3, 64, 64]],
    op: ([x]) =>
      gatherPatches(x!, {
        patch: 8,
        index: tensor(Int32Array.from(GATHER_INDEX.flat()), [6, 20], "i32"),
      }),
    ref: ([x]) => gatherPatchesRef(x!, 8, GATHER_INDEX),
  },
];

/** The gather case's selection: 20 distinct patches of 64 per sample, shifted per sample. */
const GATHER_INDEX = [...Array(6).keys()].map((b) =>
  [...Array(20).keys()].map((k) => (k * 3 + b * 7) % 64)
);

/** The key mask of the masked attention case: every fifth key masked, shifted per sample. */
function attentionMask(): Arr {
  const data = new Float64Array(10 * 64);
  for (let i = 0; i < data.length; i++) data[i] = (i + Math.floor(i / 64)) % 5 === 0 ? 0 : 1;
  return { data, shape: [10, 64] };
}

/**
 * The case's float64 inputs (rounded to f32) and the output weights of the gradient check.
 *
 * @param c The case.
 * @returns Inputs and the output weights.
 */
export function caseInputs(c: LimitCase): { inputs: Arr[]; w: Arr } {
  let seed = 17;
  for (const ch of c.name) seed = (seed * 31 + ch.charCodeAt(0)) % 1000003;
  const rng = new Rng(seed);
  const inputs = c.shapes.map((s) => roundF32(randArr(s, rng)));
  const out = c.ref(inputs);
  return { inputs, w: roundF32(randArr(out.shape, rng)) };
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
      const y = c.op(xs);
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
  // A matmul no split can fit (four rows of its weight pass the limit): its error, and that
  // nothing was dispatched.
  let error = "";
  const before = rt.counters.dispatches;
  try {
    tidy(() =>
      matmul(
        tensor(new Float32Array(8), [1, 8]),
        tensor(new Float32Array(8 * 5000), [8, 5000]),
      )
    );
  } catch (e) {
    error = (e as Error).message;
  }
  // A softmax whose one row passes the limit: its error, and that nothing was dispatched.
  let softmaxError = "";
  const softmaxBefore = rt.counters.dispatches;
  try {
    tidy(() => softmax(tensor(new Float32Array(2 * 20000), [2, 20000])));
  } catch (e) {
    softmaxError = (e as Error).message;
  }
  // An attention whose one sample passes the limit: its error, before any dispatch.
  let attentionError = "";
  const attentionBefore = rt.counters.dispatches;
  try {
    tidy(() => {
      const q = tensor(new Float32Array(300 * 64), [1, 300, 64]);
      return attention(q, q, q, { heads: 4 });
    });
  } catch (e) {
    attentionError = (e as Error).message;
  }
  await writeSafetensors(Deno.args[0]!, out, {
    metadata: {
      maxBindingBytes: String(rt.info.maxBindingBytes),
      error,
      dispatchedBeforeError: String(rt.counters.dispatches - before),
      dispatches: JSON.stringify(dispatches),
      softmaxError,
      softmaxDispatchedBeforeError: String(rt.counters.dispatches - softmaxBefore),
      attentionError,
      attentionDispatchedBeforeError: String(rt.counters.dispatches - attentionBefore),
    },
  });
}
