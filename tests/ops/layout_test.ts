import { assertClose, checkOp, randArr, Rng, roundF32 } from "../harness.ts";
import { throws } from "node:assert";
import { concat, permute, slice, split, transpose } from "../../src/ops/layout.ts";
import { tensor } from "../../src/ops/creation.ts";
import { concatRef, permuteRef, sliceRef } from "../../src/reference/layout.ts";

const rng = new Rng(11);

// Data movement is exact: the forward must equal the reference bit for bit, and each gradient
// element is one copied f32 weight (or a zero), so only the finite differences' float64
// rounding (~1e-11 here) separates it from the reference.
const EXACT = { atol: 0, rtol: 0, gradAtol: 1e-9, gradRtol: 0 };

const CONCAT_CASES: { shapes: number[][]; axis: number }[] = [
  { shapes: [[3], [1], [4]], axis: 0 },
  { shapes: [[3, 5], [2, 5]], axis: 0 },
  { shapes: [[3, 5], [3, 1], [3, 2]], axis: 1 },
  { shapes: [[2, 3, 5], [2, 1, 5], [2, 4, 5]], axis: 1 },
  { shapes: [[2, 3, 5], [2, 3, 3]], axis: -1 },
  { shapes: [[1, 3, 5], [2, 3, 5]], axis: 0 },
  { shapes: [[2, 1, 3, 2, 3, 2], [2, 1, 3, 2, 1, 2]], axis: 4 },
  { shapes: [[2, 2, 1, 3, 1, 3], [2, 2, 2, 3, 1, 3]], axis: 2 },
];

for (const { shapes, axis } of CONCAT_CASES) {
  Deno.test(`concat() of ${shapes.map((s) => `[${s}]`).join(" ")} on axis ${axis} matches float64 and FD`, async () => {
    const a = axis < 0 ? axis + shapes[0]!.length : axis;
    await checkOp(
      "concat",
      shapes.map((s) => randArr(s, rng)),
      (xs) => concat(xs, axis),
      (xs) => concatRef(xs, a),
      EXACT,
    );
  });
}

const SLICE_SHAPE = [3, 5, 4, 2];
for (let axis = 0; axis < SLICE_SHAPE.length; axis++) {
  const dim = SLICE_SHAPE[axis]!;
  const ranges: [number, number | undefined][] = [[1, dim - 1], [0, 1], [-1, undefined], [0, dim]];
  for (const [start, end] of ranges) {
    Deno.test(`slice() of [${SLICE_SHAPE}] axis ${axis} range [${start}, ${end ?? "end"}) matches float64 and FD`, async () => {
      const s = start < 0 ? start + dim : start;
      await checkOp(
        "slice",
        [randArr(SLICE_SHAPE, rng)],
        ([x]) => slice(x!, { axis, start, end }),
        ([x]) => sliceRef(x!, { axis, start: s, end: end ?? dim }),
        EXACT,
      );
    });
  }
}

Deno.test("slice() of a rank-6 tensor in the middle of axis 3 matches float64 and FD", async () => {
  await checkOp(
    "slice6",
    [randArr([2, 3, 1, 5, 2, 3], rng)],
    ([x]) => slice(x!, { axis: 3, start: 1, end: 4 }),
    ([x]) => sliceRef(x!, { axis: 3, start: 1, end: 4 }),
    EXACT,
  );
});

Deno.test("split() pieces reassemble, and an unused piece gets a zero gradient", async () => {
  const sizes = [2, 3, 1];
  await checkOp(
    "split",
    [randArr([4, 6, 3], rng)],
    ([x]) => {
      const [p, , r] = split(x!, sizes, { axis: 1 });
      return concat([r!, p!], 1);
    },
    ([x]) =>
      concatRef([
        sliceRef(x!, { axis: 1, start: 5, end: 6 }),
        sliceRef(x!, { axis: 1, start: 0, end: 2 }),
      ], 1),
    EXACT,
  );
});

for (let axis = 0; axis < 3; axis++) {
  Deno.test(`split() along axis ${axis} of [5, 4, 3] returns every piece`, async () => {
    const shape = [5, 4, 3];
    const dim = shape[axis]!;
    const sizes = [1, dim - 1];
    const x = roundF32(randArr(shape, rng));
    const parts = split(tensor(Float32Array.from(x.data), shape), sizes, { axis });
    const got = await Promise.all(parts.map((p) => p.read()));
    assertClose(got[0]!, sliceRef(x, { axis, start: 0, end: 1 }).data, { atol: 0, rtol: 0 });
    assertClose(got[1]!, sliceRef(x, { axis, start: 1, end: dim }).data, { atol: 0, rtol: 0 });
    for (const p of parts) p.dispose();
  });
}

const PERMS: { shape: number[]; perm: number[] }[] = [
  { shape: [3, 5], perm: [1, 0] },
  ...[[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]].map((perm) => ({
    shape: [2, 3, 5],
    perm,
  })),
  { shape: [2, 3, 4, 5], perm: [0, 3, 1, 2] },
  { shape: [2, 3, 4, 5], perm: [0, 2, 3, 1] },
  { shape: [3, 1, 4, 2], perm: [3, 1, 0, 2] },
  { shape: [2, 3, 2, 1, 3, 2], perm: [5, 2, 0, 4, 1, 3] },
];

for (const { shape, perm } of PERMS) {
  Deno.test(`permute() of [${shape}] by [${perm}] matches float64 and FD`, async () => {
    await checkOp(
      "permute",
      [randArr(shape, rng)],
      ([x]) => permute(x!, perm),
      ([x]) => permuteRef(x!, perm),
      EXACT,
    );
  });
}

Deno.test("permute() of rank 8 works when merged dims leave at most six", async () => {
  const shape = [2, 1, 3, 2, 2, 1, 3, 2];
  const perm = [0, 1, 2, 3, 6, 7, 4, 5]; // dims 0-3 stay together
  await checkOp(
    "permute8",
    [randArr(shape, rng)],
    ([x]) => permute(x!, perm),
    ([x]) => permuteRef(x!, perm),
    EXACT,
  );
});

Deno.test("transpose() swaps the two given axes and defaults to the last two", async () => {
  await checkOp(
    "transpose",
    [randArr([2, 3, 5, 4], rng)],
    ([x]) => transpose(transpose(x!, [0, 2])),
    ([x]) => permuteRef(permuteRef(x!, [2, 1, 0, 3]), [0, 1, 3, 2]),
    EXACT,
  );
});

Deno.test("concat() and permute() move i32 data unchanged", async () => {
  const a = Int32Array.from({ length: 6 }, (_, i) => -i * 1000003);
  const b = Int32Array.from({ length: 4 }, (_, i) => 2 ** 30 + i);
  const y = permute(concat([tensor(a, [3, 2], "i32"), tensor(b, [2, 2], "i32")]), [1, 0]);
  const got = await y.read();
  const cat = [...a, ...b];
  const want = [0, 1].flatMap((j) => [0, 1, 2, 3, 4].map((i) => cat[i * 2 + j]!));
  assertClose(got, want, { atol: 0, rtol: 0 });
});

Deno.test("layout ops reject mismatched shapes, bad axes and bad permutations", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  const y = tensor(new Float32Array(4), [2, 2]);
  throws(() => concat([x, y], 0), { name: "RangeError", message: /cannot join/ });
  throws(() => concat([], 0), { name: "RangeError", message: /at least one/ });
  throws(() => slice(x, { axis: 2, start: 0 }), { name: "RangeError", message: /out of range/ });
  throws(() => slice(x, { axis: 1, start: 2, end: 1 }), {
    name: "RangeError",
    message: /does not fit/,
  });
  throws(() => split(x, [1, 1], { axis: 1 }), { name: "RangeError", message: /do not add up/ });
  throws(() => permute(x, [0, 0]), { name: "RangeError", message: /not a permutation/ });
  throws(
    () => permute(tensor(new Float32Array(128), [2, 2, 2, 2, 2, 2, 2]), [6, 5, 4, 3, 2, 1, 0]),
    { name: "RangeError", message: /handles 6/ },
  );
});
