/**
 * CRC-32C (Castagnoli), the checksum of iSCSI, ext4 metadata and Snappy framing, computed in
 * plain TypeScript with slicing-by-8 tables: checkpoint files are digested with it at save and
 * verified at resume, `convert` and `ps3 verify`. It is not a cryptographic hash: it detects
 * accidental corruption (flipped bits, zeroed or torn blocks), not deliberate tampering.
 *
 * @module
 */

/** The reflected CRC-32C polynomial. */
const POLY = 0x82f63b78;

/** Eight 256-entry tables: table t maps a byte to its CRC contribution t bytes further on. */
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + i]!;
      t[k * 256 + i] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  }
  return t;
})();

/**
 * Extends a CRC-32C over more bytes.
 *
 * @param crc The CRC of the bytes before (0 to start).
 * @param bytes The next bytes.
 * @returns The CRC of everything so far (an unsigned 32-bit integer).
 * @example
 * ```ts
 * crc32c(0, new TextEncoder().encode("123456789")); // 0xe3069283
 * ```
 */
export function crc32c(crc: number, bytes: Uint8Array): number {
  const T = TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  // Byte at a time up to a 4-byte boundary, then 8 bytes per round through a Uint32 view
  // (little-endian, as every platform Deno runs on).
  while (i < n && ((bytes.byteOffset + i) & 3) !== 0) c = T[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, ((n - i) >>> 3) << 1);
  for (let j = 0; j < words.length; j += 2) {
    const a = words[j]! ^ c, b = words[j + 1]!;
    c = T[1792 + (a & 0xff)]! ^ T[1536 + ((a >>> 8) & 0xff)]! ^ T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^ T[768 + (b & 0xff)]! ^ T[512 + ((b >>> 8) & 0xff)]! ^
      T[256 + ((b >>> 16) & 0xff)]! ^ T[b >>> 24]!;
  }
  i += words.length * 4;
  while (i < n) c = T[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * A CRC-32C as the manifest records it: 8 lowercase hex digits.
 *
 * @param crc The CRC.
 * @returns e.g. "e3069283".
 */
export function crcHex(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, "0");
}

/** What {@linkcode digestFile} measured. */
export interface FileDigest {
  /** Bytes read. */
  size: number;
  /** CRC-32C of the whole file, 8 hex digits. */
  crc32c: string;
}

/** Read size of {@linkcode digestFile}: large enough to amortise the calls, small in memory. */
const CHUNK = 8 << 20;

/**
 * Digests a file by streaming it through one reused 8 MiB buffer (never the whole file in
 * memory).
 *
 * @param path The file.
 * @returns Its size and CRC-32C.
 * @throws {Deno.errors.NotFound} When the file does not exist.
 * @example
 * ```ts
 * const { size, crc32c } = await digestFile("runs/tiny/checkpoints/step_00000100/model.safetensors");
 * ```
 */
export async function digestFile(path: string): Promise<FileDigest> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let crc = 0, size = 0;
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    crc = crc32c(crc, buf.subarray(0, n));
    size += n;
  }
  return { size, crc32c: crcHex(crc) };
}
