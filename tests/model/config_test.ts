import { deepStrictEqual, throws } from "node:assert";
import { loadModelConfig, resolveModelConfig, splitBudget } from "../../src/model/config.ts";
import { featureSize, imageSize, scaleBudgets, selectCounts } from "../../src/model/scales.ts";
import { parse as parseYaml } from "npm:yaml@2.9.1";

Deno.test("splitBudget() reproduces the reference: 1.5K 512+2048, 4K 85+341+2134", () => {
  deepStrictEqual(splitBudget([378, 756, 1512], 2560), [512, 2048]);
  deepStrictEqual(splitBudget([378, 756, 1512, 3780], 2560), [85, 341, 2134]);
});

Deno.test("loadModelConfig() reads the shipped configs with the real sizes", async () => {
  const c15 = await loadModelConfig("configs/ps3-1.5k.yaml");
  deepStrictEqual(c15.vision.trunk, {
    width: 1152,
    depth: 27,
    heads: 16,
    mlpHidden: 4304,
    patch: 14,
    posGrid: 27,
    eps: 1e-6,
    act: "gelu",
  });
  deepStrictEqual(c15.vision.budgets, [512, 2048]);
  deepStrictEqual([c15.text.mlpHidden, c15.text.context, c15.text.vocab], [4304, 64, 32000]);
  const c4 = await loadModelConfig("configs/ps3-4k.yaml");
  deepStrictEqual(c4.vision.budgets, [85, 341, 2134]);
  deepStrictEqual(c4.vision.conv, { hidden: 512, out: 512, depth: 3, kernel: 28, inputSize: 1512 });
  const tiny = await loadModelConfig("configs/ps3-tiny.yaml");
  deepStrictEqual(tiny.vision.budgets, [19, 77]);
});

Deno.test("timm's gelu_tanh trunks (SigLIP2 patch-16 shapes) use tanh GELU in their MLPs and MAP pool", async () => {
  const c = await loadModelConfig("configs/ps3-1.5k-siglip2.yaml");
  deepStrictEqual([c.vision.trunk.act, c.vision.poolAct, c.text.act], [
    "gelu",
    "gelu",
    "gelu_tanh",
  ]);
  for (
    const [name, act] of [["vit_so400m_patch16_siglip_384", "gelu_tanh"], [
      "vit_so400m_patch14_siglip_378",
      "gelu",
    ]]
  ) {
    const raw = parseYaml(await Deno.readTextFile("configs/ps3-1.5k-siglip2.yaml")) as {
      model: { vision_cfg: Record<string, unknown> };
    };
    raw.model.vision_cfg.model_name = name;
    raw.model.vision_cfg.ps3_scales = [448, 896]; // a multiple of 14 and 16
    const r = resolveModelConfig(raw.model);
    deepStrictEqual([r.vision.trunk.act, r.vision.poolAct], [act, act]);
  }
});

Deno.test("imageSize() keeps the aspect ratio at high-res scales like the reference", () => {
  const s = [378, 756, 1512];
  deepStrictEqual(imageSize(s, 14, [1500, 2250], 0), [378, 378]);
  // w > h: short side int(378 / 2250 * 1500) = 252 -> 18 patches -> 18 * 14 * 2 = 504
  deepStrictEqual(imageSize(s, 14, [1500, 2250], 1), [504, 756]);
  deepStrictEqual(imageSize(s, 14, [1500, 2250], 2), [1008, 1512]);
  deepStrictEqual(featureSize(s, 14, [1500, 2250], 2), [72, 108]);
  // h >= w, and a tiny sliver keeps at least one patch
  deepStrictEqual(imageSize(s, 14, [2000, 10], 1), [756, 28]);
  deepStrictEqual(imageSize(s, 14, [1512, 1512], 2), [1512, 1512]);
});

Deno.test("selectCounts() spills a scale's unused budget to the next scale", () => {
  deepStrictEqual(selectCounts([512, 2048], [2916, 11664]), [512, 2048]);
  deepStrictEqual(selectCounts([512, 2048], [300, 5000]), [300, 2260]);
  deepStrictEqual(selectCounts([85, 341, 2134], [10, 100, 50000]), [10, 100, 2450]);
  deepStrictEqual(scaleBudgets([512, 2048], 1000), [200, 800]);
  deepStrictEqual(scaleBudgets([85, 341, 2134], 100), [3, 13, 84]);
});

Deno.test("resolveModelConfig() names unknown keys and bad values with their paths", () => {
  const base = {
    embed_dim: 8,
    vision_cfg: {
      embed_dim: 8,
      depth: 2,
      num_heads: 2,
      mlp_ratio: 2,
      patch_size: 4,
      img_size: 16,
      ps3_scales: [16, 32],
      select_based_on_layer: [0],
      max_select_num: 4,
    },
    text_cfg: { context_length: 4, vocab_size: 10, width: 8, heads: 2, layers: 1 },
  };
  resolveModelConfig(base);
  throws(
    () => resolveModelConfig({ ...base, vision_cfg: { ...base.vision_cfg, bogus: 1 } }),
    /vision_cfg\.bogus: unknown key/,
  );
  throws(
    () => resolveModelConfig({ ...base, vision_cfg: { ...base.vision_cfg, ps3_scales: [16, 40] } }),
    /not a multiple of the lowest scale/,
  );
  throws(
    () =>
      resolveModelConfig({
        ...base,
        vision_cfg: { ...base.vision_cfg, select_based_on_layer: [2] },
      }),
    /block 2 >= depth 2/,
  );
  throws(
    () => resolveModelConfig({ ...base, text_cfg: { ...base.text_cfg, width: -1 } }),
    /text_cfg\.width/,
  );
});
