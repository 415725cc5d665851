/**
 * The parameter table: every trainable tensor of a model, by its Hugging Face name, laid out
 * in a few large buffers. Gradients and the optimizer's two moments use the same layout in
 * buffers of their own, so zero-grad is one fill per buffer and the AdamW update is one
 * pass per buffer and parameter group.
 *
 * Parameters are ordered by group (so each group is a contiguous range of each buffer) and
 * start at 256-byte boundaries (the strictest storage-binding alignment of real GPUs), so
 * each parameter is a plain tensor view that kernels bind directly.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { fmtBytes } from "../gpu/buffer_pool.ts";
import { fmtShape, numel, Storage, Tensor } from "../autograd/tensor.ts";
import { keep } from "../autograd/scope.ts";
import { fillInto } from "../ops/creation.ts";

/** How the optimizer treats a parameter. */
export interface ParamGroupSpec {
  /** Whether weight decay applies (not for biases, norms, 1-d params, logit scale). */
  decay: boolean;
  /** Learning-rate group: "base", or "selection" for PS3's token-selection parameters. */
  lrGroup: "base" | "selection";
}

/** Decides a parameter's optimizer group from its name and shape. */
export type GroupFn = (name: string, shape: readonly number[]) => ParamGroupSpec;

/**
 * One optimizer group for every parameter (weight decay on all, the base learning rate): the
 * default of models built for inference or conversion, where groups do not matter. Training
 * passes its policy (`referenceGroups` in `src/optim/param_groups.ts`).
 */
export const SINGLE_GROUP: GroupFn = (): ParamGroupSpec => ({ decay: true, lrGroup: "base" });

/** A parameter declaration. */
export interface ParamSpec extends ParamGroupSpec {
  /** Hugging Face checkpoint name, e.g. "vision_model.trunk.blocks.0.attn.qkv.weight". */
  name: string;
  /** Shape (as in the checkpoint). */
  shape: readonly number[];
  /** Fills the initial values (host side; called once per parameter). */
  init: (out: Float32Array) => void;
}

/** A parameter of a built table: spec, value view, gradient view, position. */
export interface Param {
  /** The declaration. */
  readonly spec: ParamSpec;
  /** The tensor (a view into a table buffer; `requiresGrad` set when the table has gradients). */
  readonly value: Tensor;
  /** Its gradient (a view into the gradient buffer, also `value.grad`); throws for a table
   * built without gradients. */
  readonly grad: Tensor;
  /** Index of the buffer holding it. */
  readonly chunk: number;
  /** Element offset inside that buffer. */
  readonly offset: number;
}

/** A contiguous element range of one buffer whose parameters share a group. */
export interface ParamRange extends ParamGroupSpec {
  /** Buffer index. */
  chunk: number;
  /** First element. */
  start: number;
  /** One past the last element. */
  end: number;
}

const ALIGN_ELEMS = 64; // 256 bytes of f32

/** Options of the {@linkcode ParamTable} constructor. */
export interface ParamTableOptions {
  /** Largest buffer in bytes (default: the device's binding limit, at most 1 GiB); a
   * parameter larger than that gets a buffer of its own. */
  chunkBytes?: number | undefined;
  /** Allocate gradient buffers (default true). Inference tables pass false: they hold only
   * the values (half the memory), their parameters do not require gradients, and reading
   * `grads` or a parameter's `grad` throws. */
  grads?: boolean | undefined;
  /** Run each parameter's initialiser (default true). False leaves every value zero, for
   * tables about to be filled from a checkpoint ({@linkcode ParamTable.initialize} runs the
   * initialisers of the parameters the checkpoint lacked). */
  init?: boolean | undefined;
}

function noGradsError(what: string): Error {
  return new Error(
    `Cannot use the gradient of ${what === "the table" ? what : `"${what}"`}: the parameter ` +
      "table was built without gradients (for inference)",
  );
}

/** Parameters, gradients and AdamW moments of one model. */
export class ParamTable {
  /** Parameters in table order (grouped), each with value and gradient views. */
  readonly params: Param[];
  /** Element ranges of equal group, for the optimizer. */
  readonly ranges: ParamRange[];
  /** Number of f32 elements in each buffer. */
  readonly chunkSizes: number[];
  /** Value buffers. */
  readonly values: Tensor[];
  /** Whether the table has gradient buffers (see {@linkcode ParamTableOptions.grads}). */
  readonly hasGrads: boolean;
  readonly #grads: Tensor[];
  readonly #byName = new Map<string, Param>();
  #moments: { m: Tensor[]; v: Tensor[] } | null = null;

  /**
   * Lays out and uploads the parameters.
   *
   * @param specs Declarations (names must be unique).
   * @param options Buffer size, gradients, initialisation.
   */
  constructor(specs: readonly ParamSpec[], options: ParamTableOptions = {}) {
    const rt = gpu();
    const limit = options.chunkBytes ??
      Math.min(rt.info.maxBindingBytes, rt.info.maxBufferBytes, 1 << 30);
    const chunkElems = Math.floor(limit / 4 / ALIGN_ELEMS) * ALIGN_ELEMS;
    const seen = new Set<string>();
    for (const s of specs) {
      if (seen.has(s.name)) throw new Error(`Parameter "${s.name}" is declared twice`);
      seen.add(s.name);
    }
    const groupKey = (s: ParamGroupSpec) => `${s.lrGroup}:${s.decay}`;
    const order = [...specs].sort((a, b) => groupKey(a).localeCompare(groupKey(b)));
    // Place parameters: first fit in the current chunk, a new chunk otherwise.
    const placed: { spec: ParamSpec; chunk: number; offset: number }[] = [];
    const sizes: number[] = [];
    for (const spec of order) {
      const n = numel(spec.shape);
      const padded = Math.ceil(Math.max(n, 1) / ALIGN_ELEMS) * ALIGN_ELEMS;
      let c = sizes.length - 1;
      if (c < 0 || sizes[c]! + padded > chunkElems) {
        sizes.push(0);
        c++;
      }
      placed.push({ spec, chunk: c, offset: sizes[c]! });
      sizes[c]! += padded;
    }
    this.chunkSizes = sizes;
    const alloc = (label: string) =>
      sizes.map((n) => {
        const buf = rt.device.createBuffer({
          size: Math.max(n, ALIGN_ELEMS) * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
          label,
        });
        return keep(new Tensor(new Storage(buf, false), [n], "f32", 0, label));
      });
    this.values = alloc("params");
    this.hasGrads = options.grads ?? true;
    this.#grads = this.hasGrads ? alloc("grads") : [];
    for (const g of this.#grads) fillInto(g, 0);
    this.params = placed.map(({ spec, chunk, offset }) => {
      const value = keep(this.values[chunk]!.window(offset, spec.shape));
      value.name = spec.name;
      let p: Param;
      if (this.hasGrads) {
        const grad = keep(this.#grads[chunk]!.window(offset, spec.shape));
        grad.name = `${spec.name}.grad`;
        value.requiresGrad = true;
        value.grad = grad;
        p = { spec, value, grad, chunk, offset };
      } else {
        p = {
          spec,
          value,
          chunk,
          offset,
          get grad(): Tensor {
            throw noGradsError(spec.name);
          },
        };
      }
      if (options.init ?? true) this.#initialize(p);
      this.#byName.set(spec.name, p);
      return p;
    });
    this.ranges = [];
    for (const p of this.params) {
      const n = numel(p.spec.shape);
      const last = this.ranges[this.ranges.length - 1];
      if (
        last && last.chunk === p.chunk && last.decay === p.spec.decay &&
        last.lrGroup === p.spec.lrGroup
      ) {
        last.end = p.offset + n;
      } else {
        this.ranges.push({
          chunk: p.chunk,
          start: p.offset,
          end: p.offset + n,
          decay: p.spec.decay,
          lrGroup: p.spec.lrGroup,
        });
      }
    }
  }

  /** Gradient buffers (same layout as `values`); throws for a table built without them. */
  get grads(): Tensor[] {
    if (!this.hasGrads) throw noGradsError("the table");
    return this.#grads;
  }

  /**
   * Runs the initialisers of some parameters (after building with `init: false`, for those a
   * checkpoint lacked). Initialisers that draw random numbers draw in this call's order, so
   * their values differ from those of a table initialised whole.
   *
   * @param names Hugging Face names.
   */
  initialize(names: Iterable<string>): void {
    for (const name of names) this.#initialize(this.get(name));
  }

  #initialize(p: Param): void {
    const host = new Float32Array(numel(p.spec.shape));
    p.spec.init(host);
    gpu().upload(p.value, host);
  }

  /**
   * Looks a parameter up by name.
   *
   * @param name Hugging Face name.
   * @returns The parameter.
   * @throws {Error} When no parameter has that name.
   */
  get(name: string): Param {
    const p = this.#byName.get(name);
    if (!p) throw new Error(`No parameter named "${name}"`);
    return p;
  }

  /**
   * Tells whether a parameter of that name exists.
   *
   * @param name Hugging Face name.
   * @returns Whether the table has it.
   */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Number of trainable elements. */
  get count(): number {
    return this.params.reduce((n, p) => n + numel(p.spec.shape), 0);
  }

  /** Sets every gradient to zero (one fill per buffer). */
  zeroGrad(): void {
    for (const g of this.grads) fillInto(g, 0);
  }

  /**
   * AdamW's first and second moments, created (zeroed) on first use, same layout.
   *
   * @returns The moment buffers.
   */
  moments(): { m: Tensor[]; v: Tensor[] } {
    if (!this.#moments) {
      const rt = gpu();
      const mk = (label: string) =>
        this.chunkSizes.map((n) => {
          const buf = rt.device.createBuffer({
            size: Math.max(n, ALIGN_ELEMS) * 4,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
            label,
          });
          const t = keep(new Tensor(new Storage(buf, false), [n], "f32", 0, label));
          fillInto(t, 0);
          return t;
        });
      this.#moments = { m: mk("adam_m"), v: mk("adam_v") };
    }
    return this.#moments;
  }

  /**
   * Per-parameter views of the AdamW moments, in `params` order (the caller disposes them),
   * or null before the moments exist.
   *
   * @returns Views of m and v.
   */
  momentViews(): { m: Tensor[]; v: Tensor[] } | null {
    const mom = this.#moments;
    if (!mom) return null;
    const views = (bufs: Tensor[]) =>
      this.params.map((p) => bufs[p.chunk]!.window(p.offset, p.spec.shape));
    return { m: views(mom.m), v: views(mom.v) };
  }

  /**
   * Replaces a parameter's values (e.g. from a checkpoint).
   *
   * @param name Hugging Face name.
   * @param data Values (f32, the parameter's element count).
   */
  load(name: string, data: Float32Array): void {
    const p = this.get(name);
    if (data.length !== p.value.size) {
      throw new RangeError(
        `Cannot load ${data.length} values into "${name}" of shape ${fmtShape(p.spec.shape)}`,
      );
    }
    gpu().upload(p.value, data);
  }

  /**
   * Writes part of a parameter's values straight into its buffer with the queue's
   * `writeBuffer` (no staging buffer of ours: the chunked checkpoint loader streams through
   * it). Work recorded before is submitted first, so the write lands after it. The device
   * keeps a copy of the written bytes until the next submit has run: callers writing much
   * call {@linkcode ParamTable.settleWrites} now and then.
   *
   * @param name Hugging Face name.
   * @param start First element to write.
   * @param data Values (f32).
   * @throws {RangeError} When the range runs past the parameter's end.
   */
  write(name: string, start: number, data: Float32Array<ArrayBuffer>): void {
    const p = this.get(name);
    if (!Number.isInteger(start) || start < 0 || start + data.length > p.value.size) {
      throw new RangeError(
        `Cannot write ${data.length} values at element ${start} of "${name}" of shape ` +
          fmtShape(p.spec.shape),
      );
    }
    const rt = gpu();
    rt.flush();
    rt.device.queue.writeBuffer(
      p.value.buffer,
      p.value.byteOffset + start * 4,
      data.buffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /**
   * Submits the writes made by {@linkcode ParamTable.write} and waits for them, so the
   * device frees its copies of their bytes.
   *
   * @returns Resolves once the writes have run.
   */
  async settleWrites(): Promise<void> {
    const rt = gpu();
    rt.flush();
    rt.device.queue.submit([]);
    await rt.device.queue.onSubmittedWorkDone();
  }

  /**
   * Measures the table's GPU memory.
   *
   * @returns Bytes of values, gradients and (when created) moments.
   */
  bytes(): number {
    const one = this.chunkSizes.reduce((a, n) => a + n, 0) * 4;
    return one * ((this.hasGrads ? 2 : 1) + (this.#moments ? 2 : 0));
  }

  /**
   * Summarises the table for logs.
   *
   * @returns A one-line summary: parameter count and memory.
   */
  describe(): string {
    return `${this.params.length} tensors, ${this.count.toLocaleString("en-US")} parameters, ` +
      `${fmtBytes(this.bytes())} on the GPU`;
  }
}
