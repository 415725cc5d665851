/**
 * Matmuls whose weight is larger than one storage binding (issue 14): a linear layer's
 * weight is bound whole by the row, batch and K splits of `matmul.ts`, so a weight past the
 * device's `maxStorageBufferBindingSize` needs a split of its own, along the weight:
 *
 * - forward, `x @ W^T` (W stored [N, K]): blocks of W's rows, each a window of W; the block's
 *   output columns are computed into a temporary (with the bias' window, the residual's
 *   columns, the saved pre-activation) and copied into the result at their column offset.
 *   Every output element is the same sum as unsplit: the same bits.
 * - input gradient, `dy @ W` (W stored [K, N], K = W's rows): ranges of K, each a window of
 *   W's rows against a copy of dy's columns, accumulating in the result (beta 1), the
 *   epilogue on the last range; the sums are regrouped.
 * - weight gradient, `dy^T @ x` (the result [M, N] is the weight's size): blocks of the
 *   result's rows (windows of it), each from a copy of dy's columns; the same bits.
 *
 * Each part is then a matmul whose weight fits, which `matmulInto` splits further along rows
 * or K as usual. Nothing changes when the weight fits: `weightSplit` returns null and the
 * matmul runs as before.
 *
 * @module
 */

import type { Tensor } from "../autograd/tensor.ts";
import { gpu } from "../gpu/runtime.ts";
import { empty } from "./creation.ts";
import { copyBlock, copyIntoBlock } from "./layout.ts";

/** Sizes of a matmul (as `matmul.ts`'s `MatmulDims`). */
export interface WeightSplitDims {
  /** Batch entries. */
  batch: number;
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** The contraction. */
  k: number;
  /** Whether B is one matrix shared by every batch entry. */
  sharedB: boolean;
}

/** The options of a raw matmul a weight split passes on (as `MatmulIntoOptions`). */
export interface WeightSplitOptions {
  /** A stored [K, M]. */
  transA?: boolean | undefined;
  /** B stored [N, K]. */
  transB?: boolean | undefined;
  /** Bias [N]. */
  bias?: Tensor | undefined;
  /** Scale of C's previous contents. */
  beta?: number | undefined;
  /** Residual laid out as C. */
  residual?: Tensor | undefined;
  /** Receives the activation's input, laid out as C. */
  preActivation?: Tensor | undefined;
  /** Activation applied last. */
  activation?: string | undefined;
}

/** How a matmul splits along its weight. */
export interface WeightSplit {
  /** Along B's rows (`x @ W^T`), K (`dy @ W`) or C's rows (`dy^T @ x`). */
  along: "n" | "k" | "m";
  /** Rows of the weight (or of C) per part. */
  block: number;
}

/**
 * Floats of a weight's smallest unit under its splits: four of its rows of `k` floats (an
 * input gradient's K range; the forward binds one row, the weight gradient one row of the
 * result). The preflight checks it against the binding limit.
 *
 * @param k Floats per row of the weight (its input width).
 * @returns Floats.
 */
export function weightUnitFloats(k: number): number {
  return 4 * k;
}

/** Floats one binding holds under a limit (whole 16-byte vectors), as `matmulBindingFloats`. */
function bindingFloats(maxBindingBytes: number): number {
  return Math.floor(maxBindingBytes / 16) * 4;
}

/**
 * Whether (and how) a matmul splits along its weight: only when B is one matrix (shared, or
 * a batch of one) that passes the binding limit, or, for a weight gradient (A transposed, B
 * not), when the result does.
 *
 * @param dims Sizes.
 * @param opts Transposes.
 * @param maxBindingBytes The device's storage binding limit.
 * @returns The split, or null when the matmul's own splits apply (the weight fits).
 * @throws {RangeError} When even one row (or four for a K range) of the weight cannot fit.
 */
export function weightSplit(
  dims: WeightSplitDims,
  opts: Pick<WeightSplitOptions, "transA" | "transB">,
  maxBindingBytes: number,
): WeightSplit | null {
  const cap = bindingFloats(maxBindingBytes);
  const { m, n, k } = dims;
  const kp = (x: number) => Math.ceil(x / 4) * 4;
  const single = dims.sharedB || dims.batch === 1;
  const fail = (why: string): never => {
    throw new RangeError(
      `matmul: cannot split the weight of [${dims.batch} x ${m} x ${k}]${
        opts.transA ? "^T" : ""
      } ` +
        `@ [${k} x ${n}]${opts.transB ? "^T" : ""} to fit the device's storage binding limit of ` +
        `${maxBindingBytes} bytes: ${why}`,
    );
  };
  if (!single) return null;
  if (opts.transA) {
    if (opts.transB || dims.batch !== 1 || m * n <= cap) return null;
    // C [m, n] is the weight's gradient: blocks of its rows.
    const block = Math.floor(cap / n);
    if (block < 1) fail(`one row of the result (${n} floats) does not fit`);
    return { along: "m", block };
  }
  if (n * kp(k) <= cap) return null;
  if (opts.transB) {
    const block = Math.floor(cap / kp(k));
    if (block < 1) fail(`one row of the weight (${k} floats) does not fit`);
    return { along: "n", block };
  }
  if (weightUnitFloats(n) > cap) fail(`four rows of the weight (${n} floats each) do not fit`);
  const block = Math.floor(Math.floor(cap / n) / 4) * 4;
  return { along: "k", block };
}

/** A raw matmul (`matmulInto`), passed in so that this file does not import `matmul.ts`. */
export type MatmulIntoFn<O extends WeightSplitOptions> = (
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: WeightSplitDims,
  opts: O,
) => void;

/** Elements [start, start + count) of a tensor: a window when aligned, else a copy. */
function range(src: Tensor, start: number, count: number, temps: Tensor[]): Tensor {
  if (start === 0 && count === src.size) return src;
  const bytes = src.dtype === "f16" ? 2 : 4;
  const off = src.byteOffset + start * bytes;
  const t = off % gpu().info.bindingOffsetAlignment === 0
    ? src.window(start, [count])
    : copyBlock("matmul_weight", src.alias([src.size]), 0, start, count);
  temps.push(t);
  return t;
}

/** Writes a part back into elements [start, ...) of a tensor when it is a copy. */
function writeBack(part: Tensor, dst: Tensor, start: number): void {
  if (part.storage !== dst.storage) {
    copyIntoBlock("matmul_weight", part, dst.alias([dst.size]), 0, start);
  }
}

/**
 * Runs a matmul split along its weight (see {@linkcode weightSplit}); each part through
 * `run` (which splits it further as it needs).
 *
 * @param split The split.
 * @param t Operands and result, stored as for `matmulInto`.
 * @param dims Sizes.
 * @param opts The raw matmul's options.
 * @param run The raw matmul.
 */
export function runWeightSplit<O extends WeightSplitOptions>(
  split: WeightSplit,
  t: { a: Tensor; b: Tensor; out: Tensor },
  dims: WeightSplitDims,
  opts: O,
  run: MatmulIntoFn<O>,
): void {
  const { m, n, k } = dims;
  const rows = dims.batch * m; // C (and A, untransposed) as [rows, n] ([rows, k])
  const as2d = (x: Tensor, cols: number) => x.alias([x.size / cols, cols]);
  if (split.along === "n") {
    // x @ W^T: W's rows [n0, n1) give C's columns [n0, n1).
    for (let n0 = 0; n0 < n; n0 += split.block) {
      const nb = Math.min(split.block, n - n0);
      const part: Tensor[] = [];
      const c = (opts.beta ?? 0) !== 0
        ? copyBlock("matmul_weight", as2d(t.out, n), 1, n0, nb)
        : empty([rows, nb], t.out.dtype);
      const z = opts.preActivation ? empty([rows, nb], opts.preActivation.dtype) : undefined;
      part.push(c, ...(z ? [z] : []));
      const residual = opts.residual
        ? copyBlock("matmul_weight", as2d(opts.residual, n), 1, n0, nb)
        : undefined;
      if (residual) part.push(residual);
      run(t.a, range(t.b, n0 * k, nb * k, part), c, { ...dims, n: nb }, {
        ...opts,
        bias: opts.bias ? range(opts.bias, n0, nb, part) : undefined,
        residual,
        preActivation: z,
      });
      copyIntoBlock("matmul_weight", c, as2d(t.out, n), 1, n0);
      if (z) copyIntoBlock("matmul_weight", z, as2d(opts.preActivation!, n), 1, n0);
      for (const x of part) x.dispose();
    }
    return;
  }
  if (split.along === "k") {
    // dy @ W: W's rows [k0, k1) against dy's columns [k0, k1), accumulating in C.
    for (let k0 = 0; k0 < k; k0 += split.block) {
      const kb = Math.min(split.block, k - k0);
      const first = k0 === 0, last = k0 + kb >= k;
      const part: Tensor[] = [];
      const a = copyBlock("matmul_weight", as2d(t.a, k), 1, k0, kb);
      part.push(a);
      run(a, range(t.b, k0 * n, kb * n, part), t.out, { ...dims, k: kb }, {
        ...opts,
        bias: first ? opts.bias : undefined,
        beta: first ? opts.beta : 1,
        residual: last ? opts.residual : undefined,
        activation: last ? opts.activation : undefined,
        preActivation: last ? opts.preActivation : undefined,
      } as O);
      for (const x of part) x.dispose();
    }
    return;
  }
  // dy^T @ x: C's rows [m0, m1) from A's (stored [k, m]) columns [m0, m1).
  for (let m0 = 0; m0 < m; m0 += split.block) {
    const mb = Math.min(split.block, m - m0);
    const part: Tensor[] = [];
    const a = copyBlock("matmul_weight", as2d(t.a, m), 1, m0, mb);
    part.push(a);
    const c = range(t.out, m0 * n, mb * n, part);
    const at = (x: Tensor | undefined) => (x ? range(x, m0 * n, mb * n, part) : undefined);
    const residual = at(opts.residual), z = at(opts.preActivation);
    run(a, t.b, c, { ...dims, m: mb }, { ...opts, residual, preActivation: z });
    writeBack(c, t.out, m0 * n);
    if (z) writeBack(z, opts.preActivation!, m0 * n);
    for (const x of part) x.dispose();
  }
}
