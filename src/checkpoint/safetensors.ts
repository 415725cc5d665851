/**
 * The safetensors checkpoint format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON header (`{"name": {"dtype", "shape",
 * "data_offsets": [begin, end]}, ..., "__metadata__": {string: string}}`, padded with spaces),
 * then the raw little-endian, row-major tensor data, which the tensors must cover exactly.
 *
 * Reading parses and validates the header without touching the data, then reads one tensor at a
 * time from disk, so multi-gigabyte files never sit in memory whole. Every malformed or hostile
 * header is rejected before any allocation it could size: `SyntaxError` for malformed text and
 * structure, `RangeError` for sizes, shapes and offsets, each naming the file and the tensor.
 *
 * Writing matches the official writer (safetensors' Rust `serialize`) byte for byte: tensors
 * ordered by descending dtype (the order of the Rust `Dtype` enum, which puts wider types first)
 * then by name as UTF-8 bytes, compact JSON with `__metadata__` first, the header padded with
 * spaces to a multiple of 8 bytes. (The official writer emits metadata keys in hash-map order,
 * so with two or more metadata keys no byte order is canonical; ours is insertion order.) Data
 * is streamed one tensor at a time into a temporary file that atomically replaces the target.
 *
 * @module
 */

import { writeAll, writeAtomic } from "./atomic.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.ts";
import { type ByteSource, memorySource, openFileSource } from "./safetensors_stream.ts";

/**
 * Element types of the format, in the order of the official `Dtype` enum (increasing
 * alignment); the writer orders tensors by descending position in this list.
 */
export const SAFETENSORS_DTYPES = [
  "BOOL",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F8_E4M3FNUZ",
  "F8_E5M2FNUZ",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
] as const;

/** A safetensors element type name, e.g. `"F32"`. */
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** Bits per element of each dtype (sub-byte types pack several elements per byte). */
export const DTYPE_BITS: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

/** The official reader's limit on the JSON header (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** The typed arrays a tensor is read as or written from. */
export type TensorData =
  | Float32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>
  | Int16Array<ArrayBuffer>
  | Uint16Array<ArrayBuffer>
  | Int8Array<ArrayBuffer>
  | Uint8Array<ArrayBuffer>
  | BigInt64Array<ArrayBuffer>
  | BigUint64Array<ArrayBuffer>;

/** One tensor of a safetensors file, as listed in its header. */
export interface SafetensorsEntry {
  /** The tensor's name. */
  name: string;
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Dimensions (`[]` for a scalar). */
  shape: number[];
  /** Absolute position of the first data byte in the file. */
  byteOffset: number;
  /** Number of data bytes. */
  byteLength: number;
}

/** Reads tensors one at a time from a validated safetensors file. */
export class SafetensorsReader {
  /** The file's name as used in error messages. */
  readonly label: string;
  /** The `__metadata__` string map, or undefined when the header has none. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Every tensor, in data order. */
  readonly entries: readonly SafetensorsEntry[];
  #byName: Map<string, SafetensorsEntry>;
  #source: ByteSource;

  /**
   * Use {@link openSafetensors}, {@link parseSafetensors} or {@link openSafetensorsSource}.
   *
   * @param source The bytes.
   * @param label The file's name for messages.
   * @param header The validated header.
   */
  constructor(source: ByteSource, label: string, header: SafetensorsHeader) {
    this.#source = source;
    this.label = label;
    this.metadata = header.metadata;
    this.entries = header.entries;
    this.#byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  /**
   * Lists the tensor names.
   *
   * @returns The names, in data order.
   */
  names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /**
   * Tells whether the file has a tensor.
   *
   * @param name A tensor name.
   * @returns Whether the file has that tensor.
   */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /**
   * Looks up a tensor's header entry; a name the file lacks is a RangeError.
   *
   * @param name A tensor name.
   * @returns Its header entry.
   */
  entry(name: string): SafetensorsEntry {
    const e = this.#byName.get(name);
    if (!e) {
      throw new RangeError(
        `Cannot find tensor ${JSON.stringify(name)} in "${this.label}": ` +
          `it is not among its ${this.entries.length} tensors`,
      );
    }
    return e;
  }

  /**
   * Reads a tensor's raw little-endian bytes.
   *
   * @param name A tensor name.
   * @returns The bytes, in their own ArrayBuffer (so any typed array view is aligned).
   */
  readBytes(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const e = this.entry(name);
    return this.#source.read(e.byteOffset, e.byteLength);
  }

  /**
   * Reads a tensor as a typed array: F16 and BF16 widened to `Float32Array`, every other dtype
   * as its own type (BOOL as 0/1 bytes in a `Uint8Array`, I64 as `BigInt64Array`).
   *
   * @param name A tensor name.
   * @returns The elements in row-major order.
   * @example
   * ```ts
   * using st = await openSafetensors("model.safetensors");
   * const w = await st.read("vision_model.trunk.patch_embed.proj.weight") as Float32Array;
   * ```
   */
  async read(name: string): Promise<TensorData> {
    const e = this.entry(name);
    const view = READ_VIEWS[e.dtype];
    if (!view) {
      throw new TypeError(
        `Cannot read tensor ${JSON.stringify(name)} of "${this.label}" as a typed array: ` +
          `dtype ${e.dtype} has no JavaScript counterpart (use readBytes())`,
      );
    }
    return view((await this.readBytes(name)).buffer);
  }

  /**
   * Reads a float tensor (F16, BF16, F32 or F64) as float32 values, a bounded number of
   * elements at a time: each piece is read from the file and widened (F16, BF16) or rounded
   * (F64) on its own, so neither the tensor's bytes nor its float32 copy is ever held whole.
   *
   * @param name A tensor name.
   * @param chunkElements Largest piece, in elements (at least 1).
   * @returns The pieces in row-major order, each with the index of its first element.
   * @throws {TypeError} For a tensor that is not a float type.
   * @example
   * ```ts
   * using st = await openSafetensors("model.safetensors");
   * for await (const { start, data } of st.readFloatChunks("w", 1 << 20)) upload(start, data);
   * ```
   */
  async *readFloatChunks(
    name: string,
    chunkElements: number,
  ): AsyncGenerator<{ start: number; data: Float32Array<ArrayBuffer> }> {
    const e = this.entry(name);
    const widen = FLOAT_CHUNK_VIEWS[e.dtype];
    if (!widen) {
      throw new TypeError(
        `Cannot read tensor ${JSON.stringify(name)} of "${this.label}" as float32: dtype ` +
          `${e.dtype} is not a float type`,
      );
    }
    if (!Number.isInteger(chunkElements) || chunkElements < 1) {
      throw new RangeError(`Cannot read in pieces of ${chunkElements} elements: give >= 1`);
    }
    const bytesPer = DTYPE_BITS[e.dtype] / 8;
    const count = e.byteLength / bytesPer;
    for (let start = 0; start < count; start += chunkElements) {
      const n = Math.min(chunkElements, count - start);
      const bytes = await this.#source.read(e.byteOffset + start * bytesPer, n * bytesPer);
      yield { start, data: widen(bytes.buffer) };
    }
  }

  /** Closes the underlying file. */
  close(): void {
    this.#source.close();
  }

  /** Closes the underlying file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

const READ_VIEWS: Partial<Record<SafetensorsDtype, (b: ArrayBuffer) => TensorData>> = {
  BOOL: (b) => new Uint8Array(b),
  U8: (b) => new Uint8Array(b),
  I8: (b) => new Int8Array(b),
  I16: (b) => new Int16Array(b),
  U16: (b) => new Uint16Array(b),
  F16: (b) => f16ToF32(new Uint16Array(b)),
  BF16: (b) => bf16ToF32(new Uint16Array(b)),
  I32: (b) => new Int32Array(b),
  U32: (b) => new Uint32Array(b),
  F32: (b) => new Float32Array(b),
  F64: (b) => new Float64Array(b),
  I64: (b) => new BigInt64Array(b),
  U64: (b) => new BigUint64Array(b),
};

const FLOAT_CHUNK_VIEWS: Partial<
  Record<SafetensorsDtype, (b: ArrayBuffer) => Float32Array<ArrayBuffer>>
> = {
  F16: (b) => f16ToF32(new Uint16Array(b)),
  BF16: (b) => bf16ToF32(new Uint16Array(b)),
  F32: (b) => new Float32Array(b),
  F64: (b) => Float32Array.from(new Float64Array(b)),
};

/**
 * Opens a safetensors file: reads and validates its header only.
 *
 * @param path The file.
 * @returns A reader; close it (or declare it with `using`) when done.
 * @example
 * ```ts
 * using st = await openSafetensors("model.safetensors");
 * for (const e of st.entries) console.log(e.name, e.dtype, e.shape);
 * const logitScale = await st.read("logit_scale");
 * ```
 */
export async function openSafetensors(path: string): Promise<SafetensorsReader> {
  return await openSafetensorsSource(await openFileSource(path), { label: path });
}

/**
 * Reads a safetensors file that is already in memory (small files, tests).
 *
 * @param bytes The whole file.
 * @param options `label`: the name used in error messages (default `"<memory>"`).
 * @returns A reader.
 * @example
 * ```ts
 * const st = await parseSafetensors(await Deno.readFile("tiny.safetensors"));
 * ```
 */
export function parseSafetensors(
  bytes: Uint8Array,
  options: { label?: string | undefined } = {},
): Promise<SafetensorsReader> {
  return openSafetensorsSource(memorySource(bytes), { label: options.label ?? "<memory>" });
}

/**
 * Validates the header behind any {@link ByteSource} and returns a reader over it. On failure
 * the source is closed.
 *
 * @param source The bytes.
 * @param options `label`: the file's name for error messages.
 * @returns A reader that owns the source.
 * @example
 * ```ts
 * const st = await openSafetensorsSource(await openFileSource("a.safetensors"), {
 *   label: "a.safetensors",
 * });
 * ```
 */
export async function openSafetensorsSource(
  source: ByteSource,
  options: { label: string },
): Promise<SafetensorsReader> {
  const label = options.label;
  try {
    if (source.size < 8) {
      throw new SyntaxError(
        `Cannot open "${label}": the file has ${source.size} bytes, fewer than the 8-byte ` +
          `header length`,
      );
    }
    const n = new DataView((await source.read(0, 8)).buffer).getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new RangeError(
        `Cannot open "${label}": header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
      );
    }
    const headerLength = Number(n);
    if (8 + headerLength > source.size) {
      throw new RangeError(
        `Cannot open "${label}": header length ${headerLength} runs past the end of the ` +
          `${source.size}-byte file`,
      );
    }
    const header = parseHeader(
      await source.read(8, headerLength),
      label,
      8 + headerLength,
      source.size,
    );
    return new SafetensorsReader(source, label, header);
  } catch (err) {
    source.close();
    throw err;
  }
}

/** A validated header. */
export interface SafetensorsHeader {
  /** The `__metadata__` map, if the header has one. */
  metadata: Record<string, string> | undefined;
  /** The tensors, in data order. */
  entries: SafetensorsEntry[];
}

/**
 * Decodes and validates a header. `dataStart` is the file offset of the data region and
 * `fileSize` the file's length; the tensors must tile `[dataStart, fileSize)` exactly.
 */
function parseHeader(
  bytes: Uint8Array,
  label: string,
  dataStart: number,
  fileSize: number,
): SafetensorsHeader {
  const fail = (msg: string) => new SyntaxError(`Cannot open "${label}": ${msg}`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw fail("the header is not valid UTF-8");
  }
  if (!text.startsWith("{")) {
    throw fail(`the header must start with "{", found ${JSON.stringify(text.slice(0, 16))}`);
  }
  // Valid JSON text that starts with "{" is an object.
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail(`the header is not valid JSON (${(err as Error).message})`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    throw fail(
      dup.parent === undefined
        ? `the header names tensor ${JSON.stringify(dup.key)} twice`
        : `the header repeats key ${JSON.stringify(dup.key)} in the entry ` +
          `${JSON.stringify(dup.parent)}`,
    );
  }

  let metadata: Record<string, string> | undefined;
  const entries: SafetensorsEntry[] = [];
  const spans: { begin: number; end: number; name: string }[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(value)) throw fail("__metadata__ is not a JSON object");
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") {
          throw fail(`__metadata__ value of ${JSON.stringify(k)} is ${describe(v)}, not a string`);
        }
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const t = `tensor ${JSON.stringify(name)}`;
    const range = (msg: string) => new RangeError(`Cannot open "${label}": ${t} ${msg}`);
    if (!isPlainObject(value)) throw fail(`${t} is ${describe(value)}, not a JSON object`);
    for (const key of ["dtype", "shape", "data_offsets"]) {
      if (!Object.hasOwn(value, key)) throw fail(`${t} has no "${key}"`);
    }
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== "string") {
      throw fail(`${t} has a dtype that is ${describe(dtype)}, not a string`);
    }
    if (!Object.hasOwn(DTYPE_BITS, dtype)) {
      throw fail(`${t} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === "number")) {
      throw fail(`${t} has a shape that is not an array of numbers`);
    }
    for (const d of shape as number[]) {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw range(`has shape [${shape.join(", ")}]: dimension ${d} is not a whole number >= 0`);
      }
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => typeof o === "number")
    ) {
      throw fail(`${t} has data_offsets that are not an array of two numbers`);
    }
    const [begin, end] = offsets as [number, number];
    if (![begin, end].every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw range(`has data_offsets [${begin}, ${end}] that are not whole numbers >= 0`);
    }
    if (end < begin) throw range(`has inverted data_offsets [${begin}, ${end}]`);
    const bits = (shape as number[]).reduce((acc, d) => acc * BigInt(d), 1n) *
      BigInt(DTYPE_BITS[dtype as SafetensorsDtype]);
    if (bits % 8n !== 0n) {
      throw range(`has shape [${shape.join(", ")}] of dtype ${dtype}, which is not whole bytes`);
    }
    if (bits / 8n !== BigInt(end - begin)) {
      throw range(
        `has shape [${shape.join(", ")}] of dtype ${dtype}, which needs ${bits / 8n} bytes, ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({
      name,
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
    });
    spans.push({ begin, end, name });
  }

  // The tensors must tile the data region: no overlap, no hole, nothing past or after it.
  const dataLength = fileSize - dataStart;
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let last = "";
  for (const { begin, end, name } of spans) {
    const t = `tensor ${JSON.stringify(name)}`;
    if (begin < covered) {
      throw new RangeError(
        `Cannot open "${label}": ${t} data_offsets [${begin}, ${end}] overlap tensor ` +
          `${JSON.stringify(last)}, which ends at ${covered}`,
      );
    }
    if (begin > covered) {
      throw new RangeError(
        `Cannot open "${label}": data bytes ${covered}..${begin} before ${t} belong to no ` +
          `tensor (the data region must be covered without holes)`,
      );
    }
    if (end > dataLength) {
      throw new RangeError(
        `Cannot open "${label}": ${t} data_offsets [${begin}, ${end}] run past the end of ` +
          `the ${dataLength}-byte data region (the file is truncated or the offsets are out ` +
          `of range)`,
      );
    }
    if (end > begin) last = name;
    covered = end;
  }
  if (covered < dataLength) {
    throw new RangeError(
      `Cannot open "${label}": ${dataLength - covered} trailing data bytes after ` +
        `offset ${covered} belong to no tensor`,
    );
  }
  entries.sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
  return { metadata, entries };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** "an array", "a number", "null", ... for messages about JSON values. */
function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * Finds the first object key that repeats within one JSON object (JSON.parse silently keeps
 * the last one). `text` must be valid JSON. `parent` is the top-level key whose object holds the
 * duplicate, undefined for a duplicate at the top level.
 */
function findDuplicateKey(text: string): { key: string; parent: string | undefined } | undefined {
  interface Frame {
    keys: Set<string> | undefined; // undefined for arrays
    expectKey: boolean;
    lastKey: string;
  }
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // '"': a string; find its end, stepping over escapes.
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c) {
          escaped = true;
          j += 2;
        } else {
          j++;
        }
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key: string = escaped ? JSON.parse(text.slice(i, j + 1)) : text.slice(i + 1, j);
        if (top.keys.has(key)) {
          return { key, parent: stack.length > 1 ? stack[0]!.lastKey : undefined };
        }
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) { // '{'
      stack.push({ keys: new Set(), expectKey: true, lastKey: "" });
    } else if (c === 0x5b) { // '['
      stack.push({ keys: undefined, expectKey: false, lastKey: "" });
    } else if (c === 0x7d || c === 0x5d) { // '}' or ']'
      stack.pop();
    } else if (c === 0x2c) { // ','
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/** A tensor to write: its data, or a function producing it when its turn comes. */
export interface WriteTensor {
  /** The tensor's name (unique, not `__metadata__`). */
  name: string;
  /** The element type stored in the file. */
  dtype: SafetensorsDtype;
  /** Dimensions (`[]` for a scalar). */
  shape: readonly number[];
  /**
   * The elements in row-major order, or a (possibly async) function returning them, called
   * only when this tensor is written so that one tensor at a time is in memory. Accepted:
   * the dtype's own typed array (`Float32Array` for F32, `BigInt64Array` for I64, `Uint8Array`
   * of 0/1 for BOOL, ...); a `Float32Array` for F16 / BF16 (rounded to nearest even) or a
   * `Uint16Array` of their bit patterns; or, for any dtype, a `Uint8Array` of the raw
   * little-endian bytes.
   */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

/** Options of {@link writeSafetensors} and {@link serializeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** The `__metadata__` string map (omitted from the header when undefined). */
  metadata?: Readonly<Record<string, string>> | undefined;
}

/**
 * Writes a safetensors file atomically, streaming one tensor at a time.
 *
 * @param path The target file (replaced only once the new one is complete on disk).
 * @param tensors The tensors, in any order (the file orders them as the official writer does).
 * @param options The metadata map.
 * @returns Resolves once the file is in place.
 * @example
 * ```ts
 * await writeSafetensors("model.safetensors", [
 *   { name: "logit_scale", dtype: "F32", shape: [], data: new Float32Array([2.3026]) },
 *   { name: "w", dtype: "BF16", shape: [2, 2], data: () => new Float32Array([1, 2, 3, 4]) },
 * ], { metadata: { format: "pt" } });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly WriteTensor[],
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const plan = planLayout(tensors, options.metadata, path);
  await writeAtomic(path, (file) => emit(plan, (bytes) => writeAll(file, bytes), path));
}

/**
 * Serialises tensors into a safetensors file in memory (small files, tests).
 *
 * @param tensors The tensors.
 * @param options The metadata map.
 * @returns The file's bytes.
 * @example
 * ```ts
 * const bytes = await serializeSafetensors([
 *   { name: "x", dtype: "I32", shape: [2], data: new Int32Array([1, 2]) },
 * ]);
 * ```
 */
export async function serializeSafetensors(
  tensors: readonly WriteTensor[],
  options: WriteSafetensorsOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const plan = planLayout(tensors, options.metadata, "<memory>");
  const out = new Uint8Array(plan.fileSize);
  let at = 0;
  await emit(plan, (bytes) => {
    out.set(bytes, at);
    at += bytes.length;
    return Promise.resolve();
  }, "<memory>");
  return out;
}

/** The header bytes (length prefix included), the tensors in file order, the file size. */
interface Layout {
  header: Uint8Array;
  ordered: WriteTensor[];
  fileSize: number;
}

function planLayout(
  tensors: readonly WriteTensor[],
  metadata: Readonly<Record<string, string>> | undefined,
  label: string,
): Layout {
  const where = `Cannot write "${label}"`;
  const enc = new TextEncoder();
  const seen = new Set<string>();
  const items = tensors.map((tensor) => {
    const { name, dtype, shape } = tensor;
    const t = `tensor ${JSON.stringify(name)}`;
    if (typeof name !== "string" || name === "__metadata__") {
      throw new TypeError(`${where}: ${JSON.stringify(name)} is not a valid tensor name`);
    }
    if (seen.has(name)) throw new TypeError(`${where}: ${t} appears twice`);
    seen.add(name);
    if (!Object.hasOwn(DTYPE_BITS, dtype)) {
      throw new TypeError(`${where}: ${t} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw new RangeError(
          `${where}: ${t} has shape [${shape.join(", ")}]: dimension ${d} is not a whole ` +
            `number >= 0`,
        );
      }
    }
    const bits = shape.reduce((a, d) => a * d, 1) * DTYPE_BITS[dtype];
    if (!Number.isSafeInteger(bits) || bits % 8 !== 0) {
      throw new RangeError(
        `${where}: ${t} of shape [${shape.join(", ")}] and dtype ${dtype} is not a whole ` +
          `number of bytes below 2^53`,
      );
    }
    if (typeof tensor.data !== "function") checkData(tensor, tensor.data, where);
    return { tensor, bytes: bits / 8, key: enc.encode(name), rank: DTYPE_RANK[dtype] };
  });
  // The official writer: descending dtype (enum order), then name compared as UTF-8 bytes.
  items.sort((a, b) => b.rank - a.rank || compareBytes(a.key, b.key));

  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`${where}: metadata value of ${JSON.stringify(k)} is not a string`);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const { tensor, bytes } of items) {
    parts.push(
      `${JSON.stringify(tensor.name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape}],` +
        `"data_offsets":[${offset},${offset + bytes}]}`,
    );
    offset += bytes;
  }
  const json = enc.encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new RangeError(
      `${where}: the header would take ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return {
    header,
    ordered: items.map((item) => item.tensor),
    fileSize: header.length + offset,
  };
}

const DTYPE_RANK = Object.fromEntries(SAFETENSORS_DTYPES.map((d, i) => [d, i])) as Record<
  SafetensorsDtype,
  number
>;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The typed array each dtype is written from (besides raw Uint8Array bytes). */
const WRITE_TYPES: Partial<
  Record<SafetensorsDtype, { ctor: abstract new (n: number) => unknown; label: string }>
> = {
  U8: { ctor: Uint8Array, label: "Uint8Array" },
  BOOL: { ctor: Uint8Array, label: "Uint8Array" },
  I8: { ctor: Int8Array, label: "Int8Array" },
  I16: { ctor: Int16Array, label: "Int16Array" },
  U16: { ctor: Uint16Array, label: "Uint16Array" },
  F16: { ctor: Uint16Array, label: "Float32Array, Uint16Array of bit patterns" },
  BF16: { ctor: Uint16Array, label: "Float32Array, Uint16Array of bit patterns" },
  I32: { ctor: Int32Array, label: "Int32Array" },
  U32: { ctor: Uint32Array, label: "Uint32Array" },
  F32: { ctor: Float32Array, label: "Float32Array" },
  F64: { ctor: Float64Array, label: "Float64Array" },
  I64: { ctor: BigInt64Array, label: "BigInt64Array" },
  U64: { ctor: BigUint64Array, label: "BigUint64Array" },
};

/**
 * Checks that `data` can be written as `tensor` and returns how: "raw" bytes as they are,
 * "view" (the typed array's bytes), or "f16" / "bf16" conversion from float32.
 */
function checkData(
  tensor: WriteTensor,
  data: TensorData,
  where: string,
): "raw" | "view" | "f16" | "bf16" {
  const { name, dtype, shape } = tensor;
  const t = `tensor ${JSON.stringify(name)}`;
  const count = shape.reduce((a, d) => a * d, 1);
  let mode: "raw" | "view" | "f16" | "bf16";
  let expected: number;
  if (data instanceof Uint8Array) {
    mode = "raw";
    expected = (count * DTYPE_BITS[dtype]) / 8;
  } else if (data instanceof Float32Array && (dtype === "F16" || dtype === "BF16")) {
    mode = dtype === "F16" ? "f16" : "bf16";
    expected = count;
  } else {
    const want = WRITE_TYPES[dtype];
    if (!want || !(data instanceof want.ctor)) {
      throw new TypeError(
        `${where}: ${t} of dtype ${dtype} needs its data as ` +
          `${want ? `${want.label} or as ` : ""}raw bytes in a Uint8Array, got ` +
          data.constructor.name,
      );
    }
    mode = "view";
    expected = count;
  }
  if (data.length !== expected) {
    throw new RangeError(
      `${where}: ${t} of shape [${shape.join(", ")}] and dtype ${dtype} needs ${expected} ` +
        `${mode === "raw" ? "bytes" : "elements"}, got ${data.length}`,
    );
  }
  if (dtype === "BOOL" && !(data as Uint8Array).every((v) => v <= 1)) {
    throw new RangeError(`${where}: ${t} of dtype BOOL holds values other than 0 and 1`);
  }
  return mode;
}

/** Conversion chunk: 1 Mi elements (2 MiB of f16 output at a time). */
const CHUNK = 1 << 20;

/** Writes the header, then each tensor's bytes in file order, one tensor at a time. */
async function emit(
  plan: Layout,
  sink: (bytes: Uint8Array) => Promise<void>,
  label: string,
): Promise<void> {
  const where = `Cannot write "${label}"`;
  await sink(plan.header);
  let scratch: Uint16Array<ArrayBuffer> | undefined;
  for (const tensor of plan.ordered) {
    const data = typeof tensor.data === "function" ? await tensor.data() : tensor.data;
    const mode = checkData(tensor, data, where);
    if (mode === "f16" || mode === "bf16") {
      const src = data as Float32Array;
      const convert = mode === "f16" ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < src.length; i += CHUNK) {
        const part = src.subarray(i, i + CHUNK);
        scratch ??= new Uint16Array(CHUNK);
        const out = convert(part, scratch.subarray(0, part.length));
        await sink(new Uint8Array(out.buffer, 0, out.byteLength));
      }
    } else {
      await sink(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  }
}
