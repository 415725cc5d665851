import { throws } from "node:assert";
import { arr, assertClose, Rng } from "../harness.ts";
import { topkIndices } from "../../src/ops/topk.ts";
import { tensor } from "../../src/ops/creation.ts";
import { topkIndicesRef } from "../../src/reference/topk.ts";

const rng = new Rng(31);

/** Runs topkIndices on f32 scores and compares it with the reference, index for index. */
async function check(scores: Float32Array, batch: number, k: number): Promise<void> {
  const n = scores.length / batch;
  const t = tensor(scores, [batch, n]);
  const y = topkIndices(t, k, { order: "index" });
  if (y.shape.join() !== `${batch},${k}` || y.dtype !== "i32") {
    throw new Error(`topkIndices returned ${y.describe()}, expected [${batch}, ${k}] i32`);
  }
  const got = await y.read();
  const want = topkIndicesRef(arr([batch, n], scores), k);
  // Indices are exact: any difference is a wrong selection.
  assertClose(got, want.data, { atol: 0, rtol: 0, label: `top-${k} of [${batch}, ${n}]` });
  t.dispose();
  y.dispose();
}

function uniformScores(length: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length }, () => rng.uniform(lo, hi));
}

const RANDOM: [number, number, number][] = [
  [3, 37, 1],
  [3, 37, 5],
  [3, 37, 36],
  [3, 37, 37],
  [1, 1, 1],
  [2, 1, 0],
  [5, 1025, 512],
  [2, 3001, 3001],
];
for (const [batch, n, k] of RANDOM) {
  Deno.test(`topkIndices() selects the top ${k} of [${batch}, ${n}] random scores`, async () => {
    await check(uniformScores(batch * n), batch, k);
  });
}

Deno.test("topkIndices() breaks ties toward the lower index with three distinct values", async () => {
  const values = [0.25, 0.5, 1];
  const scores = Float32Array.from({ length: 4 * 3001 }, () => values[rng.int(3)]!);
  for (const k of [1, 123, 1000, 1001, 2500, 3001]) await check(scores, 4, k);
});

Deno.test("topkIndices() of all-1.0 rows returns the first k indices", async () => {
  const [batch, n, k] = [2, 5000, 777];
  await check(new Float32Array(batch * n).fill(1), batch, k);
  const got = await topkIndices(tensor(new Float32Array(batch * n).fill(1), [batch, n]), k).read();
  assertClose(got, [0, 1].flatMap(() => [...Array(k).keys()]), { atol: 0, rtol: 0 });
});

Deno.test("topkIndices() ranks NaN below -Infinity and -0 equal to +0", async () => {
  const row = Float32Array.from([NaN, -Infinity, 0, -0, Infinity, -1, NaN, 0, -0, 2, -Infinity]);
  for (let k = 0; k <= row.length; k++) await check(row, 1, k);
  const got = await topkIndices(tensor(row, [1, row.length]), 9).read();
  // Everything but the two NaNs; the two -Infinity fill the last slots.
  assertClose(got, [1, 2, 3, 4, 5, 7, 8, 9, 10], { atol: 0, rtol: 0 });
});

Deno.test("topkIndices() of probabilities with ground-truth 1.0 overrides matches the reference", async () => {
  const [batch, n] = [3, 4096];
  const scores = Float32Array.from({ length: batch * n }, () => 1 / (1 + Math.exp(-rng.normal())));
  for (let i = 0; i < scores.length; i += 7) scores[i] = 1; // boxes force probability 1
  await check(scores, batch, 700); // more than the 585 forced ones per row
  await check(scores, batch, 300); // fewer: a tie among the 1.0 entries decides
});

Deno.test("topkIndices() selects 2000 of 70000 scores per row like the reference", async () => {
  await check(uniformScores(3 * 70000, 0, 1), 3, 2000);
});

Deno.test("topkIndices() rejects bad k, dtypes and shapes", () => {
  const t = tensor(new Float32Array(6), [2, 3]);
  throws(() => topkIndices(t, 4), { name: "RangeError", message: /k = 4 of 3/ });
  throws(() => topkIndices(t, -1), { name: "RangeError", message: /k = -1/ });
  throws(() => topkIndices(tensor(new Int32Array(6), [2, 3], "i32"), 1), {
    name: "TypeError",
    message: /must be f32/,
  });
  throws(() => topkIndices(tensor(new Float32Array(6), [6]), 1), {
    name: "RangeError",
    message: /must be \[B, N\]/,
  });
  t.dispose();
});
