import { strictEqual } from "node:assert";
import { renderSources, SOURCES_FILE } from "../../wgsl/gen.ts";
import * as sources from "../../wgsl/sources.ts";

Deno.test("wgsl/sources.ts is up to date with the .wgsl files (else: deno run -A wgsl/gen.ts)", async () => {
  const expected = await renderSources();
  strictEqual(await Deno.readTextFile(SOURCES_FILE), expected);
});

Deno.test("wgsl/sources.ts holds each kernel's file text unchanged", async () => {
  const dir = new URL("../../wgsl/", import.meta.url);
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".wgsl")) continue;
    const name = e.name.slice(0, -".wgsl".length) as keyof typeof sources;
    strictEqual(sources[name], await Deno.readTextFile(new URL(e.name, dir)), e.name);
    n++;
  }
  strictEqual(Object.keys(sources).length, n);
});
