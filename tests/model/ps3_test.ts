import { deepStrictEqual, ok, strictEqual } from "node:assert";
import { initGpu } from "../../src/gpu/runtime.ts";
import { keep, tidy } from "../../src/autograd/scope.ts";
import { backward, noGrad } from "../../src/autograd/tape.ts";
import { tensor } from "../../src/ops/creation.ts";
import { type ModelConfig, resolveModelConfig } from "../../src/model/config.ts";
import { Ps3Clip, type TrainBatch, type TrainOptions } from "../../src/model/ps3_clip.ts";
import { encodeImage } from "../../src/model/ps3_inference.ts";
import { ps3Loss } from "../../src/loss/ps3_loss.ts";
import { Rng } from "../../src/util/rng.ts";

const rt = await initGpu();

/** A small PS3 with the given scales (patch 8, width 16, 2 blocks, ConvNet, 1-block text). */
function config(scales: number[], maxSelect: number): ModelConfig {
  const top = scales[scales.length - 1]!;
  return resolveModelConfig({
    embed_dim: 16,
    vision_cfg: {
      embed_dim: 16,
      depth: 2,
      num_heads: 2,
      mlp_ratio: 2,
      patch_size: 8,
      img_size: 24,
      ps3_scales: scales,
      select_based_on_layer: [0, 1],
      max_select_num: maxSelect,
      highres_selection_module_hidden_dim: 8,
      highres_selection_module_out_dim: 8,
      highres_selection_module_depth: 1,
      highres_selection_module_kernel_size: 8,
      highres_selection_input_size: top,
    },
    text_cfg: { context_length: 6, vocab_size: 20, width: 16, heads: 2, layers: 1, mlp_ratio: 2 },
  });
}

const OPTS: TrainOptions = {
  selectWithGt: true,
  poolGtOnly: true,
  useGlobalCaption: true,
  checkpoint: false,
};
const WEIGHTS = { weights: { prior: 1, posterior: 1 } };

/** A batch of squares of side s with one box each (rows y0..y1, cols x0..x1) and flags. */
function batch(s: number, boxes: number[][], isGlobal: number[], seed = 1): TrainBatch {
  const rng = new Rng(seed);
  const b = boxes.length;
  const gt = new Float32Array(b * s * s);
  boxes.forEach(([y0, y1, x0, x1], i) => {
    for (let y = y0!; y < y1!; y++) for (let x = x0!; x < x1!; x++) gt[i * s * s + y * s + x] = 1;
  });
  return {
    images: tensor(new Float32Array(b * 3 * s * s).map(() => rng.uniform(-1, 1)), [b, 3, s, s]),
    tokens: tensor(new Int32Array(b * 6).map(() => rng.int(20)), [b, 6], "i32"),
    gtMaps: tensor(gt, [b, s, s]),
    isGlobal: tensor(Float32Array.from(isGlobal), [b, 1]),
    isGlobalHost: isGlobal,
  };
}

for (const scales of [[16, 32, 64], [16, 32, 64, 128]]) {
  Deno.test(`Ps3Clip.forwardTrain() shapes and token counts with ${scales.length - 1} high-res scales`, () => {
    const cfg = config(scales, 40);
    const model = new Ps3Clip(cfg, { seed: 2 });
    const top = scales[scales.length - 1]!;
    const { shapes, counts } = tidy(() => {
      const data = batch(top, [[0, 8, 0, 8], [8, 24, 16, 40]], [0, 0]);
      const out = model.forwardTrain(data, OPTS);
      const loss = ps3Loss(out, data, WEIGHTS);
      return {
        shapes: [out.imageFeatures.shape, out.textFeatures.shape, loss.total.shape],
        counts: out.vision.selected.map((t) => t.shape[1]!),
        probs: out.vision.priorProbs.map((p) => p.shape),
      };
    });
    deepStrictEqual(shapes, [[2, 16], [2, 16], []]);
    deepStrictEqual(counts, cfg.vision.budgets);
    strictEqual(counts.reduce((a, b) => a + b, 0), 40);
  });
}

Deno.test("forwardTrain() always selects the ground-truth patches (select_w_gt)", async () => {
  const model = new Ps3Clip(config([16, 32, 64], 40), { seed: 3 });
  // Scale-1 grid is 4x4 (16 px cells): rows 1..2 and column 3 are forced, 2 cells; at scale 2
  // (8x8) the nearest resize forces 8 cells.
  const sel = tidy(() => {
    const out = model.forwardTrain(batch(64, [[16, 48, 50, 60]], [0]), OPTS);
    return out.vision.selected.map((t) => keep(t));
  });
  const [s1, s2] = await rt.read(sel);
  const one = [...new Int32Array(s1!)], two = [...new Int32Array(s2!)];
  for (const cell of [7, 11]) ok(one.includes(cell), `scale 1 cell ${cell} in [${one}]`);
  for (const cell of [22, 23, 30, 31, 38, 39, 46, 47]) {
    ok(two.includes(cell), `scale 2 cell ${cell} in [${two}]`);
  }
});

Deno.test("forwardTrain() gives a global caption the low-res pooled feature", async () => {
  const model = new Ps3Clip(config([16, 32, 64], 24), { seed: 4 });
  const [pooled, low] = tidy(() => {
    const out = model.forwardTrain(batch(64, [[0, 20, 0, 20], [30, 50, 10, 40]], [1, 0]), OPTS);
    return [keep(out.vision.pooled), keep(out.vision.lowResPooled)];
  });
  const [p, l] = (await rt.read([pooled!, low!])).map((b) => new Float32Array(b));
  deepStrictEqual([...p!.subarray(0, 16)], [...l!.subarray(0, 16)]);
  ok(p!.subarray(16).some((v, i) => v !== l![16 + i]), "the local caption uses the high-res pool");
});

Deno.test("encodeImage() token counts for a non-square image follow the reference's sizes", () => {
  const cfg = config([16, 32, 64], 10); // budgets [2, 8]
  const model = new Ps3Clip(cfg, { seed: 5 });
  // 40 x 88 (h < w): scale 1 is [16, 32] (short side int(16/88*40)=7 -> 1 patch -> 8 px x2),
  // grids [2, 4]; scale 2 is [32, 64], grid [4, 8]: 8 + 32 = 40 candidates, 4 rounds of 10.
  const rng = new Rng(6);
  const counts = tidy(() =>
    noGrad(() => {
      const img = tensor(new Float32Array(3 * 40 * 88).map(() => rng.uniform(-1, 1)), [
        1,
        3,
        40,
        88,
      ]);
      const one = encodeImage(model.vision, img, { numLookClose: { rounds: 1 }, prompt: null });
      const all = encodeImage(model.vision, img, { numLookClose: { rounds: "all" }, prompt: null });
      const toks = encodeImage(model.vision, img, { numLookClose: { tokens: 25 }, prompt: null });
      return [one, all, toks].map((o) => ({
        n: o.lastHiddenState.shape[1],
        rounds: o.rounds,
        counts: o.tokenCounts,
        grids: o.featureSizes,
      }));
    })
  );
  deepStrictEqual(counts[0], {
    n: 4 + 10,
    rounds: 1,
    counts: [2, 8],
    grids: [[2, 2], [2, 4], [4, 8]],
  });
  deepStrictEqual(counts[1]!.n, 4 + 40);
  deepStrictEqual(counts[1]!.rounds, 4);
  // 25 tokens: rounds of 10, 10 and a last one of 5 split [1, 4].
  deepStrictEqual([counts[2]!.n, counts[2]!.rounds, counts[2]!.counts], [4 + 25, 3, [5, 20]]);
});

Deno.test("the whole training loss has the gradient its finite differences give", async () => {
  // Directional derivatives in float32 with the selection held fixed (top-k is piecewise
  // constant): for each parameter family, (L(θ + h d) - L(θ - h d)) / 2h against g · d.
  const model = new Ps3Clip(config([16, 32, 64], 24), { seed: 7 });
  const data = batch(64, [[0, 30, 10, 40], [20, 50, 30, 60], [0, 64, 0, 64]], [0, 0, 1], 8);
  model.params.zeroGrad();
  const selected = tidy(() => {
    const out = model.forwardTrain(data, OPTS);
    backward(ps3Loss(out, data, WEIGHTS).total);
    return out.vision.selected.map((t) => keep(t));
  });
  const loss = (): Promise<number> => {
    const t = tidy(() =>
      noGrad(() => ps3Loss(model.forwardTrain(data, OPTS, { selected }), data, WEIGHTS).total)
    );
    return t.read().then((v) => v[0]!);
  };
  const families = [
    "vision_model.trunk.blocks.",
    "vision_model.trunk.patch_embed",
    "vision_model.trunk.pos_embed",
    "vision_model.trunk.attn_pool",
    "vision_model.selection_feature_proj",
    "vision_model.highres_selection_feature_module",
    "vision_model.prompt_proj_for_highres",
    "vision_model.pos_emb_residual",
    "vision_model.prior_prompt",
    "text_model.transformer",
    "text_model.prompt_proj",
    "logit_",
  ];
  const rng = new Rng(9);
  const base = await loss();
  for (const fam of families) {
    const params = model.params.params.filter((p) => p.spec.name.startsWith(fam));
    ok(params.length > 0, fam);
    const orig = (await rt.read(params.map((p) => p.value))).map((b) => new Float32Array(b));
    const grads = (await rt.read(params.map((p) => p.grad))).map((b) => new Float32Array(b));
    const dirs = orig.map((o) => o.map(() => rng.normal()));
    let gd = 0;
    dirs.forEach((d, i) => d.forEach((v, j) => gd += v * grads[i]![j]!));
    // Step so the loss moves by ~1e-3: far above float32 rounding of the loss (~1e-6), small
    // enough for the curvature and not to cross the kinks of max pooling and clamping often.
    const h = Math.min(1e-2, 1e-3 / Math.max(Math.abs(gd), 1e-6));
    const set = (sign: number) =>
      params.forEach((p, i) =>
        rt.upload(p.value, orig[i]!.map((v, j) => v + sign * h * dirs[i]![j]!))
      );
    set(1);
    const up = await loss();
    set(-1);
    const down = await loss();
    set(0);
    const fd = (up - down) / (2 * h);
    // Rounding of the float32 losses (4 ulp of |L|) divided by 2h, plus 1% for curvature.
    const noise = 4 * Math.abs(base) * 1.2e-7 / (2 * h);
    ok(
      Math.abs(fd - gd) <= 1e-2 * Math.abs(gd) + noise,
      `${fam}: finite difference ${fd}, gradient ${gd}, h ${h}`,
    );
  }
  for (const t of selected) t.dispose();
});
