/**
 * The `rows` attention kernel family (CPU adapters such as llvmpipe): a thread per group of R
 * query rows (key rows in dK/dV) walks every key (query) row from memory, without workgroup
 * memory (slow on a CPU). With R = 4 every key / value row loaded serves four query rows
 * (llvmpipe runs memory accesses lane by lane, so loads dominate); R = 1 keeps the most
 * threads in flight.
 *
 * @module
 */

import {
  attention_backward_dkv as dkvSrc,
  attention_backward_dq as dqSrc,
  attention_forward as forwardSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { indented, range, RowCode, SOURCE_PARAMS, storageSuffix } from "./attention_common.ts";
import type { FloatDType } from "./storage_type.ts";

const kernels = new KernelCache();

/**
 * The online-softmax step of the forward for one key: the key row loaded once, every query
 * row's score and rescale, then the value row loaded once and accumulated.
 */
function forwardStep(r: RowCode, rows: number, kBuf: string, vBuf: string): string[] {
  const out = [...r.load("kx", [kBuf, "kb"])];
  for (const i of range(rows)) {
    out.push(
      `let s${i} = params.scale * (${r.dot(`q${i}x`, "kx")});`,
      `if (s${i} > m${i}) {`,
      `  let corr = exp(m${i} - s${i});`,
      `  l${i} = l${i} * corr;`,
      ...r.scale(`a${i}x`, "corr").map((l) => "  " + l),
      `  m${i} = s${i};`,
      `}`,
      `let p${i} = exp(s${i} - m${i});`,
      `l${i} = l${i} + p${i};`,
    );
  }
  out.push(...r.load("vx", [vBuf, "kb"]));
  for (const i of range(rows)) out.push(...r.axpy(`a${i}x`, `p${i}`, "vx"));
  return out;
}

/**
 * The forward: online softmax over every key, saving each row's logsumexp.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param rows Query (key) rows per thread.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function forwardKernel(
  d: number,
  hasMask: boolean,
  rows: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`fwd:${d}:${hasMask}:${rows}:${storage}`, () => {
    const r = new RowCode(d, storage);
    const setup: string[] = [];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let qb${i} = (b * params.nq + min(i0 + ${i}u, params.nq - 1u)) * rs + h * ${r.du}u;`,
        ...r.load(`q${i}x`, ["Q", `qb${i}`]),
        ...r.zero(`a${i}x`),
        `var m${i} = -3.0e38;`,
        `var l${i} = 0.0;`,
      );
      store.push(
        `if (i0 + ${i}u < params.nq) {`,
        `  let inv = select(0.0, 1.0 / l${i}, l${i} > 0.0);`,
        ...r.store(`a${i}x`, ["O", `qb${i}`], "inv").map((l) => "  " + l),
        `  lse[bh * params.nq + i0 + ${i}u] = select(0.0, m${i} + log(l${i}), l${i} > 0.0);`,
        `}`,
      );
    }
    return defineKernel({
      name: `attention_forward_d${d}_r${rows}${hasMask ? "_mask" : ""}${storageSuffix(storage)}`,
      source: forwardSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: ["threads:u32", "nq:u32", "heads:u32", "nc:u32", "nk:u32", "scale:f32"],
      defines: {
        ENABLE: r.enable,
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP_C: indented(forwardStep(r, rows, "KC", "VC"), 2),
        STEP: indented(forwardStep(r, rows, "K", "V"), 2),
        STORE: indented(store, 1),
      },
    });
  });
}

/**
 * dQ of one key source, accumulated over sources.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param rows Query (key) rows per thread.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function dqKernel(
  d: number,
  hasMask: boolean,
  rows: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`dq:${d}:${hasMask}:${rows}:${storage}`, () => {
    const r = new RowCode(d, storage);
    const setup: string[] = [];
    const step = [...r.load("kx", ["KS", "kb"]), ...r.load("vx", ["VS", "kb"])];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let row${i} = min(i0 + ${i}u, params.nq - 1u);`,
        `let qb${i} = (b * params.nq + row${i}) * rs + h * ${r.du}u;`,
        `let st${i} = stats[bh * params.nq + row${i}];`,
        ...r.load(`q${i}x`, ["Q", `qb${i}`]),
        ...r.load(`g${i}x`, ["dO", `qb${i}`]),
        ...r.zero(`a${i}x`),
      );
      step.push(
        `let p${i} = exp(params.scale * (${r.dot(`q${i}x`, "kx")}) - st${i}.x);`,
        `let ds${i} = p${i} * ((${r.dot(`g${i}x`, "vx")}) - st${i}.y);`,
        ...r.axpy(`a${i}x`, `ds${i}`, "kx"),
      );
      store.push(
        `if (i0 + ${i}u < params.nq) {`,
        "  if (params.accumulate != 0u) {",
        ...r.store(`a${i}x`, ["dQ", `qb${i}`], "params.scale", true).map((l) => "    " + l),
        "  } else {",
        ...r.store(`a${i}x`, ["dQ", `qb${i}`], "params.scale").map((l) => "    " + l),
        "  }",
        "}",
      );
    }
    return defineKernel({
      name: `attention_backward_dq_d${d}_r${rows}${hasMask ? "_mask" : ""}${
        storageSuffix(storage)
      }`,
      source: dqSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write"],
      params: [...SOURCE_PARAMS, "accumulate:u32"],
      defines: {
        ENABLE: r.enable,
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP: indented(step, 2),
        STORE: indented(store, 1),
      },
    });
  });
}

/**
 * dK and dV of one key source.
 *
 * @param d Head dim.
 * @param hasMask Whether a key mask is bound.
 * @param rows Query (key) rows per thread.
 * @param storage Storage type of the head rows (default f32).
 * @returns The kernel.
 */
export function dkvKernel(
  d: number,
  hasMask: boolean,
  rows: number,
  storage: FloatDType = "f32",
): Kernel {
  return kernels.get(`dkv:${d}:${hasMask}:${rows}:${storage}`, () => {
    const r = new RowCode(d, storage);
    const setup: string[] = [];
    const step = [...r.load("qx", ["Q", "qb"]), ...r.load("gx", ["dO", "qb"])];
    const store: string[] = [];
    for (const i of range(rows)) {
      setup.push(
        `let row${i} = min(j0 + ${i}u, params.nkeys - 1u);`,
        `let kb${i} = (b * params.nkeys + row${i}) * rs + h * ${r.du}u;`,
        // Whether the key is attended (else its p, so its gradients, vanish; a select, since
        // exp() of a masked key's score may overflow and 0 * inf would be NaN).
        `let keep${i} = attends(b, row${i});`,
        ...r.load(`k${i}x`, ["KS", `kb${i}`]),
        ...r.load(`v${i}x`, ["VS", `kb${i}`]),
        ...r.zero(`dk${i}x`),
        ...r.zero(`dv${i}x`),
      );
      step.push(
        `let p${i} = select(0.0, exp(params.scale * (${r.dot(`k${i}x`, "qx")}) - st.x), keep${i});`,
        `let ds${i} = p${i} * ((${r.dot(`v${i}x`, "gx")}) - st.y);`,
        ...r.axpy(`dk${i}x`, `ds${i}`, "qx"),
        ...r.axpy(`dv${i}x`, `p${i}`, "gx"),
      );
      store.push(
        `if (j0 + ${i}u < params.nkeys) {`,
        ...r.store(`dk${i}x`, ["dK", `kb${i}`], "params.scale").map((l) => "  " + l),
        ...r.store(`dv${i}x`, ["dV", `kb${i}`]).map((l) => "  " + l),
        "}",
      );
    }
    return defineKernel({
      name: `attention_backward_dkv_d${d}_r${rows}${hasMask ? "_mask" : ""}${
        storageSuffix(storage)
      }`,
      source: dkvSrc,
      bindings: ["read", "read", "read", "read", "read", "read", "write", "write"],
      params: SOURCE_PARAMS,
      defines: {
        ENABLE: r.enable,
        ROW: r.rowType,
        DU: r.du,
        R: rows,
        HAS_MASK: String(hasMask),
        SETUP: indented(setup, 1),
        STEP: indented(step, 2),
        STORE: indented(store, 1),
      },
    });
  });
}
