/**
 * The PS3 inference side by side with PyTorch: the dims and parameter count handed to the
 * script, reading `ps3 encode --json`, the rows, the skip without Python; and, where Python
 * with torch is installed (never in CI), the whole section on PS3-tiny shapes.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import {
  benchInferenceSide,
  inferenceDims,
  inferenceRows,
  parseEncodeOutput,
  type Ps3InferenceFigures,
  visionParamCount,
} from "../../src/bench/torch_inference.ts";
import { type TorchBenchJson, torchUnavailable } from "../../src/bench/torch_side.ts";
import { loadModelConfig } from "../../src/model/config.ts";

const TINY = "configs/ps3-tiny.yaml";

Deno.test("inferenceDims() gives the script PS3-1.5K's shapes of one 1512^2 image", async () => {
  const d = inferenceDims(await loadModelConfig("configs/ps3-1.5k.yaml"));
  assertEquals(
    [d.width, d.depth, d.heads, d.mlp, d.patch, d.pos_grid],
    [1152, 27, 16, 4304, 14, 27],
  );
  assertEquals(d.scales, [378, 756, 1512]);
  assertEquals(d.select_layers, [0, 9, 18, 26]);
  assertEquals(d.counts, [512, 2048]);
  assertEquals(d.conv, { hidden: 512, out: 512, depth: 3, kernel: 28, input: 1512 });
});

Deno.test("visionParamCount() equals the reference's vision_model.* tensors of PS3-1.5K", async () => {
  // The reference's state_dict keys and shapes, as recorded from the PS3 package.
  const lines = (await Deno.readTextFile("tests/testdata/hf_keys_ps3-1.5k.txt")).split("\n");
  let reference = 0;
  for (const line of lines) {
    const m = /^(vision_model\.\S+) \[([\d, ]*)\]/.exec(line);
    if (m) reference += m[2]!.split(",").filter((s) => s.trim()).reduce((a, s) => a * +s, 1);
  }
  assert(reference > 4e8, `${reference}`);
  assertEquals(visionParamCount(await loadModelConfig("configs/ps3-1.5k.yaml")), reference);
});

Deno.test("parseEncodeOutput() reads ps3 encode --json's summary and the load time", () => {
  const stdout = JSON.stringify(
    {
      file: "dock.jpg",
      tokens: 3289,
      ms: { decode: 1, preprocess: 2, model: 313084.2, draw: 3 },
      memory: { params: 1, devicePeak: 695e6, devicePool: 1.2e9, processPeak: 3.69e9 },
    },
    null,
    2,
  ) + "\nwrote 6 files to /tmp/x/\n";
  const f = parseEncodeOutput(stdout, 'model: PS3 from "x" on llvmpipe (loaded in 13.1 s)\n', 7);
  assertEquals(f, {
    ms: 313084.2,
    loadMs: 13100,
    tokens: 3289,
    params: 7,
    processPeak: 3.69e9,
    devicePeak: 695e6,
    devicePool: 1.2e9,
  });
  let threw = false;
  try {
    parseEncodeOutput("wrote 6 files\n", "", 7);
  } catch (e) {
    threw = e instanceof SyntaxError;
  }
  assert(threw, "no summary must throw");
});

const PS3: Ps3InferenceFigures = {
  ms: 313000,
  loadMs: 13100,
  tokens: 3289,
  params: 485919168,
  processPeak: 3.69 * 2 ** 30,
  devicePeak: 663 * 2 ** 20,
  devicePool: 700 * 2 ** 20,
};
const TORCH: TorchBenchJson = {
  torch: "2.13.0+cpu",
  pillow: "12.3.0",
  threads: 2,
  omp_wait_policy: "PASSIVE",
  inference: {
    name: "PS3-1.5K-SigLIP",
    params: 485919168,
    input: [1512, 1512],
    tokens: 3289,
    build_ms: 900,
    ms: 31300,
    runs: 1,
    peak_rss_bytes: 5.9 * 2 ** 30,
  },
};

Deno.test("inferenceRows() states the ratio, both peaks and both parameter counts", () => {
  const rows = inferenceRows("PS3-1.5K-SigLIP", PS3, TORCH);
  assertEquals(rows.map((r) => [r.name, r.ms]), [
    ["side: ps3 PS3-1.5K-SigLIP inference, 1512x1512, 1 round", 313000],
    ["side: PyTorch PS3-1.5K-SigLIP inference, 1512x1512, 1 round", 31300],
  ]);
  assertEquals(
    rows[0]!.note,
    "PyTorch 2.13.0+cpu (2 threads, OMP_WAIT_POLICY=PASSIVE) 31300 ms: ps3 takes 10.00x as " +
      "long; process peak ps3 3.7 GiB vs PyTorch 5.9 GiB; device pool peak 663.0 MiB, held " +
      "after 700.0 MiB; loading 13.1 s; 3289 tokens; 485919168 parameters on both sides; " +
      "ps3: one encoding in a fresh process (pipeline compilation included)",
  );
  const off = inferenceRows("x", { ...PS3, params: 1, tokens: 5 }, TORCH)[0]!.note!;
  assert(off.includes("tokens ps3 5 vs PyTorch 3289 (shapes differ!)"), off);
  assert(off.includes("parameters ps3 1 vs PyTorch 485919168 (differ!)"), off);
  assertEquals(inferenceRows("x", PS3, { ...TORCH, inference: undefined }), []);
});

Deno.test("benchInferenceSide() is skipped without Python and under CI", async () => {
  const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });
  const none = await benchInferenceSide({ python: "/nonexistent/python3", env: env({}) });
  assertEquals(none.rows, []);
  assert(none.skipped?.startsWith('cannot run "/nonexistent/python3"'), String(none.skipped));
  const ci = await benchInferenceSide({ env: env({ CI: "true" }) });
  assertEquals(ci, { rows: [], skipped: "CI is set (CI never runs Python)" });
});

Deno.test({
  name: "benchInferenceSide() on PS3-tiny: same tokens and parameters on both sides",
  ignore: (await torchUnavailable("python3", Deno.env)) !== null,
  fn: async () => {
    const { rows, skipped } = await benchInferenceSide({ config: TINY });
    assertEquals(skipped, undefined);
    assertEquals(rows.length, 2);
    const params = visionParamCount(await loadModelConfig(TINY));
    const note = rows[0]!.note!;
    assert(note.includes(`160 tokens; ${params} parameters on both sides`), note);
    assert(rows.every((r) => r.ms > 0), JSON.stringify(rows));
  },
});
