import { deepStrictEqual, fail, ok as assert, strictEqual } from "node:assert";
import {
  openSafetensors,
  openSafetensorsSource,
  parseSafetensors,
  type SafetensorsDtype,
  serializeSafetensors,
  type TensorData,
  writeSafetensors,
  type WriteTensor,
} from "../../src/checkpoint/safetensors.ts";
import {
  type ByteSource,
  memorySource,
  openFileSource,
} from "../../src/checkpoint/safetensors_stream.ts";
import { f16ToF32, f32ToF16 } from "../../src/checkpoint/dtype.ts";

const enc = new TextEncoder();

/** A file: 8-byte header length (the header's own unless `declared`), header text, data. */
function fileOf(header: string, data: number[] | Uint8Array = [], declared?: bigint): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

/** Wraps a source, recording every read and whether it was closed. */
function counting(src: ByteSource) {
  const log = { reads: [] as [number, number][], closed: false };
  const source: ByteSource = {
    size: src.size,
    read(offset, length) {
      log.reads.push([offset, length]);
      return src.read(offset, length);
    },
    close() {
      log.closed = true;
      src.close();
    },
  };
  return { log, source };
}

const LABEL = "hostile.safetensors";

/** Asserts that opening `bytes` fails with `cls` and a message naming the file and `re`. */
async function assertRejected(
  bytes: Uint8Array,
  cls: typeof SyntaxError | typeof RangeError,
  re: RegExp,
): Promise<void> {
  const { log, source } = counting(memorySource(bytes));
  try {
    await openSafetensorsSource(source, { label: LABEL });
  } catch (err) {
    assert(err instanceof cls, `expected ${cls.name}, got ${err}`);
    assert(err.message.startsWith(`Cannot open "${LABEL}": `), err.message);
    assert(re.test(err.message), `${err.message} does not match ${re}`);
    assert(log.closed, "the source is closed after a rejected header");
    return;
  }
  fail(`opening did not fail (expected ${re})`);
}

// ---------------------------------------------------------------------------------------------
// Byte-exact compatibility with the official writer.

// Written by the Python package `safetensors` 0.8.0 (Rust core) with numpy 2.4:
//   safetensors.numpy.save({...}, metadata={"format": "pt"})
// with "w.f64"=[1,-2.5] f64, "w.f32"=[[0.1,-1,3e38],[1e-45,-0.0,65504]] f32,
// "w.f16"=[1,-2,65504,6.1e-5,6e-8] f16, "i.i64"=[-2^63, 2^63-1], "i.i32"=[-7],
// "i.i16"=[-300,300], "i.i8"=[-128,127], "u.u64"=[2^64-1], "u.u32"=[4e9], "u.u16"=[65535],
// "u.u8"=[0,255,7], "m.bool"=[True,False,True], "scalar"=2.0 f32 (shape ()),
// "empty"=zeros((2,0)) f32. Note the order: descending dtype (U64, I64, F64, F32, U32, I32,
// F16, U16, I16, I8, U8, BOOL), then name; the header is padded with 6 spaces to 864 bytes.
const PY_HEADER = '{"__metadata__":{"format":"pt"},' +
  '"u.u64":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},' +
  '"i.i64":{"dtype":"I64","shape":[2],"data_offsets":[8,24]},' +
  '"w.f64":{"dtype":"F64","shape":[2],"data_offsets":[24,40]},' +
  '"empty":{"dtype":"F32","shape":[2,0],"data_offsets":[40,40]},' +
  '"scalar":{"dtype":"F32","shape":[],"data_offsets":[40,44]},' +
  '"w.f32":{"dtype":"F32","shape":[2,3],"data_offsets":[44,68]},' +
  '"u.u32":{"dtype":"U32","shape":[1],"data_offsets":[68,72]},' +
  '"i.i32":{"dtype":"I32","shape":[1],"data_offsets":[72,76]},' +
  '"w.f16":{"dtype":"F16","shape":[5],"data_offsets":[76,86]},' +
  '"u.u16":{"dtype":"U16","shape":[1],"data_offsets":[86,88]},' +
  '"i.i16":{"dtype":"I16","shape":[2],"data_offsets":[88,92]},' +
  '"i.i8":{"dtype":"I8","shape":[2],"data_offsets":[92,94]},' +
  '"u.u8":{"dtype":"U8","shape":[3],"data_offsets":[94,97]},' +
  '"m.bool":{"dtype":"BOOL","shape":[3],"data_offsets":[97,100]}}      ';
const PY_DATA = "ffffffffffffffff0000000000000080ffffffffffffff7f000000000000f03f00000000000004c0" +
  "00000040cdcccc3d000080bfe6b1617f010000000000008000e07f4700286beef9ffffff003c00c0ff7bff03" +
  "0100ffffd4fe2c01807f00ff07010001";

/** The same tensors as the Python fixture, in a different order. */
function pyTensors(): WriteTensor[] {
  return [
    { name: "w.f64", dtype: "F64", shape: [2], data: Float64Array.of(1, -2.5) },
    {
      name: "w.f32",
      dtype: "F32",
      shape: [2, 3],
      data: Float32Array.of(0.1, -1, 3e38, 1e-45, -0, 65504),
    },
    { name: "w.f16", dtype: "F16", shape: [5], data: Float32Array.of(1, -2, 65504, 6.1e-5, 6e-8) },
    {
      name: "i.i64",
      dtype: "I64",
      shape: [2],
      data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n),
    },
    { name: "i.i32", dtype: "I32", shape: [1], data: Int32Array.of(-7) },
    { name: "i.i16", dtype: "I16", shape: [2], data: Int16Array.of(-300, 300) },
    { name: "i.i8", dtype: "I8", shape: [2], data: Int8Array.of(-128, 127) },
    { name: "u.u64", dtype: "U64", shape: [1], data: BigUint64Array.of(2n ** 64n - 1n) },
    { name: "u.u32", dtype: "U32", shape: [1], data: Uint32Array.of(4000000000) },
    { name: "u.u16", dtype: "U16", shape: [1], data: Uint16Array.of(65535) },
    { name: "u.u8", dtype: "U8", shape: [3], data: Uint8Array.of(0, 255, 7) },
    { name: "m.bool", dtype: "BOOL", shape: [3], data: Uint8Array.of(1, 0, 1) },
    { name: "scalar", dtype: "F32", shape: [], data: Float32Array.of(2) },
    { name: "empty", dtype: "F32", shape: [2, 0], data: new Float32Array(0) },
  ];
}

Deno.test("serializeSafetensors() reproduces the Python safetensors file byte for byte", async () => {
  const want = new Uint8Array([...fileOf(PY_HEADER), ...hexBytes(PY_DATA)]);
  strictEqual(want.length, 972);
  const got = await serializeSafetensors(pyTensors(), { metadata: { format: "pt" } });
  strictEqual(new TextDecoder().decode(got.subarray(8, 8 + 864)), PY_HEADER);
  deepStrictEqual(got, want);
});

Deno.test("parseSafetensors() reads every tensor of the Python safetensors file", async () => {
  const st = await parseSafetensors(fileOf(PY_HEADER, hexBytes(PY_DATA)));
  deepStrictEqual(st.metadata, { format: "pt" });
  deepStrictEqual(st.names(), [
    "u.u64",
    "i.i64",
    "w.f64",
    "empty",
    "scalar",
    "w.f32",
    "u.u32",
    "i.i32",
    "w.f16",
    "u.u16",
    "i.i16",
    "i.i8",
    "u.u8",
    "m.bool",
  ]);
  deepStrictEqual(st.entry("scalar"), {
    name: "scalar",
    dtype: "F32",
    shape: [],
    byteOffset: 8 + 864 + 40,
    byteLength: 4,
  });
  for (const t of pyTensors()) {
    const got = await st.read(t.name);
    const want = t.dtype === "F16"
      ? f16ToF32(f32ToF16(t.data as Float32Array))
      : (t.data as TensorData);
    strictEqual(got.constructor, want.constructor, t.name);
    deepStrictEqual(got, want, t.name);
  }
  deepStrictEqual(await st.read("w.f16"), Float32Array.of(1, -2, 65504, 1023 * 2 ** -24, 2 ** -24));
});

// Written by safetensors 0.8.0 from numpy uint8 tensors {"\uff21": [1], "\u{1F600}": [2],
// 'a"b\\c\n\x01\x7f/é': [3]} with metadata {"note": 'tab\there \u2028 "q"'}: names ordered
// by their UTF-8 bytes (U+FF21 before U+1F600, the reverse of UTF-16 order), JSON escapes as
// serde_json writes them (\", \\, \n, \t, \u0001; DEL, U+2028 and non-ASCII raw).
const UNICODE_HEADER = String.raw`{"__metadata__":{"note":"tab\there ` + "\u2028" +
  String.raw` \"q\""},"a\"b\\c\n\u0001` + "\x7f/é" +
  String.raw`":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},` +
  String.raw`"Ａ":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},` +
  String.raw`"😀":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}      `;

Deno.test("serializeSafetensors() orders and escapes non-ASCII names like the official writer", async () => {
  const got = await serializeSafetensors([
    { name: "\u{1F600}", dtype: "U8", shape: [1], data: Uint8Array.of(2) },
    { name: "\uff21", dtype: "U8", shape: [1], data: Uint8Array.of(1) },
    { name: 'a"b\\c\n\x01\x7f/é', dtype: "U8", shape: [1], data: Uint8Array.of(3) },
  ], { metadata: { note: 'tab\there \u2028 "q"' } });
  const want = fileOf(UNICODE_HEADER, [3, 1, 2]);
  strictEqual(new DataView(want.buffer).getBigUint64(0, true), 232n);
  deepStrictEqual(got, want);
  const st = await parseSafetensors(got);
  deepStrictEqual(st.metadata, { note: 'tab\there \u2028 "q"' });
  deepStrictEqual(await st.read('a"b\\c\n\x01\x7f/é'), Uint8Array.of(3));
});

Deno.test("serializeSafetensors() places BF16 between I32 and F16 and rounds f32 to nearest even", async () => {
  // The Rust Dtype enum order is ... I16 < U16 < F16 < BF16 < I32 < U32 < F32 ..., and the
  // writer sorts descending, so F32 > I32 > BF16 > F16 whatever the names.
  const got = await serializeSafetensors([
    { name: "a", dtype: "F16", shape: [1], data: Float32Array.of(1) },
    { name: "b", dtype: "BF16", shape: [2], data: Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8) },
    { name: "c", dtype: "I32", shape: [], data: Int32Array.of(1) },
    { name: "d", dtype: "F32", shape: [], data: Float32Array.of(1) },
  ]);
  // 1 + 2^-8 is a tie rounding down to the even 0x3f80; 1 + 3*2^-8 a tie rounding up to 0x3f82.
  const header = '{"d":{"dtype":"F32","shape":[],"data_offsets":[0,4]},' +
    '"c":{"dtype":"I32","shape":[],"data_offsets":[4,8]},' +
    '"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},' +
    '"a":{"dtype":"F16","shape":[1],"data_offsets":[12,14]}}';
  strictEqual(header.length, 215); // padded with 1 space to 216
  const data = [0, 0, 0x80, 0x3f, 1, 0, 0, 0, 0x80, 0x3f, 0x82, 0x3f, 0x00, 0x3c];
  deepStrictEqual(got, fileOf(`${header} `, data));
});

// Our output for these tensors, fed back through safetensors 0.8.0's own `serialize()`
// (`TensorSpec`s over the same bytes, metadata {"format": "pt"}), came out identical: this pins
// the full dtype order I64 > F64 > C64 > F32 > BF16 > F16 > I16 > F8_E4M3 > U8 > F4 > BOOL.
const ALL_ORDER_HEADER = '{"__metadata__":{"format":"pt"},' +
  '"i64":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},' +
  '"f64":{"dtype":"F64","shape":[2,2],"data_offsets":[16,48]},' +
  '"c64":{"dtype":"C64","shape":[1],"data_offsets":[48,56]},' +
  '"f32.empty":{"dtype":"F32","shape":[0,5],"data_offsets":[56,56]},' +
  '"f32.scalar":{"dtype":"F32","shape":[],"data_offsets":[56,60]},' +
  '"bf16":{"dtype":"BF16","shape":[1,3],"data_offsets":[60,66]},' +
  '"f16":{"dtype":"F16","shape":[3],"data_offsets":[66,72]},' +
  '"zz":{"dtype":"I16","shape":[1],"data_offsets":[72,74]},' +
  '"f8":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[74,77]},' +
  '"u8":{"dtype":"U8","shape":[2,1],"data_offsets":[77,79]},' +
  '"f4":{"dtype":"F4","shape":[2,2],"data_offsets":[79,81]},' +
  '"bool":{"dtype":"BOOL","shape":[2],"data_offsets":[81,83]}}     ';
const ALL_ORDER_DATA =
  "fbffffffffffffff0000000000010000000000000000f03f00000000000000c0182d4454fb210940" +
  "9c7500883ce4377e0000803f000080bf0000e840cd3d80bf4a71662e007c0180fdff38b87fc80321430100";

Deno.test("serializeSafetensors() orders every dtype family as the official serialize() does", async () => {
  const got = await serializeSafetensors([
    { name: "f64", dtype: "F64", shape: [2, 2], data: Float64Array.of(1, -2, Math.PI, 1e300) },
    { name: "f32.scalar", dtype: "F32", shape: [], data: Float32Array.of(7.25) },
    { name: "f32.empty", dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
    { name: "f16", dtype: "F16", shape: [3], data: Float32Array.of(0.1, 70000, -6e-8) },
    { name: "bf16", dtype: "BF16", shape: [1, 3], data: Float32Array.of(0.1, -1, 1e30) },
    { name: "i64", dtype: "I64", shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
    { name: "u8", dtype: "U8", shape: [2, 1], data: Uint8Array.of(200, 3) },
    { name: "bool", dtype: "BOOL", shape: [2], data: Uint8Array.of(1, 0) },
    { name: "f8", dtype: "F8_E4M3", shape: [3], data: Uint8Array.of(0x38, 0xb8, 0x7f) },
    { name: "f4", dtype: "F4", shape: [2, 2], data: Uint8Array.of(0x21, 0x43) },
    { name: "c64", dtype: "C64", shape: [1], data: new Uint8Array(Float32Array.of(1, -1).buffer) },
    { name: "zz", dtype: "I16", shape: [1], data: Int16Array.of(-3) },
  ], { metadata: { format: "pt" } });
  deepStrictEqual(got, fileOf(ALL_ORDER_HEADER, hexBytes(ALL_ORDER_DATA)));
});

Deno.test("serializeSafetensors() pads the header with spaces to a multiple of 8 bytes", async () => {
  for (let extra = 0; extra < 9; extra++) {
    const name = "x".repeat(extra + 1);
    const bytes = await serializeSafetensors([
      { name, dtype: "U8", shape: [1], data: Uint8Array.of(9) },
    ]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const json = `{"${name}":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`;
    strictEqual(n, Math.ceil(json.length / 8) * 8, `name of ${extra + 1} characters`);
    strictEqual(new TextDecoder().decode(bytes.subarray(8, 8 + n)), json.padEnd(n, " "));
    strictEqual(bytes.length, 8 + n + 1);
    strictEqual(bytes[8 + n], 9);
  }
});

Deno.test("serializeSafetensors() writes an empty __metadata__ only when one is given", async () => {
  const t: WriteTensor[] = [{ name: "s", dtype: "F32", shape: [], data: Float32Array.of(0) }];
  const without = new TextDecoder().decode((await serializeSafetensors(t)).subarray(8));
  const withEmpty = new TextDecoder().decode(
    (await serializeSafetensors(t, { metadata: {} })).subarray(8),
  );
  assert(without.startsWith('{"s":'), without);
  assert(withEmpty.startsWith('{"__metadata__":{},"s":'), withEmpty);
  strictEqual((await parseSafetensors(await serializeSafetensors(t))).metadata, undefined);
});

// ---------------------------------------------------------------------------------------------
// Round trips through a file.

Deno.test("writeSafetensors() round-trips every dtype, scalars and empty tensors through a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_st_" });
  try {
    const f16Bits = Uint16Array.of(0x3c00, 0xfc00, 0x0001, 0x7e00);
    const tensors: WriteTensor[] = [
      { name: "f64", dtype: "F64", shape: [2, 2], data: Float64Array.of(1, -2, Math.PI, 1e300) },
      { name: "f32", dtype: "F32", shape: [3], data: Float32Array.of(0.5, -Infinity, 3) },
      { name: "f32.scalar", dtype: "F32", shape: [], data: Float32Array.of(7.25) },
      { name: "f32.empty", dtype: "F32", shape: [0, 5], data: new Float32Array(0) },
      { name: "f16.bits", dtype: "F16", shape: [2, 2], data: f16Bits },
      { name: "f16.from32", dtype: "F16", shape: [2], data: Float32Array.of(0.1, 70000) },
      { name: "bf16", dtype: "BF16", shape: [1, 3], data: Float32Array.of(0.1, -1, 1e30) },
      { name: "bf16.bits", dtype: "BF16", shape: [], data: Uint16Array.of(0x4049) },
      { name: "i64", dtype: "I64", shape: [2], data: BigInt64Array.of(-5n, 1n << 40n) },
      { name: "i64.empty", dtype: "I64", shape: [0], data: new BigInt64Array(0) },
      { name: "u64", dtype: "U64", shape: [1], data: BigUint64Array.of(1n << 63n) },
      { name: "i32", dtype: "I32", shape: [2], data: Int32Array.of(-(2 ** 31), 2 ** 31 - 1) },
      { name: "u32", dtype: "U32", shape: [1], data: Uint32Array.of(2 ** 32 - 1) },
      { name: "i16", dtype: "I16", shape: [1], data: Int16Array.of(-32768) },
      { name: "u16", dtype: "U16", shape: [1], data: Uint16Array.of(65535) },
      { name: "i8", dtype: "I8", shape: [3], data: Int8Array.of(-1, 0, 1) },
      { name: "u8", dtype: "U8", shape: [2, 1], data: Uint8Array.of(200, 3) },
      { name: "bool", dtype: "BOOL", shape: [2], data: Uint8Array.of(1, 0) },
      { name: "bool.scalar", dtype: "BOOL", shape: [], data: Uint8Array.of(1) },
      { name: "f8", dtype: "F8_E4M3", shape: [3], data: Uint8Array.of(0x38, 0xb8, 0x7f) },
      { name: "f4", dtype: "F4", shape: [2, 2], data: Uint8Array.of(0x21, 0x43) },
      {
        name: "c64",
        dtype: "C64",
        shape: [1],
        data: new Uint8Array(Float32Array.of(1, -1).buffer),
      },
      {
        name: "f32.raw",
        dtype: "F32",
        shape: [1],
        data: new Uint8Array(Float32Array.of(-3).buffer),
      },
    ];
    const path = `${dir}/all.safetensors`;
    await writeSafetensors(path, tensors, { metadata: { format: "pt", note: "é" } });
    using st = await openSafetensors(path);
    deepStrictEqual(st.metadata, { format: "pt", note: "é" });
    deepStrictEqual(new Set(st.names()), new Set(tensors.map((t) => t.name)));
    const expect: Record<string, TensorData> = {
      "f16.bits": f16ToF32(f16Bits),
      "f16.from32": Float32Array.of(0.0999755859375, Infinity),
      // 1e30 is f32 0x7149f2ca, which rounds up to bf16 0x714a.
      "bf16": Float32Array.of(0.10009765625, -1, 1.0002555517425873e30),
      "bf16.bits": Float32Array.of(3.140625),
      "f32.raw": Float32Array.of(-3),
    };
    for (const t of tensors) {
      const e = st.entry(t.name);
      strictEqual(e.dtype, t.dtype, t.name);
      deepStrictEqual(e.shape, t.shape, t.name);
      if (t.dtype.startsWith("F8") || t.dtype === "F4" || t.dtype === "C64") {
        deepStrictEqual(await st.readBytes(t.name), t.data, t.name);
        continue;
      }
      const got = await st.read(t.name);
      deepStrictEqual(got, expect[t.name] ?? t.data, t.name);
    }
    const files = [];
    for await (const f of Deno.readDir(dir)) files.push(f.name);
    deepStrictEqual(files, ["all.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors() calls lazy data one tensor at a time, in file order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_st_" });
  try {
    const calls: string[] = [];
    const lazy = (name: string, value: number) => () => {
      calls.push(name);
      return Float32Array.of(value, value);
    };
    const asyncLazy = (name: string) => async () => {
      await new Promise((r) => setTimeout(r, 1));
      calls.push(name);
      return Int32Array.of(5);
    };
    await writeSafetensors(`${dir}/lazy.safetensors`, [
      { name: "b", dtype: "F32", shape: [2], data: lazy("b", 2) },
      { name: "n", dtype: "I32", shape: [1], data: asyncLazy("n") },
      { name: "a", dtype: "F32", shape: [2], data: lazy("a", 1) },
      { name: "h", dtype: "F16", shape: [2], data: lazy("h", 3) },
    ]);
    deepStrictEqual(calls, ["a", "b", "n", "h"]);
    using st = await openSafetensors(`${dir}/lazy.safetensors`);
    deepStrictEqual(await st.read("a"), Float32Array.of(1, 1));
    deepStrictEqual(await st.read("h"), Float32Array.of(3, 3));
    deepStrictEqual(await st.read("n"), Int32Array.of(5));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors() keeps the old file when lazy data has the wrong length", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_st_" });
  try {
    const path = `${dir}/model.safetensors`;
    await writeSafetensors(path, [{
      name: "w",
      dtype: "F32",
      shape: [],
      data: Float32Array.of(1),
    }]);
    const before = await Deno.readFile(path);
    try {
      await writeSafetensors(path, [
        { name: "a", dtype: "F32", shape: [2], data: Float32Array.of(1, 2) },
        { name: "w", dtype: "F32", shape: [3], data: () => new Float32Array(2) },
      ]);
      fail("the write did not fail");
    } catch (err) {
      assert(err instanceof RangeError, String(err));
      assert(/tensor "w" of shape \[3\] and dtype F32 needs 3 elements, got 2/.test(err.message));
      assert(err.message.includes(path), err.message);
    }
    deepStrictEqual(await Deno.readFile(path), before);
    const files = [];
    for await (const f of Deno.readDir(dir)) files.push(f.name);
    deepStrictEqual(files, ["model.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const WRITE_ERRORS: [string, WriteTensor[], typeof TypeError | typeof RangeError, RegExp][] = [
  [
    "a duplicate name",
    [
      { name: "x", dtype: "U8", shape: [1], data: Uint8Array.of(1) },
      { name: "x", dtype: "U8", shape: [1], data: Uint8Array.of(2) },
    ],
    TypeError,
    /tensor "x" appears twice/,
  ],
  [
    "the name __metadata__",
    [{ name: "__metadata__", dtype: "U8", shape: [1], data: Uint8Array.of(1) }],
    TypeError,
    /"__metadata__" is not a valid tensor name/,
  ],
  [
    "an unknown dtype",
    [{ name: "x", dtype: "toString" as SafetensorsDtype, shape: [1], data: Uint8Array.of(1) }],
    TypeError,
    /tensor "x" has unknown dtype "toString"/,
  ],
  [
    "a typed array of the wrong type",
    [{ name: "x", dtype: "I32", shape: [1], data: Float32Array.of(1) }],
    TypeError,
    /tensor "x" of dtype I32 needs its data as Int32Array or as raw bytes .* got Float32Array/,
  ],
  [
    "the wrong element count",
    [{ name: "x", dtype: "F32", shape: [2, 2], data: new Float32Array(3) }],
    RangeError,
    /tensor "x" of shape \[2, 2\] and dtype F32 needs 4 elements, got 3/,
  ],
  [
    "the wrong raw byte count",
    [{ name: "x", dtype: "F32", shape: [2], data: new Uint8Array(7) }],
    RangeError,
    /tensor "x" of shape \[2\] and dtype F32 needs 8 bytes, got 7/,
  ],
  [
    "a BOOL value other than 0 and 1",
    [{ name: "x", dtype: "BOOL", shape: [2], data: Uint8Array.of(1, 2) }],
    RangeError,
    /tensor "x" of dtype BOOL holds values other than 0 and 1/,
  ],
  [
    "a negative dimension",
    [{ name: "x", dtype: "F32", shape: [2, -1], data: new Float32Array(0) }],
    RangeError,
    /tensor "x" has shape \[2, -1\]: dimension -1 is not a whole number >= 0/,
  ],
  [
    "a sub-byte tensor that is not whole bytes",
    [{ name: "x", dtype: "F4", shape: [3], data: new Uint8Array(2) }],
    RangeError,
    /tensor "x" of shape \[3\] and dtype F4 is not a whole number of bytes/,
  ],
];

for (const [what, tensors, cls, re] of WRITE_ERRORS) {
  Deno.test(`serializeSafetensors() rejects ${what} with a ${cls.name}`, async () => {
    try {
      await serializeSafetensors(tensors);
    } catch (err) {
      assert(err instanceof cls, `expected ${cls.name}, got ${err}`);
      assert(err.message.startsWith('Cannot write "<memory>": '), err.message);
      assert(re.test(err.message), `${err.message} does not match ${re}`);
      return;
    }
    fail("no error");
  });
}

Deno.test("serializeSafetensors() rejects a metadata value that is not a string", async () => {
  try {
    await serializeSafetensors([], { metadata: { step: 3 as unknown as string } });
    fail("no error");
  } catch (err) {
    assert(err instanceof TypeError, String(err));
    assert(/metadata value of "step" is not a string/.test(err.message), err.message);
  }
});

// ---------------------------------------------------------------------------------------------
// Reader API.

Deno.test("SafetensorsReader.read() names a missing tensor and refuses dtypes without a typed array", async () => {
  const st = await parseSafetensors(
    await serializeSafetensors([
      { name: "f8", dtype: "F8_E5M2", shape: [2], data: Uint8Array.of(1, 2) },
    ]),
    { label: "tiny.safetensors" },
  );
  assert(st.has("f8") && !st.has("nope"));
  try {
    await st.read("nope");
    fail("no error");
  } catch (err) {
    assert(err instanceof RangeError, String(err));
    strictEqual(
      err.message,
      'Cannot find tensor "nope" in "tiny.safetensors": it is not among its 1 tensors',
    );
  }
  try {
    await st.read("f8");
    fail("no error");
  } catch (err) {
    assert(err instanceof TypeError, String(err));
    assert(/tensor "f8" of "tiny.safetensors" .* dtype F8_E5M2 .* readBytes/.test(err.message));
  }
  deepStrictEqual(await st.readBytes("f8"), Uint8Array.of(1, 2));
});

Deno.test("openSafetensors() reads a 50 MB file tensor by tensor, touching only the needed bytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_st_" });
  try {
    const path = `${dir}/big.safetensors`;
    const count = 25;
    const elems = 1 << 19; // 2 MiB of f32 per tensor
    const pattern = (i: number) => {
      const a = new Float32Array(elems);
      for (let j = 0; j < elems; j++) a[j] = i * 1000 + (j % 997);
      return a;
    };
    const tensors: WriteTensor[] = [];
    for (let i = 0; i < count; i++) {
      const name = `blocks.${String(i).padStart(2, "0")}.w`;
      tensors.push({ name, dtype: "F32", shape: [512, 1024], data: () => pattern(i) });
    }
    await writeSafetensors(path, tensors);
    const size = (await Deno.stat(path)).size;
    assert(size > 50 * 2 ** 20, `file has ${size} bytes`);

    const { log, source } = counting(await openFileSource(path));
    using st = await openSafetensorsSource(source, { label: path });
    // Opening reads the length and the header only.
    strictEqual(log.reads.length, 2);
    deepStrictEqual(log.reads[0], [0, 8]);
    const headerEnd = 8 + log.reads[1]![1];
    assert(headerEnd < 4096, `header ends at ${headerEnd}`);

    const w = await st.read("blocks.17.w") as Float32Array;
    deepStrictEqual(log.reads[2], [headerEnd + 17 * elems * 4, elems * 4]);
    strictEqual(w[0], 17000);
    strictEqual(w[elems - 1], 17000 + ((elems - 1) % 997));

    for (const e of st.entries) {
      const a = await st.read(e.name) as Float32Array;
      const i = Number(e.name.split(".")[1]);
      strictEqual(a[1234], i * 1000 + (1234 % 997), e.name);
    }
    // Every read after the header is exactly one tensor.
    strictEqual(log.reads.length, 3 + count);
    for (const [, length] of log.reads.slice(2)) strictEqual(length, elems * 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openSafetensors() reports a file truncated after it was opened", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3_st_" });
  try {
    const path = `${dir}/t.safetensors`;
    await writeSafetensors(path, [{
      name: "w",
      dtype: "F32",
      shape: [4],
      data: new Float32Array(4),
    }]);
    using st = await openSafetensors(path);
    await Deno.truncate(path, (await Deno.stat(path)).size - 2);
    try {
      await st.read("w");
      fail("no error");
    } catch (err) {
      assert(err instanceof RangeError, String(err));
      assert(/the file ended at byte \d+ while reading bytes/.test(err.message), err.message);
      assert(err.message.includes(path));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Hostile files: each rejected with a clear error before anything is allocated from it.

const F32x4 = '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}';

Deno.test("openSafetensorsSource() rejects a file shorter than the 8-byte length", async () => {
  await assertRejected(new Uint8Array(5), SyntaxError, /the file has 5 bytes, fewer than the 8/);
});

Deno.test("openSafetensorsSource() rejects a header length past the end of the file", async () => {
  await assertRejected(
    fileOf(F32x4, new Uint8Array(16), 1000n),
    RangeError,
    /header length 1000 runs past the end of the \d+-byte file/,
  );
});

Deno.test("openSafetensorsSource() rejects an absurd header length after reading 8 bytes", async () => {
  const bytes = fileOf(F32x4, new Uint8Array(16), 2n ** 63n);
  await assertRejected(
    bytes,
    RangeError,
    /header length 9223372036854775808 exceeds the 100000000/,
  );
  const { log, source } = counting(memorySource(bytes));
  await openSafetensorsSource(source, { label: "x" }).catch(() => {});
  deepStrictEqual(log.reads, [[0, 8]]);
});

Deno.test("openSafetensorsSource() rejects a header that is not valid UTF-8", async () => {
  const bytes = fileOf('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [0]);
  bytes[10] = 0xff;
  await assertRejected(bytes, SyntaxError, /the header is not valid UTF-8/);
});

Deno.test("openSafetensorsSource() rejects a header that is not valid JSON", async () => {
  await assertRejected(fileOf('{"a":{"dtype":"F32",'), SyntaxError, /the header is not valid JSON/);
});

Deno.test("openSafetensorsSource() rejects a header that does not start with an object", async () => {
  await assertRejected(
    fileOf("[1, 2]"),
    SyntaxError,
    /the header must start with "\{", found "\[1, 2\]"/,
  );
  await assertRejected(fileOf(` ${F32x4}`, new Uint8Array(16)), SyntaxError, /must start with/);
});

Deno.test("openSafetensorsSource() rejects a tensor entry that is not an object", async () => {
  await assertRejected(
    fileOf('{"a":[1]}'),
    SyntaxError,
    /tensor "a" is an array, not a JSON object/,
  );
});

for (const key of ["dtype", "shape", "data_offsets"]) {
  Deno.test(`openSafetensorsSource() rejects a tensor entry without "${key}"`, async () => {
    const entry: Record<string, unknown> = { dtype: "F32", shape: [4], data_offsets: [0, 16] };
    delete entry[key];
    await assertRejected(
      fileOf(JSON.stringify({ a: entry }), new Uint8Array(16)),
      SyntaxError,
      new RegExp(`tensor "a" has no "${key}"`),
    );
  });
}

Deno.test("openSafetensorsSource() rejects an unknown dtype", async () => {
  await assertRejected(
    fileOf('{"a":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(16)),
    SyntaxError,
    /tensor "a" has unknown dtype "F33"/,
  );
  // Names inherited by every JS object are not dtypes either.
  await assertRejected(
    fileOf('{"a":{"dtype":"constructor","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(16)),
    SyntaxError,
    /tensor "a" has unknown dtype "constructor"/,
  );
  await assertRejected(
    fileOf('{"a":{"dtype":32,"shape":[4],"data_offsets":[0,16]}}', new Uint8Array(16)),
    SyntaxError,
    /tensor "a" has a dtype that is a number, not a string/,
  );
});

Deno.test("openSafetensorsSource() rejects negative, fractional and non-numeric dimensions", async () => {
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}', new Uint8Array(16)),
    RangeError,
    /tensor "a" has shape \[-4\]: dimension -4 is not a whole number >= 0/,
  );
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}}', new Uint8Array(10)),
    RangeError,
    /tensor "a" has shape \[2.5\]: dimension 2.5 is not a whole number/,
  );
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}}', new Uint8Array(16)),
    SyntaxError,
    /tensor "a" has a shape that is not an array of numbers/,
  );
});

Deno.test("openSafetensorsSource() rejects malformed data_offsets", async () => {
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}}', new Uint8Array(16)),
    SyntaxError,
    /tensor "a" has data_offsets that are not an array of two numbers/,
  );
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}}', new Uint8Array(16)),
    RangeError,
    /tensor "a" has data_offsets \[-16, 0\] that are not whole numbers >= 0/,
  );
});

Deno.test("openSafetensorsSource() rejects inverted data_offsets", async () => {
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}', new Uint8Array(16)),
    RangeError,
    /tensor "a" has inverted data_offsets \[16, 0\]/,
  );
});

Deno.test("openSafetensorsSource() rejects data_offsets past the data region", async () => {
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
        '"c":{"dtype":"F32","shape":[2],"data_offsets":[8,1000008]}}',
      new Uint8Array(16),
    ),
    RangeError,
    /tensor "c" has shape \[2\] of dtype F32, which needs 8 bytes, but data_offsets \[8, 1000008\]/,
  );
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      new Uint8Array(8),
    ),
    RangeError,
    /tensor "b" data_offsets \[4, 12\] run past the end of the 8-byte data region/,
  );
});

Deno.test("openSafetensorsSource() rejects a file shorter than its declared data", async () => {
  const whole = await serializeSafetensors([
    { name: "a", dtype: "F32", shape: [4], data: new Float32Array(4) },
    { name: "b", dtype: "F32", shape: [4], data: new Float32Array(4) },
  ]);
  await assertRejected(
    whole.subarray(0, whole.length - 1),
    RangeError,
    /tensor "b" data_offsets \[16, 32\] run past the end of the 31-byte data region \(the file is truncated/,
  );
});

Deno.test("openSafetensorsSource() rejects overlapping tensors", async () => {
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      new Uint8Array(12),
    ),
    RangeError,
    /tensor "b" data_offsets \[4, 12\] overlap tensor "a", which ends at 8/,
  );
  // Two names for the same bytes (an aliasing trick) overlap too.
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
      new Uint8Array(8),
    ),
    RangeError,
    /tensor "b" data_offsets \[0, 8\] overlap tensor "a"/,
  );
});

Deno.test("openSafetensorsSource() rejects a hole in the data region", async () => {
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
      new Uint8Array(12),
    ),
    RangeError,
    /data bytes 4..8 before tensor "b" belong to no tensor/,
  );
});

Deno.test("openSafetensorsSource() rejects trailing bytes after the last tensor", async () => {
  await assertRejected(
    fileOf(F32x4, new Uint8Array(20)),
    RangeError,
    /4 trailing data bytes after offset 16 belong to no tensor/,
  );
});

Deno.test("openSafetensorsSource() rejects shape, dtype and size that disagree", async () => {
  await assertRejected(
    fileOf('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}', new Uint8Array(12)),
    RangeError,
    /tensor "a" has shape \[4\] of dtype F32, which needs 16 bytes, but data_offsets \[0, 12\] hold 12/,
  );
  // A shape whose size overflows 2^64 is compared exactly, not allocated.
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F64","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}',
      new Uint8Array(8),
    ),
    RangeError,
    /needs 633825300114114700748351602688 bytes, but data_offsets \[0, 8\] hold 8/,
  );
  await assertRejected(
    fileOf('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', new Uint8Array(2)),
    RangeError,
    /tensor "a" has shape \[3\] of dtype F4, which is not whole bytes/,
  );
});

Deno.test("openSafetensorsSource() rejects duplicate tensor names that JSON.parse would merge", async () => {
  await assertRejected(
    fileOf(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      new Uint8Array(8),
    ),
    SyntaxError,
    /the header names tensor "a" twice/,
  );
  // The same name spelled with an escape.
  await assertRejected(
    fileOf(
      '{"ab":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"\\u0061b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      new Uint8Array(8),
    ),
    SyntaxError,
    /the header names tensor "ab" twice/,
  );
});

Deno.test("openSafetensorsSource() rejects a key repeated inside a tensor entry", async () => {
  await assertRejected(
    fileOf(
      '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"a\\"[{,":{"dtype":"I32","dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      new Uint8Array(8),
    ),
    SyntaxError,
    /the header repeats key "dtype" in the entry "a\\"\[\{,"/,
  );
});

Deno.test("openSafetensorsSource() rejects __metadata__ that is not a string map", async () => {
  await assertRejected(
    fileOf(`{"__metadata__":{"step":3},${F32x4.slice(1)}`, new Uint8Array(16)),
    SyntaxError,
    /__metadata__ value of "step" is a number, not a string/,
  );
  await assertRejected(
    fileOf(`{"__metadata__":["pt"],${F32x4.slice(1)}`, new Uint8Array(16)),
    SyntaxError,
    /__metadata__ is not a JSON object/,
  );
});

Deno.test("openSafetensorsSource() accepts trailing whitespace padding and an empty file body", async () => {
  const st = await parseSafetensors(
    fileOf(`${F32x4} \n\t `, new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer)),
  );
  deepStrictEqual(await st.read("a"), Float32Array.of(1, 2, 3, 4));
  const empty = await parseSafetensors(fileOf("{}"));
  deepStrictEqual(empty.entries, []);
});
