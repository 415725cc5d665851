import { ok as assert, throws as assertThrows } from "node:assert";
import { type Arr, arr, checkOp, randArr, Rng, rt } from "../harness.ts";
import {
  LAYER_NORM_CHUNK_ROWS,
  layerNorm,
  layerNormChannels,
  normalize,
} from "../../src/ops/norm.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tidy } from "../../src/autograd/scope.ts";
import {
  forEachRow,
  layerNormChannelsRef,
  layerNormRef,
  normalizeRef,
  refLayout,
} from "../../src/reference/norm.ts";

const rng = new Rng(3);

// The f32 mean is off by ~ulp(|x| <= 3) = 2.4e-7, and x - mean carries that error times
// rstd * weight (<= 2 * 1.5 with rows of std >= 0.5, see spreadArr) into y; with the rounding
// of |y| <= ~4 (ulp 4.8e-7) that is ~1e-6 at worst (measured worst 4.8e-7). Gradients are
// O(1) (O(rows) for weight/bias), sums of C or rows f32 products with the same rstd factor;
// the f64 finite differences are exact to ~1e-9 at h = 1e-5.
const LN_TOL = { atol: 1e-6, rtol: 2e-6, gradAtol: 5e-6, gradRtol: 1e-5 };

/**
 * Uniform values in [-2, 3] (a nonzero mean) whose rows along `axis` have a std of at least
 * 0.5, so that rstd <= 2 (the error of x - mean grows with rstd; nearly constant rows have
 * their own test with an exact mean).
 */
function spreadArr(shape: number[], axis: number): Arr {
  const x = arr(shape);
  forEachRow(refLayout(shape, axis), (idx) => {
    for (;;) {
      for (const e of idx) x.data[e] = rng.uniform(-2, 3);
      const m = idx.reduce((s, e) => s + x.data[e]!, 0) / idx.length;
      const v = idx.reduce((s, e) => s + (x.data[e]! - m) ** 2, 0) / idx.length;
      if (idx.length === 1 || v >= 0.25) break;
    }
  });
  return x;
}

/** x as spreadArr along `axis`, weight in [0.5, 1.5], bias in [-0.5, 0.5]. */
function lnInputs(shape: number[], axis = -1): [Arr, Arr, Arr] {
  const C = refLayout(shape, axis).size;
  return [spreadArr(shape, axis), randArr([C], rng, 0.5, 1.5), randArr([C], rng, -0.5, 0.5)];
}

async function checkLayerNorm(
  shape: number[],
  opts: { eps?: number; x?: Arr; tol?: typeof LN_TOL } = {},
): Promise<void> {
  const [rx, w, b] = lnInputs(shape);
  const eps = opts.eps === undefined ? {} : { eps: opts.eps };
  await checkOp(
    `layerNorm [${shape}]`,
    [opts.x ?? rx, w, b],
    ([t, tw, tb]) => layerNorm(t!, tw!, tb!, eps),
    ([a, aw, ab]) => layerNormRef(a!, aw!, ab!, eps),
    opts.tol ?? LN_TOL,
  );
}

for (const rows of [1, 7, 37]) {
  for (const C of [1, 3, 64, 65]) {
    Deno.test(`layerNorm() matches float64 and finite differences for [${rows}, ${C}]`, () =>
      checkLayerNorm([rows, C]));
  }
}

for (const shape of [[2, 3, 5], [3, 1, 4, 65]]) {
  Deno.test(`layerNorm() normalises the last axis of batched [${shape}]`, () =>
    checkLayerNorm(shape));
}

Deno.test("layerNorm() matches float64 and finite differences for C=1152", () =>
  checkLayerNorm([2, 1152], { eps: 1e-6 }));

Deno.test("layerNorm() forward matches float64 for C=4304 (3*C loop trips)", async () => {
  const inputs = lnInputs([2, 4304]);
  await checkOp(
    "layerNorm [2, 4304]",
    inputs,
    ([t, tw, tb]) => layerNorm(t!, tw!, tb!),
    ([a, aw, ab]) => layerNormRef(a!, aw!, ab!),
    LN_TOL,
    [0, 1, 2], // forward only: finite differences over 8608 inputs are too slow
  );
});

const NULL_CASES = [
  { name: "weight only", w: true, b: false },
  { name: "bias only", w: false, b: true },
  { name: "neither weight nor bias", w: false, b: false },
];
for (const { name, w, b } of NULL_CASES) {
  Deno.test(`layerNorm() with ${name} matches float64 and finite differences`, async () => {
    const [x, aw, ab] = lnInputs([7, 65]);
    const inputs = [x, ...(w ? [aw] : []), ...(b ? [ab] : [])];
    const split = <T>(xs: T[]): [T, T | null, T | null] => [
      xs[0]!,
      w ? xs[1]! : null,
      b ? xs[w ? 2 : 1]! : null,
    ];
    await checkOp(
      `layerNorm ${name}`,
      inputs,
      (ts) => layerNorm(...split(ts)),
      (as) => layerNormRef(...split(as)),
      LN_TOL,
    );
  });
}

Deno.test("layerNorm() maps constant rows to the bias with rstd = 1/sqrt(eps)", async () => {
  // Values that are multiples of 1/4 sum exactly in f32, so the mean is exact and x - mean
  // is 0: the output is exactly the bias. dx = rstd * (dxhat - mean(dxhat)) cancels terms of
  // rstd * O(1) = O(1000), so its absolute error is a few ulp of 1000 (LN_TOL's scaled by
  // rstd would be 5e-3; measured 1.1e-5).
  const x = spreadArr([4, 65], -1);
  for (const [r, v] of [[0, 0.75], [1, -2], [2, 0]] as const) x.data.fill(v, r * 65, r * 65 + 65);
  await checkLayerNorm([4, 65], { eps: 1e-6, x, tol: { ...LN_TOL, gradAtol: 5e-4 } });
});

Deno.test("layerNorm() adds a large eps (0.5) to the variance", () =>
  checkLayerNorm([7, 64], { eps: 0.5 }));

Deno.test("layerNorm() weight and bias gradients sum rows across chunks (two passes)", () =>
  checkLayerNorm([2 * LAYER_NORM_CHUNK_ROWS + 37, 3]));

async function checkChannels(shape: number[]): Promise<void> {
  await checkOp(
    `layerNormChannels [${shape}]`,
    lnInputs(shape, 1),
    ([t, tw, tb]) => layerNormChannels(t!, tw!, tb!),
    ([a, aw, ab]) => layerNormChannelsRef(a!, aw!, ab!),
    LN_TOL,
  );
}

Deno.test("layerNormChannels() matches float64 and finite differences for [2, 5, 3, 4]", () =>
  checkChannels([2, 5, 3, 4]));

Deno.test("layerNormChannels() weight and bias gradients span chunks that split a map", () => {
  // rows = 2 * 150 > LAYER_NORM_CHUNK_ROWS: a chunk starts inside the second map.
  assert(300 > LAYER_NORM_CHUNK_ROWS && 300 % LAYER_NORM_CHUNK_ROWS !== 0);
  return checkChannels([2, 3, 15, 10]);
});

Deno.test("layerNorm() rejects a weight that is not [C] and a non-f32 input", () => {
  tidy(() => {
    const x = tensor(new Float32Array(12), [3, 4]);
    assertThrows(() => layerNorm(x, tensor([1, 1, 1], [3]), null), {
      name: "RangeError",
      message: /weight must be \[4\]/,
    });
    const xi = tensor(new Int32Array(12), [3, 4], "i32");
    assertThrows(() => layerNorm(xi, null, null), { name: "TypeError", message: /f32/ });
    assertThrows(() => layerNormChannels(x, null, null), {
      name: "RangeError",
      message: /\[B, C, H, W\]/,
    });
  });
});

Deno.test("layerNorm() keeps mean and rstd only when a backward is recorded", () => {
  tidy(() => {
    const x = tensor(new Float32Array(12).map((_, i) => i), [3, 4]);
    let live = rt.memory().liveBuffers;
    layerNorm(x, null, null);
    assert(rt.memory().liveBuffers - live === 1, "only the output stays without gradients");
    x.requiresGrad = true;
    live = rt.memory().liveBuffers;
    layerNorm(x, null, null);
    assert(rt.memory().liveBuffers - live === 3, "the output, mean and rstd stay for backward");
  });
});

// |y| <= 1; a few f32 ulp (ulp(1) = 1.2e-7; measured worst 5e-8). dx = (g - y*dot)/norm is
// O(1) with norms >= 0.3 here.
const L2_TOL = { atol: 2e-7, rtol: 1e-6, gradAtol: 1e-6, gradRtol: 1e-5 };

for (const shape of [[1, 3], [7, 65], [37, 1], [2, 3, 5]]) {
  Deno.test(`normalize() matches float64 and finite differences for [${shape}]`, async () => {
    await checkOp(
      `normalize [${shape}]`,
      [randArr(shape, rng, -2, 3)],
      ([t]) => normalize(t!),
      ([a]) => normalizeRef(a!),
      L2_TOL,
    );
  });
}

Deno.test("normalize() along axis 1 of [2, 5, 3, 4] matches float64 and FD", async () => {
  await checkOp(
    "normalize axis 1",
    [randArr([2, 5, 3, 4], rng, -2, 3)],
    ([t]) => normalize(t!, { axis: 1 }),
    ([a]) => normalizeRef(a!, { axis: 1 }),
    L2_TOL,
  );
});

Deno.test("normalize() maps a zero row to zeros (norm clamped to eps)", async () => {
  const x = randArr([3, 7], rng, -2, 3);
  x.data.fill(0, 7, 14);
  await checkOp(
    "normalize zero row",
    [x],
    ([t]) => normalize(t!),
    ([a]) => normalizeRef(a!),
    L2_TOL,
    [0], // forward only: the norm is not differentiable at 0, finite differences cross eps
  );
});

Deno.test("normalize() gradient is g / eps below eps and the norm rule above", async () => {
  // eps = 1: rows of |v| <= 0.1 (norm <= 0.23) take the eps branch, rows of |v| in [1, 2]
  // (norm >= sqrt(5)) the norm branch; finite differences stay on one side of eps.
  const x = arr([6, 5]);
  for (let r = 0; r < 6; r++) {
    for (let c = 0; c < 5; c++) {
      const v = r % 2 === 0 ? rng.uniform(-0.1, 0.1) : rng.uniform(1, 2) * (c % 2 ? -1 : 1);
      x.data[r * 5 + c] = v;
    }
  }
  await checkOp(
    "normalize eps 1",
    [x],
    ([t]) => normalize(t!, { eps: 1 }),
    ([a]) => normalizeRef(a!, { eps: 1 }),
    L2_TOL,
  );
});
