// Folders written by the PS3 package's own save_pretrained (tests/testdata/ps3_package/make.py)
// load unmodified, and the encoder matches the package's outputs on them.
import { deepStrictEqual as assertEquals, ok } from "node:assert";
import { join } from "node:path";
import { initGpu } from "../../src/gpu/runtime.ts";
import { gpu } from "../../src/gpu/runtime.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { noGrad } from "../../src/autograd/tape.ts";
import { tensor } from "../../src/ops/creation.ts";
import { openSafetensors } from "../../src/checkpoint/safetensors.ts";
import { readHfFolderConfig } from "../../src/checkpoint/hf.ts";
import { Ps3Encoder } from "../../src/encode/ps3_encoder.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";

await initGpu();
const dir = new URL("../testdata/ps3_package/", import.meta.url).pathname;
const expected = await openSafetensors(join(dir, "expected.safetensors"));
const ref: Record<string, Float32Array | Int32Array | Uint8Array> = {};
for (const n of expected.names()) {
  ref[n] = await expected.read(n) as Float32Array | Int32Array | Uint8Array;
}
expected.close();
const image = { width: 224, height: 224, data: ref.image_u8 as Uint8Array };

/** Relative L2 distance and max |diff|. */
function distance(a: ArrayLike<number>, b: ArrayLike<number>): { rel: number; max: number } {
  ok(a.length === b.length, `lengths differ: ${a.length} vs ${b.length}`);
  let num = 0, den = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
    max = Math.max(max, Math.abs(d));
  }
  return { rel: Math.sqrt(num / den), max };
}

// float32 on both sides through different kernels (and a 1512-pixel bicubic resize for the
// ConvNet); measured relative L2 is ~5e-7. The tolerance is tight enough that exact GELU in
// place of SigLIP2's tanh GELU in the text tower (9e-5 on the prompt) fails.
const REL_TOL = 1e-5;

Deno.test("config.json files written by the PS3 package load unmodified, with no warnings", async () => {
  const warnings: string[] = [];
  const orig = console.warn;
  console.warn = (...a: unknown[]) => warnings.push(a.join(" "));
  try {
    const full = await readHfFolderConfig(join(dir, "full"));
    const vision = await readHfFolderConfig(join(dir, "vision"));
    assertEquals(full.kind, "full");
    assertEquals(vision.kind, "vision");
    assertEquals(full.config.vision.trunk, vision.config.vision.trunk);
    assertEquals(full.config.vision.trunk.patch, 14);
    assertEquals(full.config.vision.trunk.posGrid, 3);
    if (full.kind === "full") assertEquals(full.config.text.act, "gelu_tanh");
  } finally {
    console.warn = orig;
  }
  assertEquals(warnings, []);
});

for (
  const [folder, look, key] of [
    ["full", 1, "last_hidden_state_look1"],
    ["full", "all", "last_hidden_state_all"],
    ["vision", 1, "last_hidden_state_look1"],
  ] as const
) {
  Deno.test(`Ps3Encoder on the package's ${folder} folder (num_look_close ${look}) matches its last_hidden_state`, async () => {
    const enc = await Ps3Encoder.load(join(dir, folder));
    const out = await enc.encode(image, { numLookClose: { rounds: look } });
    const d = distance(out.lastHiddenState.data, ref[key]!);
    console.log(`${folder} look ${look}: relative L2 ${d.rel.toExponential(2)}, max ${d.max}`);
    ok(d.rel < REL_TOL, `relative L2 ${d.rel} >= ${REL_TOL}`);
  });
}

Deno.test("the package's text tower (SigLIP2 tanh GELU) and a top-down encode match", async () => {
  const enc = await Ps3Encoder.load(join(dir, "full"));
  const model = enc.model;
  ok(model instanceof Ps3Clip);
  {
    const ids = ref.text_ids as Int32Array;
    const q = tidy(() =>
      noGrad(() => model.promptProj.forward(model.encodeText(tensor(ids, [2, 8], "i32"))))
    );
    const [bytes] = await gpu().read([q]);
    q.dispose();
    const prompt = new Float32Array(bytes!, 0, 2 * 32).slice();
    const dp = distance(prompt, ref.text_prompt!);
    console.log(`text prompt: relative L2 ${dp.rel.toExponential(2)}`);
    ok(dp.rel < REL_TOL, `prompt relative L2 ${dp.rel}`);
    const out = await enc.encode(image, {
      numLookClose: { rounds: 1 },
      prompt: (ref.text_prompt as Float32Array).slice(0, 32),
    });
    const d = distance(out.lastHiddenState.data, ref.last_hidden_state_prompt0!);
    console.log(`top-down: relative L2 ${d.rel.toExponential(2)}`);
    ok(d.rel < REL_TOL, `top-down relative L2 ${d.rel}`);
  }
});
