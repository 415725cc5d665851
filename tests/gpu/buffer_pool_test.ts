/**
 * The buffer pool's reuse order: the oldest free buffer of a bucket first, so a repeated
 * sequence of acquisitions and releases gets the same buffers each time, and a repeated
 * step of ops creates no new bind groups.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { BufferPool } from "../../src/gpu/buffer_pool.ts";
import { initGpu } from "../../src/gpu/runtime.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { tensor } from "../../src/ops/creation.ts";
import { add, mul } from "../../src/ops/elementwise.ts";
import { matmul } from "../../src/ops/matmul.ts";

const rt = await initGpu();

Deno.test("acquire hands out the free buffer of its bucket created first", () => {
  const pool = new BufferPool(rt.device, rt.info.maxBufferBytes);
  const [a, b, c] = [pool.acquire(4096), pool.acquire(4096), pool.acquire(4096)];
  pool.release(c);
  pool.release(a);
  pool.release(b);
  assert(pool.acquire(4000) === a);
  assert(pool.acquire(4096) === b);
  pool.release(a);
  assert(pool.acquire(4096) === a);
  assert(pool.acquire(4096) === c);
  assertEquals(pool.stats().allocatedBytes, 3 * 4096);
  pool.release(a);
  pool.release(b);
  pool.release(c);
  pool.trim();
  assertEquals(pool.stats().allocatedBytes, 0);
});

Deno.test("a sequence released in acquisition order gets the same buffers every time", () => {
  const pool = new BufferPool(rt.device, rt.info.maxBufferBytes);
  const sizes = [1024, 1024, 2048, 1024, 2048, 1024];
  const run = () => {
    const held = sizes.map((s) => pool.acquire(s));
    // Released in the order acquired: a stack would hand them out reversed next time.
    for (const b of held) pool.release(b);
    return held;
  };
  const first = run();
  for (let i = 0; i < 3; i++) {
    const again = run();
    assert(again.every((b, j) => b === first[j]), `repetition ${i + 2} got other buffers`);
  }
  pool.trim();
});

Deno.test("a repeated step of ops binds the buffers of the step before (no new bind groups)", async () => {
  const x = tensor(Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i)), [64, 32]);
  const w = tensor(Float32Array.from({ length: 32 * 32 }, (_, i) => Math.cos(i)), [32, 32]);
  const step = () =>
    tidy(() => {
      // Intermediates of one bucket, disposed in creation order at the scope's end.
      const h1 = matmul(x, w);
      const h2 = add(h1, x);
      const h3 = mul(h2, h1);
      const h4 = matmul(h3, w);
      return add(h4, h2);
    });
  // One step creates the buffers; the next steps must find the same ones in the same roles
  // (a stack pool reverses them each step: new bind groups every step until both orders are
  // cached).
  step().dispose();
  await rt.sync();
  const before = rt.counters.bindGroups;
  for (let i = 0; i < 3; i++) step().dispose();
  await rt.sync();
  assertEquals(rt.counters.bindGroups - before, 0);
  x.dispose();
  w.dispose();
});

Deno.test("trimPool() in the middle of recording keeps the recorded work valid", async () => {
  const x = tensor(Float32Array.from({ length: 256 }, (_, i) => i), [256]);
  const y = tidy(() => {
    const a = add(x, x); // 2i, freed when the inner scope ends
    return tidy(() => mul(a, x)); // 2i^2, recorded before a's buffer is destroyed
  });
  rt.trimPool();
  const z = add(y, x); // recorded after the trim: 2i^2 + i
  const [host] = await rt.read([z]);
  const got = new Float32Array(host!);
  assert(got.every((v, i) => v === 2 * i * i + i), "wrong values after the trim");
  assertEquals(rt.memory().allocatedBytes, rt.memory().inUseBytes);
  for (const t of [x, y, z]) t.dispose();
});

Deno.test("textures: the free one of the exact size created first, counted with the buffers, destroyed by trim", () => {
  const pool = new BufferPool(rt.device, rt.info.maxBufferBytes);
  const buf = pool.acquire(4096);
  const [a, b] = [pool.acquireTexture(8, 3), pool.acquireTexture(8, 3)];
  const c = pool.acquireTexture(4, 3);
  assertEquals([a.width, a.height, a.format], [8, 3, "rgba32float"]);
  const texBytes = (8 * 3 * 2 + 4 * 3) * 16;
  assertEquals(pool.stats().inUseBytes, 4096 + texBytes);
  assertEquals(pool.stats().liveBuffers, 4);
  pool.releaseTexture(b);
  pool.releaseTexture(a);
  pool.releaseTexture(c);
  assert(pool.acquireTexture(8, 3) === a); // the older of the two
  assert(pool.acquireTexture(4, 3) === c); // exact sizes only
  assert(pool.acquireTexture(8, 4) !== b);
  assertEquals(pool.stats().peakAllocatedBytes, 4096 + texBytes + 8 * 4 * 16);
  pool.release(buf);
  for (const t of [a, c]) pool.releaseTexture(t);
  pool.trim();
  // The 8x4 texture is still handed out: only it remains.
  assertEquals(pool.stats().allocatedBytes, 8 * 4 * 16);
  assertEquals(pool.stats().liveBuffers, 1);
});
