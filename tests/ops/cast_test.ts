import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { assertClose, rt } from "../harness.ts";
import { tensor } from "../../src/ops/creation.ts";
import { cast, tensorF16 } from "../../src/ops/cast.ts";
import { mul } from "../../src/ops/elementwise.ts";
import { backward } from "../../src/autograd/tape.ts";
import { roundF16 } from "../../src/reference/cast.ts";
import { enableF16, wgslType } from "../../src/ops/storage_type.ts";

/** f32 values that probe every rounding case of f16. */
function probes(): Float32Array {
  const v: number[] = [
    0,
    -0,
    1,
    -1,
    1 + 2 ** -11, // tie, rounds down to even
    1 + 3 * 2 ** -11, // tie, rounds up to even
    1 + 2 ** -11 + 2 ** -20, // just above the tie
    65504, // largest f16
    65519.99, // rounds to 65504
    65520, // the tie at the edge: infinity
    -70000,
    1e30,
    Infinity,
    -Infinity,
    NaN,
    2 ** -14, // smallest normal
    2 ** -15, // subnormal
    2 ** -24, // smallest subnormal
    2 ** -25, // tie with 0: rounds to 0
    3 * 2 ** -26, // above the tie: 2^-24
    -(2 ** -24 + 2 ** -25), // tie between 1 and 2 subnormal steps: 2 (even)
    1e-10,
    0.1,
    -3.14159,
    1000.5,
    2049, // 2048 + 1 at spacing 2: tie to 2048
    2051, // tie to 2052
  ];
  // Random values over the whole range.
  let s = 12345;
  for (let i = 0; i < 3000; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const m = s / 2147483648;
    v.push((m - 0.5) * 2 ** ((i % 50) - 28));
  }
  return Float32Array.from(v);
}

Deno.test("roundF16() is float16 rounding (against Math.f16round where present)", () => {
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  assertEquals(roundF16(1 + 2 ** -11), 1);
  assertEquals(roundF16(1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assertEquals(roundF16(65520), Infinity);
  assertEquals(roundF16(65519.99), 65504);
  assertEquals(roundF16(2 ** -25), 0);
  assertEquals(roundF16(3 * 2 ** -26), 2 ** -24);
  assert(Object.is(roundF16(-0), -0));
  assert(Number.isNaN(roundF16(NaN)));
  if (f16round) {
    for (const x of probes()) {
      const a = roundF16(x), b = f16round(x);
      assert(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${x}: ${a} vs ${b}`);
    }
  }
});

Deno.test("cast() to f16 is roundF16 bit for bit, subnormals, overflow and NaN included", async () => {
  if (!rt.info.hasF16) return;
  const x = probes();
  const h = cast(tensor(x), "f16");
  assertEquals(h.dtype, "f16");
  assertEquals(h.byteLength, x.length * 2);
  const got = await h.read();
  for (let i = 0; i < x.length; i++) {
    const e = roundF16(x[i]!);
    assert(
      Object.is(got[i], e) || (Number.isNaN(got[i]!) && Number.isNaN(e)),
      `cast(${x[i]}) = ${got[i]}, expected ${e}`,
    );
  }
  // Back to f32 is exact.
  const back = await cast(h, "f32").read();
  for (let i = 0; i < x.length; i++) {
    assert(Object.is(back[i], got[i]) || Number.isNaN(back[i]!), `f16 -> f32 of ${got[i]}`);
  }
});

Deno.test("cast() of odd lengths and tensorF16() keep every element", async () => {
  if (!rt.info.hasF16) return;
  for (const n of [1, 3, 7, 129]) {
    const x = Float32Array.from({ length: n }, (_, i) => i * 0.37 - 5);
    const got = await tensorF16(x, [n]).read();
    assertClose(got, Array.from(x, roundF16), { atol: 0, rtol: 0, label: `n=${n}` });
  }
});

Deno.test("cast() backward casts the gradient back to the input's dtype", async () => {
  if (!rt.info.hasF16) return;
  const xv = [0.5, -1.25, 3.1, 7];
  const wv = [0.1, 2.0, -3.3, 1e-3];
  // f32 input through f16: the gradient of <w, cast(x)> is w rounded to f16, stored f32.
  const x = tensor(xv);
  x.requiresGrad = true;
  const y = mul(cast(cast(x, "f16"), "f32"), tensor(wv));
  backward(y);
  assertEquals(x.grad!.dtype, "f32");
  assertClose(await x.grad!.read(), wv.map(roundF16), { atol: 0, rtol: 0, label: "dx" });
  // An f16 leaf gets an f16 gradient.
  const hx = tensorF16(xv);
  hx.requiresGrad = true;
  backward(mul(cast(hx, "f32"), tensor(wv)));
  assertEquals(hx.grad!.dtype, "f16");
  assertClose(await hx.grad!.read(), wv.map(roundF16), { atol: 0, rtol: 0, label: "dh" });
  // Same dtype: an alias, gradient passes through.
  const z = tensor(xv);
  z.requiresGrad = true;
  backward(mul(cast(z, "f32"), tensor(wv)));
  assertClose(await z.grad!.read(), Float32Array.from(wv), { atol: 0, rtol: 0, label: "dz" });
});

Deno.test("wgslType() and enableF16() name the storage types", () => {
  assertEquals(wgslType("f16"), "f16");
  assertEquals(enableF16("f32", "f16"), "enable f16;");
  assertEquals(enableF16("f32", "i32"), "");
});
