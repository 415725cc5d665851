/**
 * Float64 references of the elementwise ops in `src/ops/elementwise.ts`.
 *
 * @module
 */

import { type Arr, arr, stridesOf } from "./array.ts";

/** Error function, |error| < 1e-15 (series and continued fraction). */
export function erf(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    // Maclaurin series: erf z = 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1))
    let term = z, s = z;
    for (let n = 1; n < 200; n++) {
      term *= -z * z / n;
      const add = term / (2 * n + 1);
      s += add;
      if (Math.abs(add) < 1e-17 * Math.abs(s)) break;
    }
    r = 2 / Math.sqrt(Math.PI) * s;
  } else {
    // Continued fraction for erfc (Lentz).
    let f = z, c = z, d = 0;
    for (let n = 1; n < 200; n++) {
      const an = n / 2;
      d = z + an * d;
      d = 1 / d;
      c = z + an / c;
      const delta = c * d;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

const sig = (v: number) => 1 / (1 + Math.exp(-v));
const K = Math.sqrt(2 / Math.PI);

/** Forward of each unary op given input v and constants a, b. */
export const UNARY_REF: Record<string, (v: number, a: number, b: number) => number> = {
  neg: (v) => -v,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  square: (v) => v * v,
  abs: Math.abs,
  sigmoid: sig,
  logSigmoid: (v) => -Math.log1p(Math.exp(-v)),
  tanh: Math.tanh,
  relu: (v) => Math.max(v, 0),
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  geluTanh: (v) => 0.5 * v * (1 + Math.tanh(K * (v + 0.044715 * v ** 3))),
  affine: (v, a, b) => a * v + b,
  clamp: (v, a, b) => Math.min(Math.max(v, a), b),
  greaterThan: (v, a) => (v > a ? 1 : 0),
  equalTo: (v, a) => (v === a ? 1 : 0),
};

/**
 * @param op Unary op name.
 * @param x Input.
 * @param a First constant.
 * @param b Second constant.
 * @returns f(x).
 */
export function unaryRef(op: string, x: Arr, a = 0, b = 0): Arr {
  const f = UNARY_REF[op]!;
  return arr(x.shape, x.data.map((v) => f(v, a, b)));
}

/** Forward of each binary op. */
export const BINARY_REF: Record<string, (u: number, v: number) => number> = {
  add: (u, v) => u + v,
  sub: (u, v) => u - v,
  mul: (u, v) => u * v,
  div: (u, v) => u / v,
  maximum: Math.max,
  bce: (u, v) => -(v * Math.max(Math.log(u), -100) + (1 - v) * Math.max(Math.log(1 - u), -100)),
  equal: (u, v) => (u === v ? 1 : 0),
  greater: (u, v) => (u > v ? 1 : 0),
};

/**
 * Broadcast shape (NumPy rules).
 *
 * @param a First shape.
 * @param b Second shape.
 * @returns The broadcast shape.
 */
export function broadcastShapeRef(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new RangeError("not broadcastable");
    out.push(Math.max(da, db));
  }
  return out;
}

/** Index into `shape` for output coordinate `coord` of the broadcast shape. */
function bIndex(coord: number[], shape: readonly number[], strides: number[]): number {
  let idx = 0;
  const off = coord.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    idx += (shape[i] === 1 ? 0 : coord[off + i]!) * strides[i]!;
  }
  return idx;
}

function forEachCoord(shape: readonly number[], fn: (c: number[], i: number) => void): void {
  const n = shape.reduce((p, d) => p * d, 1);
  const c = new Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(c, i);
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++c[k] < shape[k]!) break;
      c[k] = 0;
    }
  }
}

/**
 * @param op Binary op name.
 * @param u First operand.
 * @param v Second operand.
 * @returns f(u, v), broadcast.
 */
export function binaryRef(op: string, u: Arr, v: Arr): Arr {
  const f = BINARY_REF[op]!;
  const shape = broadcastShapeRef(u.shape, v.shape);
  const su = stridesOf(u.shape), sv = stridesOf(v.shape);
  const out = arr(shape);
  forEachCoord(shape, (c, i) => {
    out.data[i] = f(u.data[bIndex(c, u.shape, su)]!, v.data[bIndex(c, v.shape, sv)]!);
  });
  return out;
}

/**
 * Broadcasts an array to a shape.
 *
 * @param x Input.
 * @param shape Target shape.
 * @returns The broadcast copy.
 */
export function broadcastToRef(x: Arr, shape: readonly number[]): Arr {
  const sx = stridesOf(x.shape);
  const out = arr(shape);
  forEachCoord(shape, (c, i) => {
    out.data[i] = x.data[bIndex(c, x.shape, sx)]!;
  });
  return out;
}
