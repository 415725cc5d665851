import { join } from "node:path";
import { deepStrictEqual, equal, rejects } from "node:assert";
import { rt } from "../harness.ts";
import {
  hfConfigJson,
  loadSafetensorsInto,
  readHfConfig,
  readHfFolderConfig,
  writeHfConfigFiles,
} from "../../src/checkpoint/hf.ts";
import { writeSafetensors, type WriteTensor } from "../../src/checkpoint/safetensors.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { loadModelConfig } from "../../src/model/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { Rng } from "../../src/util/rng.ts";

// A small PS3 model: the golden test's configuration (94 tensors).
const golden = new URL("../testdata/ps3_golden/ckpt/", import.meta.url).pathname;
const config = await readHfConfig(golden);
const specs = Ps3Clip.paramSpecs(config);

/** Random values for every parameter, by name. */
function values(seed: number): Map<string, Float32Array<ArrayBuffer>> {
  const rng = new Rng(seed);
  return new Map(
    specs.map((s) => [
      s.name,
      new Float32Array(numel(s.shape)).map(() => rng.uniform(-1, 1)),
    ]),
  );
}

/** Writes a checkpoint of `vals`, optionally edited (tensors dropped, added, reshaped). */
async function writeFile(
  path: string,
  vals: Map<string, Float32Array<ArrayBuffer>>,
  edit: (t: WriteTensor[]) => WriteTensor[] = (t) => t,
): Promise<void> {
  const tensors: WriteTensor[] = specs.map((s) => ({
    name: s.name,
    dtype: "F32",
    shape: s.shape,
    data: vals.get(s.name)!,
  }));
  await writeSafetensors(path, edit(tensors));
}

async function readAll(m: Ps3Clip): Promise<Map<string, Float32Array>> {
  const host = await rt.read(m.params.params.map((p) => p.value));
  return new Map(m.params.params.map((p, i) => [p.spec.name, new Float32Array(host[i]!)]));
}

Deno.test("loadSafetensorsInto() fills every parameter bit for bit from an HF file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const vals = values(1);
    await writeFile(join(dir, "model.safetensors"), vals);
    const m = new Ps3Clip(config, { seed: 7 });
    const r = await loadSafetensorsInto(m.params, join(dir, "model.safetensors"));
    equal(r.loaded.length, specs.length);
    deepStrictEqual([r.missing, r.unused], [[], []]);
    for (const [name, got] of await readAll(m)) deepStrictEqual(got, vals.get(name), name);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSafetensorsInto() strict: a missing parameter is an error naming it, nothing loaded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeFile(
      path,
      values(1),
      (t) => t.filter((x) => x.name !== "vision_model.prior_prompt"),
    );
    const m = new Ps3Clip(config, { seed: 7 });
    const before = await readAll(m);
    await rejects(
      loadSafetensorsInto(m.params, path),
      (e: Error) =>
        e.message.includes("1 parameters are missing") &&
        e.message.includes('"vision_model.prior_prompt"') && e.message.includes(path),
    );
    deepStrictEqual(await readAll(m), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSafetensorsInto() strict: a tensor that is no parameter is an error naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    const extra = "vision_model.trunk.blocks.2.norm1.weight";
    await writeFile(path, values(1), (t) => [
      ...t,
      { name: extra, dtype: "F32", shape: [16], data: new Float32Array(16) },
    ]);
    const m = new Ps3Clip(config, { seed: 7 });
    await rejects(
      loadSafetensorsInto(m.params, path),
      (e: Error) =>
        e.message.includes("1 tensors are not parameters") && e.message.includes(`"${extra}"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSafetensorsInto() non-strict: loads what is there, reports missing and unused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    const vals = values(1);
    const gone = ["text_model.ln_final.weight", "vision_model.prior_prompt"];
    await writeFile(path, vals, (t) => [
      ...t.filter((x) => !gone.includes(x.name)),
      { name: "extra", dtype: "F32", shape: [2], data: new Float32Array(2) },
    ]);
    const m = new Ps3Clip(config, { seed: 7 });
    const before = await readAll(m);
    const r = await loadSafetensorsInto(m.params, path, { strict: false });
    deepStrictEqual([r.missing.sort(), r.unused], [gone, ["extra"]]);
    equal(r.loaded.length, specs.length - 2);
    for (const [name, got] of await readAll(m)) {
      deepStrictEqual(got, gone.includes(name) ? before.get(name) : vals.get(name), name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSafetensorsInto() lists every shape mismatch with both shapes and loads nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeFile(
      path,
      values(1),
      (t) =>
        t.map((x) =>
          x.name === "vision_model.trunk.pos_embed"
            ? { ...x, shape: [1, 4, 36], data: new Float32Array(144) }
            : x.name === "logit_scale"
            ? { ...x, shape: [1] }
            : x
        ),
    );
    const m = new Ps3Clip(config, { seed: 7 });
    const before = await readAll(m);
    await rejects(
      loadSafetensorsInto(m.params, path, { strict: false }),
      (e: Error) =>
        e instanceof RangeError && e.message.includes("2 tensor shapes do not match") &&
        e.message.includes(
          '"vision_model.trunk.pos_embed" is [1, 4, 36], the model\'s [1, 9, 16]',
        ) &&
        e.message.includes('"logit_scale" is [1], the model\'s []'),
    );
    deepStrictEqual(await readAll(m), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSafetensorsInto() rejects an integer tensor and widens F16 / BF16", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    const vals = values(2);
    // Values exactly representable in both 16-bit formats: k / 64 for |k| <= 64.
    for (const v of vals.values()) v.forEach((x, i) => v[i] = Math.round(x * 64) / 64);
    await writeFile(path, vals, (t) => t.map((x, i) => ({ ...x, dtype: i % 2 ? "F16" : "BF16" })));
    const m = new Ps3Clip(config, { seed: 7 });
    await loadSafetensorsInto(m.params, path);
    for (const [name, got] of await readAll(m)) deepStrictEqual(got, vals.get(name), name);
    await writeFile(
      path,
      vals,
      (t) =>
        t.map((x) =>
          x.name === "logit_bias" ? { ...x, dtype: "I32", data: new Int32Array([-10]) } : x
        ),
    );
    await rejects(
      loadSafetensorsInto(m.params, path),
      (e: Error) => e instanceof TypeError && e.message.includes('"logit_bias"'),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readHfConfig() refuses a vision-only folder with a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeHfConfigFiles(dir, config, { visionOnly: true });
    await rejects(
      readHfConfig(dir),
      (e: Error) => e instanceof SyntaxError && e.message.includes("vision-only"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readHfFolderConfig() reads both layouts; a bad vision-only field is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeHfConfigFiles(dir, config);
    const full = await readHfFolderConfig(dir);
    equal(full.kind, "full");
    deepStrictEqual(full.config, config);
    await writeHfConfigFiles(dir, config, { visionOnly: true });
    const vision = await readHfFolderConfig(dir);
    equal(vision.kind, "vision");
    const { raw: _a, ...got } = vision.config.vision;
    const { raw: _b, ...want } = config.vision;
    deepStrictEqual(got, want);
    const path = join(dir, "config.json");
    const cfg = JSON.parse(await Deno.readTextFile(path));
    await Deno.writeTextFile(path, JSON.stringify({ ...cfg, ps3_scales: [64, 100] }));
    await rejects(
      readHfFolderConfig(dir),
      (e: Error) =>
        e instanceof SyntaxError && e.message.includes(path) && e.message.includes("ps3_scales"),
    );
    await Deno.writeTextFile(path, JSON.stringify({ ...cfg, max_select_num: "many" }));
    await rejects(
      readHfFolderConfig(dir),
      (e: Error) => e instanceof SyntaxError && e.message.includes("max_select_num"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeHfConfigFiles() for ps3-1.5k writes the reference converter's JSON files", async () => {
  const ref = JSON.parse(
    await Deno.readTextFile(new URL("../testdata/hf_json_ps3-1.5k.json", import.meta.url)),
  );
  const cfg = await loadModelConfig(
    new URL("../../configs/ps3-1.5k.yaml", import.meta.url).pathname,
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeHfConfigFiles(dir, cfg);
    const read = async (f: string) => JSON.parse(await Deno.readTextFile(join(dir, f)));
    deepStrictEqual(await read("preprocessor_config.json"), ref["preprocessor_config.json"]);
    deepStrictEqual(await read("tokenizer_config.json"), ref["tokenizer_config.json"]);
    const got = await read("config.json");
    deepStrictEqual(got, hfConfigJson(cfg));
    const want = ref["config.json"];
    deepStrictEqual(got.text_config, want.text_config);
    // The vision config holds the reference's fields and values, then the ConvNet fields the
    // YAML states explicitly (PS3VisionConfig's own defaults, so the PS3 package builds the
    // same model).
    deepStrictEqual(got.vision_config, {
      ...want.vision_config,
      highres_selection_module_hidden_dim: 512,
      highres_selection_module_out_dim: 512,
      highres_selection_module_depth: 3,
      highres_selection_module_kernel_size: 28,
      highres_selection_input_size: 1512,
    });
    deepStrictEqual(
      Object.keys(got.vision_config).slice(0, Object.keys(want.vision_config).length),
      Object.keys(want.vision_config),
    );
    deepStrictEqual(Object.keys(got), Object.keys(want));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
