// Loading checkpoints in pieces: every stored float dtype gives, bit for bit, the values of a
// whole-tensor read, whatever the piece size (tensors larger than a piece, not a multiple of
// it, exactly one piece, scalars); and the inference options of the parameter table.

import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert";
import { join } from "node:path";
import { rt } from "../harness.ts";
import { loadSafetensorsInto } from "../../src/checkpoint/hf.ts";
import {
  openSafetensors,
  type SafetensorsDtype,
  writeSafetensors,
} from "../../src/checkpoint/safetensors.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { type ParamSpec, ParamTable } from "../../src/params/param_table.ts";
import { Rng } from "../../src/util/rng.ts";
import { withTmp } from "../data/helpers.ts";

/** Shapes around a 64-element piece: larger and not a multiple, one piece, less, a scalar. */
const SHAPES: Record<string, number[]> = {
  big: [1000],
  matrix: [37, 29],
  one_piece: [64],
  small: [3, 7],
  scalar: [],
};

function specs(init: (name: string) => (out: Float32Array) => void): ParamSpec[] {
  return Object.entries(SHAPES).map(([name, shape]) => ({
    name,
    shape,
    init: init(name),
    decay: true,
    lrGroup: "base",
  }));
}

/** Random values with a wide exponent range (subnormal f16, large bf16), and a few specials. */
function values(seed: number): Map<string, Float32Array<ArrayBuffer>> {
  const rng = new Rng(seed);
  return new Map(
    Object.entries(SHAPES).map(([name, shape]) => {
      const a = new Float32Array(numel(shape)).map(() =>
        rng.uniform(-1, 1) * 2 ** Math.floor(rng.uniform(-30, 20))
      );
      if (a.length > 3) a.set([0, -0, 65519.9], a.length - 3);
      return [name, a];
    }),
  );
}

async function readTable(table: ParamTable): Promise<Map<string, Float32Array>> {
  const host = await rt.read(table.params.map((p) => p.value));
  return new Map(table.params.map((p, i) => [p.spec.name, new Float32Array(host[i]!)]));
}

for (const dtype of ["F32", "F16", "BF16", "F64"] as SafetensorsDtype[]) {
  Deno.test(`loadSafetensorsInto() in pieces (64 elements, 1, default) equals a whole-tensor read: ${dtype}`, async () => {
    await withTmp(async (dir) => {
      const path = join(dir, "model.safetensors");
      const vals = values(3);
      await writeSafetensors(
        path,
        [...vals].map(([name, data]) => ({
          name,
          dtype,
          shape: SHAPES[name]!,
          data: dtype === "F64" ? Float64Array.from(data) : data,
        })),
      );
      // The reference: each tensor read whole and widened (F16, BF16) or rounded (F64) at once.
      const whole = new Map<string, Float32Array>();
      {
        using st = await openSafetensors(path);
        for (const name of st.names()) {
          const t = await st.read(name);
          whole.set(name, t instanceof Float32Array ? t : Float32Array.from(t as Float64Array));
        }
      }
      for (const chunkBytes of [256, 4, undefined]) {
        for (const opts of [{}, { grads: false, init: false }]) {
          const table = new ParamTable(specs(() => (out) => out.fill(7)), opts);
          const r = await loadSafetensorsInto(table, path, { chunkBytes });
          equal(r.loaded.length, 5);
          const got = await readTable(table);
          for (const [name, want] of whole) {
            deepStrictEqual(
              new Uint32Array(got.get(name)!.buffer),
              new Uint32Array(want.buffer),
              `${name}, pieces of ${chunkBytes} bytes, ${JSON.stringify(opts)}`,
            );
          }
        }
      }
      if (dtype === "F32") {
        const got = whole.get("big")!;
        deepStrictEqual(got, vals.get("big"));
      }
    });
  });
}

Deno.test("SafetensorsReader.readFloatChunks() yields bounded pieces in order; refuses ints", async () => {
  await withTmp(async (dir) => {
    const path = join(dir, "t.safetensors");
    const data = Float32Array.from({ length: 1000 }, (_, i) => i - 500.25);
    await writeSafetensors(path, [
      { name: "w", dtype: "BF16", shape: [10, 100], data },
      { name: "i", dtype: "I32", shape: [2], data: new Int32Array([1, 2]) },
    ]);
    using st = await openSafetensors(path);
    const pieces: { start: number; length: number }[] = [];
    const joined = new Float32Array(1000);
    for await (const { start, data: piece } of st.readFloatChunks("w", 300)) {
      pieces.push({ start, length: piece.length });
      joined.set(piece, start);
    }
    deepStrictEqual(pieces, [
      { start: 0, length: 300 },
      { start: 300, length: 300 },
      { start: 600, length: 300 },
      { start: 900, length: 100 },
    ]);
    deepStrictEqual(joined, await st.read("w"));
    await rejects(
      st.readFloatChunks("i", 300).next(),
      (e: Error) => e instanceof TypeError && e.message.includes("I32 is not a float type"),
    );
  });
});

Deno.test("ParamTable for inference: no gradient buffers, no initialisation, initialize() on demand", async () => {
  const inits = (name: string) => (out: Float32Array) => out.fill(name.length);
  const train = new ParamTable(specs(inits));
  const infer = new ParamTable(specs(inits), { grads: false, init: false });
  equal(infer.bytes() * 2, train.bytes());
  ok(train.hasGrads && !infer.hasGrads);
  throws(() => infer.grads, /built without gradients/);
  throws(() => infer.get("big").grad, /gradient of "big".*without gradients/);
  throws(() => infer.zeroGrad(), /built without gradients/);
  ok(infer.params.every((p) => !p.value.requiresGrad && p.value.grad === null));
  ok(train.params.every((p) => p.value.requiresGrad && p.value.grad === p.grad));
  for (const v of (await readTable(infer)).values()) ok(v.every((x) => x === 0));
  infer.initialize(["small", "scalar"]);
  const got = await readTable(infer);
  deepStrictEqual([...got.get("small")!], new Array(21).fill(5));
  deepStrictEqual([...got.get("scalar")!], [6]);
  ok(got.get("big")!.every((x) => x === 0));
  throws(() => infer.write("small", 20, new Float32Array(2)), RangeError);
});
