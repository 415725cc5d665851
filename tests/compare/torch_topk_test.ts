import { deepStrictEqual } from "node:assert";
import { torchTopkIndices } from "../../src/compare/torch_topk.ts";

// Index sets picked by torch.topk (PyTorch 2.13 CPU, float64) on tied scores shaped like
// PS3's selection maps; regenerate with tests/testdata/gen_torch_topk.py.
const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../testdata/torch_topk_cases.json", import.meta.url)),
) as { torch: string; cases: { values: number[]; k: number; indices: number[] }[] };

Deno.test(`torchTopkIndices() picks PyTorch's tied indices (${fixture.cases.length} cases)`, () => {
  for (const c of fixture.cases) {
    deepStrictEqual(torchTopkIndices(c.values, c.k), c.indices, `n ${c.values.length}, k ${c.k}`);
  }
});

Deno.test("torchTopkIndices() differs from lowest-index tie-breaking on block-tied maps", () => {
  // 4 equal candidates, k = 2: libstdc++'s nth_element does not keep {0, 1}.
  const picked = torchTopkIndices([0.5, 0.5, 0.5, 0.5, 0.1], 2);
  deepStrictEqual(picked.length, 2);
  deepStrictEqual(
    fixture.cases.some((c) => c.indices.join() !== lowestIndex(c.values, c.k).join()),
    true,
  );
});

function lowestIndex(v: number[], k: number): number[] {
  return v.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k)
    .map((p) => p[1]).sort((a, b) => a - b);
}
