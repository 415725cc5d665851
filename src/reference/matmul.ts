/**
 * Float64 reference of `src/ops/matmul.ts`.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";
import { UNARY_REF } from "./elementwise.ts";

/** Options of {@linkcode matmulRef}: those of the GPU op. */
export interface MatmulRefOptions {
  /** A is stored [..., K, M]. */
  transA?: boolean | undefined;
  /** B is stored [..., N, K]. */
  transB?: boolean | undefined;
  /** Bias [N]. */
  bias?: Arr | undefined;
  /** Added to the result ([...batch, M, N]). */
  residual?: Arr | undefined;
  /** Applied to the result (after the bias). */
  activation?: "gelu" | "gelu_tanh" | undefined;
}

/**
 * Batched matmul with transposes, bias and the epilogues (residual add or GELU), the
 * semantics of the GPU op.
 *
 * @param a [...batch, M, K] (or [..., K, M] with transA).
 * @param b [K, N] shared, or [...batch, K, N] (or [..., N, K] with transB).
 * @param opts Transposes, bias [N], residual [...batch, M, N], activation.
 * @returns [...batch, M, N].
 */
export function matmulRef(a: Arr, b: Arr, opts: MatmulRefOptions = {}): Arr {
  const { transA = false, transB = false, bias, residual, activation } = opts;
  const act = activation === undefined
    ? null
    : UNARY_REF[activation === "gelu" ? "gelu" : "geluTanh"]!;
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((p, d) => p * d, 1);
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const m = transA ? a1 : a0, k = transA ? a0 : a1, n = transB ? b0 : b1;
  const shared = b.shape.length === 2;
  const out = arr([...batchShape, m, n]);
  for (let t = 0; t < batch; t++) {
    const ab = t * m * k, bb = shared ? 0 : t * k * n, cb = t * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = bias ? bias.data[j]! : 0;
        for (let q = 0; q < k; q++) {
          const av = a.data[ab + (transA ? q * m + i : i * k + q)]!;
          const bv = b.data[bb + (transB ? j * k + q : q * n + j)]!;
          s += av * bv;
        }
        const o = cb + i * n + j;
        if (residual) s += residual.data[o]!;
        out.data[o] = act ? act(s, 0, 0) : s;
      }
    }
  }
  return out;
}
