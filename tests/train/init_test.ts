import { deepStrictEqual, notDeepStrictEqual, ok } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { train } from "../../src/train/trainer.ts";
import { writeHfFolder } from "../../src/checkpoint/hf.ts";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { Rng } from "../../src/util/rng.ts";
import { torchStateDictZip } from "../checkpoint/torch_fixtures.ts";

await initGpu();

/** Every tensor of a safetensors file, by name. */
async function tensors(path: string): Promise<Map<string, Float32Array>> {
  const r = await openSafetensors(path);
  try {
    const out = new Map<string, Float32Array>();
    for (const name of r.names()) out.set(name, await r.read(name) as Float32Array);
    return out;
  } finally {
    r.close();
  }
}

/**
 * Trains one step from `init` at a learning rate (1e-30) far below half an f32 ulp of every
 * parameter, and returns the saved parameters: they are the loaded ones, bit for bit.
 */
async function trainFrom(init: string, out: string, synth: string) {
  const config = await loadRunConfig("tests/testdata/train_tiny.yaml", [
    `checkpoint.out=${out}`,
    `checkpoint.init=${init}`,
    `data.synthesize.out=${synth}`,
    "train.steps=1",
    "optim.lr=1e-30",
    "optim.warmup=0",
    "checkpoint.save_every=1",
  ]);
  const summary = await train(config, { tty: false });
  ok(summary.checkpoint, "a checkpoint was written");
  // The wait for data is measured apart from the step and counted in the summary.
  const wait = summary.last!.data_wait_s;
  ok(wait >= 0 && wait <= summary.dataWaitSeconds + 1e-9, `step waited ${wait} s`);
  ok(summary.dataWaitSeconds <= summary.seconds, `${summary.dataWaitSeconds} s of data wait`);
  return tensors(join(summary.checkpoint!, "model.safetensors"));
}

Deno.test("checkpoint.init starts training from a Hugging Face folder, full or vision-only", async () => {
  const root = await Deno.makeTempDir({ prefix: "ps3-init-" });
  try {
    const config = await loadRunConfig("tests/testdata/train_tiny.yaml", []);
    // Values of magnitude 0.05..0.5 everywhere (no zeros a tiny update could move).
    const source = new Ps3Clip(config.resolvedModel, { seed: 9 });
    const rng = new Rng(9);
    for (const p of source.params.params) {
      const v = new Float32Array(numel(p.spec.shape)).map(() =>
        (rng.uniform(0, 1) < 0.5 ? -1 : 1) * rng.uniform(0.05, 0.5)
      );
      if (p.spec.name === "logit_scale") v[0] = 2.3;
      source.params.load(p.spec.name, v);
    }
    const full = join(root, "hf"), vision = join(root, "hf-vision");
    await writeHfFolder(full, source.params, config.resolvedModel);
    await writeHfFolder(vision, source.params, config.resolvedModel, { visionOnly: true });
    const want = await tensors(join(full, "model.safetensors"));
    const synth = join(root, "synth");

    // The saved parameters are the loaded ones, every one of them.
    const fromFull = await trainFrom(full, join(root, "run-full"), synth);
    deepStrictEqual([...fromFull.keys()], [...want.keys()]);
    for (const [name, v] of want) deepStrictEqual(fromFull.get(name), v, name);

    // Vision-only: the vision tower is loaded, the rest keeps the run's own initialisation.
    const fromVision = await trainFrom(vision, join(root, "run-vision"), synth);
    let text = 0;
    for (const [name, v] of want) {
      if (name.startsWith("vision_model.")) deepStrictEqual(fromVision.get(name), v, name);
      else if (name.startsWith("text_model.") && v.length > 1) {
        notDeepStrictEqual(fromVision.get(name), v, name);
        text++;
      }
    }
    ok(text > 10, `${text} text tensors checked`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("checkpoint.init starts training from a PyTorch open_clip epoch_N.pt (module. prefix, open_clip names)", async () => {
  const root = await Deno.makeTempDir({ prefix: "ps3-init-pt-" });
  try {
    const config = await loadRunConfig("tests/testdata/train_tiny.yaml", []);
    const source = new Ps3Clip(config.resolvedModel, { seed: 11 });
    const rng = new Rng(11);
    const want = new Map<string, Float32Array>();
    const entries = source.params.params.map((p) => {
      const v = new Float32Array(numel(p.spec.shape)).map(() =>
        (rng.uniform(0, 1) < 0.5 ? -1 : 1) * rng.uniform(0.05, 0.5)
      );
      if (p.spec.name === "logit_scale") v[0] = 2.3; // inside the clamp the step applies
      want.set(p.spec.name, v);
      const n = p.spec.name;
      const openClip = n.startsWith("text_model.prompt_proj.")
        ? n.slice("text_model.".length)
        : n.startsWith("vision_model.")
        ? `visual.${n.slice("vision_model.".length)}`
        : n.startsWith("text_model.")
        ? `text.${n.slice("text_model.".length)}`
        : n;
      return { name: `module.${openClip}`, shape: p.spec.shape, data: v };
    });
    const pt = join(root, "epoch_3.pt");
    await Deno.writeFile(pt, torchStateDictZip(entries, { wrap: true }));
    const got = await trainFrom(pt, join(root, "run"), join(root, "synth"));
    deepStrictEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [name, v] of want) deepStrictEqual(got.get(name), v, name);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
