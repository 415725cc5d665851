/**
 * Ops past the storage binding limit: `binding_limit_cases.ts` runs matmuls, elementwise ops,
 * reductions, layer norms, softmax, attention, layout copies and the patch gather in a process whose runtime pretends bindings
 * hold 64 KiB (`PS3_MAX_BINDING_BYTES`), so operands, results and gradients of a few tens of
 * thousands of floats are split; and once more without the limit. Each case must dispatch more
 * kernels under the limit (it was split); its forward is checked against the float64 reference
 * and its gradients against central finite differences of it (on sampled entries), and every
 * output against the unsplit run: bit for bit where the split leaves the grouping of the
 * additions as it is (batch and row splits, unaligned blocks through copies, elementwise
 * windows, reductions in windows of whole parts), within the forward tolerance where it does
 * not (K ranges, reductions in shorter windows: each case's `regrouped`).
 *
 * @module
 */

import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert";
import { assertClose, fdGrad } from "../harness.ts";
import { openSafetensors, type SafetensorsReader } from "../../src/checkpoint/safetensors.ts";
import type { Arr } from "../../src/reference/array.ts";
import { caseInputs, CASES } from "./binding_limit_cases.ts";

const LIMIT = 65536;

/** Runs the cases script with the given environment and opens its output. */
async function runCases(env: Record<string, string>): Promise<SafetensorsReader> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/out.safetensors`;
  const script = new URL("./binding_limit_cases.ts", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, path],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`binding_limit_cases.ts failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
  return await openSafetensors(path);
}

async function f32(r: SafetensorsReader, name: string): Promise<Float32Array> {
  const b = await r.readBytes(name);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

const limited = runCases({ PS3_MAX_BINDING_BYTES: String(LIMIT) });
const unlimited = runCases({ PS3_MAX_BINDING_BYTES: "" });

Deno.test("the lowered binding limit reaches the runtime; an impossible split throws first", async () => {
  const r = await limited;
  assertEquals(r.metadata?.maxBindingBytes, String(LIMIT));
  assertMatch(
    r.metadata?.error ?? "",
    /^matmul: cannot split the weight of \[1 x 1 x 8\] @ \[8 x 5000\] to fit the device's storage binding limit of 65536 bytes: four rows of the weight \(5000 floats each\) do not fit/,
  );
  assertEquals(r.metadata?.dispatchedBeforeError, "0");
  assertMatch(
    r.metadata?.softmaxError ?? "",
    /^softmax\(\) cannot split .*\[2, 20000\] f32 to fit the device's storage binding limit of 65536 bytes: one slice of 20000 x 1 floats passes it/,
  );
  assertEquals(r.metadata?.softmaxDispatchedBeforeError, "0");
  assertMatch(
    r.metadata?.attentionError ?? "",
    /^attention\(\) cannot split q \[1, 300, 64\] \(4 heads, Nc 0, Nk 300\) to fit the device's storage binding limit of 65536 bytes: one sample's binding of 19200 floats passes it/,
  );
  assertEquals(r.metadata?.attentionDispatchedBeforeError, "0");
  const u = await unlimited;
  assertEquals(u.metadata?.error, "");
  assertEquals(u.metadata?.softmaxError, "");
  assertEquals(u.metadata?.attentionError, "");
});

for (const c of CASES) {
  Deno.test(`past a ${LIMIT}-byte binding limit: ${c.name}`, async () => {
    const [r, u] = [await limited, await unlimited];
    const { inputs, w } = caseInputs(c);
    const ref = c.ref;
    // The limit split the work: more dispatches than the unsplit run.
    const count = (x: SafetensorsReader) => JSON.parse(x.metadata?.dispatches ?? "{}")[c.name];
    assert(count(r) > count(u), `${c.name}: ${count(r)} dispatches vs ${count(u)} unsplit`);
    // Sums of at most 2100 terms of |x| <= 1 (K <= 300 products plus bias and residual, or
    // reductions) in f32: errors well under 1e-4.
    assertClose(await f32(r, `${c.name}/y`), ref(inputs).data, {
      atol: 1e-4,
      rtol: 1e-5,
      label: `${c.name} forward`,
    });
    for (let k = 0; k < inputs.length; k++) {
      const name = `${c.name}/grad${k}`;
      // Finite differences of the bilinear reference on a sample of entries (each costs two
      // reference evaluations); the whole gradient is compared with the unsplit run below.
      const got = await f32(r, name);
      const x = inputs[k]!;
      const picks = [
        0,
        x.data.length - 1,
        ...[1, 2, 3, 4, 5].map((i) => (i * 7919) % x.data.length),
      ];
      for (const i of picks) {
        const one: Arr = { data: Float64Array.of(x.data[i]!), shape: [1] };
        const fd = fdGrad(
          (ys) => {
            const xs = inputs.slice();
            const copy = { data: x.data.slice(), shape: x.shape };
            copy.data[i] = ys[0]!.data[0]!;
            xs[k] = copy;
            return ref(xs);
          },
          [one],
          w,
          0,
          1e-5,
        );
        assertClose(got.subarray(i, i + 1), fd.data, {
          atol: 1e-4,
          rtol: 1e-3,
          label: `${name}[${i}]`,
        });
      }
    }
    for (const e of u.entries.filter((e) => e.name.startsWith(`${c.name}/`))) {
      const a = await f32(r, e.name), b = await f32(u, e.name);
      if (c.regrouped?.includes(e.name.slice(c.name.length + 1))) {
        assertClose(a, Float64Array.from(b), { atol: 1e-4, rtol: 1e-5, label: e.name });
      } else {
        assertEquals(
          new Uint32Array(a.buffer, a.byteOffset, a.length),
          new Uint32Array(b.buffer, b.byteOffset, b.length),
          e.name,
        );
      }
    }
  });
}
