import { deepStrictEqual, ok as assert, strictEqual, throws } from "node:assert";
import {
  bf16BitsToF32,
  bf16ToF32,
  f16BitsToF32,
  f16ToF32,
  f32ToBf16,
  f32ToBf16Bits,
  f32ToF16,
  f32ToF16Bits,
} from "../../src/checkpoint/dtype.ts";
import { Rng } from "../../src/util/rng.ts";

/** V8's own float64 -> f16 rounding (round to nearest even), an independent oracle. */
const f16round = (Math as unknown as { f16round(x: number): number }).f16round;

const u32 = new Uint32Array(1);
const f32 = new Float32Array(u32.buffer);
/** The float32 with bit pattern `bits`. */
function fromBits(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}
/** The bit pattern of `x` rounded to float32. */
function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
const hex = (n: number) => `0x${n.toString(16)}`;

Deno.test("f32ToF16Bits() maps edge values to the IEEE half bit patterns", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [1 / 3, 0x3555],
    [65504, 0x7bff], // largest finite
    [65519.99, 0x7bff], // just below the halfway point to 2^16
    [65520, 0x7c00], // halfway: ties to even, which is infinity
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [NaN, 0x7e00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [1023.5 * 2 ** -24, 0x0400], // tie between largest subnormal and smallest normal -> even
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal -> even (0)
    [-(2 ** -25), 0x8000],
    [fromBits(bitsOf(2 ** -25) + 1), 0x0001], // just above that tie
    [3 * 2 ** -25, 0x0002], // tie 1.5 ulp -> 2
    [5 * 2 ** -25, 0x0002], // tie 2.5 ulp -> 2
    [1 + 2 ** -11, 0x3c00], // tie in the normal range -> even
    [1 + 3 * 2 ** -11, 0x3c02],
    [1e-8, 0x0000],
  ];
  for (const [x, want] of cases) {
    strictEqual(hex(f32ToF16Bits(x)), hex(want), `f32ToF16Bits(${x})`);
  }
});

Deno.test("f16BitsToF32() widens every finite f16 exactly and f32ToF16Bits() inverts it", () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToF32(h);
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
      assert(Number.isNaN(x), `f16 ${hex(h)} is NaN`);
      // Through bit patterns (a JS number need not keep a NaN's sign): the sign survives and
      // the payload becomes the quiet NaN, as in PyTorch.
      const narrowed = f32ToF16(f16ToF32(new Uint16Array([h])))[0]!;
      strictEqual(hex(narrowed), hex((h & 0x8000) | 0x7e00), `NaN ${hex(h)} narrows to quiet`);
      continue;
    }
    assert(Object.is(x, f16round(x)), `f16 ${hex(h)} -> ${x} is an f16 value`);
    strictEqual(hex(f32ToF16Bits(x)), hex(h), `round trip of ${hex(h)}`);
  }
  strictEqual(f16BitsToF32(0x0001), 2 ** -24);
  strictEqual(f16BitsToF32(0x7bff), 65504);
  strictEqual(f16BitsToF32(0xfc00), -Infinity);
  assert(Object.is(f16BitsToF32(0x8000), -0));
});

Deno.test("f32ToF16Bits() agrees with Math.f16round at every f16 midpoint and nearby", () => {
  // Midpoints between consecutive non-negative f16 values (exact in f32), and one f32 ulp
  // either side, with both signs: exercises every tie and every rounding direction.
  for (let h = 0; h < 0x7c00; h++) {
    const mid = (f16BitsToF32(h) + f16BitsToF32(h + 1)) / 2;
    const b = bitsOf(mid);
    for (const x of [mid, fromBits(b - 1), fromBits(b + 1)]) {
      for (const s of [x, -x]) {
        const got = f16BitsToF32(f32ToF16Bits(s));
        assert(Object.is(got, f16round(s)), `f32 ${s}: got ${got}, want ${f16round(s)}`);
      }
    }
  }
});

Deno.test("f32ToF16() matches Math.f16round on 300000 random float32 bit patterns", () => {
  const rng = new Rng(16);
  const bits = new Uint32Array(300_000);
  for (let i = 0; i < bits.length; i++) bits[i] = rng.nextU32();
  const src = new Float32Array(bits.buffer);
  const back = f16ToF32(f32ToF16(src));
  for (let i = 0; i < src.length; i++) {
    const want = f16round(src[i]!);
    if (Number.isNaN(want)) {
      assert(Number.isNaN(back[i]!), `NaN pattern ${hex(bits[i]!)} stays NaN`);
    } else {
      assert(Object.is(back[i]!, want), `pattern ${hex(bits[i]!)}: ${back[i]} vs ${want}`);
    }
  }
});

/** Independent bf16 rounding: compare the distances to the two neighbours in float64. */
function bf16Reference(bits: number): number {
  const x = fromBits(bits);
  if (Number.isNaN(x)) return 0x7fc0;
  const lo = bits >>> 16;
  if ((bits & 0xffff) === 0) return lo;
  const dLo = Math.abs(x - fromBits(lo << 16));
  // Past the largest finite value the next neighbour is infinity, which counts as 2^128.
  const hi = fromBits(((lo + 1) << 16) >>> 0);
  const dHi = Math.abs((Number.isFinite(hi) ? hi : Math.sign(hi) * 2 ** 128) - x);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return lo + 1;
  return lo % 2 === 0 ? lo : lo + 1;
}

Deno.test("f32ToBf16Bits() rounds edge values to nearest even like PyTorch", () => {
  const cases: [number, number][] = [
    [0x00000000, 0x0000],
    [0x80000000, 0x8000], // -0
    [0x3f800000, 0x3f80], // 1
    [0x40490000, 0x4049], // 3.140625, exact
    [0x3f808000, 0x3f80], // tie, even lsb stays
    [0x3f818000, 0x3f82], // tie, odd lsb rounds up
    [0x3f808001, 0x3f81], // just above a tie
    [0x3f807fff, 0x3f80], // just below a tie
    [0x7f7fffff, 0x7f80], // largest f32 rounds to infinity
    [0x7f800000, 0x7f80], // +inf
    [0xff800000, 0xff80], // -inf
    [0x7fc00000, 0x7fc0], // NaN
    [0xffc00001, 0x7fc0], // negative NaN with payload: PyTorch's canonical NaN
    [0x7f800001, 0x7fc0], // signalling NaN whose payload would round away
    [0x00000001, 0x0000], // smallest f32 subnormal
    [0x00008000, 0x0000], // subnormal tie -> even
    [0x00018000, 0x0002],
  ];
  for (const [bits, want] of cases) {
    const got = f32ToBf16(new Float32Array(new Uint32Array([bits]).buffer))[0]!;
    strictEqual(hex(got), hex(want), `f32ToBf16(${hex(bits)})`);
    if (!Number.isNaN(fromBits(bits))) {
      strictEqual(hex(f32ToBf16Bits(fromBits(bits))), hex(want), `f32ToBf16Bits(${hex(bits)})`);
    }
  }
  strictEqual(hex(f32ToBf16Bits(NaN)), hex(0x7fc0));
});

Deno.test("f32ToBf16() matches a float64 nearest-even reference on random bit patterns", () => {
  const rng = new Rng(17);
  const bits = new Uint32Array(300_000);
  for (let i = 0; i < bits.length; i++) bits[i] = rng.nextU32();
  // Force many exact ties and near-ties as well.
  for (let i = 0; i < 30_000; i++) bits[i] = ((bits[i]! & 0xffff0000) | 0x8000) >>> 0;
  const got = f32ToBf16(new Float32Array(bits.buffer));
  for (let i = 0; i < bits.length; i++) {
    strictEqual(got[i], bf16Reference(bits[i]!), `pattern ${hex(bits[i]!)}`);
  }
});

Deno.test("bf16ToF32() widens every bf16 exactly and f32ToBf16() inverts it", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const wide = bf16ToF32(all);
  const back = f32ToBf16(wide);
  for (let b = 0; b < 65536; b++) {
    strictEqual(new Uint32Array(wide.buffer)[b], (b << 16) >>> 0, `bits of ${hex(b)}`);
    const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    strictEqual(back[b], isNaN ? 0x7fc0 : b, `round trip of ${hex(b)}`);
    if (!isNaN) strictEqual(bf16BitsToF32(b), wide[b]);
  }
});

Deno.test("f32ToF16() and f16ToF32() fill a given output and reject a wrong length", () => {
  const out = new Uint16Array(3);
  strictEqual(f32ToF16(new Float32Array([1, 2, 0.5]), out), out);
  deepStrictEqual(Array.from(out), [0x3c00, 0x4000, 0x3800]);
  throws(() => f32ToF16(new Float32Array(2), out), RangeError);
  throws(() => f16ToF32(out, new Float32Array(4)), /Cannot convert 3 values: the output/);
  throws(() => bf16ToF32(out, new Float32Array(1)), RangeError);
  throws(() => f32ToBf16(new Float32Array(1), out), RangeError);
});

Deno.test("f32ToF16() converts a subarray view at a non-zero offset", () => {
  const base = new Float32Array([7, 1, -2, 9]);
  deepStrictEqual(Array.from(f32ToF16(base.subarray(1, 3))), [0x3c00, 0xc000]);
  deepStrictEqual(Array.from(f32ToBf16(base.subarray(1, 3))), [0x3f80, 0xc000]);
});
