/**
 * PyTorch checkpoints (`torch.save` zip files: `epoch_N.pt`, `open_clip_pytorch_model.bin`)
 * read without Python and without running code: the zip container ({@linkcode ZipReader}),
 * `data.pkl` through the restricted unpickler ({@linkcode unpickle}), tensors read on demand
 * from their storages with strides and offsets applied. The state dict is exposed with the
 * same reading interface as a safetensors file (names, entries, read), so the loaders take
 * either.
 *
 * @module
 */

import { basename } from "node:path";
import { bf16ToF32, f16ToF32 } from "./dtype.ts";
import {
  isTensorRef,
  TORCH_DTYPE_BYTES,
  type TorchDtype,
  type TorchTensorRef,
  unpickle,
} from "./pickle.ts";
import { openFileSource } from "./safetensors_stream.ts";
import { openSafetensors, type TensorData } from "./safetensors.ts";
import { ZipReader } from "./torch_zip.ts";

/** One tensor of a state dict, as listed. */
export interface TorchEntry {
  /** The name (after dropping a DDP `module.` prefix). */
  name: string;
  /** Element type. */
  dtype: TorchDtype;
  /** Dimensions. */
  shape: number[];
}

/** A weights file read through the common interface of safetensors and torch files. */
export interface WeightsReader {
  /** Tensor names. */
  names(): string[];
  /** Whether a name is present. */
  has(name: string): boolean;
  /** The dtype and shape of a tensor. */
  entry(name: string): { dtype: string; shape: number[] };
  /** The elements (F16 / BF16 widened to float32, I64 as BigInt64Array). */
  read(name: string): Promise<TensorData>;
  /** Releases the file. */
  close(): void;
}

/** A torch.save checkpoint: its unpickled root and the zip to read storages from. */
export class TorchCheckpoint {
  /** The file's name for messages. */
  readonly label: string;
  /** The unpickled object: Maps for dicts, arrays for lists / tuples, tensor refs. */
  readonly root: unknown;
  #zip: ZipReader;
  #prefix: string;

  private constructor(zip: ZipReader, prefix: string, root: unknown, label: string) {
    this.#zip = zip;
    this.#prefix = prefix;
    this.root = root;
    this.label = label;
  }

  /**
   * Opens a torch.save zip file and unpickles its `data.pkl` (restricted; see pickle.ts).
   * Every tensor's storage is checked against its zip entry.
   *
   * @param path The file.
   * @returns The checkpoint (close it when done).
   * @throws {Error} For a file that is not a torch zip, a refused pickle, or storages out of
   *   range, naming the file and the reason.
   */
  static async open(path: string): Promise<TorchCheckpoint> {
    const label = basename(path);
    const zip = await ZipReader.open(await openFileSource(path), path);
    try {
      const pkl = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pkl.length !== 1) {
        throw new SyntaxError(
          `Cannot read "${path}": it is a zip file with ${pkl.length} "<name>/data.pkl" ` +
            "entries (a torch.save file has exactly one); legacy (non-zip) torch files are " +
            "not supported",
        );
      }
      const prefix = pkl[0]!.slice(0, -"data.pkl".length);
      if (zip.entries.has(`${prefix}byteorder`)) {
        const order = new TextDecoder().decode(await zip.read(`${prefix}byteorder`)).trim();
        if (order !== "little") {
          throw new Error(`Cannot read "${path}": byte order "${order}" is not supported`);
        }
      }
      const root = unpickle(await zip.read(pkl[0]!), label);
      const ck = new TorchCheckpoint(zip, prefix, root, path);
      ck.#checkStorages(root);
      return ck;
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  #checkStorages(v: unknown, seen = new Set<unknown>()): void {
    if (seen.has(v)) return;
    if (isTensorRef(v)) {
      const s = v.storage;
      const entry = this.#zip.entries.get(`${this.#prefix}data/${s.key}`);
      if (!entry) {
        throw new RangeError(
          `Cannot read "${this.label}": storage "${s.key}" has no "data/${s.key}" entry`,
        );
      }
      const want = s.numel * TORCH_DTYPE_BYTES[s.dtype];
      if (entry.size < want) {
        throw new RangeError(
          `Cannot read "${this.label}": storage "${s.key}" has ${entry.size} bytes, fewer than ` +
            `its ${s.numel} ${s.dtype} elements need (${want}; storage out of range)`,
        );
      }
      return;
    }
    if (typeof v !== "object" || v === null) return;
    seen.add(v);
    if (v instanceof Map) { for (const x of v.values()) this.#checkStorages(x, seen); }
    else if (Array.isArray(v)) { for (const x of v) this.#checkStorages(x, seen); }
  }

  /**
   * Reads a tensor into a row-major typed array (F16 / BF16 widened to float32, exactly).
   *
   * @param t The tensor.
   * @returns The elements.
   */
  async readTensor(t: TorchTensorRef): Promise<TensorData> {
    const bytes = TORCH_DTYPE_BYTES[t.storage.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const entry = `${this.#prefix}data/${t.storage.key}`;
    let raw: Uint8Array<ArrayBuffer>;
    if (numel === 0) raw = new Uint8Array(0);
    else {
      let span = 1;
      for (let i = 0; i < t.shape.length; i++) span += (t.shape[i]! - 1) * t.stride[i]!;
      const src = await this.#zip.read(entry, t.offset * bytes, span * bytes);
      raw = isContiguous(t) && span === numel ? src : gather(src, t, bytes, numel);
    }
    return view(t.storage.dtype, raw.buffer);
  }

  /**
   * The state dict of the checkpoint: the root itself when it is a dict of tensors, else its
   * `state_dict` entry (open_clip's `epoch_N.pt`); a `module.` prefix on every name (DDP) is
   * dropped, as open_clip's loader does. Non-tensor entries are left out.
   *
   * @returns Tensors by name, in file order.
   * @throws {SyntaxError} When there is no state dict.
   */
  stateDict(): Map<string, TorchTensorRef> {
    let sd: unknown = this.root;
    if (sd instanceof Map && sd.has("state_dict")) sd = sd.get("state_dict");
    if (!(sd instanceof Map) || ![...sd.values()].some(isTensorRef)) {
      throw new SyntaxError(
        `Cannot read "${this.label}": it holds neither a state dict nor a "state_dict" entry`,
      );
    }
    const names = [...sd.keys()].filter((k): k is string => typeof k === "string");
    const ddp = names.length > 0 && names.every((n) => n.startsWith("module."));
    const out = new Map<string, TorchTensorRef>();
    for (const [k, t] of sd) {
      if (typeof k === "string" && isTensorRef(t)) out.set(ddp ? k.slice(7) : k, t);
    }
    return out;
  }

  /**
   * The state dict as a {@linkcode WeightsReader} (closing it closes the checkpoint).
   *
   * @returns The reader.
   */
  weights(): WeightsReader {
    const sd = this.stateDict();
    const entry = (name: string): TorchEntry => {
      const t = sd.get(name);
      if (!t) throw new RangeError(`Cannot find tensor "${name}" in "${this.label}"`);
      return { name, dtype: t.storage.dtype, shape: [...t.shape] };
    };
    return {
      names: () => [...sd.keys()],
      has: (n) => sd.has(n),
      entry,
      read: (n) => (entry(n), this.readTensor(sd.get(n)!)),
      close: () => this.close(),
    };
  }

  /** Closes the file. */
  close(): void {
    this.#zip.close();
  }
}

function isContiguous(t: TorchTensorRef): boolean {
  let s = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== s) return false;
    s *= t.shape[i]!;
  }
  return true;
}

function gather(
  src: Uint8Array,
  t: TorchTensorRef,
  bytes: number,
  numel: number,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(numel * bytes);
  const nd = t.shape.length;
  const idx = new Array<number>(nd).fill(0);
  for (let i = 0; i < numel; i++) {
    let off = 0;
    for (let d = 0; d < nd; d++) off += idx[d]! * t.stride[d]!;
    out.set(src.subarray(off * bytes, off * bytes + bytes), i * bytes);
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

function view(dtype: TorchDtype, b: ArrayBuffer): TensorData {
  switch (dtype) {
    case "F32":
      return new Float32Array(b);
    case "F16":
      return f16ToF32(new Uint16Array(b));
    case "BF16":
      return bf16ToF32(new Uint16Array(b));
    case "I64":
      return new BigInt64Array(b);
  }
}

/**
 * Opens a weights file of either kind by its first bytes: a torch.save zip ("PK") or a
 * safetensors file.
 *
 * @param path The file.
 * @returns A reader (close it when done).
 * @example
 * ```ts
 * const r = await openWeightsFile("open_clip_pytorch_model.bin");
 * console.log(r.names().length);
 * r.close();
 * ```
 */
export async function openWeightsFile(path: string): Promise<WeightsReader> {
  const f = await Deno.open(path, { read: true });
  const head = new Uint8Array(4);
  let n: number | null;
  try {
    n = await f.read(head);
  } finally {
    f.close();
  }
  if (n === 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 3 && head[3] === 4) {
    return (await TorchCheckpoint.open(path)).weights();
  }
  return await openSafetensors(path);
}
