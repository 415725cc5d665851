/**
 * A restricted unpickler for the `data.pkl` of PyTorch checkpoints: it runs no code and
 * builds only what a state dict (and an optimizer state or a training checkpoint's plain
 * fields) needs:
 *
 * - plain values and containers (None, booleans, integers, floats, strings, tuples, lists,
 *   dicts, sets);
 * - `collections.OrderedDict` (as a `Map`);
 * - `torch._utils._rebuild_tensor_v2` and `torch._utils._rebuild_parameter` (as
 *   {@linkcode TorchTensorRef});
 * - storages through `persistent_load` (`('storage', torch.FloatStorage, key, location,
 *   numel)`) of `torch.FloatStorage`, `torch.HalfStorage`, `torch.BFloat16Storage` and
 *   `torch.LongStorage`.
 *
 * Any other global (e.g. `os.system`), a REDUCE of anything but the callables above, BUILD on
 * anything but an OrderedDict, and the object-building opcodes (`INST`, `OBJ`, `NEWOBJ`,
 * extension registry) are refused with an error naming the file and the reason.
 *
 * @module
 */

/** The storage dtypes accepted (safetensors spelling). */
export type TorchDtype = "F32" | "F16" | "BF16" | "I64";

/** Bytes per element of each dtype. */
export const TORCH_DTYPE_BYTES: Readonly<Record<TorchDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
};

const STORAGE_TYPES: Readonly<Record<string, TorchDtype>> = {
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
};

/** A storage named by the pickle (its bytes are the zip entry `data/<key>`). */
export interface TorchStorageRef {
  /** Element type. */
  dtype: TorchDtype;
  /** The key of the `data/<key>` entry. */
  key: string;
  /** Number of elements. */
  numel: number;
}

/** A tensor: a strided view of a storage. */
export interface TorchTensorRef {
  /** The storage. */
  storage: TorchStorageRef;
  /** First element within the storage. */
  offset: number;
  /** Dimensions. */
  shape: number[];
  /** Strides in elements. */
  stride: number[];
}

/** A Python global the pickle referenced (only the allowed ones are ever built). */
class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

const MARK = Symbol("mark");

/** Whether a value is a tensor reference. */
export function isTensorRef(v: unknown): v is TorchTensorRef {
  return typeof v === "object" && v !== null && "storage" in v && "stride" in v && "shape" in v;
}

const ALLOWED = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  ...Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`),
]);

/**
 * Unpickles `data.pkl` with the restrictions of the module notes.
 *
 * @param bytes The pickle.
 * @param label The file's name for messages (e.g. "epoch_3.pt").
 * @returns The value: Maps for dicts, arrays for lists and tuples, numbers (bigint beyond
 *   2^53), strings, {@linkcode TorchTensorRef} for tensors.
 * @throws {Error} For anything outside the allowed set, naming it.
 */
export function unpickle(bytes: Uint8Array, label: string): unknown {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (msg: string): never => {
    throw new Error(`Refusing to load "${label}": ${msg}`);
  };
  const need = (n: number) => {
    if (p + n > bytes.length) fail(`data.pkl ends early (byte ${p} of ${bytes.length})`);
  };
  const u8 = () => (need(1), bytes[p++]!);
  const u16 = () => (need(2), p += 2, v.getUint16(p - 2, true));
  const i32 = () => (need(4), p += 4, v.getInt32(p - 4, true));
  const u32 = () => (need(4), p += 4, v.getUint32(p - 4, true));
  const u64 = () => {
    need(8);
    const n = v.getBigUint64(p, true);
    p += 8;
    if (n > BigInt(bytes.length)) fail(`a length of ${n} exceeds the pickle`);
    return Number(n);
  };
  const take = (n: number) => {
    need(n);
    p += n;
    return bytes.subarray(p - n, p);
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail("data.pkl ends inside a GLOBAL");
    const s = new TextDecoder().decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow in data.pkl");
    const x = stack.pop();
    if (x === MARK) fail("unexpected MARK in data.pkl");
    return x;
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail("no MARK on the stack in data.pkl");
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow in data.pkl");
    return stack[stack.length - 1];
  };
  const global = (module: string, name: string): PyGlobal => {
    const g = new PyGlobal(module, name);
    if (!ALLOWED.has(g.qualified)) {
      fail(
        `data.pkl references ${g.qualified}, which is not allowed (only ` +
          "collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and " +
          "float32, float16, bfloat16 and int64 storages are)",
      );
    }
    return g;
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let n = 0n;
    for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) n -= 1n << BigInt(8 * b.length);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(n)
      : n;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) fail("SETITEM(S) on something that is not a dict");
    for (let i = 0; i + 1 < items.length; i += 2) {
      (d as Map<unknown, unknown>).set(items[i], items[i + 1]);
    }
  };
  const append = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l)) fail("APPEND(S) on something that is not a list");
    (l as unknown[]).push(...items);
  };
  const intArgs = (x: unknown, what: string): number[] => {
    if (!Array.isArray(x) || !x.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) {
      fail(`a tensor's ${what} is not a tuple of non-negative integers`);
    }
    return x as number[];
  };
  const reduce = (f: unknown, args: unknown): unknown => {
    if (!(f instanceof PyGlobal)) {
      fail(`REDUCE of ${typeof f === "object" ? "an object" : typeof f}, not an allowed callable`);
    }
    const g = f as PyGlobal;
    if (!Array.isArray(args)) fail(`REDUCE of ${g.qualified} without an argument tuple`);
    const a = args as unknown[];
    switch (g.qualified) {
      case "collections.OrderedDict": {
        const m = new Map<unknown, unknown>();
        if (a.length === 1 && Array.isArray(a[0])) {
          for (const kv of a[0] as unknown[]) {
            if (!Array.isArray(kv) || kv.length !== 2) fail("OrderedDict items are not pairs");
            m.set((kv as unknown[])[0], (kv as unknown[])[1]);
          }
        } else if (a.length !== 0) fail("OrderedDict called with unexpected arguments");
        return m;
      }
      case "torch._utils._rebuild_tensor_v2": {
        if (a.length < 4) fail("_rebuild_tensor_v2 needs at least 4 arguments");
        const storage = a[0] as TorchStorageRef;
        if (typeof storage !== "object" || storage === null || !("key" in storage)) {
          fail("_rebuild_tensor_v2's first argument is not a storage");
        }
        const offset = a[1];
        if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
          fail("_rebuild_tensor_v2's storage offset is not a non-negative integer");
        }
        const shape = intArgs(a[2], "size"), stride = intArgs(a[3], "stride");
        if (shape.length !== stride.length) fail("a tensor's size and stride differ in length");
        let last = offset as number;
        let empty = false;
        for (let i = 0; i < shape.length; i++) {
          if (shape[i] === 0) empty = true;
          last += (shape[i]! - 1) * stride[i]!;
        }
        if (!empty && last >= storage.numel) {
          fail(
            `a tensor of size [${shape}] (stride [${stride}], offset ${offset}) reaches element ` +
              `${last} of storage "${storage.key}", which has ${storage.numel} (storage out of range)`,
          );
        }
        return { storage, offset: offset as number, shape, stride } satisfies TorchTensorRef;
      }
      case "torch._utils._rebuild_parameter": {
        if (a.length < 1 || !isTensorRef(a[0])) fail("_rebuild_parameter without a tensor");
        return a[0];
      }
      default:
        return fail(`REDUCE of ${g.qualified} is not allowed`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("unsupported pickle protocol");
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case 0x2e: { // STOP
        const result = pop();
        return result;
      }
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(take(u8())));
        break;
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) fail("negative LONG4 length");
        stack.push(long(take(n)));
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        stack.push(v.getFloat64(p, false));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(dec.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(dec.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(dec.decode(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(u32())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(Object.freeze([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(Object.freeze([a, b, c]));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x61: { // APPEND
        const x = pop();
        append(top(), [x]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x73: { // SETITEM
        const val = pop(), key = pop();
        setItems(top(), [key, val]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail("ADDITEMS on something that is not a set");
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo key ${k} is not set`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line(), name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof name !== "string" || typeof module !== "string") {
          fail("STACK_GLOBAL without two strings");
        }
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), f = pop();
        stack.push(reduce(f, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) {
          fail("BUILD (setting an object's state) on something that is not an OrderedDict");
        }
        if (state !== null && !(state instanceof Map)) fail("BUILD with a state that is no dict");
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (
          !Array.isArray(pid) || pid.length !== 5 || pid[0] !== "storage" ||
          !(pid[1] instanceof PyGlobal)
        ) {
          fail("a persistent id that is not ('storage', <storage type>, key, location, numel)");
        }
        const [, type, key, , numel] = pid as unknown[];
        const dtype = STORAGE_TYPES[(type as PyGlobal).name];
        if ((type as PyGlobal).module !== "torch" || !dtype) {
          fail(`storage type ${(type as PyGlobal).qualified} is not allowed`);
        }
        if (typeof key !== "string" || !/^[0-9A-Za-z_.-]+$/.test(key)) {
          fail(`storage key ${JSON.stringify(key)} is not a plain name`);
        }
        if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
          fail(`storage "${key}" has an invalid element count`);
        }
        stack.push({ dtype: dtype!, key: key as string, numel: numel as number });
        break;
      }
      default: {
        const names: Record<number, string> = {
          0x69: "INST",
          0x6f: "OBJ",
          0x81: "NEWOBJ",
          0x92: "NEWOBJ_EX",
          0x50: "PERSID",
          0x82: "EXT1",
          0x83: "EXT2",
          0x84: "EXT4",
          0x96: "BYTEARRAY8",
          0x97: "NEXT_BUFFER",
          0x98: "READONLY_BUFFER",
        };
        fail(
          `opcode ${names[op] ?? `0x${op.toString(16).padStart(2, "0")}`} at byte ${p - 1} ` +
            "of data.pkl is not allowed",
        );
      }
    }
  }
}
