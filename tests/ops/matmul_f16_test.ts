/**
 * matmul() with f16 activations (issue 14): every kernel family and transpose layout, bias
 * and the fused epilogues, with A f16 x W f32 -> Y f16 (and f16 x f16 as attention's QK^T).
 * Inputs are f16-representable; the float64 reference runs on them; the result may differ
 * by the f16 rounding of the stored value (relative 2^-11) plus the f32 kernel's tolerance
 * (1e-5 relative and absolute for these K, as in matmul_test.ts; the tiled-f16 family adds
 * the f16 rounding of the f32 operand in its tiles, 2^-11 relative per product:
 * sum |a||w| 2^-11). Gradients: dA (f16) and dW (f32, summed in f32) against the f32 kernel
 * of the same family on the same values, whose gradients matmul_test.ts checks against finite
 * differences: dA within the f16 rounding of the store, dW within the f32 tolerance.
 *
 * @module
 */

import { deepStrictEqual as assertEquals } from "node:assert";
import { type Arr, assertClose, randArr, Rng, rt } from "../harness.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { matmul, type MatmulOptions, type MatmulVariant } from "../../src/ops/matmul.ts";
import { backward } from "../../src/autograd/tape.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import { roundF16 } from "../../src/reference/cast.ts";
import { matmulRef } from "../../src/reference/matmul.ts";

const rng = new Rng(11);
const H = 2 ** -11;

function rand16(shape: number[], lo = -1, hi = 1): Arr {
  const a = randArr(shape, rng, lo, hi);
  for (let i = 0; i < a.data.length; i++) a.data[i] = roundF16(a.data[i]!);
  return a;
}
const f16 = (a: Arr) => tensorF16(Float32Array.from(a.data), a.shape);
const f32 = (a: Arr) => tensor(Float32Array.from(a.data), a.shape);

/** Runs y = matmul(a, b, opts) and the gradients of <w, y>. */
async function run(
  a: Tensor,
  b: Tensor,
  extra: { bias?: Tensor; residual?: Tensor },
  opts: MatmulOptions,
  w: Arr,
) {
  for (const t of [a, b, extra.bias, extra.residual]) if (t) t.requiresGrad = true;
  const y = matmul(a, b, { ...opts, ...extra });
  backward(y, y.dtype === "f16" ? f16(w) : f32(w));
  const read = async (t?: Tensor) => (t ? await t.grad!.read() : null);
  return {
    y,
    yv: await y.read(),
    da: await read(a),
    db: await read(b),
    dbias: await read(extra.bias),
    dres: await read(extra.residual),
    dtypes: [a.grad!.dtype, b.grad!.dtype, extra.bias?.grad?.dtype ?? null],
  };
}

const VARIANTS: MatmulVariant[] = ["scalar", "vec4", "tiled", "tiled-f16"];
const LAYOUTS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
type Epi = "plain" | "bias" | "residual" | "gelu";

for (const variant of VARIANTS) {
  for (const [transA, transB] of LAYOUTS) {
    for (const epi of ["plain", "bias", "residual", "gelu"] as Epi[]) {
      // Epilogues on the common layout (activation x W^T); plain on every layout.
      if (epi !== "plain" && (transA || !transB)) continue;
      const label = `${variant} ${transA ? "A^T" : "A"} @ ${transB ? "W^T" : "W"} ${epi}`;
      Deno.test(`matmul() f16 activations x f32 weights, ${label}: float64 and f32 gradients`, async () => {
        if (!rt.info.hasF16) return;
        const B = 2, M = 13, K = 20, N = 12;
        const a = rand16(transA ? [B, K, M] : [B, M, K]);
        const wt = rand16(transB ? [N, K] : [K, N], -0.5, 0.5);
        const bias = epi === "bias" || epi === "gelu" ? rand16([N]) : undefined;
        const res = epi === "residual" ? rand16([B, M, N]) : undefined;
        const activation = epi === "gelu" ? "gelu" as const : undefined;
        const g = rand16([B, M, N]);
        const opts: MatmulOptions = { transA, transB, activation, kernel: { variant } };
        const mk = (h: boolean) => ({
          ...(bias ? { bias: f32(bias) } : {}),
          ...(res ? { residual: h ? f16(res) : f32(res) } : {}),
        });
        const h = await run(f16(a), f32(wt), mk(true), opts, g);
        assertEquals(h.y.dtype, "f16");
        assertEquals(h.dtypes, ["f16", "f32", bias ? "f32" : null]);
        // The reference on [B*M, K] rows (a shared weight).
        const ref = matmulRef(a, wt, { transA, transB, bias, residual: res, activation });
        const tiledF16 = variant === "tiled-f16" ? 20 * 0.5 * H : 0;
        assertClose(h.yv, ref.data, { atol: 1e-5 + tiledF16, rtol: H + 1e-5, label });
        // Gradients against the f32 path of the same family on the same values.
        const s = await run(f32(a), f32(wt), mk(false), opts, g);
        // dA is stored f16; with gelu its dC was computed from the f16 pre-activation
        // (|gelu''| <= 0.6, |z| < 4: another 2.4 H |g| absolute).
        const gTol = epi === "gelu" ? 2.4 * H : 0;
        const extraK = variant === "tiled-f16" ? 12 * 0.5 * H : 0;
        assertClose(h.da!, s.da!, { atol: 1e-5 + gTol * 6 + extraK, rtol: H + 1e-5, label: "dA" });
        // dW sums over 26 rows of f16 terms in f32: f32 accumulation, the same as the f32 path
        // up to the rounding of the f16 dC (gelu) and tiled-f16's tile rounding of both.
        const dwTol = (epi === "gelu" ? 26 * 2.4 * H : 0) + (variant === "tiled-f16" ? 26 * H : 0);
        assertClose(h.db!, s.db!, { atol: 1e-5 + dwTol, rtol: 1e-5, label: "dW" });
        if (bias) {
          assertClose(h.dbias!, s.dbias!, {
            atol: 1e-5 + (epi === "gelu" ? 26 * 2.4 * H : 0),
            rtol: 1e-5,
            label: "dbias",
          });
        }
        if (res) {
          assertClose(h.dres!, s.dres!, { atol: 0, rtol: 0, label: "dresidual" });
        }
      });
    }
  }
}

for (const variant of VARIANTS) {
  Deno.test(`matmul() ${variant} f16 x f16 batched (attention's Q K^T) stores f16 gradients`, async () => {
    if (!rt.info.hasF16) return;
    const q = rand16([3, 9, 16]), k = rand16([3, 11, 16]);
    const g = rand16([3, 9, 11]);
    const opts: MatmulOptions = { transB: true, kernel: { variant } };
    const h = await run(f16(q), f16(k), {}, opts, g);
    assertEquals(h.dtypes, ["f16", "f16", null]);
    const ref = matmulRef(q, k, { transB: true });
    // Both operands are f16 already: tiled-f16's tiles hold them exactly.
    assertClose(h.yv, ref.data, { atol: 1e-5, rtol: H + 1e-5, label: "QK^T" });
    const s = await run(f32(q), f32(k), {}, opts, g);
    assertClose(h.da!, s.da!, { atol: 1e-5, rtol: H + 1e-5, label: "dQ" });
    assertClose(h.db!, s.db!, { atol: 1e-5, rtol: H + 1e-5, label: "dK" });
  });
}
