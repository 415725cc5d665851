import { join } from "node:path";
import { deepStrictEqual, equal, ok, rejects } from "node:assert";
import { arr, assertClose, rt } from "../harness.ts";
import {
  formatSiglipReport,
  initFromSiglip,
  siglipToHfName,
} from "../../src/checkpoint/siglip_init.ts";
import { readHfConfig } from "../../src/checkpoint/hf.ts";
import { openSafetensors, writeSafetensors } from "../../src/checkpoint/safetensors.ts";
import { numel } from "../../src/autograd/tensor.ts";
import { loadModelConfig, type ModelConfig } from "../../src/model/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { openClipName } from "../../src/optim/param_groups.ts";
import { resizeBicubicAARef } from "../../src/reference/resize.ts";
import { run as convertCli } from "../../src/cli/convert.ts";
import { Rng } from "../../src/util/rng.ts";

// A small PS3 model (the golden test's: C 16, 2 blocks, 3x3 position grid, scales 16/32/64).
const config = await readHfConfig(
  new URL("../testdata/ps3_golden/ckpt/", import.meta.url).pathname,
);
const configs = new URL("../../configs/", import.meta.url).pathname;

/** The PS3-only parameters of the golden config: what SigLIP lacks (written out by hand). */
const PS3_ONLY = [
  "vision_model.prior_prompt",
  ...["fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"].map((n) =>
    `vision_model.selection_feature_proj.${n}`
  ),
  "vision_model.pos_emb_residual.0",
  "vision_model.pos_emb_residual.1",
  ...[
    "stem.0.weight",
    "stem.0.bias",
    "stem.1.weight",
    "stem.1.bias",
    "blocks.0.weight",
    "blocks.0.conv_dw.weight",
    "blocks.0.conv_dw.bias",
    "blocks.0.norm.weight",
    "blocks.0.norm.bias",
    "blocks.0.mlp.fc1.weight",
    "blocks.0.mlp.fc1.bias",
    "blocks.0.mlp.fc2.weight",
    "blocks.0.mlp.fc2.bias",
    "out_proj.weight",
    "out_proj.bias",
  ].map((n) => `vision_model.highres_selection_feature_module.${n}`),
  "vision_model.prompt_proj_for_highres.weight",
  "vision_model.prompt_proj_for_highres.bias",
  ...["fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"].map((n) =>
    `text_model.prompt_proj.${n}`
  ),
].sort();

/** A synthetic SigLIP file: every non-PS3 parameter under the layout's name, random data. */
async function writeSiglip(
  path: string,
  cfg: ModelConfig,
  options: {
    layout: "open_clip" | "timm";
    posGrid?: number;
    textContext?: number;
    extra?: string[];
    prefix?: string;
  },
): Promise<Map<string, { file: string; data: Float32Array<ArrayBuffer>; shape: number[] }>> {
  const rng = new Rng(42);
  const ps3Only = (n: string) =>
    /prior_prompt|selection_feature_proj|pos_emb_residual|highres_selection|prompt_proj/.test(n);
  const byHf = new Map<
    string,
    { file: string; data: Float32Array<ArrayBuffer>; shape: number[] }
  >();
  const c = cfg.vision.trunk.width;
  for (const s of Ps3Clip.paramSpecs(cfg)) {
    if (ps3Only(s.name)) continue;
    if (options.layout === "timm" && !s.name.startsWith("vision_model.trunk.")) continue;
    let shape = [...s.shape];
    if (s.name === "vision_model.trunk.pos_embed" && options.posGrid) {
      shape = [1, options.posGrid ** 2, c];
    }
    if (s.name === "text_model.positional_embedding" && options.textContext) {
      shape = [options.textContext, cfg.text.width];
    }
    const file = (options.prefix ?? "") +
      (options.layout === "timm"
        ? s.name.slice("vision_model.trunk.".length)
        : openClipName(s.name));
    byHf.set(s.name, {
      file,
      shape,
      data: new Float32Array(numel(shape)).map(() => rng.uniform(-1, 1)),
    });
  }
  const tensors = [...byHf.values()].map((t) => ({
    name: t.file,
    dtype: "F32" as const,
    shape: t.shape,
    data: t.data,
  }));
  for (const name of options.extra ?? []) {
    tensors.push({ name, dtype: "F32", shape: [3], data: new Float32Array(3) });
  }
  await writeSafetensors(path, tensors);
  return byHf;
}

async function readAll(m: Ps3Clip): Promise<Map<string, Float32Array>> {
  const host = await rt.read(m.params.params.map((p) => p.value));
  return new Map(m.params.params.map((p, i) => [p.spec.name, new Float32Array(host[i]!)]));
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("siglipToHfName() renames as the reference's converter, timm names go under the trunk", () => {
  deepStrictEqual(
    [
      "visual.trunk.attn_pool.kv.weight",
      "text.transformer.resblocks.3.attn.in_proj_weight",
      "prompt_proj.fc1.weight",
      "logit_scale",
    ].map((n) => siglipToHfName(n, "open_clip")),
    [
      "vision_model.trunk.attn_pool.kv.weight",
      "text_model.transformer.resblocks.3.attn.in_proj_weight",
      "text_model.prompt_proj.fc1.weight",
      "logit_scale",
    ],
  );
  equal(
    siglipToHfName("blocks.0.mlp.fc2.bias", "timm"),
    "vision_model.trunk.blocks.0.mlp.fc2.bias",
  );
});

Deno.test("initFromSiglip() OpenCLIP layout: every tensor lands on its parameter, PS3-only ones stay fresh, exact report", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "open_clip_model.safetensors");
    const extra = ["visual.trunk.head.weight", "text.cls_emb"];
    const file = await writeSiglip(path, config, { layout: "open_clip", posGrid: 5, extra });
    const m = new Ps3Clip(config, { seed: 3 });
    const before = await readAll(m);
    const r = await initFromSiglip(m.params, path);
    equal(r.layout, "open_clip");
    deepStrictEqual([...r.fresh].sort(), PS3_ONLY);
    deepStrictEqual([...r.loaded].sort(), [...file.keys()].sort());
    deepStrictEqual([...r.unused].sort(), [...extra].sort());
    deepStrictEqual(r.resized, [
      { name: "vision_model.trunk.pos_embed", from: [1, 25, 16], to: [1, 9, 16] },
    ]);
    equal(r.loaded.length + r.fresh.length, m.params.params.length);
    const after = await readAll(m);
    for (const name of PS3_ONLY) deepStrictEqual(after.get(name), before.get(name), name);
    for (const [name, t] of file) {
      if (name === "vision_model.trunk.pos_embed") continue;
      deepStrictEqual(after.get(name), t.data, name);
    }
    // The 5x5 table resized to 3x3 as PyTorch's bicubic with antialias (float64 reference).
    const pos = file.get("vision_model.trunk.pos_embed")!;
    const want = resizeBicubicAARef(arr([1, 5, 5, 16], pos.data), [3, 3]);
    // f32 arithmetic over 4x4 taps of values in [-1, 1] against float64.
    assertClose(after.get("vision_model.trunk.pos_embed")!, want.data, {
      atol: 2e-6,
      rtol: 0,
      label: "resized pos_embed",
    });
    const text = formatSiglipReport(r);
    ok(text.startsWith(`SigLIP initialisation from "${path}" (open_clip layout): `));
    ok(text.includes(`${file.size} loaded, ${PS3_ONLY.length} kept fresh, 2 unused`));
    ok(text.includes("resized vision_model.trunk.pos_embed: [1, 25, 16] -> [1, 9, 16]"));
  });
});

Deno.test("initFromSiglip() timm layout loads the trunk and MAP head only; a module. prefix is dropped", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "model.safetensors");
    const file = await writeSiglip(path, config, { layout: "timm" });
    const m = new Ps3Clip(config, { seed: 3 });
    const r = await initFromSiglip(m.params, path);
    equal(r.layout, "timm");
    deepStrictEqual([...r.loaded].sort(), [...file.keys()].sort());
    ok(r.loaded.includes("vision_model.trunk.attn_pool.latent"));
    const fresh = m.params.params.map((p) => p.spec.name).filter((n) => !file.has(n)).sort();
    deepStrictEqual([...r.fresh].sort(), fresh);
    ok(fresh.includes("text_model.token_embedding.weight") && fresh.includes("logit_scale"));
    const after = await readAll(m);
    for (const [name, t] of file) deepStrictEqual(after.get(name), t.data, name);

    const ddp = join(dir, "ddp.safetensors");
    const file2 = await writeSiglip(ddp, config, { layout: "open_clip", prefix: "module." });
    const r2 = await initFromSiglip(new Ps3Clip(config).params, ddp);
    deepStrictEqual([r2.layout, r2.loaded.length, r2.unused], ["open_clip", file2.size, []]);
  });
});

Deno.test("initFromSiglip() refuses a text position table of another length and unknown layouts", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "a.safetensors");
    await writeSiglip(path, config, { layout: "open_clip", textContext: 8 });
    const m = new Ps3Clip(config, { seed: 3 });
    const before = await readAll(m);
    await rejects(
      initFromSiglip(m.params, path),
      (e: Error) =>
        e instanceof RangeError &&
        e.message.includes(
          '"text.positional_embedding" is [8, 16], "text_model.positional_embedding" [6, 16]',
        ),
    );
    deepStrictEqual(await readAll(m), before);
    const hf = join(dir, "hf.safetensors");
    await writeSafetensors(hf, [{
      name: "vision_model.embeddings.patch_embedding.weight",
      dtype: "F32",
      shape: [2],
      data: new Float32Array(2),
    }]);
    await rejects(
      initFromSiglip(m.params, hf),
      (e: Error) => e instanceof SyntaxError && e.message.includes("neither the OpenCLIP layout"),
    );
  });
});

Deno.test("fresh PS3-only parameters follow the reference's initialisation (ps3-tiny)", async () => {
  const tiny = await loadModelConfig(join(configs, "ps3-tiny.yaml"));
  const vals = new Map<string, Float32Array>();
  for (const s of Ps3Clip.paramSpecs(tiny, { seed: 5 })) {
    const a = new Float32Array(numel(s.shape));
    s.init(a);
    vals.set(s.name, a);
  }
  const get = (n: string) => vals.get(n)!;
  const all = (n: string, v: number) => ok(get(n).every((x) => x === Math.fround(v)), n);
  for (const n of ["vision_model.pos_emb_residual.0", "vision_model.pos_emb_residual.1"]) {
    all(n, 0);
  }
  all("vision_model.highres_selection_feature_module.blocks.0.weight", 1e-6);
  for (
    const n of [
      "vision_model.selection_feature_proj.norm",
      "vision_model.highres_selection_feature_module.stem.1",
      "vision_model.highres_selection_feature_module.blocks.0.norm",
      "text_model.prompt_proj.norm",
    ]
  ) {
    all(`${n}.weight`, 1);
    all(`${n}.bias`, 0);
  }
  // PyTorch's Linear / Conv default: weight and bias uniform in +-1/sqrt(fan_in).
  const hs = "vision_model.highres_selection_feature_module";
  const fanIn: [string, number][] = [
    ["vision_model.selection_feature_proj.fc1", 4 * 64],
    ["vision_model.selection_feature_proj.fc2", 4 * 64],
    [`${hs}.stem.0`, 3 * 16 * 16],
    [`${hs}.blocks.0.conv_dw`, 7 * 7],
    [`${hs}.blocks.0.mlp.fc1`, 32],
    [`${hs}.blocks.0.mlp.fc2`, 4 * 32],
    [`${hs}.out_proj`, 32],
    ["vision_model.prompt_proj_for_highres", 64],
    ["text_model.prompt_proj.fc1", 64],
    ["text_model.prompt_proj.fc2", 64],
  ];
  for (const [n, fan] of fanIn) {
    const bound = 1 / Math.sqrt(fan);
    for (const part of ["weight", "bias"]) {
      const a = get(`${n}.${part}`);
      const max = a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      ok(max <= bound, `${n}.${part}: max |x| ${max} > bound ${bound}`);
      // 32 or more uniform draws: the largest is within 20% of the bound (p > 0.999).
      ok(max > 0.8 * bound, `${n}.${part}: max |x| ${max} far below bound ${bound}`);
    }
  }
  // prior_prompt ~ N(0, 1) (torch.randn), 64 draws.
  const p = get("vision_model.prior_prompt");
  const mean = p.reduce((s, x) => s + x, 0) / p.length;
  const sd = Math.sqrt(p.reduce((s, x) => s + (x - mean) ** 2, 0) / p.length);
  ok(Math.abs(mean) < 0.5 && sd > 0.7 && sd < 1.3, `prior_prompt mean ${mean}, sd ${sd}`);
});

Deno.test("ps3 convert --siglip writes an HF folder whose tensors are the SigLIP file's", async () => {
  await withTemp(async (dir) => {
    const tiny = await loadModelConfig(join(configs, "ps3-tiny.yaml"));
    const path = join(dir, "siglip.safetensors");
    const file = await writeSiglip(path, tiny, { layout: "open_clip" });
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void lines.push(a.join(" "));
    let code: number;
    try {
      code = await convertCli([
        "--config",
        join(configs, "ps3-tiny.yaml"),
        "--siglip",
        path,
        "--out",
        join(dir, "hf"),
      ]);
    } finally {
      console.log = log;
    }
    equal(code, 0);
    ok(lines[0]!.includes(`${file.size} loaded`), lines[0]);
    using out = await openSafetensors(join(dir, "hf", "model.safetensors"));
    equal(out.names().length, Ps3Clip.paramSpecs(tiny).length);
    for (const [name, t] of file) deepStrictEqual(await out.read(name), t.data, name);
  });
});
