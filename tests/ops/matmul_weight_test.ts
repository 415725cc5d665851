/**
 * Matmuls whose weight passes the storage binding limit (`src/ops/matmul_weight.ts`), under a
 * runtime that pretends bindings hold 64 KiB (16384 floats): a linear layer `x @ W^T + b`
 * with W [160, 130] (20800 floats) and its backward. The forward splits along W's rows (the
 * output written at column offsets), the input gradient along K (W's rows), the weight
 * gradient along its own rows. Checked: forward against the float64 reference and against
 * the same product computed in column blocks that each fit (the same bits: an output
 * element's sum is unchanged by the split); gradients against central finite differences of
 * the reference (h 1e-3, sampled entries; tolerance 2e-3 absolute + 2e-3 relative, the
 * float32 sums of 21 rows and the FD truncation); a weight whose four rows cannot fit fails
 * before any dispatch.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert";
import { initGpu } from "../../src/gpu/runtime.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";

const LIMIT = 65536;
// The limit must be set before anything else creates the runtime: the harness is imported
// after it.
const rt = await initGpu({ maxBindingBytes: LIMIT });
const { assertClose, randArr, Rng } = await import("../harness.ts");
const { tensor } = await import("../../src/ops/creation.ts");
const { matmul } = await import("../../src/ops/matmul.ts");
const { concat, slice } = await import("../../src/ops/layout.ts");
const { mul, sum } = await import("../../src/ops/mod.ts");
const { backward } = await import("../../src/autograd/tape.ts");
const { tidy } = await import("../../src/autograd/scope.ts");
const { matmulRef } = await import("../../src/reference/matmul.ts");
const { weightSplit } = await import("../../src/ops/matmul_weight.ts");

const N = 160, K = 130, B = 3, M = 7;
const rng = new Rng(7);
const x = randArr([B, M, K], rng), w = randArr([N, K], rng, -0.5, 0.5), bias = randArr([N], rng);
const res = randArr([B, M, N], rng);
const dy = randArr([B, M, N], rng);

/** Central finite difference of `<dy, f(xs)>` with respect to entry i of input k. */
function fdEntry(
  f: (xs: typeof x[]) => typeof x,
  xs: typeof x[],
  k: number,
  i: number,
  h: number,
): number {
  const d = xs[k]!.data, o = d[i]!;
  const dot = () => f(xs).data.reduce((s, v, j) => s + v * dy.data[j]!, 0);
  d[i] = o + h;
  const p = dot();
  d[i] = o - h;
  const q = dot();
  d[i] = o;
  return (p - q) / (2 * h);
}

/** Values of a tensor list on the host (f16 widened), the tensors disposed. */
async function host(ts: Tensor[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const t of ts) out.push(Float32Array.from(await t.read()));
  for (const t of ts) t.dispose();
  return out;
}

Deno.test("the weight passes the lowered limit; each matmul of the linear layer splits along it", () => {
  assertEquals(rt.info.maxBindingBytes, LIMIT);
  assert(N * K * 4 > LIMIT);
  const dims = { batch: 1, m: B * M, n: N, k: K, sharedB: true };
  assertEquals(weightSplit(dims, { transB: true }, LIMIT), { along: "n", block: 124 });
  assertEquals(weightSplit({ ...dims, n: K, k: N }, {}, LIMIT), { along: "k", block: 124 });
  assertEquals(
    weightSplit({ batch: 1, m: N, n: K, k: B * M, sharedB: true }, { transA: true }, LIMIT),
    { along: "m", block: 126 },
  );
  // Nothing to split when the weight fits.
  assertEquals(weightSplit({ ...dims, n: 100 }, { transB: true }, LIMIT), null);
});

for (const epilogue of ["bias", "gelu", "residual"] as const) {
  Deno.test(`x @ W^T (+${epilogue}) past the limit: float64, the column blocks bit for bit, FD gradients`, async () => {
    const opts = {
      transB: true,
      activation: epilogue === "gelu" ? "gelu" as const : undefined,
    };
    const before = rt.counters.dispatches;
    const [y, gx, gw, gb, blocks] = await host(tidy(() => {
      const tx = tensor(x.data, x.shape), tw = tensor(w.data, w.shape);
      const tb = tensor(bias.data, bias.shape);
      for (const t of [tx, tw, tb]) t.requiresGrad = true;
      const r = epilogue === "residual" ? tensor(res.data, res.shape) : undefined;
      const out = matmul(tx, tw, { ...opts, bias: tb, residual: r });
      backward(sum(mul(out, tensor(dy.data, dy.shape))));
      // The same product in column blocks of W's rows, each under the limit.
      const parts = [0, 80].map((n0) =>
        matmul(tx, slice(tw, { axis: 0, start: n0, end: n0 + 80 }), {
          ...opts,
          bias: slice(tb, { axis: 0, start: n0, end: n0 + 80 }),
          residual: r ? slice(r, { axis: -1, start: n0, end: n0 + 80 }) : undefined,
        })
      );
      return [out, tx.grad!, tw.grad!, tb.grad!, concat(parts, -1)];
    }));
    assert(rt.counters.dispatches > before);
    const refOpts = {
      transB: true,
      bias,
      activation: opts.activation,
      residual: epilogue === "residual" ? res : undefined,
    };
    const f = (xs: typeof x[]) => matmulRef(xs[0]!, xs[1]!, { ...refOpts, bias: xs[2]! });
    assertClose(y!, matmulRef(x, w, refOpts).data, { atol: 1e-5, rtol: 1e-5, label: "forward" });
    assertEquals(y, blocks, "the split equals the column blocks bit for bit");
    // Gradients: central finite differences of the float64 reference, on 24 sampled entries
    // of each input (every block of the splits is hit: the entries are spread over it).
    const xs = [x, w, bias];
    const grads = [gx!, gw!, gb!];
    for (let k = 0; k < 3; k++) {
      const at = [...Array(24).keys()].map((i) => Math.floor((i + 0.5) * xs[k]!.data.length / 24));
      const got = at.map((i) => grads[k]![i]!);
      const want = at.map((i) => fdEntry(f, xs, k, i, 1e-3));
      assertClose(got, want, { atol: 2e-3, rtol: 2e-3, label: `gradient ${k}` });
    }
  });
}

Deno.test("a weight whose four rows pass the limit fails before any dispatch", () => {
  const before = rt.counters.dispatches;
  throws(
    () =>
      tidy(() =>
        matmul(
          tensor(new Float32Array(8), [1, 8]),
          tensor(new Float32Array(8 * 5000), [8, 5000]),
        )
      ),
    /^RangeError: matmul: cannot split the weight of \[1 x 1 x 8\] @ \[8 x 5000\] to fit the device's storage binding limit of 65536 bytes: four rows of the weight \(5000 floats each\) do not fit$/,
  );
  assertEquals(rt.counters.dispatches, before);
});

Deno.test("f16 activations through the weight split: the column blocks bit for bit, gradients against float64", async () => {
  const { tensorF16 } = await import("../../src/ops/cast.ts");
  const { roundF16Array } = await import("../../src/reference/cast.ts");
  const xh = { shape: x.shape, data: roundF16Array(x.data) };
  const dyh = roundF16Array(dy.data);
  const [y, gx, gw, blocks] = await host(tidy(() => {
    const tx = tensorF16(xh.data, x.shape), tw = tensor(w.data, w.shape);
    const tb = tensor(bias.data, bias.shape);
    for (const t of [tx, tw]) t.requiresGrad = true;
    const out = matmul(tx, tw, { transB: true, bias: tb, dtype: "f16" });
    backward(sum(mul(out, tensorF16(dyh, dy.shape))));
    const parts = [0, 80].map((n0) =>
      matmul(tx, slice(tw, { axis: 0, start: n0, end: n0 + 80 }), {
        transB: true,
        bias: slice(tb, { axis: 0, start: n0, end: n0 + 80 }),
        dtype: "f16",
      })
    );
    return [out, tx.grad!, tw.grad!, concat(parts, -1)];
  }));
  assertEquals(y, blocks, "the split equals the column blocks bit for bit");
  const xr = xh as typeof x, dyr = { shape: dy.shape, data: dyh } as typeof x;
  // Forward and input gradient stored in f16 (2^-11 relative rounding plus the f32 sums);
  // the weight gradient f32 from f16 operands.
  assertClose(y!, matmulRef(xr, w, { transB: true, bias }).data, {
    atol: 1e-3,
    rtol: 2e-3,
    label: "forward",
  });
  assertClose(gx!, matmulRef(dyr, w).data, { atol: 1e-3, rtol: 2e-3, label: "dx" });
  const x2 = { shape: [B * M, K], data: xr.data } as typeof x;
  const dy2 = { shape: [B * M, N], data: dyr.data } as typeof x;
  assertClose(gw!, matmulRef(dy2, x2, { transA: true }).data, {
    atol: 1e-4,
    rtol: 1e-4,
    label: "dW",
  });
});
