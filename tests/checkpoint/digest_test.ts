import { strictEqual } from "node:assert";
import { join } from "node:path";
import { crc32c, crcHex, digestFile } from "../../src/checkpoint/digest.ts";

Deno.test("crc32c() matches the known answers of RFC 3720 and the check value", () => {
  const enc = new TextEncoder();
  strictEqual(crcHex(crc32c(0, enc.encode("123456789"))), "e3069283");
  strictEqual(crcHex(crc32c(0, new Uint8Array(32))), "8a9136aa");
  strictEqual(crcHex(crc32c(0, new Uint8Array(32).fill(0xff))), "62a8ab43");
  strictEqual(crcHex(crc32c(0, Uint8Array.from({ length: 32 }, (_, i) => i))), "46dd794e");
  strictEqual(crcHex(crc32c(0, Uint8Array.from({ length: 32 }, (_, i) => 31 - i))), "113fdb5c");
  strictEqual(crcHex(crc32c(0, new Uint8Array(0))), "00000000");
});

Deno.test("crc32c() is the same over any split and alignment of the bytes", () => {
  const bytes = new Uint8Array(1000).map((_, i) => (i * 131 + 7) & 0xff);
  const whole = crc32c(0, bytes);
  for (const offset of [1, 2, 3, 5, 8, 13]) {
    const copy = new Uint8Array(bytes.length + offset);
    copy.set(bytes, offset);
    strictEqual(crc32c(0, copy.subarray(offset)), whole, `offset ${offset}`);
  }
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    strictEqual(
      crc32c(crc32c(0, bytes.subarray(0, cut)), bytes.subarray(cut)),
      whole,
      `cut ${cut}`,
    );
  }
  // One flipped bit changes it.
  const flipped = bytes.slice();
  flipped[600]! ^= 0x10;
  strictEqual(crc32c(0, flipped) !== whole, true);
});

Deno.test("digestFile() streams a file larger than its buffer to the same CRC and size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ps3-digest-" });
  try {
    const bytes = new Uint8Array((9 << 20) + 3);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(bytes.length, i + 65536)));
    }
    const path = join(dir, "big.bin");
    await Deno.writeFile(path, bytes);
    const d = await digestFile(path);
    strictEqual(d.size, bytes.length);
    strictEqual(d.crc32c, crcHex(crc32c(0, bytes)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
