/**
 * Tar archives, streamed from disk: a reader that walks member headers in chunks (data is
 * skipped by seeking unless asked for, so scanning a shard costs its headers, not its bytes)
 * and a writer that streams members to a file.
 *
 * The reader understands ustar (with its 155-byte name prefix), GNU long names and long link
 * names (`L` / `K`), pax extended headers (`x`: `path`, `linkpath` and `size`; global `g`
 * headers are validated and otherwise ignored), and base-256 sizes. Every header's checksum is verified. Malformed input
 * throws a {@link TarError} that names the shard and the byte offset.
 *
 * @module
 */

/** Size of a tar block in bytes. */
export const BLOCK = 512;

/** GNU tar pads archives to records of 20 blocks; the writer does the same. */
const RECORD = 20 * BLOCK;

const ENC = new TextEncoder();
const DEC = new TextDecoder();

/** What a tar member is. */
export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

/** A tar member's header, with where its data lies in the archive. */
export interface TarEntry {
  /** Member name (long names resolved, a leading "./" removed). */
  name: string;
  /** Kind of member. */
  type: TarEntryType;
  /** Data size in bytes. */
  size: number;
  /** Byte offset of the member's first header block (long-name and pax blocks included). */
  headerOffset: number;
  /** Byte offset of the member's data. */
  dataOffset: number;
  /** Modification time in seconds since the epoch. */
  mtime: number;
  /** Link target for links, else "". */
  linkName: string;
}

/**
 * A malformed or truncated archive. The message names the shard and the byte offset, e.g.
 * `Cannot read shard "a.tar": header checksum mismatch at byte 1536`.
 */
export class TarError extends SyntaxError {
  /** Path of the archive. */
  readonly shard: string;
  /** Byte offset where the problem was found. */
  readonly offset: number;
  /** Short machine-readable reason: "tar-truncated", "tar-checksum", "tar-header", "tar-empty". */
  readonly kind: string;

  /**
   * @param shard Path of the archive.
   * @param offset Byte offset of the problem.
   * @param options The reason's kind and its description.
   */
  constructor(shard: string, offset: number, options: { kind: string; reason: string }) {
    super(`Cannot read shard "${shard}": ${options.reason} at byte ${offset}`);
    this.name = "TarError";
    this.shard = shard;
    this.offset = offset;
    this.kind = options.kind;
  }
}

/** Options of {@link TarReader.open}. */
export interface TarReaderOptions {
  /** Bytes read from disk at a time (default 64 KiB). Members larger than this are read whole. */
  chunkSize?: number | undefined;
}

/**
 * Random-access, chunk-buffered reader over one tar file.
 *
 * @example
 * ```ts
 * await using tar = await TarReader.open("shard.tar");
 * for await (const entry of tar.entries()) {
 *   if (entry.type === "file") console.log(entry.name, (await tar.read(entry)).length);
 * }
 * ```
 */
export class TarReader implements AsyncDisposable {
  /** Path of the archive. */
  readonly path: string;
  /** Size of the archive in bytes. */
  readonly fileSize: number;
  #file: Deno.FsFile;
  #chunkSize: number;
  #buf: Uint8Array = new Uint8Array(0);
  #bufStart = 0;

  private constructor(path: string, file: Deno.FsFile, fileSize: number, chunkSize: number) {
    this.path = path;
    this.#file = file;
    this.fileSize = fileSize;
    this.#chunkSize = chunkSize;
  }

  /**
   * Opens an archive.
   *
   * @param path Path of the tar file.
   * @param options Chunk size.
   * @returns The reader; close it (or use `await using`).
   */
  static async open(path: string, options: TarReaderOptions = {}): Promise<TarReader> {
    const chunkSize = options.chunkSize ?? 65536;
    if (!Number.isInteger(chunkSize) || chunkSize < BLOCK) {
      throw new RangeError(
        `Cannot open shard "${path}": chunk size ${chunkSize} is below ${BLOCK}`,
      );
    }
    const file = await Deno.open(path, { read: true });
    try {
      const { size } = await file.stat();
      return new TarReader(path, file, size, chunkSize);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Closes the file. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  /**
   * Reads bytes of the archive. Reads inside the current chunk are served from memory.
   *
   * @param offset Byte offset.
   * @param length Number of bytes; the range must lie inside the file.
   * @returns A fresh copy of the bytes.
   */
  readAt(offset: number, length: number): Promise<Uint8Array> {
    return this.#read(offset, length, this.#chunkSize);
  }

  /** Reads a range, filling the buffer with `ahead` bytes from `offset` when it misses. */
  async #read(offset: number, length: number, ahead: number): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.fileSize) {
      throw new TarError(this.path, offset, {
        kind: "tar-truncated",
        reason: `archive truncated (${length} bytes wanted, file has ${this.fileSize})`,
      });
    }
    const end = this.#bufStart + this.#buf.length;
    if (offset >= this.#bufStart && offset + length <= end) {
      const at = offset - this.#bufStart;
      return this.#buf.slice(at, at + length);
    }
    if (length >= ahead) return await this.#readDirect(offset, length);
    const n = Math.min(ahead, this.fileSize - offset);
    this.#buf = await this.#readDirect(offset, n);
    this.#bufStart = offset;
    return this.#buf.slice(0, length);
  }

  async #readDirect(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await this.#file.read(out.subarray(got));
      if (n === null) {
        throw new TarError(this.path, offset + got, {
          kind: "tar-truncated",
          reason: "file ended early while reading (was it changed?)",
        });
      }
      got += n;
    }
    return out;
  }

  /**
   * Reads a member's data.
   *
   * @param entry An entry from {@link entries}.
   * @returns The data.
   */
  read(entry: TarEntry): Promise<Uint8Array> {
    return this.readAt(entry.dataOffset, entry.size);
  }

  /**
   * Walks the member headers in archive order. Data is not read; call {@link read}.
   * GNU long names, long link names and pax extended headers are folded into the member they
   * precede and not yielded themselves.
   *
   * @returns An async generator of entries; it throws {@link TarError} on malformed input
   *   after yielding every complete member before the problem.
   */
  async *entries(): AsyncGenerator<TarEntry> {
    if (this.fileSize === 0) {
      throw new TarError(this.path, 0, { kind: "tar-empty", reason: "file is empty" });
    }
    let pos = 0;
    let memberStart = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    let skippedLarge = false;
    while (true) {
      if (pos + BLOCK > this.fileSize) {
        throw new TarError(this.path, pos, {
          kind: "tar-truncated",
          reason: pos === this.fileSize
            ? "archive ends without its end-of-archive blocks (truncated?)"
            : "archive truncated inside a header",
        });
      }
      // After a large member the next header is far from the buffer: read two blocks (the
      // header and the start of its data) instead of a whole chunk of image bytes.
      const block = await this.#read(pos, BLOCK, skippedLarge ? 2 * BLOCK : this.#chunkSize);
      if (isZero(block)) {
        if (longName !== undefined || longLink !== undefined || Object.keys(pax).length > 0) {
          throw new TarError(this.path, pos, {
            kind: "tar-header",
            reason: "end-of-archive block follows an extended header without its member",
          });
        }
        return; // A single zero block then EOF is accepted, as GNU tar does.
      }
      if (pos === 0 && block[0] === 0x1f && block[1] === 0x8b) {
        throw new TarError(this.path, 0, {
          kind: "tar-header",
          reason: "file is gzip-compressed; decompress it first (gunzip) to get a plain tar",
        });
      }
      const h = parseHeader(block, this.path, pos);
      const dataOffset = pos + BLOCK;
      let size = h.size;
      const typeflag = h.typeflag;
      const isMeta = typeflag === "L" || typeflag === "K" || typeflag === "x" ||
        typeflag === "g";
      if (!isMeta && pax.size !== undefined) size = parsePaxSize(pax.size, this.path, pos);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (dataOffset + size > this.fileSize) {
        throw new TarError(this.path, dataOffset, {
          kind: "tar-truncated",
          reason: `archive truncated in member "${longName ?? h.name}" (${size} bytes of ` +
            `data declared, ${this.fileSize - dataOffset} present)`,
        });
      }
      if (isMeta) {
        if (size > 16 * 1024 * 1024) {
          throw new TarError(this.path, pos, {
            kind: "tar-header",
            reason: `extended header of ${size} bytes is implausibly large`,
          });
        }
        const data = await this.readAt(dataOffset, size);
        if (typeflag === "L") longName = cString(data);
        else if (typeflag === "K") longLink = cString(data);
        else if (typeflag === "x") pax = { ...pax, ...parsePax(data, this.path, dataOffset) };
        else parsePax(data, this.path, dataOffset); // Global records: validated, not applied.
        pos = dataOffset + padded;
        continue;
      }
      let name = pax.path ?? longName ?? (h.prefix ? `${h.prefix}/${h.name}` : h.name);
      while (name.startsWith("./")) name = name.slice(2);
      const linkName = pax.linkpath ?? longLink ?? h.linkName;
      yield {
        name,
        type: name.endsWith("/") && typeflag === "0" ? "directory" : entryType(typeflag),
        size,
        headerOffset: memberStart,
        dataOffset,
        mtime: h.mtime,
        linkName,
      };
      longName = undefined;
      longLink = undefined;
      pax = {};
      skippedLarge = padded >= this.#chunkSize;
      pos = dataOffset + padded;
      memberStart = pos;
    }
  }
}

/**
 * Reads every member of an archive with its data, streaming from disk.
 *
 * @param path Path of the tar file.
 * @param options Chunk size.
 * @returns An async generator of regular-file entries with their data.
 * @example
 * ```ts
 * for await (const { entry, data } of readTar("shard.tar")) console.log(entry.name, data.length);
 * ```
 */
export async function* readTar(
  path: string,
  options: TarReaderOptions = {},
): AsyncGenerator<{ entry: TarEntry; data: Uint8Array }> {
  await using tar = await TarReader.open(path, options);
  for await (const entry of tar.entries()) {
    if (entry.type === "file") yield { entry, data: await tar.read(entry) };
  }
}

interface Header {
  name: string;
  size: number;
  mtime: number;
  typeflag: string;
  linkName: string;
  prefix: string;
}

function parseHeader(b: Uint8Array, shard: string, pos: number): Header {
  const stored = parseOctal(b.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 32 : b[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  if (stored === undefined || (stored !== unsigned && stored !== signed)) {
    throw new TarError(shard, pos, {
      kind: "tar-checksum",
      reason: stored === undefined
        ? "header checksum field is not a number (not a tar archive?)"
        : `header checksum mismatch (stored ${stored}, computed ${unsigned})`,
    });
  }
  const size = parseNumber(b.subarray(124, 136));
  if (size === undefined || size < 0) {
    throw new TarError(shard, pos + 124, { kind: "tar-header", reason: "invalid member size" });
  }
  const magic = DEC.decode(b.subarray(257, 262));
  // ustar has a name prefix; the old GNU format ("ustar  ") keeps other fields there.
  const isUstar = magic === "ustar" && b[262] === 0;
  return {
    name: cString(b.subarray(0, 100)),
    size,
    mtime: parseNumber(b.subarray(136, 148)) ?? 0,
    typeflag: b[156] === 0 ? "0" : String.fromCharCode(b[156]!),
    linkName: cString(b.subarray(157, 257)),
    prefix: isUstar ? cString(b.subarray(345, 500)) : "",
  };
}

function entryType(flag: string): TarEntryType {
  if (flag === "0" || flag === "7") return "file";
  if (flag === "5") return "directory";
  if (flag === "2") return "symlink";
  if (flag === "1") return "hardlink";
  return "other";
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return DEC.decode(end < 0 ? b : b.subarray(0, end));
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Octal digits, optionally space/NUL padded; undefined when there are none or junk. */
function parseOctal(b: Uint8Array): number | undefined {
  let i = 0;
  while (i < b.length && b[i] === 32) i++;
  let v = 0;
  let digits = 0;
  for (; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0 || c === 32) break;
    if (c < 48 || c > 55) return undefined;
    v = v * 8 + (c - 48);
    digits++;
  }
  for (; i < b.length; i++) if (b[i] !== 0 && b[i] !== 32) return undefined;
  return digits > 0 ? v : undefined;
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(b: Uint8Array): number | undefined {
  if ((b[0]! & 0x80) !== 0) {
    if ((b[0]! & 0x40) !== 0) return undefined; // negative
    let v = b[0]! & 0x3f;
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    return Number.isSafeInteger(v) ? v : undefined;
  }
  return parseOctal(b);
}

function parsePax(data: Uint8Array, shard: string, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const sp = data.indexOf(32, i);
    const len = sp < 0 ? NaN : Number(DEC.decode(data.subarray(i, sp)));
    if (
      !Number.isInteger(len) || len <= sp - i || i + len > data.length || data[i + len - 1] !== 10
    ) {
      throw new TarError(shard, offset + i, { kind: "tar-header", reason: "malformed pax record" });
    }
    const record = DEC.decode(data.subarray(sp + 1, i + len - 1));
    const eq = record.indexOf("=");
    if (eq < 0) {
      throw new TarError(shard, offset + i, { kind: "tar-header", reason: "malformed pax record" });
    }
    out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function parsePaxSize(s: string, shard: string, pos: number): number {
  const v = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(v)) {
    throw new TarError(shard, pos, { kind: "tar-header", reason: `invalid pax size "${s}"` });
  }
  return v;
}

/** Options of {@link TarWriter.add}. */
export interface TarAddOptions {
  /** Modification time in seconds (default 0, so archives are reproducible). */
  mtime?: number | undefined;
  /** Permission bits (default 0o644). */
  mode?: number | undefined;
}

/**
 * Streams a ustar archive to a file. Names longer than the ustar fields allow get a pax
 * extended header. The archive ends with two zero blocks, padded to a 10 KiB record.
 *
 * @example
 * ```ts
 * await using tar = await TarWriter.create("shard.tar");
 * await tar.add("000001.json", new TextEncoder().encode("{}"));
 * ```
 */
export class TarWriter implements AsyncDisposable {
  /** Path of the archive. */
  readonly path: string;
  #file: Deno.FsFile;
  #written = 0;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Creates (or truncates) an archive.
   *
   * @param path Path of the tar file.
   * @returns The writer; call {@link close} to finish the archive.
   */
  static async create(path: string): Promise<TarWriter> {
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    return new TarWriter(path, file);
  }

  /** @returns Bytes written so far. */
  get bytesWritten(): number {
    return this.#written;
  }

  /**
   * Appends a regular file.
   *
   * @param name Member name (UTF-8; any length).
   * @param data The file's bytes.
   * @param options Modification time and mode.
   */
  async add(name: string, data: Uint8Array, options: TarAddOptions = {}): Promise<void> {
    if (this.#closed) throw new TypeError(`Cannot add "${name}" to "${this.path}": it is closed`);
    if (name.length === 0) {
      throw new TypeError(`Cannot add a member without a name to "${this.path}"`);
    }
    const mtime = options.mtime ?? 0;
    const mode = options.mode ?? 0o644;
    const nameBytes = ENC.encode(name);
    const big = data.length > 0o77777777777;
    if (nameBytes.length > 100 || big) {
      const records: string[] = [];
      if (nameBytes.length > 100) records.push(paxRecord("path", name));
      if (big) records.push(paxRecord("size", String(data.length)));
      const body = ENC.encode(records.join(""));
      await this.#member(header("PaxHeader", body.length, { mtime, mode, typeflag: "x" }), body);
    }
    const shortName = nameBytes.length > 100 ? truncateUtf8(name, 100) : name;
    await this.#member(
      header(shortName, big ? 0 : data.length, { mtime, mode, typeflag: "0" }),
      data,
    );
  }

  async #member(head: Uint8Array, data: Uint8Array): Promise<void> {
    await this.#write(head);
    await this.#write(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) await this.#write(new Uint8Array(pad));
  }

  async #write(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) off += await this.#file.write(b.subarray(off));
    this.#written += b.length;
  }

  /** Writes the end-of-archive blocks and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      const end = this.#written + 2 * BLOCK;
      const total = Math.ceil(end / RECORD) * RECORD;
      await this.#write(new Uint8Array(total - this.#written));
    } finally {
      this.#file.close();
    }
  }

  /** Finishes the archive. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = ENC.encode(body).length;
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length + bodyLen !== len) len = bodyLen + String(len).length;
  return `${len}${body}`;
}

function truncateUtf8(s: string, maxBytes: number): string {
  let out = "";
  let n = 0;
  for (const ch of s) {
    const l = ENC.encode(ch).length;
    if (n + l > maxBytes) break;
    out += ch;
    n += l;
  }
  return out;
}

function header(
  name: string,
  size: number,
  o: { mtime: number; mode: number; typeflag: string },
): Uint8Array {
  const b = new Uint8Array(BLOCK);
  b.set(ENC.encode(name).subarray(0, 100), 0);
  writeOctal(b, 100, 8, o.mode);
  writeOctal(b, 108, 8, 0);
  writeOctal(b, 116, 8, 0);
  writeOctal(b, 124, 12, size);
  writeOctal(b, 136, 12, Math.max(0, Math.floor(o.mtime)));
  b.fill(32, 148, 156);
  b[156] = o.typeflag.charCodeAt(0);
  b.set(ENC.encode("ustar\x0000"), 257);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  writeOctal(b, 148, 7, sum);
  b[155] = 32;
  return b;
}

/** Zero-padded octal digits followed by a NUL, filling `width` bytes. */
function writeOctal(b: Uint8Array, at: number, width: number, v: number): void {
  const s = v.toString(8).padStart(width - 1, "0");
  b.set(ENC.encode(s), at);
  b[at + width - 1] = 0;
}
