import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { rt } from "../harness.ts";
import { measureCeilings } from "../../src/bench/ceiling.ts";

Deno.test("measureCeilings() reports finite FMA and copy rates and frees its buffers", async () => {
  const before = rt.memory().inUseBytes;
  const c = await measureCeilings({ runs: 1 });
  assert(c.gflops > 0 && Number.isFinite(c.gflops), `FMA rate ${c.gflops}`);
  assert(c.gbps > 0 && Number.isFinite(c.gbps), `bandwidth ${c.gbps}`);
  assertEquals(c.rows.map((r) => r.unit), ["GFLOP/s", "GB/s", "GB/s"]);
  assertEquals(rt.memory().inUseBytes, before);
});
