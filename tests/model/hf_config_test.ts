// Reading the config.json files the PS3 package and the Hub write: metadata accepted, off
// values of other variants accepted, values that change the computation refused, anything
// else warned about (tests/testdata/ps3_package/variants, made by make_variants.py).
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert";
import { join } from "node:path";
import { readHfFolderConfig } from "../../src/checkpoint/hf.ts";
import { listHfKeys } from "../../src/checkpoint/convert.ts";
import { loadModelConfig, type ModelConfig } from "../../src/model/config.ts";
import { normalizeHfVisionConfig } from "../../src/model/hf_config.ts";
import { withTmp } from "../data/helpers.ts";

const variants = new URL("../testdata/ps3_package/variants/", import.meta.url).pathname;
const configs = new URL("../../configs/", import.meta.url).pathname;

/** Runs `fn` with console.warn captured. */
async function captureWarnings<T>(fn: () => Promise<T>): Promise<{ value: T; warnings: string[] }> {
  const warnings: string[] = [];
  const orig = console.warn;
  console.warn = (...a: unknown[]) => warnings.push(a.join(" "));
  try {
    return { value: await fn(), warnings };
  } finally {
    console.warn = orig;
  }
}

async function fullConfig(folder: string): Promise<ModelConfig> {
  const hf = await readHfFolderConfig(folder);
  ok(hf.kind === "full");
  return hf.config;
}

/** Writes a variant's config.json, edited, into a temporary folder and reads it. */
async function readEdited(
  variant: string,
  edit: (cfg: Record<string, Record<string, unknown>>) => void,
): Promise<{ value: ModelConfig; warnings: string[] }> {
  const cfg = JSON.parse(await Deno.readTextFile(join(variants, variant, "config.json")));
  edit(cfg);
  let result: { value: ModelConfig; warnings: string[] } | undefined;
  await withTmp(async (dir) => {
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(cfg));
    result = await captureWarnings(() => fullConfig(dir));
  });
  return result!;
}

for (const name of ["PS3-1.5K-SigLIP", "PS3-4K-SigLIP", "PS3-1.5K-SigLIP2", "PS3-4K-SigLIP2"]) {
  Deno.test(`the PS3 package's config.json of ${name} loads with no warnings`, async () => {
    const { value: c, warnings } = await captureWarnings(() => fullConfig(join(variants, name)));
    assertEquals(warnings, []);
    const v2 = name.endsWith("SigLIP2");
    assertEquals(
      c.vision.modelName,
      v2 ? "vit_so400m_patch14_siglip_378" : "vit_so400m_patch14_siglip_384",
    );
    assertEquals(c.vision.trunk, {
      width: 1152,
      depth: 27,
      heads: 16,
      mlpHidden: 4304,
      patch: 14,
      posGrid: 27,
      eps: 1e-6,
      act: "gelu",
    });
    assertEquals(c.vision.scales.length, name.startsWith("PS3-4K") ? 4 : 3);
    assertEquals(c.text.vocab, v2 ? 256000 : 32000);
    assertEquals(c.text.act, v2 ? "gelu_tanh" : "gelu");
  });
}

for (
  const [name, yaml, count] of [
    ["PS3-1.5K-SigLIP2", "ps3-1.5k-siglip2.yaml", 722],
    ["PS3-4K-SigLIP2", "ps3-4k-siglip2.yaml", 723],
  ] as const
) {
  Deno.test(`${name}: the names and shapes equal the PS3 package's, from config.json and ${yaml}`, async () => {
    const want = (await Deno.readTextFile(join(variants, name, "keys.txt"))).trimEnd().split("\n");
    assertEquals(want.length, count);
    const fromHf = await fullConfig(join(variants, name));
    const fromYaml = await loadModelConfig(join(configs, yaml));
    assertEquals(fromYaml.vision.trunk, fromHf.vision.trunk);
    assertEquals(fromYaml.text.act, "gelu_tanh");
    for (const config of [fromHf, fromYaml]) {
      const got = listHfKeys(config);
      // The package's PS3Model has no logit scale and bias (the reference converter adds them).
      assertEquals(got.slice(0, 2), ["logit_scale [] float32", "logit_bias [] float32"]);
      assertEquals([...got.slice(2)].sort(), [...want].sort());
    }
  });
}

Deno.test("transformers 4.x metadata (torch_dtype, _name_or_path, generic PretrainedConfig fields) is accepted silently", async () => {
  const { value, warnings } = await readEdited("PS3-1.5K-SigLIP2", (cfg) => {
    for (const sub of [cfg.vision_config!, cfg.text_config!]) {
      delete sub.dtype;
      Object.assign(sub, {
        torch_dtype: "bfloat16",
        _name_or_path: "nvidia/PS3-1.5K-SigLIP2",
        return_dict: true,
        id2label: { "0": "LABEL_0" },
        tie_word_embeddings: true,
        transformers_version: "4.46.0",
      });
    }
  });
  assertEquals(warnings, []);
  assertEquals(value.vision.trunk.width, 1152);
});

Deno.test("unknown fields are dropped with one warning naming them", async () => {
  const { value, warnings } = await readEdited("PS3-1.5K-SigLIP", (cfg) => {
    cfg.vision_config!.some_new_field = 3;
    cfg.text_config!.another = "x";
  });
  assertEquals(value.text.vocab, 32000);
  assertEquals(warnings.length, 2);
  ok(warnings.some((w) => w.includes("(vision_config.some_new_field)")), String(warnings));
  ok(warnings.some((w) => w.includes("(text_config.another)")), String(warnings));
});

for (
  const [what, edit, message] of [
    ["radio: true", (c: Record<string, Record<string, unknown>>) => {
      c.vision_config!.radio = true;
    }, /vision_config\.radio is true; ps3 accepts false \(a C-RADIO trunk is not supported\)/],
    ["a RADIO adapter", (c: Record<string, Record<string, unknown>>) => {
      c.vision_config!.radio_adapter_mlp_version = "v2";
    }, /vision_config\.radio_adapter_mlp_version is "v2"; ps3 accepts null/],
    ["drop_path 0.1", (c: Record<string, Record<string, unknown>>) => {
      c.vision_config!.drop_path = 0.1;
    }, /vision_config\.drop_path is 0\.1/],
    ["final_ln_after_pool: true", (c: Record<string, Record<string, unknown>>) => {
      c.text_config!.final_ln_after_pool = true;
    }, /text_config\.final_ln_after_pool is true/],
    ["pool: avg (the package's default)", (c: Record<string, Record<string, unknown>>) => {
      c.vision_config!.pool = "avg";
    }, /pool/],
    ["act_kwargs approximate: sigmoid", (c: Record<string, Record<string, unknown>>) => {
      c.text_config!.act_kwargs = { approximate: "sigmoid" };
    }, /text_cfg\.act_kwargs\.approximate/],
  ] as const
) {
  Deno.test(`a config.json with ${what} is refused, naming the field`, async () => {
    await rejects(readEdited("PS3-1.5K-SigLIP2", edit), (e: Error) => {
      ok(e instanceof SyntaxError, String(e));
      ok(message.test(e.message), e.message);
      ok(e.message.includes("config.json"), e.message);
      return true;
    });
  });
}

Deno.test("img_size null: the trunk name decides; a given img_size changes the position grid", async () => {
  const { value } = await readEdited("PS3-1.5K-SigLIP2", (cfg) => {
    cfg.vision_config!.img_size = 756;
  });
  assertEquals(value.vision.trunk.posGrid, 54);
  const { value: nul } = await readEdited("PS3-1.5K-SigLIP2", (cfg) => {
    cfg.vision_config!.img_size = null;
  });
  assertEquals(nul.vision.trunk.posGrid, 27);
});

Deno.test("the package's placeholder patch_size 14 yields to a patch-16 trunk, with a warning", () => {
  const warnings: string[] = [];
  const out = normalizeHfVisionConfig(
    { model_name: "vit_so400m_patch16_siglip_384", patch_size: 14, ps3_scales: [384, 768] },
    "config.json",
    { warn: (m) => warnings.push(m) },
  );
  assertEquals(out.patch_size, undefined);
  assertEquals(warnings.length, 1);
  ok(warnings[0]!.includes("patch_size 14 ignored"), warnings[0]);
  // Unknown trunk names keep an explicit patch size.
  const kept = normalizeHfVisionConfig({ model_name: "my_vit", patch_size: 14 }, "c", {
    warn: () => {},
  });
  assertEquals(kept.patch_size, 14);
});
