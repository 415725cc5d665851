/**
 * The two passes of PIL's 8-bit bicubic resampling (`resize.ts`) as a small WebAssembly SIMD
 * module, assembled here from its instructions (no binary blob, no toolchain). Same integer
 * arithmetic as PIL: 22-bit fixed-point weights, int32 products and sums (wrapping `i32x4.mul`
 * and `i32x4.add`, exact because PIL's sums fit int32), `>> 22` (arithmetic), then the two
 * saturating narrows i32 -> i16 (signed) -> u8 (unsigned) clip to 0..255 exactly as `clip8`.
 *
 * - `hpass`: one output pixel at a time, its R, G, B (and one spare byte) in the lanes of an
 *   i32x4: per tap a 4-byte load widened to i32x4, times the splatted weight. The spare lane
 *   is stored too and overwritten by the next pixel (buffers carry 16 bytes of slack).
 * - `vpass`: 16 bytes of an output row at a time: per tap row a 16-byte load widened to four
 *   i32x4, times the row's weight. A row's last vector may run past its end into the next
 *   row, which is written after it.
 *
 * The memory layout is the caller's (`resize.ts`, `resizeWasm`); both take byte addresses.
 *
 * @module
 */

/** Wasm opcodes used below (core and 0xfd-prefixed SIMD). */
const OP = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Mul: 0x6c,
} as const;

/** SIMD opcodes (after the 0xfd prefix), LEB128-encoded below. */
const SIMD = {
  load: 0x00,
  load32Splat: 0x09,
  store: 0x0b,
  i8x16NarrowI16x8U: 0x66,
  i16x8NarrowI32x4S: 0x85,
  i16x8ExtendLowI8x16U: 0x89,
  i16x8ExtendHighI8x16U: 0x8a,
  i32x4ExtendLowI16x8U: 0xa9,
  i32x4ExtendHighI16x8U: 0xaa,
  i32x4ShrS: 0xac,
  i32x4Add: 0xae,
  i32x4Mul: 0xb5,
  i32x4Splat: 0x11,
  load32Zero: 0x5c,
  store32Lane: 0x5a,
} as const;

const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A function body under construction: locals by name, instructions appended. */
class Body {
  readonly code: number[] = [];
  readonly #index = new Map<string, number>();
  readonly #locals: number[] = [];

  constructor(params: string[], locals: Record<string, number>) {
    params.forEach((p, i) => this.#index.set(p, i));
    for (const [name, type] of Object.entries(locals)) {
      this.#index.set(name, params.length + this.#locals.length);
      this.#locals.push(type);
    }
  }

  #local(name: string): number {
    const i = this.#index.get(name);
    if (i === undefined) throw new Error(`resample_wasm: unknown local "${name}"`);
    return i;
  }
  get(name: string): this {
    this.code.push(OP.localGet, ...uleb(this.#local(name)));
    return this;
  }
  set(name: string): this {
    this.code.push(OP.localSet, ...uleb(this.#local(name)));
    return this;
  }
  tee(name: string): this {
    this.code.push(OP.localTee, ...uleb(this.#local(name)));
    return this;
  }
  i32(v: number): this {
    this.code.push(OP.i32Const, ...sleb(v));
    return this;
  }
  op(...codes: number[]): this {
    this.code.push(...codes);
    return this;
  }
  simd(code: number, ...imm: number[]): this {
    this.code.push(0xfd, ...uleb(code), ...imm);
    return this;
  }
  /** `name += step` (i32; step a local name or a constant). */
  inc(name: string, step: string | number): this {
    this.get(name);
    if (typeof step === "number") this.i32(step);
    else this.get(step);
    return this.op(OP.i32Add).set(name);
  }
  /** `for (i = 0; i < n; i++) { body }` with i32 locals `i` and `n`. */
  for(i: string, n: string, body: () => void): this {
    return this.forStep(i, n, 1, body);
  }
  /** `for (i = 0; i < n; i += step) { body }` (unsigned compare). */
  forStep(i: string, n: string, step: number, body: () => void): this {
    this.i32(0).set(i);
    this.op(OP.block, 0x40, OP.loop, 0x40);
    this.get(i).get(n).op(OP.i32GeU, OP.brIf, 1);
    body();
    this.inc(i, step).op(OP.br, 0, OP.end, OP.end);
    return this;
  }
  /** The encoded body: local declarations, code, end. */
  encode(): number[] {
    const decl = this.#locals.flatMap((t) => [1, t]);
    const bytes = [...uleb(this.#locals.length), ...decl, ...this.code, OP.end];
    return [...uleb(bytes.length), ...bytes];
  }
}

/** Memory immediate of a v128 / i32 access: alignment exponent, offset. */
const mem = (align: number, offset = 0) => [align, ...uleb(offset)];

/** HALF of PIL's rounding: every sum starts at 2^21. */
const HALF = 1 << 21;

/** `x >> 22` (arithmetic) of the i32x4 on the stack. */
function shr22(b: Body): Body {
  return b.i32(22).simd(SIMD.i32x4ShrS);
}

/**
 * `hpass(src, srcStride, rows, outW, taps, kk, kstride, dst)`: resamples `rows` RGB rows
 * (`srcStride` bytes apart from `src`) along x into packed rows of `outW` pixels at `dst`.
 * `taps` holds per output pixel the byte offset of its first tap in the row and its tap
 * count (i32 pairs); `kk` the fixed-point weights, `kstride` bytes per output pixel.
 */
function hpass(): Body {
  const params = ["src", "srcStride", "rows", "outW", "taps", "kk", "kstride", "dst"];
  const b = new Body(params, {
    y: I32,
    xx: I32,
    x: I32,
    n: I32,
    p: I32,
    k: I32,
    t: I32,
    acc: V128,
  });
  b.for("y", "rows", () => {
    b.for("xx", "outW", () => {
      // t = taps + 8 xx; p = src + taps[t]; n = taps[t + 4]; k = kk + xx kstride
      b.get("xx").i32(8).op(OP.i32Mul).get("taps").op(OP.i32Add).set("t");
      b.get("src").get("t").op(OP.i32Load, ...mem(2)).op(OP.i32Add).set("p");
      b.get("t").op(OP.i32Load, ...mem(2, 4)).set("n");
      b.get("xx").get("kstride").op(OP.i32Mul).get("kk").op(OP.i32Add).set("k");
      b.i32(HALF).simd(SIMD.i32x4Splat).set("acc");
      b.for("x", "n", () => {
        b.get("acc");
        b.get("p").simd(SIMD.load32Zero, ...mem(0));
        b.simd(SIMD.i16x8ExtendLowI8x16U).simd(SIMD.i32x4ExtendLowI16x8U);
        b.get("k").simd(SIMD.load32Splat, ...mem(0));
        b.simd(SIMD.i32x4Mul).simd(SIMD.i32x4Add).set("acc");
        b.inc("p", 3).inc("k", 4);
      });
      // Store R, G, B and a spare byte that the next pixel overwrites.
      b.get("dst");
      shr22(b.get("acc")).tee("acc").get("acc").simd(SIMD.i16x8NarrowI32x4S);
      b.tee("acc").get("acc").simd(SIMD.i8x16NarrowI16x8U);
      b.simd(SIMD.store32Lane, ...mem(0), 0);
      b.inc("dst", 3);
    });
    b.inc("src", "srcStride");
  });
  return b;
}

/**
 * `vpass(rows, stride, outH, rowLen, taps, kk, kstride, dst)`: output row yy (`rowLen`
 * bytes at `dst + yy rowLen`) is the weighted sum of `taps[8 yy + 4]` rows starting
 * `taps[8 yy]` bytes after `rows`, `stride` bytes apart, 16 bytes at a time.
 */
function vpass(): Body {
  const params = ["rows", "stride", "outH", "rowLen", "taps", "kk", "kstride", "dst"];
  const b = new Body(params, {
    yy: I32,
    x: I32,
    i: I32,
    n: I32,
    p: I32,
    k: I32,
    k0: I32,
    r: I32,
    o: I32,
    t: I32,
    a0: V128,
    a1: V128,
    a2: V128,
    a3: V128,
    lo: V128,
    hi: V128,
    w: V128,
  });
  const acc = (a: string, half: string, ext: number) => {
    b.get(a).get(half).simd(ext).get("w").simd(SIMD.i32x4Mul).simd(SIMD.i32x4Add).set(a);
  };
  b.for("yy", "outH", () => {
    b.get("yy").i32(8).op(OP.i32Mul).get("taps").op(OP.i32Add).set("t");
    b.get("rows").get("t").op(OP.i32Load, ...mem(2)).op(OP.i32Add).set("r");
    b.get("t").op(OP.i32Load, ...mem(2, 4)).set("n");
    b.get("yy").get("kstride").op(OP.i32Mul).get("kk").op(OP.i32Add).set("k0");
    b.get("yy").get("rowLen").op(OP.i32Mul).get("dst").op(OP.i32Add).set("o");
    b.forStep("x", "rowLen", 16, () => {
      for (const a of ["a0", "a1", "a2", "a3"]) b.i32(HALF).simd(SIMD.i32x4Splat).set(a);
      b.get("r").get("x").op(OP.i32Add).set("p");
      b.get("k0").set("k");
      b.for("i", "n", () => {
        b.get("p").simd(SIMD.load, ...mem(0)).tee("hi");
        b.simd(SIMD.i16x8ExtendLowI8x16U).set("lo");
        b.get("hi").simd(SIMD.i16x8ExtendHighI8x16U).set("hi");
        b.get("k").simd(SIMD.load32Splat, ...mem(0)).set("w");
        acc("a0", "lo", SIMD.i32x4ExtendLowI16x8U);
        acc("a1", "lo", SIMD.i32x4ExtendHighI16x8U);
        acc("a2", "hi", SIMD.i32x4ExtendLowI16x8U);
        acc("a3", "hi", SIMD.i32x4ExtendHighI16x8U);
        b.inc("p", "stride").inc("k", 4);
      });
      b.get("o").get("x").op(OP.i32Add);
      shr22(b.get("a0"));
      shr22(b.get("a1"));
      b.simd(SIMD.i16x8NarrowI32x4S);
      shr22(b.get("a2"));
      shr22(b.get("a3"));
      b.simd(SIMD.i16x8NarrowI32x4S);
      b.simd(SIMD.i8x16NarrowI16x8U);
      b.simd(SIMD.store, ...mem(0));
    });
  });
  return b;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

/**
 * The module's bytes: imports memory `env.mem`, exports `hpass` and `vpass` (8 i32 params
 * each, no results).
 *
 * @returns The encoded module.
 */
export function resampleModuleBytes(): Uint8Array<ArrayBuffer> {
  const sig = [0x60, 8, ...Array(8).fill(I32), 0];
  const bodies = [hpass(), vpass()].map((b) => b.encode());
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, ...sig]),
    ...section(2, [1, ...name("env"), ...name("mem"), 0x02, 0x00, 1]),
    ...section(3, [2, 0, 0]),
    ...section(7, [2, ...name("hpass"), 0x00, 0, ...name("vpass"), 0x00, 1]),
    ...section(10, [2, ...bodies.flat()]),
  ]);
}

/** Signature of both passes (byte addresses and counts). */
export type PassFn = (
  src: number,
  srcStride: number,
  rows: number,
  width: number,
  taps: number,
  kk: number,
  kstride: number,
  dst: number,
) => void;

/** An instance of the module with its own memory. */
export interface ResampleWasm {
  /** The instance's memory (grown by the caller). */
  memory: WebAssembly.Memory;
  /** The horizontal pass. */
  hpass: PassFn;
  /** The vertical pass. */
  vpass: PassFn;
}

/**
 * Instantiates the module (one per thread and caller), or returns null where this engine
 * has no WebAssembly SIMD.
 *
 * @returns The instance, or null.
 * @example
 * ```ts
 * const wasm = instantiateResample();
 * wasm === null || typeof wasm.hpass === "function"; // true
 * ```
 */
export function instantiateResample(): ResampleWasm | null {
  const bytes = resampleModuleBytes();
  if (!WebAssembly.validate(bytes)) return null;
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    env: { mem: memory },
  });
  const e = instance.exports as unknown as { hpass: PassFn; vpass: PassFn };
  return { memory, hpass: e.hpass, vpass: e.vpass };
}
