/**
 * TensorBoard's event-file format, written and read without TensorFlow: a file of records
 * `[length u64 LE][masked CRC32C of the length][data][masked CRC32C of the data]`, each data
 * an `Event` protocol buffer:
 *
 * ```
 * Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 * Summary { repeated Value value = 1; }
 * Value   { string tag = 1; float simple_value = 2; Image image = 4; }
 * Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
 * ```
 *
 * The first record of a file is `file_version: "brain.Event:2"`. Scalars use
 * `simple_value`, which TensorBoard's scalar dashboard reads as it reads PyTorch's
 * `SummaryWriter.add_scalar`; images are PNG bytes (`colorspace` 3 = RGB).
 *
 * @module
 */

import { crc32c } from "../util/crc32c.ts";

/**
 * TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) + 0xa282ead8` (32-bit).
 *
 * @param bytes Input.
 * @returns The masked CRC32C.
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(0, bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/**
 * Frames one record: length, masked CRC of the length, data, masked CRC of the data.
 *
 * @param data The record's payload.
 * @returns The framed bytes.
 */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * Splits a TFRecord file into its payloads, checking both CRCs of every record.
 *
 * @param bytes The file's bytes.
 * @param name The file name, for errors.
 * @returns The payloads in file order.
 * @throws {Error} Naming the file, the record and its offset on a truncated record or a CRC
 *   mismatch.
 */
export function readRecords(bytes: Uint8Array, name = "<bytes>"): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < bytes.length) {
    const where = `record ${out.length} at byte ${off} of "${name}"`;
    if (off + 12 > bytes.length) throw new Error(`Cannot read ${where}: truncated header`);
    const len = Number(dv.getBigUint64(off, true));
    if (dv.getUint32(off + 8, true) !== maskedCrc32c(bytes.subarray(off, off + 8))) {
      throw new Error(`Cannot read ${where}: the length's CRC does not match`);
    }
    if (off + 12 + len + 4 > bytes.length) {
      throw new Error(`Cannot read ${where}: truncated data (${len} bytes announced)`);
    }
    const data = bytes.subarray(off + 12, off + 12 + len);
    if (dv.getUint32(off + 12 + len, true) !== maskedCrc32c(data)) {
      throw new Error(`Cannot read ${where}: the data's CRC does not match`);
    }
    out.push(data);
    off += 16 + len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Protocol buffers (the few wire types the event messages use)

class ProtoWriter {
  #parts: number[] = [];

  varint(v: number): this {
    if (!(Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(`Cannot encode ${v} as a protobuf varint (need 0..2^53)`);
    }
    while (v >= 0x80) {
      this.#parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.#parts.push(v);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.tag(field, 1);
    for (const x of b) this.#parts.push(x);
    return this;
  }

  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.tag(field, 5);
    for (const x of b) this.#parts.push(x);
    return this;
  }

  int(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (const x of b) this.#parts.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
}

/** One decoded protobuf field: varints as numbers, fixed64 / fixed32 / length-delimited as bytes. */
interface ProtoField {
  field: number;
  wire: number;
  int?: number;
  bytes?: Uint8Array;
}

function parseProto(b: Uint8Array, what: string): ProtoField[] {
  const out: ProtoField[] = [];
  let i = 0;
  const varint = () => {
    let v = 0, mul = 1;
    for (;;) {
      if (i >= b.length) throw new Error(`Cannot parse ${what}: truncated varint`);
      const x = b[i++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (!(x & 0x80)) return v;
    }
  };
  const take = (n: number) => {
    if (i + n > b.length) throw new Error(`Cannot parse ${what}: truncated field`);
    const s = b.subarray(i, i + n);
    i += n;
    return s;
  };
  while (i < b.length) {
    const key = varint();
    const field = Math.floor(key / 8), wire = key % 8;
    if (wire === 0) out.push({ field, wire, int: varint() });
    else if (wire === 1) out.push({ field, wire, bytes: take(8) });
    else if (wire === 2) out.push({ field, wire, bytes: take(varint()) });
    else if (wire === 5) out.push({ field, wire, bytes: take(4) });
    else throw new Error(`Cannot parse ${what}: unsupported wire type ${wire}`);
  }
  return out;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

// ---------------------------------------------------------------------------------------
// Events

/** An image of a summary: PNG bytes and their size. */
export interface EventImage {
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
  /** Channels (1 grey, 3 RGB, 4 RGBA). */
  colorspace: number;
  /** The encoded image (PNG). */
  encoded: Uint8Array;
}

/** One summary value: a scalar or an image. */
export interface EventValue {
  /** The tag (`train/loss`). */
  tag: string;
  /** The scalar (`simple_value`), when this is a scalar. */
  simpleValue?: number | undefined;
  /** The image, when this is an image. */
  image?: EventImage | undefined;
}

/** A decoded event. */
export interface TfEvent {
  /** Seconds since the epoch. */
  wallTime: number;
  /** Global step. */
  step: number;
  /** Set on the first event of a file (`brain.Event:2`). */
  fileVersion?: string | undefined;
  /** Summary values. */
  values: EventValue[];
}

/**
 * Serialises an event to its protobuf bytes.
 *
 * @param e The event.
 * @returns `Event` bytes.
 */
export function encodeEvent(e: TfEvent): Uint8Array {
  const w = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== 0) w.int(2, e.step);
  if (e.fileVersion !== undefined) w.string(3, e.fileVersion);
  if (e.values.length > 0) {
    const summary = new ProtoWriter();
    for (const v of e.values) {
      const value = new ProtoWriter().string(1, v.tag);
      if (v.simpleValue !== undefined) value.float(2, v.simpleValue);
      if (v.image) {
        const im = v.image;
        value.bytes(
          4,
          new ProtoWriter().int(1, im.height).int(2, im.width).int(3, im.colorspace)
            .bytes(4, im.encoded).finish(),
        );
      }
      summary.bytes(1, value.finish());
    }
    w.bytes(5, summary.finish());
  }
  return w.finish();
}

/**
 * Parses an event's protobuf bytes (unknown fields are skipped).
 *
 * @param b `Event` bytes.
 * @param what Where the bytes come from, for errors.
 * @returns The event.
 */
export function decodeEvent(b: Uint8Array, what = "event"): TfEvent {
  const e: TfEvent = { wallTime: 0, step: 0, values: [] };
  for (const f of parseProto(b, what)) {
    if (f.field === 1 && f.wire === 1) e.wallTime = view(f.bytes!).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) e.step = f.int!;
    else if (f.field === 3 && f.wire === 2) e.fileVersion = new TextDecoder().decode(f.bytes);
    else if (f.field === 5 && f.wire === 2) {
      for (const sv of parseProto(f.bytes!, `${what} summary`)) {
        if (sv.field !== 1 || sv.wire !== 2) continue;
        const v: EventValue = { tag: "" };
        for (const vf of parseProto(sv.bytes!, `${what} value`)) {
          if (vf.field === 1 && vf.wire === 2) v.tag = new TextDecoder().decode(vf.bytes);
          else if (vf.field === 2 && vf.wire === 5) {
            v.simpleValue = view(vf.bytes!).getFloat32(0, true);
          } else if (vf.field === 4 && vf.wire === 2) {
            const im: EventImage = {
              height: 0,
              width: 0,
              colorspace: 0,
              encoded: new Uint8Array(),
            };
            for (const x of parseProto(vf.bytes!, `${what} image`)) {
              if (x.field === 1 && x.wire === 0) im.height = x.int!;
              else if (x.field === 2 && x.wire === 0) im.width = x.int!;
              else if (x.field === 3 && x.wire === 0) im.colorspace = x.int!;
              else if (x.field === 4 && x.wire === 2) im.encoded = x.bytes!.slice();
            }
            v.image = im;
          }
        }
        e.values.push(v);
      }
    }
  }
  return e;
}

/**
 * Reads every event of an event file, checking the CRCs of every record.
 *
 * @param path The `events.out.tfevents.*` file.
 * @returns The events in file order.
 * @example
 * ```ts
 * for (const e of await readEventFile(path)) {
 *   for (const v of e.values) console.log(e.step, v.tag, v.simpleValue);
 * }
 * ```
 */
export async function readEventFile(path: string): Promise<TfEvent[]> {
  const bytes = await Deno.readFile(path);
  return readRecords(bytes, path).map((r, i) => decodeEvent(r, `event ${i} of "${path}"`));
}

/** Options of {@link EventFileWriter.create}. */
export interface EventWriterOptions {
  /** Host name in the file name (default `Deno.hostname()`). */
  host?: string | undefined;
  /** Clock, seconds since the epoch (tests). */
  now?: (() => number) | undefined;
}

/**
 * Appends events to a new `events.out.tfevents.<time>.<host>` file of a folder. Every call
 * writes its record at once (nothing is buffered), so a crashed run keeps its events.
 */
export class EventFileWriter {
  /** The event file's path. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #now: () => number;

  private constructor(path: string, file: Deno.FsFile, now: () => number) {
    this.path = path;
    this.#file = file;
    this.#now = now;
  }

  /**
   * Creates the folder and the file, and writes the file-version event.
   *
   * @param dir The log folder (TensorBoard's `--logdir` or a subfolder of it).
   * @param options Host name and clock.
   * @returns The writer.
   */
  static async create(dir: string, options: EventWriterOptions = {}): Promise<EventFileWriter> {
    const now = options.now ?? (() => Date.now() / 1000);
    let host = options.host;
    if (host === undefined) {
      try {
        host = Deno.hostname();
      } catch {
        host = "localhost";
      }
    }
    await Deno.mkdir(dir, { recursive: true });
    const t = now();
    let path = `${dir}/events.out.tfevents.${Math.floor(t)}.${host}`;
    // Two writers in the same second (e.g. a resumed run) get distinct files.
    for (let k = 1; await Deno.stat(path).then(() => true, () => false); k++) {
      path = `${dir}/events.out.tfevents.${Math.floor(t)}.${host}.${k}`;
    }
    const file = await Deno.open(path, { write: true, createNew: true });
    const w = new EventFileWriter(path, file, now);
    await w.write({ wallTime: t, step: 0, fileVersion: "brain.Event:2", values: [] });
    return w;
  }

  /**
   * Appends one event.
   *
   * @param e The event.
   */
  async write(e: TfEvent): Promise<void> {
    const rec = frameRecord(encodeEvent(e));
    let off = 0;
    while (off < rec.length) off += await this.#file.write(rec.subarray(off));
  }

  /**
   * Appends scalars of one step (one event).
   *
   * @param step The global step.
   * @param scalars Tag -> value (non-finite values are written as they are; TensorBoard
   *   shows them as gaps).
   */
  async scalars(step: number, scalars: Record<string, number>): Promise<void> {
    const values = Object.entries(scalars).map(([tag, v]) => ({ tag, simpleValue: v }));
    if (values.length) await this.write({ wallTime: this.#now(), step, values });
  }

  /**
   * Appends one image (PNG bytes).
   *
   * @param step The global step.
   * @param tag The tag.
   * @param image The PNG and its size.
   */
  async image(step: number, tag: string, image: EventImage): Promise<void> {
    await this.write({ wallTime: this.#now(), step, values: [{ tag, image }] });
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}
