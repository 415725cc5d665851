import { strictEqual, throws } from "node:assert";
import { resolveModelConfig } from "../../src/model/config.ts";

const model = (maxSelect: number) => ({
  embed_dim: 8,
  vision_cfg: {
    embed_dim: 8,
    depth: 2,
    num_heads: 2,
    mlp_ratio: 2,
    patch_size: 4,
    img_size: 16,
    ps3_scales: [16, 32, 64],
    select_based_on_layer: [0],
    max_select_num: maxSelect,
  },
  text_cfg: { context_length: 4, vocab_size: 10, width: 8, heads: 2, layers: 1 },
});

Deno.test("a selection budget above the high-res patches is refused with the count available", () => {
  // High-res scales 32 and 64 with patch 4: 8x8 + 16x16 = 64 + 256 = 320 patches.
  strictEqual(resolveModelConfig(model(320)).vision.maxSelect, 320);
  throws(
    () => resolveModelConfig(model(321)),
    /vision_cfg\.max_select_num 321 is more than the 320 high-res patches of ps3_scales \[32, 64\] with patch 4 \(64 \+ 256\); at most 320 can be selected/,
  );
  throws(() => resolveModelConfig(model(100000)), /max_select_num 100000 is more than the 320/);
});
