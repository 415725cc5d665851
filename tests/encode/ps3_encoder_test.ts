import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { basename, join } from "node:path";
import { gpu, initGpu } from "../../src/gpu/runtime.ts";
import { bucketSize } from "../../src/gpu/buffer_pool.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { noGrad } from "../../src/autograd/tape.ts";
import { tensor } from "../../src/ops/creation.ts";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";
import { saveCheckpoint } from "../../src/checkpoint/train_checkpoint.ts";
import { decodeImage, type RgbImage } from "../../src/data/formats/image.ts";
import { SampleError } from "../../src/data/formats/sample_error.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { Ps3VisionModel } from "../../src/model/ps3_vision_model.ts";
import { writeHfFolder } from "../../src/checkpoint/hf.ts";
import { resolveModelConfig } from "../../src/model/config.ts";
import { encodeImage, type LookClose } from "../../src/model/ps3_inference.ts";
import { preprocessImage } from "../../src/encode/preprocess.ts";
import {
  type Ps3EncodeOptions,
  Ps3Encoder,
  type Ps3Encoding,
  writeEncoding,
} from "../../src/encode/ps3_encoder.ts";
import { rejectsWith, withTmp } from "../data/helpers.ts";
import { assertThrows, encodePng as encodeAnyPng } from "../data/sample_fixtures.ts";
import { Tokenizer } from "../../src/data/formats/tokenizer.ts";
import { unigramTokenizerJson } from "../../src/data/tools/synth.ts";
import { DOCK_SMALL, greyCorrelation, tinyModelConfig, writeTinyModel } from "./helpers.ts";

await initGpu();
const root = await Deno.makeTempDir({ prefix: "ps3_encode_" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
const CONV = join(root, "tiny");
const NOCONV = join(root, "tiny_noconv");
const convModel = await writeTinyModel(CONV, { conv: true, seed: 3 });
await writeTinyModel(NOCONV, { conv: false, seed: 5 });
const encoder = await Ps3Encoder.load(CONV);
const DOCK_BYTES = Deno.readFileSync(DOCK_SMALL);
const DOCK = decodeImage(DOCK_BYTES, { file: "dock", maxPixels: 1e6 }).image;

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

Deno.test("encode() + writeEncoding() write every file: features, pictures per scale, summary", async () => {
  const enc = await encoder.encode(DOCK_BYTES, { file: "dock_300x200.jpg" });
  await withTmp(async (dir) => {
    const files = await writeEncoding(join(dir, "out"), enc);
    assertEquals(files.map((f) => basename(f)), [
      "features.safetensors",
      "selection_prob_scale_1.png",
      "selection_prob_scale_2.png",
      "selected_patches_scale_1.png",
      "selected_patches_scale_2.png",
      "summary.json",
    ]);
    const names = [];
    for await (const e of Deno.readDir(join(dir, "out"))) names.push(e.name);
    assertEquals(names.sort(), files.map((f) => basename(f)).sort());
    const r = await openSafetensors(files[0]!);
    const table = r.names().sort().map((n) => [n, r.entry(n).dtype, [...r.entry(n).shape]]);
    r.close();
    // Square input 128: grids 4x4, 8x8, 16x16; one round takes 4 + 16 patches.
    assertEquals(table, [
      ["feature_maps.0", "F32", [1, 32, 4, 4]],
      ["feature_maps.1", "F32", [1, 32, 8, 8]],
      ["feature_maps.2", "F32", [1, 32, 16, 16]],
      ["last_hidden_state", "F32", [1, 16 + 4 + 16, 32]],
      ["selection_maps.1", "U8", [1, 8, 8]],
      ["selection_maps.2", "U8", [1, 16, 16]],
      ["selection_probs.1", "F32", [1, 8, 8]],
      ["selection_probs.2", "F32", [1, 16, 16]],
    ]);
    const summary = JSON.parse(await Deno.readTextFile(files[5]!));
    assertEquals(summary, JSON.parse(JSON.stringify(enc.summary)));
  });
  const s = enc.summary;
  assertEquals([s.imageSize, s.inputSize, s.selection, s.lookClose, s.rounds, s.tokens], [
    [200, 300],
    [128, 128],
    "bottom-up",
    "1",
    1,
    36,
  ]);
  assertEquals(s.scales.map((c) => [c.scale, c.grid, c.tokens]), [
    [32, [4, 4], 16],
    [64, [8, 8], 4],
    [128, [16, 16], 16],
  ]);
  assertEquals(s.preprocessing.mean, [0.5, 0.5, 0.5]);
  assert(s.adapter.length > 0 && s.ms.model > 0);
});

Deno.test("encode() pictures decode at the photo's size and show the photo under the overlay", async () => {
  const enc = await encoder.encode(DOCK_BYTES, { file: "dock", numLookClose: { rounds: 2 } });
  const decode = (png: Uint8Array) => decodeImage(png, { file: "p.png", maxPixels: 1e6 }).image;
  for (const png of enc.heatmapPngs) {
    const pic = decode(png);
    assertEquals([pic.width, pic.height], [300, 200]);
    assert(greyCorrelation(pic, DOCK) > 0.8, "the photo shows under the heat map");
  }
  enc.selectionPngs.forEach((png, i) => {
    const pic = decode(png);
    const map = enc.selectionMaps[i]!.data;
    const [gh, gw] = enc.summary.scales[i + 1]!.grid;
    // Pixels of encoded patches show the photo or the outline; the others its dimmed copy.
    let inSelected = 0, wrong = 0;
    for (let y = 0; y < 200; y++) {
      for (let x = 0; x < 300; x++) {
        const p = 3 * (y * 300 + x);
        const px = [0, 1, 2].map((c) => pic.data[p + c]!);
        const photo = [0, 1, 2].map((c) => DOCK.data[p + c]!);
        const on = map[Math.floor((y + 0.5) * gh / 200) * gw + Math.floor((x + 0.5) * gw / 300)];
        const want = on ? [photo, [255, 220, 0]] : [photo.map((v) => Math.round(v * 0.3))];
        if (!want.some((w) => w.every((v, c) => v === px[c]))) wrong++;
        if (on) inSelected++;
      }
    }
    assertEquals(wrong, 0);
    // Two rounds encode 8 of 64 and 32 of 256 patches: an eighth of the picture.
    assert(Math.abs(inSelected / 60000 - 1 / 8) < 0.01, `scale ${i + 1}: ${inSelected}`);
    assert(greyCorrelation(pic, DOCK) > 0.5, "the photo shows in the selection picture");
  });
});

Deno.test("encode() returns consistent arrays: raster-order tokens are the feature maps' selected cells", async () => {
  const enc = await encoder.encode(DOCK, { numLookClose: { tokens: 50 }, resize: "keep-aspect" });
  const c = 32;
  const h = enc.lastHiddenState;
  let row = 0;
  enc.featureMaps.forEach((fm, scale) => {
    const [, , gh, gw] = fm.shape as [number, number, number, number];
    const sel = scale === 0 ? null : enc.selectionMaps[scale - 1]!.data;
    for (let cell = 0; cell < gh * gw; cell++) {
      const at = (ch: number) => fm.data[ch * gh * gw + cell]!;
      if (sel && !sel[cell]) {
        assert(Array.from({ length: c }, (_, ch) => at(ch)).every((v) => v === 0));
        continue;
      }
      for (let ch = 0; ch < c; ch++) {
        assert(at(ch) === h.data[row * c + ch], `scale ${scale} cell ${cell}`);
      }
      row++;
    }
  });
  assertEquals(row, h.shape[1]);
  enc.selectionMaps.forEach((m, i) => {
    assertEquals(m.data.reduce((a, b) => a + b, 0), enc.summary.scales[i + 1]!.tokens);
  });
});

/** Grey and transparent PNGs, made here. */
function greyPng(w: number, h: number): Uint8Array {
  return encodeAnyPng({
    width: w,
    height: h,
    colorType: 0,
    depth: 8,
    samples: Array.from({ length: w * h }, (_, i) => (i * 53) % 256),
  });
}
const rgbaPng = (w: number, h: number) =>
  encodeAnyPng({
    width: w,
    height: h,
    colorType: 6,
    depth: 8,
    samples: Array.from({ length: w * h * 4 }, (_, i) => (i * 29) % 256),
  });

// Token counts worked out by hand from the reference's image_size_scale_i (s0 = 32, p = 8,
// zoom 2 and 4) and the budgets [4, 16] per round, spill-over and partial last round.
const COUNTS: [string, Uint8Array, Ps3EncodeOptions, number[], number, [number, number]][] = [
  ["squash, 1 round", DOCK_BYTES, {}, [16, 4, 16], 1, [128, 128]],
  ["squash, all", DOCK_BYTES, { numLookClose: { rounds: "all" } }, [16, 64, 256], 16, [128, 128]],
  ["squash, 0 rounds", DOCK_BYTES, { numLookClose: { rounds: 0 } }, [16, 0, 0], 0, [128, 128]],
  // 300x200 -> 85x128; short side int(32 / 128 * 85) // 8 = 2 patches: grids 4x8 and 8x16.
  ["keep-aspect, 1 round", DOCK_BYTES, { resize: "keep-aspect" }, [16, 4, 16], 1, [85, 128]],
  [
    "keep-aspect, all",
    DOCK_BYTES,
    { resize: "keep-aspect", numLookClose: { rounds: "all" } },
    [
      16,
      32,
      128,
    ],
    8,
    [85, 128],
  ],
  // 50 tokens: rounds [4, 16], [4, 16], then 10 split floor(4 * 10 / 20) = 2 and 8.
  [
    "keep-aspect, 50 tokens",
    DOCK_BYTES,
    {
      resize: "keep-aspect",
      numLookClose: { tokens: 50 },
    },
    [16, 10, 40],
    3,
    [85, 128],
  ],
  [
    "keep-aspect, 1000 tokens (all 160)",
    DOCK_BYTES,
    {
      resize: "keep-aspect",
      numLookClose: { tokens: 1000 },
    },
    [16, 32, 128],
    8,
    [85, 128],
  ],
  // 1x40 grey: input 128x3; int(32 / 128 * 3) // 8 = 0 -> 1 patch: grids 8x2 and 16x4.
  [
    "grey 1x40 keep-aspect, all",
    greyPng(1, 40),
    {
      resize: "keep-aspect",
      numLookClose: { rounds: "all" },
    },
    [16, 16, 64],
    4,
    [128, 3],
  ],
  ["grey 1x40 squash", greyPng(1, 40), {}, [16, 4, 16], 1, [128, 128]],
  // 5x3 (smaller than a patch), RGBA: input 77x128; int(32 / 128 * 77) // 8 = 2.
  [
    "RGBA 5x3 keep-aspect, 2 rounds",
    rgbaPng(5, 3),
    {
      resize: "keep-aspect",
      numLookClose: { rounds: 2 },
    },
    [16, 8, 32],
    2,
    [77, 128],
  ],
];

for (const [name, bytes, opts, tokens, rounds, input] of COUNTS) {
  Deno.test(`encode() token counts per scale follow the reference's sizes: ${name}`, async () => {
    const enc = await encoder.encode(bytes, opts);
    const s = enc.summary;
    assertEquals([s.scales.map((c) => c.tokens), s.rounds, s.inputSize], [tokens, rounds, input]);
    const total = tokens.reduce((a, b) => a + b, 0);
    assertEquals([s.tokens, enc.lastHiddenState.shape], [total, [1, total, 32]]);
  });
}

Deno.test("encode() with a text prompt selects top-down: the probabilities and maps differ", async () => {
  const bottomUp = await encoder.encode(DOCK_BYTES, {});
  const topDown = await encoder.encode(DOCK_BYTES, { prompt: "a red boat" });
  assertEquals([bottomUp.summary.selection, topDown.summary.selection], ["bottom-up", "top-down"]);
  assertEquals(topDown.summary.prompt, "a red boat");
  for (let i = 0; i < 2; i++) {
    assert(maxDiff(bottomUp.selectionProbs[i]!.data, topDown.selectionProbs[i]!.data) > 0.01);
    assert(maxDiff(bottomUp.selectionMaps[i]!.data, topDown.selectionMaps[i]!.data) === 1);
  }
  // The low-res tokens do not depend on the prompt; the high-res ones do.
  const low = 16 * 32;
  assertEquals(
    topDown.lastHiddenState.data.subarray(0, low),
    bottomUp.lastHiddenState.data.subarray(0, low),
  );
});

/** Normalised selection features of the low-res cells, [N0][C], as the model computes them. */
async function selectionFeatures(
  model: Ps3Clip | Ps3VisionModel,
  image: RgbImage,
): Promise<Float32Array[]> {
  const x = preprocessImage(image, {
    size: [128, 128],
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  });
  const f = tidy(() =>
    noGrad(() => {
      const v = model.vision;
      return v.selectionFeatures(v.lowRes(tensor(x.data, x.shape), false).hidden);
    })
  );
  const data = await f.read() as Float32Array;
  f.dispose();
  return Array.from({ length: 16 }, (_, i) => data.slice(32 * i, 32 * i + 32));
}

Deno.test("encode() top-down map follows the prompt: a hand-set prompt peaks at the cell it matches", async () => {
  const enc = await Ps3Encoder.load(NOCONV);
  const feats = await selectionFeatures(enc.model, DOCK);
  const bottomUp = await enc.encode(DOCK, {});
  // Target the low-res cell bottom-up selection likes least. Scale 1 repeats each cell 2x2.
  const p1 = bottomUp.selectionProbs[0]!.data;
  const cellProb = (p: Float32Array, cell: number) =>
    p[Math.floor(cell / 4) * 2 * 8 + (cell % 4) * 2]!;
  let target = 0;
  for (let cell = 1; cell < 16; cell++) {
    if (cellProb(p1, cell) < cellProb(p1, target)) target = cell;
  }
  const prompt = feats[target]!;
  const check = (out: Ps3Encoding) => {
    const p = out.selectionProbs[0]!.data;
    for (let cell = 0; cell < 16; cell++) {
      // prob = sigmoid(clamp(5 * cos(feature, prompt), -10, 10)), features already unit length.
      const cos = feats[cell]!.reduce((a, v, i) => a + v * prompt[i]!, 0) /
        Math.hypot(...prompt);
      const want = 1 / (1 + Math.exp(-Math.max(-10, Math.min(10, 5 * cos))));
      assert(
        Math.abs(cellProb(p, cell) - want) < 1e-5,
        `cell ${cell}: ${cellProb(p, cell)} vs ${want}`,
      );
    }
    // The budget of each scale (4 and 16 patches) is exactly the target cell's block.
    const [ty, tx] = [Math.floor(target / 4), target % 4];
    const m1 = out.selectionMaps[0]!.data, m2 = out.selectionMaps[1]!.data;
    for (let i = 0; i < 64; i++) {
      assertEquals(
        m1[i],
        Math.floor(Math.floor(i / 8) / 2) === ty && Math.floor((i % 8) / 2) === tx ? 1 : 0,
      );
    }
    for (let i = 0; i < 256; i++) {
      assertEquals(
        m2[i],
        Math.floor(Math.floor(i / 16) / 4) === ty && Math.floor((i % 16) / 4) === tx ? 1 : 0,
      );
    }
  };
  const byVector = await enc.encode(DOCK, { prompt });
  check(byVector);
  assertEquals(byVector.summary.prompt, "(vector)");
  assert(cellProb(byVector.selectionProbs[0]!.data, target) > 0.993); // sigmoid(5)
  // The text path ends in prompt_proj: with fc2 = 0 and its bias = the target feature, any
  // text projects onto that cell.
  enc.model.params.load("text_model.prompt_proj.fc2.weight", new Float32Array(32 * 32));
  enc.model.params.load("text_model.prompt_proj.fc2.bias", prompt);
  const byText = await enc.encode(DOCK, { prompt: "the sky" });
  check(byText);
  assert(maxDiff(byText.selectionProbs[1]!.data, byVector.selectionProbs[1]!.data) < 1e-6);
});

Deno.test("Ps3Encoder.load() reads a training checkpoint like the Hugging Face folder", async () => {
  await withTmp(async (dir) => {
    const folder = await saveCheckpoint(join(dir, "checkpoints"), convModel.params, {
      step: 7,
      runConfig: {},
      modelConfig: tinyModelConfig(true),
      data: null,
      trainer: null,
      metrics: {},
    });
    const fromCkpt = await Ps3Encoder.load(folder);
    assert(fromCkpt.source.includes("training checkpoint") && fromCkpt.source.includes("step 7"));
    assertEquals(fromCkpt.preprocessing.imageSize, [128, 128]);
    const a = await fromCkpt.encode(DOCK, {}), b = await encoder.encode(DOCK, {});
    assertEquals(a.lastHiddenState, b.lastHiddenState);
    await Deno.remove(join(folder, "COMPLETE"));
    const e = await rejectsWith(() => Ps3Encoder.load(folder), Error);
    assert(e.message.includes(folder) && e.message.includes("COMPLETE"), e.message);
  });
});

Deno.test("Ps3Encoder.load() reads a vision-only folder: same features, prompt vectors only", async () => {
  await withTmp(async (dir) => {
    const config = resolveModelConfig(tinyModelConfig(true));
    await writeHfFolder(dir, convModel.params, config, { visionOnly: true });
    const vision = await Ps3Encoder.load(dir);
    assert(vision.source.includes("vision-only"), vision.source);
    assert(vision.model instanceof Ps3VisionModel);
    assertEquals(
      vision.model.params.params.map((p) => p.spec.name),
      convModel.params.params.map((p) => p.spec.name).filter((n) => n.startsWith("vision_model.")),
    );
    assertEquals(
      { ...vision.preprocessing, source: "" },
      { ...encoder.preprocessing, source: "" },
    );
    const look: LookClose = { rounds: 2 };
    const a = await vision.encode(DOCK, { numLookClose: look });
    const b = await encoder.encode(DOCK, { numLookClose: look });
    assertEquals(a.lastHiddenState, b.lastHiddenState);
    assertEquals(a.selectionProbs, b.selectionProbs);
    const prompt = new Float32Array(32).map((_, i) => Math.sin(i + 1));
    const c = await vision.encode(DOCK, { prompt }), d = await encoder.encode(DOCK, { prompt });
    assertEquals(c.selectionProbs, d.selectionProbs);
    const e = await rejectsWith(() => vision.encode(DOCK, { prompt: "a boat" }), Error);
    assert(e.message.includes("vision-only") && e.message.includes(dir), e.message);
  });
});

Deno.test("Ps3Encoder errors name the file: bad paths, unreadable images, missing tokenizer", async () => {
  const missing = join(root, "nope");
  let e: Error = await rejectsWith(() => Ps3Encoder.load(missing), Error);
  assert(e.message.startsWith(`Cannot load model "${missing}"`), e.message);
  e = await rejectsWith(() => Ps3Encoder.load(root), Error);
  assert(e.message.includes("neither config.json") && e.message.includes(root), e.message);
  e = await rejectsWith(() => Ps3Encoder.load(DOCK_SMALL), Error);
  assert(e.message.includes("not a folder"), e.message);

  e = await rejectsWith(
    () => encoder.encode(new TextEncoder().encode("hello"), { file: "junk.jpg" }),
    SampleError,
  );
  assert(e.message.startsWith('Cannot use "junk.jpg": not a JPEG, PNG or WebP'), e.message);
  e = await rejectsWith(
    () => encoder.encode(DOCK_BYTES.subarray(0, 5000), { file: "cut.jpg" }),
    SampleError,
  );
  assert(e.message.startsWith('Cannot use "cut.jpg"'), e.message);

  const small = new Ps3Clip(resolveModelConfig(tinyModelConfig(false)));
  const words = Array.from({ length: 60 }, (_, i) => `w${i}`);
  const big = Tokenizer.fromJson(unigramTokenizerJson(words), { name: "big.json" });
  assert(big.vocabSize > 128);
  e = assertThrows(() => new Ps3Encoder(small, { tokenizer: big }), RangeError);
  assert(e.message.includes(`${big.vocabSize} pieces`) && e.message.includes("128"), e.message);
  const noTokenizer = new Ps3Encoder(small);
  e = await rejectsWith(() => noTokenizer.encode(DOCK, { prompt: "a boat" }), Error);
  assert(e.message.includes('prompt "a boat": no tokenizer'), e.message);
  e = await rejectsWith(
    () => noTokenizer.encode(DOCK, { prompt: new Float32Array(7) }),
    RangeError,
  );
  assert(e.message.includes("7 values") && e.message.includes("width is 32"), e.message);
});

Deno.test("encode() passes the look-close request through: the summary names it", async () => {
  const looks: [LookClose, string][] = [[{ rounds: "all" }, "all"], [{ tokens: 9 }, "tokens:9"]];
  for (const [look, text] of looks) {
    assertEquals((await encoder.encode(DOCK, { numLookClose: look })).summary.lookClose, text);
  }
});

Deno.test("encode() leaves no live tensors behind, and inference on a loaded model records no tape nodes", async () => {
  const rt = gpu();
  await encoder.encode(DOCK, { numLookClose: { rounds: 1 } }); // first use fills the ops' caches
  const before = rt.memory();
  const { summary } = await encoder.encode(DOCK, {
    numLookClose: { rounds: "all" },
    prompt: "a red boat",
  });
  const after = rt.memory();
  assertEquals(summary.memory.params, encoder.model.params.bytes());
  assert(summary.memory.devicePeak > 0 && summary.memory.devicePeak <= after.allocatedBytes);
  assert(summary.memory.devicePool === after.allocatedBytes);
  assert(Deno.build.os !== "linux" || summary.memory.processPeak! > 0);
  assertEquals([after.inUseBytes, after.liveBuffers], [before.inUseBytes, before.liveBuffers]);
  // Even outside noGrad: the parameters of a model loaded for inference require no gradient.
  const model = encoder.model;
  assert(!model.params.hasGrads);
  const x = preprocessImage(DOCK, {
    size: [128, 128],
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  });
  const out = tidy(() =>
    encodeImage(model.vision, tensor(x.data, x.shape), {
      numLookClose: { rounds: 1 },
      prompt: null,
    })
  );
  const tensors = [out.lastHiddenState, ...out.featureMaps, ...out.selectionProbs];
  assert(tensors.every((t) => t.node === null && !t.requiresGrad));
  for (const t of new Set([...tensors, ...out.selectionMaps])) t.dispose();
  assertEquals(rt.memory().liveBuffers, before.liveBuffers);
});

Deno.test("encode() frees each block's intermediates: six more blocks add only their outputs and KV cache to the peak", async () => {
  const rt = gpu();
  const peak = async (depth: number) => {
    const raw = tinyModelConfig(true) as { vision_cfg: Record<string, unknown> };
    raw.vision_cfg.depth = depth;
    const config = resolveModelConfig(raw);
    const dir = join(root, `depth${depth}`);
    await writeHfFolder(dir, new Ps3Clip(config, { seed: 1 }).params, config);
    const enc = await Ps3Encoder.load(dir);
    await enc.encode(DOCK, { numLookClose: { rounds: 1 } });
    const base = rt.memory().inUseBytes;
    rt.pool.resetPeak();
    await enc.encode(DOCK, { numLookClose: { rounds: 1 } });
    return rt.memory().peakInUseBytes - base;
  };
  const [p2, p8] = [await peak(2), await peak(8)];
  // What a low-res block keeps for later: its output [1, 16, 32] and its q, k, v [1, 16, 96]
  // (the cache views them) — f32, in pool buckets. Without per-block scopes every block's
  // whole working set (norms, MLP hidden, attention, high-res tokens) stays: 12x more here.
  const kept = bucketSize(16 * 32 * 4) + bucketSize(16 * 96 * 4);
  assert(p8 - p2 <= 6 * kept, `peak grew by ${p8 - p2} bytes for 6 blocks (bound ${6 * kept})`);
});

Deno.test("encode() holds one pass's buffers: what stays cached depends only on the last input size", async () => {
  const rt = gpu();
  const grey = (width: number, height: number): RgbImage => ({
    width,
    height,
    data: new Uint8Array(width * height * 3).fill(90),
  });
  const run = (im: RgbImage) =>
    encoder.encode(im, { numLookClose: { rounds: 1 }, resize: "keep-aspect" });
  // Free (cached) bytes: the ops' own caches of each size (resize tables) stay in use.
  const cached = () => rt.memory().allocatedBytes - rt.memory().inUseBytes;
  const wide = grey(300, 200);
  await run(wide);
  rt.pool.trim();
  await run(wide);
  const alone = cached();
  assert(alone > 0);
  await run(grey(300, 120));
  await run(grey(100, 300));
  await run(wide);
  assertEquals(cached(), alone);
  await run(wide);
  assertEquals(cached(), alone, "the same size reuses its buffers");
});

Deno.test("Ps3Encoder.load() visionOnly leaves the text tower on disk: same bottom-up features", async () => {
  const vis = await Ps3Encoder.load(CONV, { visionOnly: true });
  assert(vis.model instanceof Ps3VisionModel);
  assert(vis.model.params.bytes() < encoder.model.params.bytes());
  assert(vis.source.endsWith("(vision tower only)"));
  const look: LookClose = { rounds: "all" };
  const [a, b] = [
    await vis.encode(DOCK, { numLookClose: look }),
    await encoder.encode(DOCK, { numLookClose: look }),
  ];
  assertEquals(a.lastHiddenState, b.lastHiddenState);
  assertEquals(a.selectionProbs, b.selectionProbs);
  const e = await rejectsWith(() => vis.encode(DOCK, { prompt: "a red boat" }), Error);
  assert(e.message.includes("vision-only"), e.message);
});
