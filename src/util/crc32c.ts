/**
 * CRC-32C (Castagnoli), in plain TypeScript with slicing-by-8 tables: the digest of
 * checkpoint files (`src/checkpoint/digest.ts`) and the record checksum of TensorBoard event
 * files (`src/report/tfevents.ts`). Not a cryptographic hash: it detects accidental
 * corruption, not tampering.
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

const EMPTY = new Uint32Array(0);

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
  // (A view of zero words still needs an aligned offset: none is made then.)
  const count = i < n ? ((n - i) >>> 3) << 1 : 0;
  const words = count > 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset + i, count) : EMPTY;
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
