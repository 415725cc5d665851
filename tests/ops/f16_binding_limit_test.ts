/**
 * The f16 op tests past a lowered storage binding limit: runs the cases of
 * `f16_norm_test.ts`, `f16_softmax_test.ts`, `f16_attention_test.ts` and
 * `f16_gather_test.ts`, `f16_storage_test.ts`, `f16_conv_test.ts`, `f16_patch_test.ts` named "past a 64 KiB binding limit" in a process whose runtime
 * pretends bindings hold 64 KiB (`PS3_MAX_BINDING_BYTES`). Each of those cases asserts there
 * that its largest f16 tensor passes the limit (so the op split its work: the runtime refuses
 * any larger binding) and checks the split run against float64, finite differences and the
 * f32 path (itself split) as without the limit.
 *
 * @module
 */

import { match as assertMatch, ok as assert } from "node:assert";

const FILES = [
  "f16_norm_test.ts",
  "f16_softmax_test.ts",
  "f16_attention_test.ts",
  "f16_gather_test.ts",
  "f16_storage_test.ts",
  "f16_conv_test.ts",
  "f16_patch_test.ts",
];

Deno.test("f16 layer norm, softmax, attention, gatherRows, elementwise, matmul, depthwise conv and patchify pass their checks past a 64 KiB binding limit", async () => {
  const paths = FILES.map((f) => new URL(`./${f}`, import.meta.url).pathname);
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--filter", "past a 64 KiB binding limit", ...paths],
    env: { PS3_MAX_BINDING_BYTES: "65536", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  assert(r.success, `the f16 cases failed under the lowered limit:\n${out}`);
  // Every file ran its cases (none filtered out by a renamed test).
  assertMatch(out, /ok \| 11 passed \| 0 failed/);
});
