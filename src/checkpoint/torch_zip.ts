/**
 * The zip container of PyTorch's `torch.save` (the default since PyTorch 1.6): stored (not
 * compressed) entries `<prefix>/data.pkl`, `<prefix>/data/<key>` (one per storage),
 * `<prefix>/version` and, in newer files, `<prefix>/byteorder`. Read from the central
 * directory, ZIP64 records included; entries are read on demand with bounds checked against
 * the file size, so a truncated file is an error naming the entry.
 *
 * @module
 */

import type { ByteSource } from "./safetensors_stream.ts";

/** One entry of the central directory. */
export interface ZipEntry {
  /** Name as stored (e.g. "archive/data/0"). */
  name: string;
  /** Compression method (0 = stored). */
  method: number;
  /** Compressed size in bytes. */
  compressedSize: number;
  /** Uncompressed size in bytes. */
  size: number;
  /** Offset of the local file header. */
  localOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const MAX_CENTRAL_BYTES = 256 * 1024 * 1024;

function u64(v: DataView, at: number, what: string, label: string): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`Cannot read zip "${label}": ${what} ${n} is out of range`);
  }
  return Number(n);
}

/** Reads the entries of a zip file (see the module notes). */
export class ZipReader {
  /** The file's name for messages. */
  readonly label: string;
  /** Entries by name, in central-directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  #source: ByteSource;

  private constructor(source: ByteSource, label: string, entries: Map<string, ZipEntry>) {
    this.#source = source;
    this.label = label;
    this.entries = entries;
  }

  /**
   * Parses the central directory of a zip file; closes the source on failure.
   *
   * @param source The bytes.
   * @param label The file's name for messages.
   * @returns The reader (close it when done).
   * @throws {SyntaxError} When the file is not a zip or its records are inconsistent.
   * @throws {RangeError} When a record points outside the file (a truncated file).
   */
  static async open(source: ByteSource, label: string): Promise<ZipReader> {
    try {
      return new ZipReader(source, label, await readCentral(source, label));
    } catch (e) {
      source.close();
      throw e;
    }
  }

  /**
   * Reads an entry's bytes (stored entries only).
   *
   * @param name The entry name.
   * @param start First byte within the entry (default 0).
   * @param length Bytes to read (default: to the end of the entry).
   * @returns The bytes.
   * @throws {RangeError} For a missing entry, a range past its end, or data past the file's end.
   * @throws {TypeError} For a compressed entry.
   */
  async read(name: string, start = 0, length?: number): Promise<Uint8Array<ArrayBuffer>> {
    const e = this.entries.get(name);
    if (!e) throw new RangeError(`Cannot read "${name}" from "${this.label}": no such entry`);
    if (e.method !== 0) {
      throw new TypeError(
        `Cannot read "${name}" from "${this.label}": it is compressed (method ${e.method}); ` +
          "torch.save writes stored entries only",
      );
    }
    const n = length ?? e.size - start;
    if (start < 0 || n < 0 || start + n > e.size) {
      throw new RangeError(
        `Cannot read bytes ${start}..${start + n} of "${name}" from "${this.label}": ` +
          `the entry has ${e.size} bytes`,
      );
    }
    const data = await this.#dataOffset(e);
    if (data + e.size > this.#source.size) {
      throw new RangeError(
        `Cannot read "${name}" from "${this.label}": its ${e.size} bytes run past the end of ` +
          `the ${this.#source.size}-byte file (truncated?)`,
      );
    }
    return this.#source.read(data + start, n);
  }

  async #dataOffset(e: ZipEntry): Promise<number> {
    if (e.localOffset + 30 > this.#source.size) {
      throw new RangeError(
        `Cannot read "${e.name}" from "${this.label}": its local header lies past the end of ` +
          "the file (truncated?)",
      );
    }
    const h = new DataView((await this.#source.read(e.localOffset, 30)).buffer);
    if (h.getUint32(0, true) !== SIG_LOCAL) {
      throw new SyntaxError(
        `Cannot read "${e.name}" from "${this.label}": no local file header at ${e.localOffset}`,
      );
    }
    return e.localOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
  }

  /** Closes the file. */
  close(): void {
    this.#source.close();
  }
}

async function readCentral(source: ByteSource, label: string): Promise<Map<string, ZipEntry>> {
  const size = source.size;
  if (size < 22) {
    throw new SyntaxError(`Cannot read "${label}": ${size} bytes is too short for a zip file`);
  }
  const tailLen = Math.min(size, 22 + 65535);
  const tailStart = size - tailLen;
  const tail = await source.read(tailStart, tailLen);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new SyntaxError(
      `Cannot read "${label}": no zip end-of-central-directory record (not a torch.save zip ` +
        "file, or truncated)",
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== SIG_ZIP64_LOCATOR) {
      throw new SyntaxError(`Cannot read "${label}": ZIP64 sizes without a ZIP64 locator`);
    }
    const recOffset = u64(tv, loc + 8, "ZIP64 record offset", label);
    if (recOffset + 56 > size) {
      throw new RangeError(
        `Cannot read "${label}": the ZIP64 record lies past the end of the file`,
      );
    }
    const rv = new DataView((await source.read(recOffset, 56)).buffer);
    if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw new SyntaxError(`Cannot read "${label}": no ZIP64 end record at ${recOffset}`);
    }
    count = u64(rv, 32, "entry count", label);
    cdSize = u64(rv, 40, "central directory size", label);
    cdOffset = u64(rv, 48, "central directory offset", label);
  }
  if (cdOffset + cdSize > size || cdSize > MAX_CENTRAL_BYTES) {
    throw new RangeError(
      `Cannot read "${label}": the central directory (${cdSize} bytes at ${cdOffset}) runs ` +
        `past the end of the ${size}-byte file (truncated?)`,
    );
  }
  const cd = await source.read(cdOffset, cdSize);
  const v = new DataView(cd.buffer);
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder("utf-8", { fatal: false });
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) {
      throw new SyntaxError(`Cannot read "${label}": central directory entry ${i} is malformed`);
    }
    const method = v.getUint16(p + 10, true);
    let compressedSize = v.getUint32(p + 20, true);
    let usize = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localOffset = v.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) {
      throw new SyntaxError(`Cannot read "${label}": central directory entry ${i} is truncated`);
    }
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: the 0xffffffff fields, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = v.getUint16(x, true), len = v.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        const take = () => {
          if (q + 8 > x + 4 + len) {
            throw new SyntaxError(`Cannot read "${label}": short ZIP64 field of "${name}"`);
          }
          const n = u64(v, q, "ZIP64 field", label);
          q += 8;
          return n;
        };
        if (usize === 0xffffffff) usize = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localOffset === 0xffffffff) localOffset = take();
      }
      x += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size: usize, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}
