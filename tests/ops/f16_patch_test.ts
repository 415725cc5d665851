/**
 * patchify() storing f16 patches (issue 14; the ConvNet stem's input in f16 runs): the image
 * stays f32, the patches are its values rounded once to f16, their gradient is f16 and the
 * image's gradient f32.
 *
 * The unfold moves values without arithmetic, so the f16 patches must equal the f16 rounding
 * of the float64 reference bit for bit (within 2^-11 relative of it), and the image gradient,
 * a permutation of the f16 patch gradient widened exactly, must equal the f32 path's on the
 * same (f16-representable) gradient bit for bit, and finite differences of the float64
 * reference (the op is linear: exact up to 1e-9).
 *
 * @module
 */

import { deepStrictEqual as assertEquals } from "node:assert";
import { type Arr, assertClose, fdGrad, randArr, Rng, roundF32, rt } from "../harness.ts";
import { patchify } from "../../src/ops/patch.ts";
import { patchifyRef } from "../../src/reference/patch.ts";
import { roundF16 } from "../../src/reference/cast.ts";
import { tensor } from "../../src/ops/creation.ts";
import { tensorF16 } from "../../src/ops/cast.ts";
import { backward } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { F16_EPS } from "./f16_check.ts";

const rng = new Rng(1415);

/** The first differing index of two arrays (Object.is), or -1. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

async function check(shape: [number, number, number, number], p: number, split = false) {
  const img = roundF32(randArr(shape, rng, -3, 3));
  const ref = patchifyRef(img, p);
  const w = randArr(ref.shape, new Rng(99));
  w.data.set(w.data.map(roundF16));
  const run = (dtype: "f16" | "f32") =>
    tidy(() => {
      const x = tensor(Float32Array.from(img.data), shape);
      x.requiresGrad = true;
      const y = patchify(x, p, dtype);
      const seed = dtype === "f16"
        ? tensorF16(Float32Array.from(w.data), w.shape)
        : tensor(Float32Array.from(w.data), w.shape);
      backward(y, seed);
      if (split) {
        const limit = rt.info.maxBindingBytes;
        if (Deno.env.get("PS3_MAX_BINDING_BYTES") && !(y.byteLength > limit)) {
          throw new Error(`the f16 patches (${y.byteLength} bytes) fit the ${limit}-byte limit`);
        }
      }
      return { y, g: x.grad! };
    });
  const half = run("f16"), full = run("f32");
  assertEquals([half.y.dtype, half.g.dtype], ["f16", "f32"]);
  const [y, g, gf] = await Promise.all([half.y, half.g, full.g].map((t) => t.read()));
  // Exactly the f16 rounding of the float64 reference (so within 2^-11 relative of it).
  const want = Float64Array.from(ref.data, roundF16);
  const bad = firstDiff(y!, want);
  if (bad >= 0) throw new Error(`patches [${bad}] = ${y![bad]}, f16 rounding ${want[bad]}`);
  assertClose(y!, ref.data, { atol: 0, rtol: F16_EPS, label: "f16 patches vs float64" });
  const badG = firstDiff(g!, gf!);
  if (badG >= 0) throw new Error(`image gradient [${badG}] differs from the f32 path's`);
  // Central differences of the float64 reference on 24 spread entries.
  for (let s = 0; s < 24; s++) {
    const i = (s * 7919) % img.data.length;
    const one: Arr = { data: Float64Array.of(img.data[i]!), shape: [1] };
    const fd = fdGrad(
      (ys) => {
        const copy = { data: img.data.slice(), shape: img.shape };
        copy.data[i] = ys[0]!.data[0]!;
        return patchifyRef(copy, p);
      },
      [one],
      w,
      0,
      1e-3,
    );
    assertClose(g!.subarray(i, i + 1), fd.data, { atol: 1e-9, rtol: 0, label: `FD [${i}]` });
  }
  for (const t of [half.y, half.g, full.y, full.g]) t.dispose();
}

for (const [shape, p] of [[[2, 3, 8, 12], 4], [[1, 2, 6, 6], 3]] as const) {
  Deno.test(`patchify() storing f16 patches of [${shape}] p=${p} equals the f16 rounding of float64; gradients vs the f32 path and FD`, () =>
    check([...shape] as [number, number, number, number], p));
}

Deno.test("patchify() storing f16 patches of [4, 3, 64, 64] past a 64 KiB binding limit equals the f16 rounding of float64; gradients vs the f32 path and FD", () =>
  check([4, 3, 64, 64], 8, true));
