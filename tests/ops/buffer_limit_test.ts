/**
 * Tensors against the device's largest buffer (`maxBufferSize`), under a runtime that pretends
 * it is 60 KiB (`initGpu({ maxBufferBytes })`): a tensor is one buffer, so one larger than the
 * limit is refused before anything is allocated or dispatched, naming what it is, its shape,
 * its bytes and the limit; one just under the limit gets a buffer even where the pool's bucket
 * rounding would pass the limit.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert";
import { initGpu } from "../../src/gpu/runtime.ts";
import { empty, tensor } from "../../src/ops/creation.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { tidy } from "../../src/autograd/scope.ts";

const LIMIT = 61440;
const rt = await initGpu({ maxBufferBytes: LIMIT });

Deno.test("the lowered buffer limit reaches the runtime and its pool", () => {
  assertEquals(rt.info.maxBufferBytes, LIMIT);
  assertEquals(rt.pool.maxBytes, LIMIT);
});

Deno.test("a tensor larger than the buffer limit is refused with its shape, bytes and the limit", () => {
  throws(
    () => empty([128, 121]),
    {
      name: "RangeError",
      message: "Cannot allocate a tensor of [128, 121] f32: 61952 bytes (60.5 KiB), more than " +
        "the device's largest buffer of 61440 bytes (60.0 KiB, maxBufferSize); a tensor is " +
        "one buffer",
    },
  );
  throws(
    () => tensor(new Float32Array(15361), [15361], "f32", "the images"),
    /^RangeError: Cannot allocate the images of \[15361\] f32: 61444 bytes/,
  );
});

Deno.test("an op whose output passes the buffer limit fails before it dispatches, naming the op", () => {
  tidy(() => {
    const a = tensor(new Float32Array(130 * 8).fill(1), [130, 8]);
    const b = tensor(new Float32Array(8 * 120).fill(1), [8, 120]);
    const before = rt.counters.dispatches;
    throws(
      () => matmul(a, b),
      /^RangeError: Cannot allocate matmul\(\)'s output of \[130, 120\] f32: 62400 bytes .* 61440 bytes/,
    );
    assertEquals(rt.counters.dispatches, before);
  });
});

Deno.test("a tensor just under the limit gets a buffer although its bucket would pass it", () => {
  // 61000 bytes round to the 65536-byte bucket; the pool caps the buffer at the limit.
  const inUse = rt.memory().inUseBytes;
  const t = empty([15250]);
  assert(t.storage.buffer.size <= LIMIT, `buffer of ${t.storage.buffer.size} bytes`);
  assertEquals(t.storage.buffer.size, LIMIT);
  t.dispose();
  assertEquals(rt.memory().inUseBytes, inUse);
  // The same-sized request reuses the capped buffer.
  const u = empty([15300]);
  assertEquals(u.storage.buffer.size, LIMIT);
  u.dispose();
});
