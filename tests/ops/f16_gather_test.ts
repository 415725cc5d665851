/**
 * gatherRows on per-sample tables of f16 activations (issue 14: the high-res pass gathers
 * selected patch tokens): rows move as f16 words, the table gradient is f16 (see
 * `f16_check.ts` for what is compared).
 *
 * Tolerances: the forward moves values without arithmetic, so it is exact (0); the gradient
 * writes each table element from at most one gathered position (a per-sample table), also
 * exact (and bit for bit the f32 path's), up to the finite differences' own error. Odd row lengths (f16 rows of 6 and 10 bytes) and tables bound in several windows.
 *
 * @module
 */

import { throws as assertThrows } from "node:assert";
import { type Arr, randArr, Rng } from "../harness.ts";
import { checkF16 } from "./f16_check.ts";
import { gatherRows } from "../../src/ops/gather.ts";
import { gatherRowsRef } from "../../src/reference/gather.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { tidy } from "../../src/autograd/scope.ts";

const rng = new Rng(17);

/** Distinct indices per sample in [0, n), with one out-of-range entry (-1) in sample 0. */
function indices(b: number, k: number, n: number): Int32Array {
  const out = new Int32Array(b * k);
  for (let s = 0; s < b; s++) {
    const perm = [...Array(n).keys()];
    for (let i = 0; i < k; i++) {
      const j = i + rng.int(n - i);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      out[s * k + i] = perm[i]!;
    }
  }
  out[Math.min(1, k - 1)] = -1;
  return out;
}

// The finite differences of this linear map carry float64 cancellation, ~1e-16 * |y| / h
// with h = 1e-5: 1e-9 covers it.
const EXACT = { atol: 0, rtol: 0, gradAtol: 1e-9, gradRtol: 0 };

for (
  const [b, n, c, k, windowBytes] of [
    [2, 9, 3, 4, undefined],
    [3, 17, 8, 7, undefined],
    [2, 100, 3, 37, 1024],
    [2, 90, 5, 45, 1536],
  ] as const
) {
  const name = `gatherRows() from an f16 table [${b}, ${n}, ${c}], K=${k}${
    windowBytes ? ` in windows of ${windowBytes} bytes` : ""
  }`;
  Deno.test(`${name} matches float64, finite differences and the f32 path`, () => {
    const ids = indices(b, k, n);
    const idx: Arr = { data: Float64Array.from(ids), shape: [b, k] };
    return checkF16({
      name,
      inputs: [randArr([b, n, c], rng, -3, 3)],
      f16: [true],
      op: ([t]) => gatherRows(t!, tensor(ids, [b, k], "i32"), { maxWindowBytes: windowBytes }),
      ref: ([t]) => gatherRowsRef(t!, idx),
      tol: EXACT,
      fdSamples: 24,
    });
  });
}

Deno.test("gatherRows() from an f16 table [2, 200, 100] past a 64 KiB binding limit matches float64, FD and the f32 path", () => {
  // The f32 run binds its output [2, 80, 100] whole (64000 bytes): only tables are windowed.
  const [b, n, c, k] = [2, 200, 100, 80];
  const ids = indices(b, k, n);
  const idx: Arr = { data: Float64Array.from(ids), shape: [b, k] };
  return checkF16({
    name: "gatherRows f16 [2, 200, 100]",
    inputs: [randArr([b, n, c], rng, -3, 3)],
    f16: [true],
    op: ([t]) => gatherRows(t!, tensor(ids, [b, k], "i32")),
    ref: ([t]) => gatherRowsRef(t!, idx),
    tol: EXACT,
    fdSamples: 16,
    split: true,
  });
});

Deno.test("gatherRows() refuses a shared f16 table (a parameter table is f32)", () => {
  tidy(() => {
    const table = tensorF16(new Float32Array(12), [4, 3]);
    const idx = tensor(new Int32Array([0, 1]), [1, 2], "i32");
    assertThrows(() => gatherRows(table, idx), /4-byte elements \(f32, i32, u32\), got/);
  });
});
