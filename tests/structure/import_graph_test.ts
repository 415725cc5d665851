import { deepStrictEqual, ok } from "node:assert";
import { importCycles, type ImportEdge, importEdges, layerViolations } from "./import_graph.ts";

const SRC = new URL("../../src/", import.meta.url).pathname;

Deno.test("src/ imports only downward: every import is allowed by DEPENDS", async () => {
  const bad = layerViolations(await importEdges(SRC));
  deepStrictEqual(bad, [], `imports against the layout:\n${bad.join("\n")}`);
});

Deno.test("src/ has no runtime import loop between files", async () => {
  const cycles = importCycles(await importEdges(SRC));
  deepStrictEqual(cycles.map((c) => c.join(" -> ")), []);
});

Deno.test("layerViolations() names a back-edge and a peer import; importCycles() finds a loop", () => {
  const edges: ImportEdge[] = [
    { from: "nn/linear.ts", to: "model/config.ts", typeOnly: true },
    { from: "loss/box.ts", to: "optim/adamw.ts", typeOnly: false },
    { from: "model/a.ts", to: "nn/linear.ts", typeOnly: false },
    { from: "ops/a.ts", to: "ops/b.ts", typeOnly: false },
    { from: "ops/b.ts", to: "ops/a.ts", typeOnly: false },
    { from: "ops/c.ts", to: "ops/d.ts", typeOnly: true },
    { from: "ops/d.ts", to: "ops/c.ts", typeOnly: false },
  ];
  const bad = layerViolations(edges);
  deepStrictEqual(bad.length, 2);
  ok(bad[0]!.includes('"nn" may not import "model"'), bad[0]);
  ok(bad[1]!.includes('"loss" may not import "optim"'), bad[1]);
  deepStrictEqual(importCycles(edges), [["ops/a.ts", "ops/b.ts", "ops/a.ts"]]);
});

Deno.test("importEdges() reads static, type-only, re-export and Worker URL imports", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(
      `${dir}/a/x.ts`,
      [
        'import { y } from "../b/y.ts";',
        'import type { Z } from "../b/z.ts";',
        'export * from "./w.ts";',
        'new Worker(new URL("./v.ts", import.meta.url));',
        'import src from "../../wgsl/k.wgsl" with { type: "text" };',
      ].join("\n"),
    );
    const edges = await importEdges(dir);
    deepStrictEqual(
      edges.map((e) => `${e.from}>${e.to}:${e.typeOnly}`).sort(),
      ["a/x.ts>a/v.ts:false", "a/x.ts>a/w.ts:false", "a/x.ts>b/y.ts:false", "a/x.ts>b/z.ts:true"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
