import { deepStrictEqual, throws } from "node:assert";
import { type Arr, arr, assertClose, checkOp, randArr, Rng, roundF32, rt } from "../harness.ts";
import { embedding, gatherRows, scatterValue } from "../../src/ops/gather.ts";
import { topkIndices } from "../../src/ops/topk.ts";
import { topkIndicesRef } from "../../src/reference/topk.ts";
import { addInto, tensor } from "../../src/ops/creation.ts";
import { backward } from "../../src/autograd/tape.ts";
import { keep, tidy } from "../../src/autograd/scope.ts";
import { embeddingRef, gatherRowsRef, scatterValueRef } from "../../src/reference/gather.ts";

const rng = new Rng(21);

// Gathers copy f32 words exactly; each gradient element is one copied weight or a sum of a
// few (<= 4 here, f32 rounding <= 4e-7 on |w| <= 1), compared with float64 finite differences
// of a linear function (rounding ~1e-10).
const COPY = { atol: 0, rtol: 0, gradAtol: 1e-9, gradRtol: 0 };
const SUMS = { atol: 0, rtol: 0, gradAtol: 1e-6, gradRtol: 0 };

/** Distinct random indices in [0, n) per row: what top-k produces. */
function uniqueRows(batch: number, perB: number, n: number): Int32Array {
  const out = new Int32Array(batch * perB);
  for (let b = 0; b < batch; b++) {
    const perm = rng.shuffle([...Array(n).keys()]);
    out.set(perm.slice(0, perB), b * perB);
  }
  return out;
}

function idxArr(data: Int32Array, shape: number[]): Arr {
  return arr(shape, data);
}

const GATHER_CASES: { table: number[]; batch: number; perB: number; window?: number }[] = [
  { table: [13, 5], batch: 3, perB: 4 },
  { table: [7, 3], batch: 4, perB: 7 },
  { table: [1, 6], batch: 2, perB: 1 },
  { table: [3, 11, 7], batch: 3, perB: 5 },
  { table: [1, 9, 2], batch: 1, perB: 9 },
  // 12-byte rows: windows must start on 256-byte boundaries, so 64 rows per window.
  { table: [150, 3], batch: 3, perB: 40, window: 800 },
  { table: [2, 70, 3], batch: 2, perB: 33, window: 800 },
  // The output (and its gradient) past the window, the table not: 80 and 75 rows of 12 bytes
  // in windows of 64 rows, cutting a sample's positions.
  { table: [20, 3], batch: 4, perB: 20, window: 800 },
  { table: [3, 30, 3], batch: 3, perB: 25, window: 800 },
];

for (const c of GATHER_CASES) {
  const kind = c.table.length === 2 ? "shared" : "per-sample";
  const win = c.window ? ` in ${c.window}-byte windows` : "";
  Deno.test(`gatherRows() ${kind} table [${c.table}] with idx [${c.batch}, ${c.perB}]${win} matches float64 and FD`, async () => {
    const n = c.table[c.table.length - 2]!;
    const ids = uniqueRows(c.batch, c.perB, n);
    await checkOp(
      "gatherRows",
      [randArr(c.table, rng)],
      ([t]) => gatherRows(t!, tensor(ids, [c.batch, c.perB], "i32"), { maxWindowBytes: c.window }),
      ([t]) => gatherRowsRef(t!, idxArr(ids, [c.batch, c.perB])),
      kind === "shared" ? SUMS : COPY,
    );
  });
}

for (const shape of [[40, 3], [4, 40, 3]]) {
  Deno.test(`gatherRows() ${shape.length === 2 ? "shared" : "per-sample"} table: output and gradient in windows give the unsplit bits`, async () => {
    // 4 samples x 40 positions x 12 bytes = 1920 bytes in 800-byte windows (64 rows: window
    // edges inside samples 1 and 3); the shared table's gradient sums 4 terms per row in the
    // same order in both.
    const [batch, perB] = [4, 40];
    const table = roundF32(randArr(shape, rng));
    const ids = uniqueRows(batch, perB, shape[shape.length - 2]!);
    const seed = roundF32(randArr([batch, perB, 3], rng));
    const run = (maxWindowBytes?: number) =>
      tidy(() => {
        const t = tensor(Float32Array.from(table.data), shape);
        t.requiresGrad = true;
        const y = gatherRows(t, tensor(ids, [batch, perB], "i32"), { maxWindowBytes });
        backward(y, tensor(Float32Array.from(seed.data), [batch, perB, 3]));
        return [y, t.grad!];
      });
    const [y0, g0] = run();
    const [y1, g1] = run(800);
    const [a, b, c, d] = (await rt.read([y0!, y1!, g0!, g1!])).map((x) => new Uint32Array(x!));
    deepStrictEqual(b, a);
    deepStrictEqual(d, c);
  });
}

Deno.test("gatherRows() of topkIndices() rows from a 72900-row table matches float64 in both directions", async () => {
  const [batch, n, c, k] = [2, 72900, 4, 2134]; // PS3-4K's last scale
  const table = roundF32(randArr([n, c], rng));
  const scores = Float32Array.from({ length: batch * n }, () => rng.next());
  const w = roundF32(randArr([batch, k, c], rng));
  const ids = topkIndicesRef(arr([batch, n], scores), k);
  const expected = new Float64Array(n * c);
  for (let p = 0; p < batch * k; p++) {
    for (let j = 0; j < c; j++) expected[ids.data[p]! * c + j]! += w.data[p * c + j]!;
  }
  const { y, g } = tidy(() => {
    const t = tensor(Float32Array.from(table.data), [n, c]);
    t.requiresGrad = true;
    const y = gatherRows(t, topkIndices(tensor(scores, [batch, n]), k));
    backward(y, tensor(Float32Array.from(w.data), w.shape));
    return { y, g: t.grad! };
  });
  const [yh, gh] = await rt.read([y, g]);
  assertClose(new Float32Array(yh!), gatherRowsRef(table, ids).data, {
    atol: 0,
    rtol: 0,
    label: "forward",
  });
  // A table row gets at most one weight per sample: one f32 rounding of a sum below 2.
  assertClose(new Float32Array(gh!), expected, { atol: 2.5e-7, rtol: 0, label: "gradient" });
  y.dispose();
  g.dispose();
});

Deno.test("gatherRows() gives zero rows and no gradient for indices outside the table", async () => {
  const ids = Int32Array.from([0, -1, 4, 5, 2, 100, -7, 3]);
  for (const table of [[5, 3], [2, 5, 3]]) {
    await checkOp(
      "gatherRows-range",
      [randArr(table, rng)],
      ([t]) => gatherRows(t!, tensor(ids, [2, 4], "i32")),
      ([t]) => gatherRowsRef(t!, idxArr(ids, [2, 4])),
      SUMS,
    );
  }
});

Deno.test("embedding() with repeated ids matches float64 and FD", async () => {
  const ids = Int32Array.from({ length: 21 }, () => rng.int(9));
  ids[3] = ids[4] = ids[17] = 8; // at least one id used three times
  await checkOp(
    "embedding",
    [randArr([9, 6], rng)],
    ([t]) => embedding(t!, tensor(ids, [3, 7], "i32")),
    ([t]) => embeddingRef(t!, idxArr(ids, [3, 7])),
    // up to 21 weights summed in f32: error < 21 * 6e-8.
    { ...SUMS, gradAtol: 2e-6 },
  );
});

Deno.test("embedding() bound in 48-row windows matches float64 and FD", async () => {
  const ids = Int32Array.from({ length: 40 }, () => rng.int(200));
  ids[0] = 0;
  ids[1] = 199;
  ids[2] = ids[3] = 47; // last row of the first window, twice
  ids[4] = ids[5] = 48; // first row of the second window, twice
  ids[6] = -1; // out of range: zero row
  ids[7] = 200;
  await checkOp(
    "embedding-windows",
    [randArr([200, 4], rng)],
    // 16-byte rows: 16-row alignment, so at most 48 rows fit 1000 bytes: 5 windows.
    ([t]) => embedding(t!, tensor(ids, [5, 8], "i32"), { maxWindowBytes: 1000 }),
    ([t]) => embeddingRef(t!, idxArr(ids, [5, 8])),
    SUMS,
  );
});

Deno.test("embedding() gradient for 2048 tokens over a 32000-row table matches float64 and is bit-reproducible", async () => {
  const [v, c, m] = [32000, 16, 2048];
  const table = roundF32(randArr([v, c], rng));
  const ids = Int32Array.from({ length: m }, () => rng.int(300) * 100 + rng.int(3)); // repeats
  const w = roundF32(randArr([m, c], rng));
  const expected = new Float64Array(v * c);
  for (let p = 0; p < m; p++) {
    for (let j = 0; j < c; j++) expected[ids[p]! * c + j]! += w.data[p * c + j]!;
  }
  const run = () =>
    tidy(() => {
      const t = tensor(Float32Array.from(table.data), [v, c]);
      t.requiresGrad = true;
      const y = embedding(t, tensor(ids, [2, 1024], "i32"));
      backward(y, tensor(Float32Array.from(w.data), [2, 1024, c]));
      return { y, g: t.grad! };
    });
  const a = run();
  const b = run();
  const [ya, ga, gb] = await rt.read([a.y, a.g, b.g]);
  assertClose(new Float32Array(ya!), embeddingRef(table, idxArr(ids, [2, 1024])).data, {
    atol: 0,
    rtol: 0,
    label: "forward",
  });
  // Each id occurs ~7 times: f32 sums of <= ~20 weights, error < 2e-6.
  assertClose(new Float32Array(ga!), expected, { atol: 2e-6, rtol: 0, label: "gradient" });
  assertClose(new Float32Array(ga!), new Float32Array(gb!), { atol: 0, rtol: 0, label: "rerun" });
  for (const t of [a.y, a.g, b.y, b.g]) t.dispose();
});

Deno.test({
  name: "embedding() backward refuses more tokens than llvmpipe's loop limit",
  ignore: !Number.isFinite(rt.info.maxLoopTrips),
  fn: () => {
    tidy(() => {
      const t = tensor(new Float32Array(10 * 2), [10, 2]);
      t.requiresGrad = true;
      const y = embedding(t, tensor(new Int32Array(70000), [70000], "i32"));
      throws(() => backward(y, tensor(new Float32Array(140000), [70000, 2])), {
        name: "RangeError",
        message: /embedding_rank/,
      });
    });
  },
});

Deno.test("scatterValue() overwrites indexed entries; the gradient skips them", async () => {
  const ids = Int32Array.from([3, 3, 0, 9, 5, 11, -1, 2, 1, 1, 6, 4]); // repeats, out of range
  await checkOp(
    "scatterValue",
    [randArr([3, 10], rng)],
    ([x]) => scatterValue(x!, tensor(ids, [3, 4], "i32"), { value: -1 }),
    ([x]) => scatterValueRef(x!, idxArr(ids, [3, 4]), -1),
    COPY,
  );
});

Deno.test("gather ops reject wrong index types and shapes", () => {
  tidy(() => {
    const t = tensor(new Float32Array(12), [4, 3]);
    const f = tensor(new Float32Array(4), [2, 2]);
    const i = tensor(new Int32Array(4), [2, 2], "i32");
    throws(() => gatherRows(t, f), { name: "TypeError", message: /must be i32/ });
    throws(() => gatherRows(tensor(new Float32Array(36), [3, 4, 3]), i), {
      name: "RangeError",
      message: /cannot gather/,
    });
    throws(() => embedding(tensor(new Float32Array(12), [12]), i), {
      name: "RangeError",
      message: /must be \[V, C\]/,
    });
    throws(() => scatterValue(t, tensor(new Int32Array(3), [3, 1], "i32"), { value: 0 }), {
      name: "RangeError",
      message: /cannot scatter/,
    });
    throws(() => embedding(t, i, { maxWindowBytes: 8 }), {
      name: "RangeError",
      message: /cannot bind rows/,
    });
  });
});

Deno.test("embedding() adds its gradient into a parameter's gradient buffer: float64, no dense temporary, bit-identical to the dense gradient plus addInto", async () => {
  // 2000 x 8 f32 rows in windows of 512 rows (16 KiB), ids repeating, out of range, and the
  // first and last rows; the table's gradient buffer starts non-zero (an earlier micro-batch)
  // and two backward passes accumulate into it.
  const [v, c, m] = [2000, 8, 96];
  const table = roundF32(randArr([v, c], rng));
  const g0 = roundF32(randArr([v, c], rng));
  const ids = Int32Array.from({ length: m }, () => rng.int(40) * 50);
  ids[0] = 0;
  ids[1] = v - 1;
  ids[2] = ids[3] = 511; // last row of the first window, twice
  ids[4] = -1;
  ids[5] = v;
  const ws = [roundF32(randArr([m, c], rng)), roundF32(randArr([m, c], rng))];
  const expected = Float64Array.from(g0.data);
  for (const w of ws) {
    for (let p = 0; p < m; p++) {
      const id = ids[p]!;
      if (id < 0 || id >= v) continue;
      for (let j = 0; j < c; j++) expected[id * c + j]! += w.data[p * c + j]!;
    }
  }
  const opts = { maxWindowBytes: 512 * c * 4 };
  const idsT = tensor(ids, [m], "i32");
  // Direct: the gradient buffer exists before the backward passes.
  const direct = tidy(() => {
    const t = tensor(Float32Array.from(table.data), [v, c]);
    t.requiresGrad = true;
    t.grad = keep(tensor(Float32Array.from(g0.data), [v, c]));
    let peak = 0;
    for (const w of ws) {
      const y = embedding(t, idsT, opts);
      const seed = tensor(Float32Array.from(w.data), [m, c]);
      rt.pool.resetPeak();
      const base = rt.memory().inUseBytes;
      backward(y, seed);
      peak = Math.max(peak, rt.memory().peakInUseBytes - base);
    }
    return { g: t.grad!, peak };
  });
  // Dense: a fresh table's gradient (no buffer yet), then added as the tape would.
  const dense = tidy(() => {
    const acc = keep(tensor(Float32Array.from(g0.data), [v, c]));
    for (const w of ws) {
      const t = tensor(Float32Array.from(table.data), [v, c]);
      t.requiresGrad = true;
      backward(embedding(t, idsT, opts), tensor(Float32Array.from(w.data), [m, c]));
      addInto(acc, t.grad!);
    }
    return acc;
  });
  const [gd, gs] = await rt.read([direct.g, dense]);
  // Each id occurs <= ~6 times: f32 sums of <= 7 values in [-1, 1] plus g0, error < 1e-6.
  assertClose(new Float32Array(gd!), expected, { atol: 1e-6, rtol: 0, label: "gradient" });
  const a = new Float32Array(gd!), b = new Float32Array(gs!);
  const bad = a.findIndex((x, i) => !Object.is(x, b[i]));
  if (bad >= 0) throw new Error(`direct [${bad}] = ${a[bad]}, dense + addInto ${b[bad]}`);
  // No [V, C] temporary: the backward's peak stays below one table's bytes (64 000).
  if (!(direct.peak < v * c * 4)) throw new Error(`backward peak ${direct.peak} bytes`);
  for (const t of [direct.g, dense, idsT]) t.dispose();
});
