import { throws as assertThrows } from "node:assert";
import { type Arr, arr, assertClose, checkOp, randArr, Rng } from "../harness.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { tensor, zeros } from "../../src/ops/creation.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { reshape } from "../../src/ops/shape.ts";
import { gatherPatches, patchify } from "../../src/ops/patch.ts";
import { conv2dRef, gatherPatchesRef, patchifyRef } from "../../src/reference/patch.ts";

const rng = new Rng(5);

// patchify and gatherPatches move values without arithmetic: exact forward, and their
// gradients are permutations (or a scatter) of the output gradient, exact as well.
const EXACT = { atol: 0, rtol: 0, gradAtol: 1e-9, gradRtol: 0 };

const SHAPES: { shape: [number, number, number, number]; p: number }[] = [
  { shape: [2, 3, 6, 9], p: 3 },
  { shape: [1, 1, 5, 5], p: 5 },
  { shape: [2, 5, 4, 2], p: 2 },
  { shape: [1, 3, 4, 4], p: 1 },
];

for (const { shape, p } of SHAPES) {
  Deno.test(`patchify() [${shape}] p=${p} matches float64 unfold and FD`, async () => {
    await checkOp(
      "patchify",
      [randArr(shape, rng)],
      ([x]) => patchify(x!, p),
      ([x]) => patchifyRef(x!, p),
      EXACT,
    );
  });
}

/** [B, Cout, Ho, Wo] -> [B, Ho * Wo, Cout]: the conv output as tokens. */
function toTokens(y: Arr): Arr {
  const [b, c, h, w] = y.shape as [number, number, number, number];
  const out = arr([b, h * w, c]);
  for (let n = 0; n < b; n++) {
    for (let o = 0; o < c; o++) {
      for (let q = 0; q < h * w; q++) {
        out.data[(n * h * w + q) * c + o] = y.data[(n * c + o) * h * w + q]!;
      }
    }
  }
  return out;
}

Deno.test("patchify() + matmul(transB) + bias equals a stride-p Conv2d in float64", async () => {
  const [b, cin, h, w, cout, p] = [2, 3, 12, 8, 5, 4];
  await checkOp(
    "patch-embed",
    [randArr([b, cin, h, w], rng), randArr([cout, cin, p, p], rng), randArr([cout], rng)],
    ([x, wt, bias]) =>
      matmul(patchify(x!, p), reshape(wt!, [cout, cin * p * p]), { transB: true, bias: bias! }),
    ([x, wt, bias]) => toTokens(conv2dRef(x!, wt!, bias!, p)),
    // 48-term float32 dot products of values in [-1, 1]: ~1e-6; FD of a bilinear function
    // is exact up to float64 rounding.
    { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-4 },
  );
});

/** Distinct patch numbers in random order, plus any extra (out-of-range) entries. */
function selection(b: number, P: number, K: number, extra: number[] = []): number[][] {
  return Array.from(
    { length: b },
    () => [...rng.shuffle([...Array(P).keys()]).slice(0, K), ...extra],
  );
}

Deno.test("gatherPatches() matches float64 and FD; bad indices give zero rows", async () => {
  const [b, cin, h, w, p] = [2, 3, 6, 10, 2];
  const P = (h / p) * (w / p);
  const index = selection(b, P, 7, [-1, P]);
  await checkOp(
    "gatherPatches",
    [randArr([b, cin, h, w], rng)],
    ([x]) =>
      gatherPatches(x!, { patch: p, index: tensor(Int32Array.from(index.flat()), [b, 9], "i32") }),
    ([x]) => gatherPatchesRef(x!, p, index),
    EXACT,
  );
});

Deno.test("gatherPatches() equals patchify() with its rows gathered, for every patch", async () => {
  const [b, cin, h, w, p] = [2, 5, 9, 6, 3];
  const P = (h / p) * (w / p);
  const index = selection(b, P, P);
  const img = randArr([b, cin, h, w], rng);
  const { sel, all } = tidy(() => {
    const x = tensor(Float32Array.from(img.data), img.shape);
    const sel = gatherPatches(x, {
      patch: p,
      index: tensor(Int32Array.from(index.flat()), [b, P], "i32"),
    });
    return { sel, all: patchify(x, p) };
  });
  const [s, a] = [await sel.read(), await all.read()];
  const F = cin * p * p;
  const want: number[] = [];
  for (let n = 0; n < b; n++) {
    for (const q of index[n]!) want.push(...a.subarray((n * P + q) * F, (n * P + q + 1) * F));
  }
  assertClose(s, want, { atol: 0, rtol: 0, label: "gathered rows" });
  sel.dispose();
  all.dispose();
});

Deno.test("patchify() and gatherPatches() reject sizes that are not multiples of p", () => {
  tidy(() => {
    const x = zeros([1, 3, 10, 12]);
    assertThrows(() => patchify(x, 4), { name: "RangeError", message: /multiples of 4/ });
    const index = tensor(new Int32Array([0]), [1, 1], "i32");
    assertThrows(() => gatherPatches(x, { patch: 4, index }), {
      name: "RangeError",
      message: /multiples of 4/,
    });
  });
});

Deno.test("gatherPatches() cuts and scatters patches of a [1, 3, 3780, 3780] image", async () => {
  // 171 MB: more than one storage binding, so the kernels run over windows of planes.
  const [s, p] = [3780, 14];
  const gw = s / p;
  const data = new Float32Array(3 * s * s);
  for (let i = 0; i < data.length; i++) data[i] = (i % 1009) - 504;
  const picks = [0, gw * gw - 1, 123 * gw + 77, 200 * gw + 3, 269 * gw + 268];
  const F = 3 * p * p;
  const { y, dx } = tidy(() => {
    const x = tensor(data, [1, 3, s, s]);
    x.requiresGrad = true;
    const y = gatherPatches(x, {
      patch: p,
      index: tensor(Int32Array.from(picks), [1, picks.length], "i32"),
    });
    // Output gradient = 1 + feature index, so each pixel's gradient names its feature.
    const g = new Float32Array(picks.length * F);
    for (let i = 0; i < g.length; i++) g[i] = 1 + (i % F);
    backward(y, tensor(g, y.shape));
    return { y, dx: x.grad! };
  });
  const [got, grad] = [await y.read(), await dx.read()];
  const want: number[] = [], gradWant: number[] = [], gradGot: number[] = [];
  for (const q of picks) {
    const py = Math.floor(q / gw), px = q % gw;
    for (let c = 0; c < 3; c++) {
      for (let ky = 0; ky < p; ky++) {
        for (let kx = 0; kx < p; kx++) {
          const at = (c * s + py * p + ky) * s + px * p + kx;
          want.push(data[at]!);
          gradWant.push(1 + (c * p + ky) * p + kx);
          gradGot.push(grad[at]!);
        }
      }
    }
    // The pixel just left of the patch (or right, at the left edge) was not selected.
    const beside = (py * p) * s + (px > 0 ? px * p - 1 : px * p + p);
    if (!picks.includes(py * gw + (px > 0 ? px - 1 : px + 1))) {
      gradWant.push(0);
      gradGot.push(grad[beside]!);
    }
  }
  assertClose(got, want, { atol: 0, rtol: 0, label: "4K patches" });
  assertClose(gradGot, gradWant, { atol: 0, rtol: 0, label: "4K patch gradient" });
  let total = 0;
  for (const v of grad) total += v;
  // Every selected pixel receives one feature's gradient: the sum is 5 * sum(1..F).
  assertClose([total], [(picks.length * F * (F + 1)) / 2], { atol: 0, rtol: 0, label: "sum" });
  y.dispose();
  dx.dispose();
});
