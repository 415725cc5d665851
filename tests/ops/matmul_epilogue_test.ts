import { throws } from "node:assert";
import { type Arr, arr, assertClose, checkOp, randArr, Rng, roundF32, rt } from "../harness.ts";
import {
  matmul,
  type MatmulActivation,
  type MatmulKernel,
  type MatmulTiles,
  type MatmulVariant,
} from "../../src/ops/matmul.ts";
import { randn, tensor } from "../../src/ops/creation.ts";
import { add, gelu, geluTanh } from "../../src/ops/elementwise.ts";
import { mean } from "../../src/ops/reduce.ts";
import { backward, noGrad } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { checkpoint } from "../../src/autograd/checkpoint.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import { matmulRef } from "../../src/reference/matmul.ts";

const rng = new Rng(11);

/** A matmul case: operand shapes, transposes, bias, and one epilogue. */
interface Case {
  a: number[];
  b: number[];
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
  residual?: boolean;
  activation?: MatmulActivation;
  /** The kernel the matmuls run with (default: the adapter's). */
  kernel?: MatmulKernel;
}

// Partial tiles everywhere (M 13 vs vec4 rows 12, N 20 vs 16), K 27 (vec4 packs both operands
// with padding), batches with a shared and a per-entry B, a transposed A, and N = 11 (the vec4
// family falls back to scalar there).
const SHAPES: Omit<Case, "residual" | "activation">[] = [
  { a: [13, 27], b: [20, 27], transB: true, bias: true },
  { a: [3, 10, 8], b: [8, 12], bias: true },
  { a: [2, 9, 8], b: [2, 8, 12] },
  { a: [27, 13], b: [27, 11], transA: true, bias: true },
];
const CASES: Case[] = SHAPES.flatMap((s, i) => [
  { ...s, residual: true },
  { ...s, activation: i % 2 === 0 ? "gelu" : "gelu_tanh" },
]);

// Every family (tiled-f16 where the adapter has shader-f16), and smaller tiles that leave
// several blocks and partial ones.
const TILINGS: { variant: MatmulVariant; tiles?: Partial<MatmulTiles>; label: string }[] = [
  { variant: "scalar", label: "scalar" },
  { variant: "vec4", label: "vec4" },
  { variant: "vec4", tiles: { vec4: { tm: 4, tn: 8 } }, label: "vec4 4x8" },
  { variant: "tiled", label: "tiled" },
  { variant: "tiled", tiles: { tiled: { bm: 32, bn: 16, bk: 4 } }, label: "tiled 32x16x4" },
  { variant: "tiled-f16", label: "tiled-f16" },
];

/** A case run with a tiling's kernel. */
function withKernel(
  c: Case,
  t: { variant: MatmulVariant; tiles?: Partial<MatmulTiles> | undefined },
): Case {
  return {
    ...c,
    kernel: t.tiles ? { variant: t.variant, tiles: t.tiles } : { variant: t.variant },
  };
}

function label(c: Case): string {
  return `[${c.a}]${c.transA ? "^T" : ""} @ [${c.b}]${c.transB ? "^T" : ""}` +
    (c.bias ? " + bias" : "") + (c.residual ? " + residual" : "") +
    (c.activation ? ` -> ${c.activation}` : "");
}

/** The inputs of a case: a, b, then bias and residual where it has them. */
function inputsOf(c: Case): Arr[] {
  const n = c.transB ? c.b[c.b.length - 2]! : c.b[c.b.length - 1]!;
  const m = c.transA ? c.a[c.a.length - 1]! : c.a[c.a.length - 2]!;
  const xs = [randArr(c.a, rng), randArr(c.b, rng)];
  if (c.bias) xs.push(randArr([n], rng));
  if (c.residual) xs.push(randArr([...c.a.slice(0, -2), m, n], rng));
  return xs.map(roundF32);
}

/** Splits the inputs of a case back into operands and options. */
function split<T>(c: Case, xs: T[]): { a: T; b: T; bias: T | undefined; residual: T | undefined } {
  const [a, b, ...rest] = xs;
  return {
    a: a!,
    b: b!,
    bias: c.bias ? rest.shift() : undefined,
    residual: c.residual ? rest.shift() : undefined,
  };
}

function fused(c: Case, xs: Tensor[]): Tensor {
  const { a, b, bias, residual } = split(c, xs);
  const { transA, transB, activation, kernel } = c;
  return matmul(a, b, { transA, transB, bias, residual, activation, kernel });
}

/** The same result from the separate ops: matmul, then add or the GELU. */
function separate(c: Case, xs: Tensor[]): Tensor {
  const { a, b, bias, residual } = split(c, xs);
  const y = matmul(a, b, { transA: c.transA, transB: c.transB, bias, kernel: c.kernel });
  if (residual) return add(residual, y);
  if (c.activation === "gelu") return gelu(y);
  if (c.activation === "gelu_tanh") return geluTanh(y);
  return y;
}

function ref(c: Case, xs: Arr[]): Arr {
  const { a, b, bias, residual } = split(c, xs);
  const { transA, transB, activation } = c;
  return matmulRef(a, b, { transA, transB, bias, residual, activation });
}

/** Asserts two float32 arrays are equal bit for bit; names the first differences. */
function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  if (g.length !== w.length) throw new Error(`${what}: length ${g.length} != ${w.length}`);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < g.length; i++) {
    if (g[i] === w[i]) continue;
    if (count++ < 5) bad.push(`  [${i}] fused ${got[i]}, separate ${want[i]}`);
  }
  if (count > 0) {
    throw new Error(`${what}: ${count} of ${g.length} elements differ\n${bad.join("\n")}`);
  }
}

/** Output and every input gradient of `op` (the same output weights for every call). */
async function run(op: (xs: Tensor[]) => Tensor, inputs: Arr[], w: Arr): Promise<Float32Array[]> {
  const out = tidy(() => {
    const xs = inputs.map((x) => {
      const t = tensor(Float32Array.from(x.data), x.shape);
      t.requiresGrad = true;
      return t;
    });
    const y = op(xs);
    backward(y, tensor(Float32Array.from(w.data), w.shape));
    return [y, ...xs.map((x) => x.grad!)];
  });
  const host = await rt.read(out);
  for (const t of out) t.dispose();
  return host.map((h) => new Float32Array(h));
}

/** The output of `op` with recording off (the fused GELU then stores no pre-activation). */
async function runNoGrad(op: (xs: Tensor[]) => Tensor, inputs: Arr[]): Promise<Float32Array> {
  const y = noGrad(() =>
    tidy(() => op(inputs.map((x) => tensor(Float32Array.from(x.data), x.shape))))
  );
  const [host] = await rt.read([y]);
  y.dispose();
  return new Float32Array(host!);
}

/**
 * Fused against separate: the output (recorded and not) and every gradient. The residual
 * epilogue does the very f32 additions of the separate ops, so it is exact everywhere; the
 * GELU evaluates the elementwise op's WGSL snippet, exact where the adapter compiles it alike
 * in both kernels (llvmpipe), else to within a few f32 roundings (1e-6).
 */
async function checkAgainstSeparate(c: Case, inputs: Arr[], w: Arr, tag: string) {
  const f = await run((xs) => fused(c, xs), inputs, w);
  const s = await run((xs) => separate(c, xs), inputs, w);
  const fNoGrad = await runNoGrad((xs) => fused(c, xs), inputs);
  const exact = !c.activation || rt.info.isSoftware;
  const what = ["output", "grad a", "grad b", ...(c.bias ? ["grad bias"] : []), "grad residual"];
  const pairs: [Float32Array, Float32Array, string][] = [
    ...f.map((x, i) => [x, s[i]!, what[i]!] as [Float32Array, Float32Array, string]),
    [fNoGrad, s[0]!, "output without recording"],
  ];
  for (const [got, want, name] of pairs) {
    if (exact) assertBitEqual(got, want, `${tag} ${name}`);
    else assertClose(got, want, { atol: 1e-6, rtol: 1e-6, label: `${tag} ${name}` });
  }
}

for (const v of TILINGS) {
  for (const c0 of CASES) {
    Deno.test(`matmul() ${v.label} kernel: ${label(c0)} matches float64, FD, and the separate ops`, async () => {
      if (v.variant === "tiled-f16" && !rt.info.hasF16) return; // falls back to tiled, tested
      {
        const c = withKernel(c0, v);
        const inputs = inputsOf(c);
        const out = ref(c, inputs);
        const w = roundF32(randArr(out.shape, rng));
        await checkAgainstSeparate(c, inputs, w, v.label);
        if (v.variant === "tiled-f16") {
          // f16 tiles: the products of f16-rounded operands are exact in f32, so against the
          // reference on those operands only the f32 sums (K <= 27) and the epilogue differ.
          const [ah, bh] = inputs.map((x) => {
            const h = arr(x.shape);
            h.data.set(x.data.map((e) => Math.f16round(e)));
            return h;
          });
          const y = await runNoGrad((xs) => fused(c, xs), inputs);
          assertClose(y, ref(c, [ah!, bh!, ...inputs.slice(2)]).data, {
            atol: 1e-5,
            rtol: 1e-5,
            label: "tiled-f16 forward",
          });
          return;
        }
        // K <= 27 products of |x| <= 1 summed in f32 (~1e-6); erf of the GELU to 1.2e-7 and
        // the tanh builtin to about 1e-6 relative: 1e-5 forward and for gradients (FD on the
        // float64 reference, step 1e-5), the tolerances of the plain matmul tests.
        await checkOp(
          `matmul ${label(c)}`,
          inputs,
          (xs) => fused(c, xs),
          (xs) => ref(c, xs),
          { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
        );
      }
    });
  }
}

// K long enough that llvmpipe's loop limit splits it over several dispatches (scalar: 32767
// per dispatch, vec4: 131068, tiled 16x16x8: 262136): the epilogue must see the whole sum.
for (
  const [v, k, n] of [
    [{ variant: "scalar" as const }, 70000, 3],
    [{ variant: "vec4" as const }, 140000, 4],
    [{ variant: "tiled" as const, tiles: { tiled: { bm: 16, bn: 16, bk: 8 } } }, 270000, 3],
  ] as const
) {
  for (const epi of [{ residual: true }, { activation: "gelu" as const }]) {
    const c0: Case = { a: [2, k], b: [k, n], bias: true, ...epi };
    Deno.test(`matmul() ${v.variant} kernel with K = ${k} (split over dispatches): ${label(c0)} equals the separate ops`, async () => {
      {
        const c = withKernel(c0, v);
        const inputs = inputsOf(c);
        // Scaled so the sums stay O(1) and the GELU is not saturated.
        for (const x of inputs.slice(0, 2)) x.data.set(x.data.map((e) => Math.fround(e / 20)));
        const w = roundF32(randArr([2, n], rng));
        await checkAgainstSeparate(c, inputs, w, `K=${k}`);
        // 70000+ products of |x| <= 1/20 summed in f32: ~1e-5 of the terms' magnitudes.
        const y = await runNoGrad((xs) => fused(c, xs), inputs);
        assertClose(y, ref(c, inputs).data, { atol: 1e-4, rtol: 1e-4, label: `K=${k} forward` });
      }
    });
  }
}

Deno.test("matmul() with a GELU stores the pre-activation only when the tape records", () => {
  const a = randn([16, 8], 1), b = randn([8, 12], 2);
  const bytes = (recording: boolean) => {
    const before = rt.memory().inUseBytes;
    const f = () => matmul(a, b, { activation: "gelu" });
    const y = recording ? f() : noGrad(f);
    const used = rt.memory().inUseBytes - before;
    y.dispose();
    return used;
  };
  b.requiresGrad = true;
  const recorded = tidy(() => bytes(true));
  const inference = bytes(false);
  if (recorded !== 2 * inference) {
    throw new Error(`recorded step used ${recorded} bytes, inference ${inference}`);
  }
  a.dispose();
  b.dispose();
});

Deno.test("checkpoint() of fused matmul epilogues gives the plain graph's gradients", async () => {
  const w1 = randn([6, 8], 1, 0.5), w2 = randn([8, 6], 2, 0.5), x = randn([4, 6], 3);
  for (const t of [w1, w2, x]) t.requiresGrad = true;
  // An MLP with the residual: x + gelu(x @ w1) @ w2.
  const block = (h: Tensor) => [
    matmul(matmul(h, w1, { activation: "gelu" }), w2, { residual: h }),
  ];
  const grads = async (useCheckpoint: boolean) => {
    for (const t of [w1, w2, x]) {
      t.grad?.dispose();
      t.grad = null;
    }
    tidy(() => {
      const [y] = useCheckpoint ? checkpoint(block, [x]) : block(x);
      backward(mean(y!));
    });
    return (await rt.read([w1.grad!, w2.grad!, x.grad!])).map((h) => new Float32Array(h));
  };
  const plain = await grads(false);
  const recomputed = await grads(true);
  plain.forEach((p, i) => assertBitEqual(recomputed[i]!, p, `checkpointed gradient ${i}`));
  for (const t of [w1, w2, x]) {
    t.grad?.dispose();
    t.dispose();
  }
});

Deno.test("matmul() rejects an activation with a residual, a misshapen residual, an unknown activation", () => {
  const a = randn([3, 4], 1), b = randn([4, 5], 2), r = randn([3, 5], 3), bad = randn([5, 3], 4);
  throws(() => matmul(a, b, { residual: r, activation: "gelu" }), {
    name: "RangeError",
    message: /Cannot fuse both activation "gelu" and a residual/,
  });
  throws(() => matmul(a, b, { residual: bad }), {
    name: "RangeError",
    message: /residual must have the result's shape \[3, ?5\].*got \[5, ?3\]/,
  });
  throws(() => matmul(a, b, { activation: "relu" as MatmulActivation }), {
    name: "RangeError",
    message: /Unknown matmul\(\) activation "relu"/,
  });
  throws(() => matmul(a, b, { activation: "toString" as MatmulActivation }), RangeError);
  for (const t of [a, b, r, bad]) t.dispose();
});
