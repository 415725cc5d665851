import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert";
import { rt } from "../harness.ts";
import { benchSteps, stepConfigs, stepRows } from "../../src/bench/step.ts";
import { loadModelConfig } from "../../src/model/config.ts";

const configUrl = (name: string) => new URL(`../../configs/${name}`, import.meta.url).pathname;

Deno.test("stepConfigs() builds tiny, 1.5k and 4k as configs/ps3-*.yaml define them", async () => {
  const [tiny, c15, c4k] = stepConfigs(["tiny", "1.5k", "4k"]);
  for (
    const [built, file] of [[tiny, "ps3-tiny.yaml"], [c15, "ps3-1.5k.yaml"], [
      c4k,
      "ps3-4k.yaml",
    ]] as const
  ) {
    const want = await loadModelConfig(configUrl(file));
    const v = built!.model.vision, w = want.vision;
    assertEquals(
      [v.trunk, v.scales, v.budgets, v.selectLayers, v.conv],
      [w.trunk, w.scales, w.budgets, w.selectLayers, w.conv],
      file,
    );
    const t = built!.model.text, u = want.text;
    assertEquals([t.width, t.heads, t.layers, t.mlpHidden, t.context, t.vocab], [
      u.width,
      u.heads,
      u.layers,
      u.mlpHidden,
      u.context,
      u.vocab,
    ], file);
  }
});

Deno.test("stepConfigs() equal-budget family shares trunk, text and budget, not scales", () => {
  const eq = stepConfigs(["eq-tiny", "eq-1.5k", "eq-4k"], { depth: 3, budget: 500 });
  for (const c of eq) {
    assertEquals(c.model.vision.trunk.width, 1152);
    assertEquals(c.model.vision.trunk.depth, 3);
    assertEquals(c.model.text.layers, 3);
    assertEquals(c.model.vision.budgets.reduce((a, b) => a + b, 0), 500);
  }
  assertEquals(eq.map((c) => c.model.vision.scales.at(-1)), [256, 1512, 3780]);
  throws(() => stepConfigs(["8k"]), RangeError);
});

Deno.test("stepConfigs() eq-1.5k-vec4 is eq-1.5k with vec4 matmuls; stepRows() states their ratio", () => {
  const [eq, vec4] = stepConfigs(["eq-1.5k", "eq-1.5k-vec4"], { depth: 3, budget: 500 });
  assertEquals(vec4!.model, eq!.model);
  assertEquals(vec4!.batch, eq!.batch);
  assertEquals(eq!.kernels, undefined);
  assertEquals(vec4!.kernels, { matmul: { variant: "vec4" } });
  const rows = stepRows([
    { config: eq!, stepMs: 800, parts: [] },
    { config: vec4!, stepMs: 1200, parts: [] },
  ]);
  const ratio = rows.find((r) => r.name === "ratio eq-1.5k-vec4 / eq-1.5k (matmul family)");
  assertEquals([ratio?.rate, ratio?.ms], [1.5, 400]);
});

Deno.test("benchSteps() times the tiny step and parts that add up to about the step", async () => {
  const [r] = await benchSteps(stepConfigs(["tiny"]), { runs: 1 });
  assert(r!.stepMs > 0 && Number.isFinite(r!.stepMs));
  const names = r!.parts.map((p) => p.name.split(" (")[0]);
  assertEquals(names, [
    "text tower + prompt_proj",
    "low-res pass",
    "selection ConvNet",
    "selection features, probabilities, top-k",
    "high-res embedding",
    "high-res blocks",
    "of which image resizes to [64, 128, 256] and 256",
  ]);
  const rows = stepRows([r!]);
  assertEquals(rows[0]!.name, "step tiny (batch 8)");
  assert(rows.some((x) => x.name.includes("rest")));
  await rt.sync();
});
