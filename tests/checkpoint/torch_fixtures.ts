// Hand-written torch.save files for tests: a store-only zip writer (optionally ZIP64) and
// protocol-2 pickle pieces, so hostile and ad-hoc checkpoints need no Python.

/** A store-only zip of the given entries (optionally with ZIP64 records), as torch writes. */
export function makeZip(
  files: Record<string, Uint8Array>,
  options: { zip64?: boolean } = {},
): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const z64 = options.zip64 ?? false;
  for (const [name, data] of Object.entries(files)) {
    const n = enc.encode(name);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, n.length, true);
    parts.push(new Uint8Array(local.buffer), n, data);
    const extra = z64 ? 28 : 0;
    const c = new DataView(new ArrayBuffer(46 + extra));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 45, true);
    c.setUint16(6, 45, true);
    c.setUint32(20, z64 ? 0xffffffff : data.length, true);
    c.setUint32(24, z64 ? 0xffffffff : data.length, true);
    c.setUint16(28, n.length, true);
    c.setUint16(30, extra, true);
    c.setUint32(42, z64 ? 0xffffffff : offset, true);
    const cb = new Uint8Array(c.buffer);
    if (z64) {
      // The extra field goes after the name; build name + extra separately.
      const x = new DataView(new ArrayBuffer(28));
      x.setUint16(0, 1, true);
      x.setUint16(2, 24, true);
      x.setBigUint64(4, BigInt(data.length), true);
      x.setBigUint64(12, BigInt(data.length), true);
      x.setBigUint64(20, BigInt(offset), true);
      central.push(cb.subarray(0, 46), n, new Uint8Array(x.buffer));
    } else central.push(cb, n);
    offset += 30 + n.length + data.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const count = Object.keys(files).length;
  const tail: Uint8Array[] = [];
  if (z64) {
    const r = new DataView(new ArrayBuffer(56));
    r.setUint32(0, 0x06064b50, true);
    r.setBigUint64(4, 44n, true);
    r.setBigUint64(24, BigInt(count), true);
    r.setBigUint64(32, BigInt(count), true);
    r.setBigUint64(40, BigInt(cdSize), true);
    r.setBigUint64(48, BigInt(offset), true);
    const l = new DataView(new ArrayBuffer(20));
    l.setUint32(0, 0x07064b50, true);
    l.setBigUint64(8, BigInt(offset + cdSize), true);
    l.setUint32(16, 1, true);
    tail.push(new Uint8Array(r.buffer), new Uint8Array(l.buffer));
  }
  const e = new DataView(new ArrayBuffer(22));
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, z64 ? 0xffff : count, true);
  e.setUint16(10, z64 ? 0xffff : count, true);
  e.setUint32(12, z64 ? 0xffffffff : cdSize, true);
  e.setUint32(16, z64 ? 0xffffffff : offset, true);
  tail.push(new Uint8Array(e.buffer));
  const all = [...parts, ...central, ...tail];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const b of all) (out.set(b, p), p += b.length);
  return out;
}

/** Pickle bytes from a mix of opcode strings (latin1) and raw byte arrays. */
export function pkl(...bits: (string | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const b of bits) {
    if (typeof b === "string") { for (const ch of b) out.push(ch.charCodeAt(0)); }
    else out.push(...b);
  }
  return new Uint8Array(out);
}

export const u32 = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255];
/** SHORT_BINUNICODE of an ASCII string. */
export const str = (s: string) => pkl([0x8c, s.length], s);

/**
 * A torch.save zip of a float32 state dict, as PyTorch pickles it: an OrderedDict of
 * `_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), 0, size, stride,
 * False, OrderedDict())`, one storage per tensor; optionally wrapped as open_clip's
 * `{"epoch": 1, "state_dict": ...}`.
 */
export function torchStateDictZip(
  tensors: { name: string; shape: readonly number[]; data: Float32Array }[],
  options: { wrap?: boolean } = {},
): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const parts: Uint8Array[] = [pkl([0x80, 2])];
  if (options.wrap) parts.push(pkl("}(", str("epoch"), "K", [1], str("state_dict")));
  parts.push(pkl("ccollections\nOrderedDict\n)R("));
  tensors.forEach((t, i) => {
    const key = String(i);
    files[`archive/data/${key}`] = new Uint8Array(
      t.data.buffer,
      t.data.byteOffset,
      t.data.byteLength,
    );
    const stride: number[] = [];
    let s = 1;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      stride[d] = s;
      s *= t.shape[d]!;
    }
    const tuple = (xs: readonly number[]) => pkl("(", ...xs.map((x) => pkl("J", u32(x))), "t");
    parts.push(
      pkl(
        [0x8c],
        [new TextEncoder().encode(t.name).length],
        new TextEncoder().encode(t.name),
      ),
      pkl("ctorch._utils\n_rebuild_tensor_v2\n("),
      pkl(
        "(",
        str("storage"),
        "ctorch\nFloatStorage\n",
        str(key),
        str("cpu"),
        "J",
        u32(t.data.length),
        "tQ",
      ),
      pkl("K", [0]),
      tuple(t.shape),
      tuple(stride),
      pkl([0x89], "ccollections\nOrderedDict\n)RtR"),
    );
  });
  parts.push(pkl("u"));
  if (options.wrap) parts.push(pkl("u"));
  parts.push(pkl("."));
  const total = parts.reduce((a, b) => a + b.length, 0);
  const bytes = new Uint8Array(total);
  let p = 0;
  for (const b of parts) (bytes.set(b, p), p += b.length);
  files["archive/data.pkl"] = bytes;
  return makeZip(files);
}
