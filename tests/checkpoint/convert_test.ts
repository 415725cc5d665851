import { join } from "node:path";
import { deepStrictEqual, equal, ok, rejects } from "node:assert";
import { parse as parseYaml } from "npm:yaml@2.9.1";
import { convertCheckpoint, findCheckpoint, listHfKeys } from "../../src/checkpoint/convert.ts";
import { hfConfigJson, loadSafetensorsInto, readHfConfig } from "../../src/checkpoint/hf.ts";
import {
  openSafetensors,
  type SafetensorsDtype,
  writeSafetensors,
  type WriteTensor,
} from "../../src/checkpoint/safetensors.ts";
import { saveCheckpoint, stepDirName } from "../../src/checkpoint/train_checkpoint.ts";
import { run as convertCli } from "../../src/cli/convert.ts";
import { loadModelConfig, resolveModelConfig } from "../../src/model/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { referenceGroups } from "../../src/optim/param_groups.ts";
import { type DebugBatch, debugStep } from "../../src/compare/debug_step.ts";
import { AdamW } from "../../src/optim/adamw.ts";
import { Rng } from "../../src/util/rng.ts";
import { gpu, initGpu } from "../../src/gpu/runtime.ts";
import { loadTokenizer } from "../../src/data/formats/tokenizer.ts";
import { unigramTokenizerJson } from "../../src/data/tools/synth.ts";
import { Ps3Encoder } from "../../src/encode/ps3_encoder.ts";

const configs = new URL("../../configs/", import.meta.url).pathname;

/** The `model:` section of configs/ps3-tiny.yaml, as a trainer stores it in state.json. */
const tinyRaw = (parseYaml(await Deno.readTextFile(join(configs, "ps3-tiny.yaml"))) as {
  model: Record<string, unknown>;
}).model;
const tiny = resolveModelConfig(tinyRaw);

/** Runs the CLI and returns what it printed. */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    const code = await convertCli(args);
    return { code, out: lines.join("\n") };
  } finally {
    console.log = log;
  }
}

/**
 * Writes a training checkpoint folder without the GPU: model.safetensors from the parameter
 * declarations (fresh initialisation), state.json, COMPLETE.
 */
async function writeCheckpoint(
  root: string,
  step: number,
  options: {
    edit?: (t: WriteTensor[]) => WriteTensor[];
    dtype?: SafetensorsDtype;
    complete?: boolean;
    runConfig?: unknown;
  } = {},
): Promise<string> {
  const dir = join(root, "checkpoints", stepDirName(step));
  await Deno.mkdir(dir, { recursive: true });
  const tensors: WriteTensor[] = Ps3Clip.paramSpecs(tiny, { seed: step }).map((s) => ({
    name: s.name,
    dtype: options.dtype ?? "F32",
    shape: s.shape,
    data: () => {
      const a = new Float32Array(s.shape.reduce((n, d) => n * d, 1));
      s.init(a);
      return a;
    },
  }));
  await writeSafetensors(join(dir, "model.safetensors"), (options.edit ?? ((t) => t))(tensors));
  const state = {
    format: "ps3-train-checkpoint",
    version: 1,
    step,
    runConfig: options.runConfig ?? null,
    modelConfig: tinyRaw,
    data: null,
    trainer: null,
    metrics: {},
    savedAt: new Date(0).toISOString(),
  };
  await Deno.writeTextFile(join(dir, "state.json"), JSON.stringify(state));
  if (options.complete !== false) await Deno.writeTextFile(join(dir, "COMPLETE"), "ok\n");
  return dir;
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("listHfKeys() for ps3-1.5k equals the reference converter's names, shapes, dtypes and order", async () => {
  // tests/testdata/hf_keys_ps3-1.5k.txt is the table of spec/HF_KEYS.md (the reference's
  // state_dict, recorded from its converter), one "<name> [<dims>] <dtype>" line per tensor.
  const want = (await Deno.readTextFile(
    new URL("../testdata/hf_keys_ps3-1.5k.txt", import.meta.url),
  )).trimEnd().split("\n");
  equal(want.length, 724);
  const got = listHfKeys(await loadModelConfig(join(configs, "ps3-1.5k.yaml")));
  deepStrictEqual(got, want);
});

Deno.test("ps3 convert --list-keys prints one line per tensor, [] for scalars", async () => {
  const { code, out } = await cli(["--config", join(configs, "ps3-tiny.yaml"), "--list-keys"]);
  equal(code, 0);
  const lines = out.split("\n");
  deepStrictEqual(lines, listHfKeys(tiny));
  deepStrictEqual(lines.slice(0, 4), [
    "logit_scale [] float32",
    "logit_bias [] float32",
    "vision_model.prior_prompt [64] float32",
    "vision_model.trunk.pos_embed [1, 64, 64] float32",
  ]);
});

Deno.test("convertCheckpoint() copies every tensor byte for byte as f32 with the JSON files", async () => {
  await withTemp(async (dir) => {
    const ckpt = await writeCheckpoint(dir, 3);
    const out = join(dir, "hf");
    const r = await convertCheckpoint(ckpt, out);
    const specs = Ps3Clip.paramSpecs(tiny);
    equal(r.tensors, specs.length);
    equal(r.step, 3);
    using src = await openSafetensors(join(ckpt, "model.safetensors"));
    using dst = await openSafetensors(join(out, "model.safetensors"));
    deepStrictEqual(dst.metadata, { format: "pt" });
    deepStrictEqual(dst.names().sort(), specs.map((s) => s.name).sort());
    for (const s of specs) {
      const e = dst.entry(s.name);
      deepStrictEqual([e.dtype, e.shape], ["F32", [...s.shape]], s.name);
      deepStrictEqual(await dst.readBytes(s.name), await src.readBytes(s.name), s.name);
    }
    const read = async (f: string) => JSON.parse(await Deno.readTextFile(join(out, f)));
    deepStrictEqual(await read("config.json"), hfConfigJson(tiny));
    deepStrictEqual(await read("preprocessor_config.json"), {
      image_size: [256, 256],
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
      interpolation: "bicubic",
      resize_mode: "squash",
    });
    deepStrictEqual(await read("tokenizer_config.json"), {
      tokenizer_name: "timm/ViT-B-16-SigLIP",
      context_length: 16,
      clean: "canonicalize",
    });
    // The folder describes the same model.
    const back = await readHfConfig(out);
    deepStrictEqual(
      [back.vision.trunk, back.vision.scales, back.vision.budgets, back.vision.conv, back.text],
      [tiny.vision.trunk, tiny.vision.scales, tiny.vision.budgets, tiny.vision.conv, {
        ...tiny.text,
        raw: back.text.raw,
      }],
    );
  });
});

Deno.test("convertCheckpoint() vision-only keeps vision_model.* and the vision config at top level", async () => {
  await withTemp(async (dir) => {
    const ckpt = await writeCheckpoint(dir, 1);
    const out = join(dir, "hf");
    await convertCheckpoint(ckpt, out, { visionOnly: true });
    using dst = await openSafetensors(join(out, "model.safetensors"));
    const vision = listHfKeys(tiny).map((l) => l.split(" ")[0]!).filter((n) =>
      n.startsWith("vision_model.")
    );
    deepStrictEqual(dst.names().sort(), vision.sort());
    const cfg = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
    deepStrictEqual(cfg, hfConfigJson(tiny, { visionOnly: true }));
    deepStrictEqual([cfg.architectures, cfg.model_type], [["PS3VisionModel"], "ps3_vision_model"]);
    for (const f of ["preprocessor_config.json", "tokenizer_config.json"]) {
      ok((await Deno.stat(join(out, f))).isFile, f);
    }
  });
});

Deno.test("convertCheckpoint() widens an F16 checkpoint to f32", async () => {
  await withTemp(async (dir) => {
    const ckpt = await writeCheckpoint(dir, 1, { dtype: "F16" });
    await convertCheckpoint(ckpt, join(dir, "hf"));
    using src = await openSafetensors(join(ckpt, "model.safetensors"));
    using dst = await openSafetensors(join(dir, "hf", "model.safetensors"));
    for (const name of src.names()) {
      equal(dst.entry(name).dtype, "F32");
      deepStrictEqual(await dst.read(name), await src.read(name), name);
    }
  });
});

Deno.test("convertCheckpoint() names missing, extra and misshapen tensors, refuses its own folder, writes nothing", async () => {
  await withTemp(async (dir) => {
    const cases: [string, (t: WriteTensor[]) => WriteTensor[], RegExp][] = [
      [
        "missing",
        (t) => t.filter((x) => x.name !== "text_model.ln_final.bias"),
        /lacks 1: "text_model\.ln_final\.bias"/,
      ],
      [
        "extra",
        (t) => [...t, { name: "visual.x", dtype: "F32", shape: [1], data: new Float32Array(1) }],
        /1 are not parameters: "visual\.x"/,
      ],
      [
        "shape",
        (t) =>
          t.map((x) =>
            x.name === "vision_model.pos_emb_residual.1"
              ? { ...x, shape: [1, 32, 32], data: new Float32Array(1024) }
              : x
          ),
        /"vision_model\.pos_emb_residual\.1" is \[1, 32, 32\], the model's \[1, 1024, 64\]/,
      ],
    ];
    for (const [label, edit, message] of cases) {
      const ckpt = await writeCheckpoint(join(dir, label), 1, { edit });
      const out = join(dir, label, "hf");
      await rejects(convertCheckpoint(ckpt, out), message, label);
      await rejects(Deno.stat(out), Deno.errors.NotFound, label);
    }
    const ckpt = await writeCheckpoint(join(dir, "self"), 1);
    await rejects(convertCheckpoint(ckpt, `${ckpt}/`), /into itself/);
  });
});

Deno.test("findCheckpoint() takes the newest complete checkpoint for latest, refuses incomplete ones", async () => {
  await withTemp(async (dir) => {
    await writeCheckpoint(dir, 2);
    const newest = await writeCheckpoint(dir, 5);
    const partial = await writeCheckpoint(dir, 9, { complete: false });
    equal(await findCheckpoint("latest", dir), newest);
    equal(await findCheckpoint(newest), newest);
    await rejects(findCheckpoint(partial), /not a complete training checkpoint/);
    await rejects(findCheckpoint("latest"), /--run/);
    await rejects(findCheckpoint("latest", join(dir, "nowhere")), /Cannot find a complete/);
  });
});

Deno.test("ps3 convert round trip: train the tiny model, save, convert, load: identical parameters and outputs", async () => {
  await initGpu();
  await withTemp(async (dir) => {
    const rng = new Rng(11);
    const b = 2, s = 256, ctx = tiny.text.context;
    const gt = new Float32Array(b * s * s);
    for (let y = 40; y < 120; y++) gt.fill(1, y * s + 30, y * s + 100);
    gt.fill(1, s * s);
    const batch: DebugBatch = {
      images: {
        data: new Float32Array(b * 3 * s * s).map(() => rng.uniform(-1, 1)),
        shape: [b, 3, s, s],
      },
      text: {
        data: new Int32Array(b * ctx).map(() => Math.floor(rng.uniform(0, tiny.text.vocab))),
        shape: [b, ctx],
      },
      gt: { data: gt, shape: [b, s, s] },
      isGlobal: new Uint8Array([0, 1]),
    };
    const model = new Ps3Clip(tiny, { seed: 1, group: referenceGroups(false) });
    const opt = new AdamW(model.params, {
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 3e-4,
      clipNorm: 1,
    });
    for (let step = 0; step < 2; step++) {
      model.params.zeroGrad();
      await debugStep(model, batch, { gpuTopk: true });
      opt.update({ base: 1e-3, selection: 1e-3 });
    }
    await saveCheckpoint(join(dir, "run", "checkpoints"), model.params, {
      step: 2,
      runConfig: null,
      modelConfig: tinyRaw,
      data: null,
      trainer: null,
      metrics: {},
    });
    const out = join(dir, "hf");
    const { code } = await cli(["--checkpoint", "latest", "--run", join(dir, "run"), "--out", out]);
    equal(code, 0);

    const loaded = new Ps3Clip(await readHfConfig(out), { seed: 2, group: referenceGroups(false) });
    await loadSafetensorsInto(loaded.params, join(out, "model.safetensors"));
    const ha = await gpu().read(model.params.params.map((p) => p.value));
    const hb = await gpu().read(loaded.params.params.map((p) => p.value));
    model.params.params.forEach((p, i) => {
      equal(loaded.params.params[i]!.spec.name, p.spec.name);
      deepStrictEqual(new Uint8Array(hb[i]!), new Uint8Array(ha[i]!), p.spec.name);
    });

    model.params.zeroGrad();
    const want = await debugStep(model, batch, { gpuTopk: true });
    const got = await debugStep(loaded, batch, { gpuTopk: true });
    equal(got.length, want.length);
    want.forEach((w, i) => {
      equal(got[i]!.name, w.name);
      deepStrictEqual(got[i]!.data, w.data, w.name);
    });
  });
});

Deno.test("convertCheckpoint() copies the run's tokenizer (data.tokenizer or the synthetic dataset's) so encode --prompt works", async () => {
  await initGpu();
  await withTemp(async (dir) => {
    const tokJson = unigramTokenizerJson(["a", "red", "boat", "dock"]);
    await Deno.mkdir(join(dir, "synth"));
    await Deno.writeTextFile(join(dir, "synth", "tokenizer.json"), JSON.stringify(tokJson));
    await Deno.writeTextFile(join(dir, "synth", "dataset.json"), '{"tokenizer": "tokenizer.json"}');
    for (
      const runConfig of [
        { data: { tokenizer: join(dir, "synth", "tokenizer.json") } },
        { data: { synthesize: { out: join(dir, "synth") } } },
      ]
    ) {
      const ckpt = await writeCheckpoint(join(dir, "run"), 5, { runConfig });
      const out = join(dir, "hf");
      const r = await convertCheckpoint(ckpt, out);
      deepStrictEqual(r.tokenizer?.written, ["tokenizer.json", "special_tokens_map.json"]);
      deepStrictEqual(
        await Deno.readFile(join(out, "tokenizer.json")),
        await Deno.readFile(join(dir, "synth", "tokenizer.json")),
      );
      const tok = await loadTokenizer(join(out, "tokenizer.json"));
      equal(tok.padId, (await loadTokenizer(join(dir, "synth", "tokenizer.json"))).padId);
      const enc = await Ps3Encoder.load(out);
      ok(enc.tokenizer, "the encoder finds <folder>/tokenizer.json");
      equal((await enc.promptVector("a red boat")).length, 64);
      await Deno.remove(out, { recursive: true });
    }
    // A run without a tokenizer converts as before; --tokenizer names one explicitly.
    const bare = await writeCheckpoint(join(dir, "bare"), 1);
    equal((await convertCheckpoint(bare, join(dir, "hf0"))).tokenizer, null);
    const bpe = new URL("../testdata/tokenizers/bpe/tokenizer.json", import.meta.url).pathname;
    const r = await convertCheckpoint(bare, join(dir, "hf1"), { tokenizer: bpe });
    deepStrictEqual(r.tokenizer?.written, ["tokenizer.json", "special_tokens_map.json"]);
    deepStrictEqual(
      JSON.parse(await Deno.readTextFile(join(dir, "hf1", "special_tokens_map.json"))),
      { pad_token: "<pad>" },
    );
    equal((await loadTokenizer(join(dir, "hf1", "tokenizer.json"))).padId, 0);
  });
});
