/**
 * Kernels declared as data: a WGSL source, its storage bindings, its uniform parameters.
 *
 * Binding convention shared by every file in `wgsl/`: group 0 holds the storage buffers (and
 * textures) at bindings 0..n-1 in the order of {@linkcode KernelSpec.bindings}, then (when the
 * kernel has parameters) `var<uniform> params: Params` at binding n. `Params` is a struct of 4-byte
 * scalars whose fields are named, in order, by {@linkcode KernelSpec.params}. Sources may
 * contain `{{NAME}}` placeholders filled from {@linkcode KernelSpec.defines} (for things WGSL
 * override constants cannot express: element types, unrolled code). Pipelines are compiled
 * once per (kernel, defines) and cached by the runtime.
 *
 * @module
 */

/**
 * Access of a binding: a storage buffer read-only or read-write, or an rgba32float texture
 * read with `textureLoad` (`texture_2d<f32>`) or written with `textureStore`
 * (`texture_storage_2d<rgba32float, write>`).
 */
export type BindingAccess = "read" | "write" | "texture" | "texture-write";

/** Scalar types a uniform parameter may have. */
export type ParamType = "u32" | "i32" | "f32";

/** The declaration of a compute kernel. */
export interface KernelSpec {
  /** Name used as the pipeline label and in every error about this kernel. */
  name: string;
  /** WGSL source, usually a file of `wgsl/` (through `wgsl/sources.ts`). */
  source: string;
  /** Entry point (default "main"). */
  entry?: string;
  /** Bindings in binding order. */
  bindings: readonly BindingAccess[];
  /** Uniform fields in struct order, as "name:type" (type u32, i32 or f32). */
  params?: readonly string[];
  /** Text substitutions for `{{NAME}}` placeholders. */
  defines?: Readonly<Record<string, string | number>>;
}

/** A kernel ready to dispatch: the spec with its parameter layout resolved. */
export interface Kernel {
  /** The declaration. */
  readonly spec: KernelSpec;
  /** Cache key: name, entry and defines. */
  readonly key: string;
  /** The final WGSL text. */
  readonly code: string;
  /** Parameter names in uniform order. */
  readonly paramNames: readonly string[];
  /** Parameter types in uniform order. */
  readonly paramTypes: readonly ParamType[];
}

const PLACEHOLDER = /\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

/**
 * Resolves a kernel declaration: fills placeholders and parses the parameter list.
 *
 * @param spec The declaration.
 * @returns The kernel, to pass to the runtime's `dispatch`.
 * @example
 * ```ts
 * const k = defineKernel({
 *   name: "fill",
 *   source: "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n" +
 *     "struct Params { n: u32, v: f32 }\n@group(0) @binding(1) var<uniform> params: Params;\n" +
 *     "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {\n" +
 *     "  if (g.x < params.n) { y[g.x] = params.v; } }",
 *   bindings: ["write"],
 *   params: ["n:u32", "v:f32"],
 * });
 * ```
 */
export function defineKernel(spec: KernelSpec): Kernel {
  const defines = spec.defines ?? {};
  const code = spec.source.replace(PLACEHOLDER, (_m, name: string) => {
    const v = defines[name];
    if (v === undefined) {
      throw new Error(`Kernel "${spec.name}": no value for placeholder {{${name}}}`);
    }
    return String(v);
  });
  const paramNames: string[] = [];
  const paramTypes: ParamType[] = [];
  for (const p of spec.params ?? []) {
    const [name, type] = p.split(":");
    if (!name || (type !== "u32" && type !== "i32" && type !== "f32")) {
      throw new TypeError(`Kernel "${spec.name}": bad parameter declaration "${p}"`);
    }
    paramNames.push(name);
    paramTypes.push(type);
  }
  const defKey = Object.keys(defines).sort().map((k) => `${k}=${defines[k]}`).join(",");
  return {
    spec,
    key: `${spec.name}:${spec.entry ?? "main"}:${defKey}`,
    code,
    paramNames,
    paramTypes,
  };
}

/** Kernels built on first use and memoised by a key (an op's variants: dtype, flags, sizes). */
export class KernelCache {
  readonly #kernels = new Map<string, Kernel>();

  /**
   * Returns the kernel of a key, building it the first time.
   *
   * @param key Variant key.
   * @param make Builds the kernel (called once per key).
   * @returns The kernel.
   */
  get(key: string, make: () => Kernel): Kernel {
    let k = this.#kernels.get(key);
    if (!k) {
      k = make();
      this.#kernels.set(key, k);
    }
    return k;
  }
}

/**
 * Splits a thread count into a dispatch grid that respects the per-dimension workgroup
 * limit. Kernels recover the linear workgroup index as `wid.x + wid.y * nwg.x`.
 *
 * @param threads Number of threads needed.
 * @param workgroupSize Threads per workgroup.
 * @param maxPerDim Largest workgroup count per dimension (65535 on every adapter).
 * @returns Workgroup counts [x, y].
 */
export function grid(threads: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / workgroupSize));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
