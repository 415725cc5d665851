/**
 * File digests with CRC-32C (Castagnoli, `src/util/crc32c.ts`), the checksum of iSCSI, ext4
 * metadata and Snappy framing: checkpoint files are digested at save and verified at resume,
 * `convert` and `ps3 verify`. It is not a cryptographic hash: it detects
 * accidental corruption (flipped bits, zeroed or torn blocks), not deliberate tampering.
 *
 * @module
 */

import { crc32c } from "../util/crc32c.ts";

export { crc32c };

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
