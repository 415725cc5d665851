import { strictEqual } from "node:assert";
import { crc32c } from "../../src/util/crc32c.ts";

/** Bit-by-bit CRC-32C, the definition the table version must equal. */
function slow(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

Deno.test("crc32c() equals the bit-by-bit definition at every length and alignment, in pieces", () => {
  const data = Uint8Array.from({ length: 97 }, (_, i) => (i * 131 + 7) & 0xff);
  for (let off = 0; off < 8; off++) {
    for (let len = 0; off + len <= 40; len++) {
      const part = data.subarray(off, off + len);
      strictEqual(crc32c(0, part), slow(part), `offset ${off}, length ${len}`);
    }
  }
  // Extending over pieces equals the whole.
  strictEqual(crc32c(crc32c(0, data.subarray(0, 13)), data.subarray(13)), slow(data));
});
