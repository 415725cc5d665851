import { deepStrictEqual, strictEqual } from "node:assert";
import { soak } from "./soak.ts";

// The kill -9 soak of tests/train/soak.ts at a count that fits CI (the full one is 20 kills).
Deno.test("kill -9 soak (3 kills): every resumed run ends bit-identical to an uninterrupted one", async () => {
  const lines: string[] = [];
  const r = await soak(3, 7, (s) => lines.push(s));
  deepStrictEqual(r.problems, [], lines.join("\n"));
  strictEqual(r.kills, 3);
});
