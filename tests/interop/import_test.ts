import { ok, strictEqual } from "node:assert";

const MOD = new URL("../../mod.ts", import.meta.url).href;
const DOCK_JPG = new URL("../testdata/dock.jpg", import.meta.url).pathname;

/** The program of the other project: only a path import of mod.ts, nothing configured. */
const MAIN = `
import {
  decodeImage,
  encodeImage,
  initGpu,
  loadModelConfig,
  noGrad,
  Ps3Clip,
  Rng,
  tensor,
  tidy,
  keep,
} from ${JSON.stringify(MOD)};

const rt = await initGpu();
const { image } = decodeImage(Deno.readFileSync(${JSON.stringify(DOCK_JPG)}), {
  file: "dock.jpg",
  maxPixels: 50_000_000,
});
const model = new Ps3Clip(await loadModelConfig("model.yaml"), { seed: 1 });
const rng = new Rng(2);
const pixels = new Float32Array(3 * 64 * 64).map(() => rng.uniform(-1, 1));
const out = tidy(() =>
  noGrad(() => {
    const enc = encodeImage(model.vision, tensor(pixels, [1, 3, 64, 64]), {
      numLookClose: { rounds: 1 },
      prompt: null,
    });
    return keep(enc.lastHiddenState);
  })
);
const [bytes] = await rt.read([out]);
const sum = new Float32Array(bytes!).reduce((s, v) => s + Math.abs(v), 0);
console.log(JSON.stringify({ width: image.width, shape: out.shape, sum }));
`;

/** A small PS3 (3 scales, width 16), written as YAML so the config reading runs too. */
const MODEL_YAML = `
embed_dim: 16
vision_cfg:
  embed_dim: 16
  depth: 2
  num_heads: 2
  mlp_ratio: 2
  patch_size: 8
  img_size: 16
  ps3_scales: [16, 32, 64]
  select_based_on_layer: [0, 1]
  max_select_num: 10
  highres_selection_module_hidden_dim: 8
  highres_selection_module_out_dim: 8
  highres_selection_module_depth: 1
  highres_selection_module_kernel_size: 8
  highres_selection_input_size: 64
text_cfg: { context_length: 6, vocab_size: 20, width: 16, heads: 2, layers: 1, mlp_ratio: 2 }
`;

for (const denoJson of [true, false]) {
  Deno.test(
    `mod.ts imports by path into a project ${
      denoJson ? "with an empty deno.json" : "without deno.json"
    }, with no flags, and runs the model`,
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "ps3-interop-" });
      try {
        if (denoJson) await Deno.writeTextFile(`${dir}/deno.json`, "{}\n");
        await Deno.writeTextFile(`${dir}/main.ts`, MAIN);
        await Deno.writeTextFile(`${dir}/model.yaml`, MODEL_YAML);
        // --cached-only: nothing beyond the npm packages already in Deno's cache is fetched.
        const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--cached-only", "main.ts"],
          cwd: dir,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const err = new TextDecoder().decode(stderr);
        strictEqual(code, 0, `deno run failed:\n${err}`);
        const lines = new TextDecoder().decode(stdout).trim().split("\n");
        const result = JSON.parse(lines[lines.length - 1]!);
        strictEqual(result.width, 2250);
        strictEqual(result.shape.join(","), "1,14,16");
        ok(Number.isFinite(result.sum) && result.sum > 0, `sum ${result.sum}`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
