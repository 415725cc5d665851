/**
 * What both attention kernel families share: the WGSL code builder for head rows of D floats
 * (held in vec4 registers plus a scalar tail, so that the loops over D are unrolled: llvmpipe
 * sums loop trips over all loops of an invocation), the threads per workgroup of the `rows`
 * family, the parameters of the per-source backward kernels, and the backward's first pass
 * (per-row logsumexp and delta = rowsum(dO * O)).
 *
 * Head rows in storage buffers hold f32 or f16 activations (issue 14): the code widens
 * every load to f32 and rounds at the store, so all arithmetic (scores, the softmax, its
 * logsumexp, the accumulators) is f32 whatever the storage; workgroup tiles stay f32.
 *
 * @module
 */

import { attention_backward_prep as prepSrc } from "../../wgsl/sources.ts";
import { defineKernel, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { enableF16, type FloatDType } from "./storage_type.ts";

/** Threads per workgroup of the `rows` family and of the backward's first pass. */
export const WG = 64;

/** A head row in WGSL: register names (`name0..` vec4, `name_0..` tail) or [buffer, base]. */
export type Row = string | readonly [buf: string, base: string];

/** WGSL text for head rows of D floats, held as vec4 chunks plus a scalar tail. */
export class RowCode {
  /** Whether the row buffers are arrays of vec4 (D % 4 == 0). */
  readonly vec: boolean;
  /** Number of vec4 chunks. */
  readonly nv: number;
  /** Number of scalar tail elements. */
  readonly tail: number;
  /** Array elements per head row. */
  readonly du: number;
  /** Storage type of the head rows in storage buffers. */
  readonly storage: FloatDType;
  /** Buffers that hold f32 rows whatever the storage type (workgroup tiles). */
  readonly wide: ReadonlySet<string>;

  /**
   * @param d Head dim.
   * @param storage Storage type of the rows in storage buffers (default f32).
   * @param wide Names of buffers holding f32 rows regardless (workgroup tiles).
   */
  constructor(d: number, storage: FloatDType = "f32", wide: readonly string[] = []) {
    this.vec = d % 4 === 0;
    this.nv = Math.floor(d / 4);
    this.tail = d % 4;
    this.du = this.vec ? d / 4 : d;
    this.storage = storage;
    this.wide = new Set(wide);
  }

  /** The array element type of row buffers in storage. */
  get rowType(): string {
    return this.vec ? `vec4<${this.storage}>` : this.storage;
  }

  /** The array element type of f32 row buffers (workgroup tiles). */
  get wideRowType(): string {
    return this.vec ? "vec4<f32>" : "f32";
  }

  /** The `{{ENABLE}}` line of a kernel over these rows. */
  get enable(): string {
    return enableF16(this.storage);
  }

  /** Whether buffer `buf` stores narrower rows than f32 (loads widen, stores round). */
  #narrow(buf: string): boolean {
    return this.storage !== "f32" && !this.wide.has(buf);
  }

  /**
   * An element of buffer `buf` read as f32: `at` itself, or widened from the storage type.
   *
   * @param buf Buffer name.
   * @param at The element expression (`buf[...]`).
   * @param vec Whether the element is a vec4.
   * @returns The f32 expression.
   */
  widen(buf: string, at: string, vec: boolean): string {
    if (!this.#narrow(buf)) return at;
    return vec ? `vec4<f32>(${at})` : `f32(${at})`;
  }

  /** An f32 value stored into buffer `buf`: `v`, or rounded to the storage type. */
  #narrowed(buf: string, v: string, vec: boolean): string {
    if (!this.#narrow(buf)) return v;
    return vec ? `vec4<${this.storage}>(${v})` : `${this.storage}(${v})`;
  }

  /** Chunk c of a row, as a vec4 expression. */
  chunk(row: Row, c: number): string {
    if (typeof row === "string") return `${row}${c}`;
    const [buf, base] = row;
    if (this.vec) return this.widen(buf, `${buf}[${base} + ${c}u]`, true);
    const els = [0, 1, 2, 3].map((e) => this.widen(buf, `${buf}[${base} + ${4 * c + e}u]`, false));
    return `vec4<f32>(${els.join(", ")})`;
  }

  /** Tail element e of a row, as an f32 expression. */
  tailAt(row: Row, e: number): string {
    if (typeof row === "string") return `${row}_${e}`;
    const [buf, base] = row;
    return this.widen(buf, `${buf}[${base} + ${4 * this.nv + e}u]`, false);
  }

  /** Lines declaring registers `name` that hold a row read from memory. */
  load(name: string, row: Row): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`let ${name}${c} = ${this.chunk(row, c)};`);
    for (let e = 0; e < this.tail; e++) out.push(`let ${name}_${e} = ${this.tailAt(row, e)};`);
    return out;
  }

  /** Lines declaring registers `name` initialised to zero. */
  zero(name: string): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`var ${name}${c} = vec4<f32>(0.0);`);
    for (let e = 0; e < this.tail; e++) out.push(`var ${name}_${e} = 0.0;`);
    return out;
  }

  /** The dot product of two rows, as an f32 expression. */
  dot(a: Row, b: Row): string {
    const terms: string[] = [];
    for (let c = 0; c < this.nv; c++) terms.push(`dot(${this.chunk(a, c)}, ${this.chunk(b, c)})`);
    for (let e = 0; e < this.tail; e++) terms.push(`${this.tailAt(a, e)} * ${this.tailAt(b, e)}`);
    return terms.join(" + ");
  }

  /** Lines `regs = regs * factor`. */
  scale(name: string, factor: string): string[] {
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) out.push(`${name}${c} = ${name}${c} * ${factor};`);
    for (let e = 0; e < this.tail; e++) out.push(`${name}_${e} = ${name}_${e} * ${factor};`);
    return out;
  }

  /** Lines `acc = w * x + acc (* keep)` for registers `acc`, a scalar `w` and a row `x`. */
  axpy(acc: string, w: string, x: Row, keep?: string): string[] {
    const k = keep === undefined ? "" : ` * ${keep}`;
    const out: string[] = [];
    for (let c = 0; c < this.nv; c++) {
      out.push(`${acc}${c} = fma(vec4<f32>(${w}), ${this.chunk(x, c)}, ${acc}${c}${k});`);
    }
    for (let e = 0; e < this.tail; e++) {
      out.push(`${acc}_${e} = fma(${w}, ${this.tailAt(x, e)}, ${acc}_${e}${k});`);
    }
    return out;
  }

  /** Lines storing regs (times `factor`) into a row in memory, or adding them there. */
  store(name: string, [buf, base]: readonly [string, string], factor = "", add = false) {
    const out: string[] = [];
    const f = factor === "" ? "" : ` * ${factor}`;
    const put = (at: string, v: string, vec: boolean) => {
      const sum = `${add ? `${this.widen(buf, at, vec)} + ` : ""}${v}${f}`;
      out.push(`${at} = ${this.#narrowed(buf, sum, vec)};`);
    };
    for (let c = 0; c < this.nv; c++) {
      if (this.vec) put(`${buf}[${base} + ${c}u]`, `${name}${c}`, true);
      else {
        for (let e = 0; e < 4; e++) {
          put(`${buf}[${base} + ${4 * c + e}u]`, `${name}${c}[${e}]`, false);
        }
      }
    }
    for (let e = 0; e < this.tail; e++) {
      put(`${buf}[${base} + ${4 * this.nv + e}u]`, `${name}_${e}`, false);
    }
    return out;
  }
}

/** Joins generated lines, indented by `level` steps of two spaces. */
export function indented(lines: readonly string[], level: number): string {
  return lines.map((s) => "  ".repeat(level) + s).join("\n");
}

/** 0, 1, ..., n - 1. */
export const range = (n: number): number[] => [...Array(n).keys()];

const kernels = new KernelCache();

/**
 * The kernel-name suffix of a storage type: none for f32 (the names of the f32 kernels stay
 * as they were), `_f16` for f16.
 *
 * @param storage Storage type of the head rows.
 * @returns The suffix.
 */
export function storageSuffix(storage: FloatDType): string {
  return storage === "f32" ? "" : `_${storage}`;
}

/**
 * The backward's first pass: per query row, the logsumexp and delta = rowsum(dO * O).
 *
 * @param d Head dim.
 * @param storage Storage type of O and dO (default f32).
 * @returns The kernel.
 */
export function prepKernel(d: number, storage: FloatDType = "f32"): Kernel {
  return kernels.get(`prep:${d}:${storage}`, () => {
    const r = new RowCode(d, storage);
    return defineKernel({
      name: `attention_backward_prep_d${d}${storageSuffix(storage)}`,
      source: prepSrc,
      bindings: ["read", "read", "read", "write"],
      params: ["rows:u32", "nq:u32", "heads:u32"],
      defines: {
        ENABLE: r.enable,
        ROW: r.rowType,
        DU: r.du,
        DELTA: r.dot(["O", "qb"], ["dO", "qb"]),
      },
    });
  });
}

/** Parameters of the per-source dQ and dK/dV kernels (`threads` or `groups` first). */
export const SOURCE_PARAMS = [
  "threads:u32",
  "nq:u32",
  "heads:u32",
  "nkeys:u32",
  "maskOff:u32",
  "maskStride:u32",
  "scale:f32",
];
