// checkpoint.init from an open_clip epoch_N.pt and checkpoint.init_siglip from an
// open_clip_pytorch_model.bin (tests/testdata/torch_ckpt/make.py, the tiny PS3 of
// tests/testdata/ps3_package).
import { referenceGroups } from "../../src/optim/param_groups.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert";
import { join } from "node:path";
import { gpu, initGpu } from "../../src/gpu/runtime.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { readHfConfig } from "../../src/checkpoint/hf.ts";
import { initFromSiglip, siglipToHfName } from "../../src/checkpoint/siglip_init.ts";
import { TorchCheckpoint } from "../../src/checkpoint/torch_checkpoint.ts";
import { initFromTorchCheckpoint } from "../../src/checkpoint/torch_init.ts";
import type { TorchTensorRef } from "../../src/checkpoint/pickle.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";

await initGpu();
const dir = new URL("../testdata/torch_ckpt/", import.meta.url).pathname;
const config = await readHfConfig(
  new URL("../testdata/ps3_package/full", import.meta.url).pathname,
);

async function readBack(t: Parameters<ReturnType<typeof gpu>["read"]>[0][number], n: number) {
  const [bytes] = await gpu().read([t]);
  return new Float32Array(bytes!, 0, n).slice();
}

Deno.test("checkpoint.init from an open_clip epoch_N.pt: every weight bit-exact, AdamW moments and step loaded", async () => {
  const model = new Ps3Clip(config, { group: referenceGroups(false) });
  const r = await initFromTorchCheckpoint(model.params, join(dir, "epoch_1.pt"));
  assertEquals([r.missing, r.unused, r.optimizerNote, r.optimizerStep, r.epoch], [
    [],
    [],
    "",
    1,
    1,
  ]);
  assertEquals(r.loaded.length, model.params.params.length);
  const ck = await TorchCheckpoint.open(join(dir, "epoch_1.pt"));
  try {
    const sd = ck.stateDict();
    const opt = (ck.root as Map<string, unknown>).get("optimizer") as Map<string, unknown>;
    const state = opt.get("state") as Map<number, Map<string, TorchTensorRef>>;
    // Index of each open_clip name in the optimizer: group 0 then group 1, as make.py built.
    const groups = opt.get("param_groups") as Map<string, number[]>[];
    const names = [...sd.keys()];
    const excl = (n: string) => sd.get(n)!.shape.length < 2 || /bn|ln|bias|logit_scale/.test(n);
    const order = [...names.filter(excl), ...names.filter((n) => !excl(n))];
    const ids = groups.flatMap((g) => g.get("params")!);
    const moments = model.params.momentViews()!;
    try {
      for (const [i, p] of model.params.params.entries()) {
        const file = names.find((n) => siglipToHfName(n, "open_clip") === p.spec.name)!;
        const n = numel(p.spec.shape);
        const want = await ck.readTensor(sd.get(file)!) as Float32Array;
        assertEquals(await readBack(p.value, n), want, p.spec.name);
        const s = state.get(ids[order.indexOf(file)]!)!;
        assertEquals(
          await readBack(moments.m[i]!, n),
          await ck.readTensor(s.get("exp_avg")!),
          p.spec.name,
        );
        assertEquals(
          await readBack(moments.v[i]!, n),
          await ck.readTensor(s.get("exp_avg_sq")!),
          p.spec.name,
        );
      }
    } finally {
      for (const t of [...moments.m, ...moments.v]) t.dispose();
    }
  } finally {
    ck.close();
  }
});

Deno.test("checkpoint.init_siglip from a bfloat16 open_clip_pytorch_model.bin loads every weight bit-exactly (widened)", async () => {
  const model = new Ps3Clip(config, { group: referenceGroups(false) });
  const r = await initFromSiglip(model.params, join(dir, "open_clip_pytorch_model.bin"));
  assertEquals([r.layout, r.fresh, r.unused, r.resized], ["open_clip", [], [], []]);
  const ck = await TorchCheckpoint.open(join(dir, "open_clip_pytorch_model.bin"));
  try {
    const sd = ck.stateDict();
    let checked = 0;
    for (const [name, t] of sd) {
      const p = model.params.get(siglipToHfName(name, "open_clip"));
      const got = await readBack(p.value, numel(p.spec.shape));
      assertEquals(got, await ck.readTensor(t), name);
      // bf16 widened: the low 16 bits of every float are zero.
      ok(new Uint32Array(got.buffer).every((b) => (b & 0xffff) === 0), name);
      checked++;
    }
    assertEquals(checked, model.params.params.length);
  } finally {
    ck.close();
  }
});

Deno.test("a bare state dict has no optimizer state, and the report says so", async () => {
  const model = new Ps3Clip(config, { group: referenceGroups(false) });
  const r = await initFromTorchCheckpoint(model.params, join(dir, "open_clip_pytorch_model.bin"));
  assertEquals([r.optimizerStep, r.optimizerNote], [null, "the file has no optimizer state"]);
  assertEquals(r.missing, []);
});
