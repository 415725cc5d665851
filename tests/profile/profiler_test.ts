/**
 * The profiler: dispatch counts of a known op sequence, the Chrome trace against the table,
 * kernel times from GPU timestamps and, on a runtime without `timestamp-query`, from
 * isolated replays.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { initGpu, Runtime } from "../../src/gpu/runtime.ts";
import { defineKernel, grid } from "../../src/gpu/kernel.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { fillInto, zeros } from "../../src/ops/creation.ts";
import { add } from "../../src/ops/elementwise.ts";
import { cast } from "../../src/ops/cast.ts";
import { randn } from "../../src/ops/creation.ts";
import { attention, type AttentionVariant } from "../../src/ops/attention.ts";
import { backward } from "../../src/autograd/tape.ts";
import { profileStep } from "../../src/profile/profiler.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { formatProfile, kernelRows, kernelTotalMs, profileJson } from "../../src/profile/report.ts";
import { chromeTrace, GPU_TRACK, HOST_TRACK } from "../../src/profile/trace.ts";
import { takeProfileFlag } from "../../src/profile/output.ts";

const rt = await initGpu({ timestamps: true });

/** A kernel whose work grows with `iters` (a chain of FMAs per thread). */
const spin = defineKernel({
  name: "test_spin",
  source: "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n" +
    "struct Params { n: u32, iters: u32 }\n@group(0) @binding(1) var<uniform> params: Params;\n" +
    "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {\n" +
    "  if (g.x >= params.n) { return; }\n  var a = f32(g.x);\n" +
    "  for (var i = 0u; i < params.iters; i++) { a = fma(a, 0.999, 0.001); }\n  y[g.x] = a; }",
  bindings: ["write"],
  params: ["n:u32", "iters:u32"],
});

/** Two light and one heavy spin (100x the work), on any runtime. */
function spins(r: Runtime, y: { buffer: GPUBuffer; byteOffset: number; byteLength: number }) {
  const n = 4096;
  r.dispatch(spin, [y], { n, iters: 100 }, grid(n, 64));
  r.dispatch(spin, [y], { n, iters: 10000 }, grid(n, 64));
  r.dispatch(spin, [y], { n, iters: 100 }, grid(n, 64));
}

Deno.test("the device was created with timestamp-query (the llvmpipe adapter has it)", () => {
  assert(rt.info.hasTimestamps, "profiling asks for timestamp-query; this adapter lacks it");
});

Deno.test("profileStep() counts the dispatches of a known op sequence", async () => {
  const a = zeros([1000]), b = zeros([1000]);
  await rt.sync();
  // Two fills and one add: three dispatches, one submit (the profiler's own sync).
  const sequence = () =>
    profileStep(rt, "fill, fill, add", (pr) =>
      pr.phase("record", () => {
        fillInto(a, 1);
        fillInto(b, 2);
        tidy(() => void add(a, b));
      }), "timestamps");
  const p = await sequence();
  assertEquals(p.counts.dispatches, 3);
  assertEquals(p.dispatches.length, 3);
  assertEquals(p.counts.submits, 1);
  assertEquals(p.dispatches.map((d) => d.name).slice(0, 2), ["fill_f32", "fill_f32"]);
  assertEquals(p.phases.map((h) => h.name), ["record"]);
  assertEquals(p.source, "timestamps");
  const rows = kernelRows(p);
  assertEquals(rows.reduce((s, r) => s + r.calls, 0), 3);
  // The same sequence again binds the same windows: no bind group is created, none compiled.
  const again = await sequence();
  assertEquals(again.counts.dispatches, 3);
  assertEquals(again.counts.bindGroups, 0);
  assertEquals(again.counts.pipelineCompiles, 0);
  assertEquals(again.counts.uniformWrites, 1);
  a.dispose();
  b.dispose();
});

Deno.test("chromeTrace() is valid JSON whose kernel events sum to the table's total", async () => {
  const y = zeros([4096]);
  const p = await profileStep(
    rt,
    "spins",
    (pr) => pr.phase("record", () => spins(rt, y)),
    "timestamps",
  );
  const trace = JSON.parse(JSON.stringify(chromeTrace(p))) as ReturnType<typeof chromeTrace>;
  assert(Array.isArray(trace.traceEvents));
  for (const e of trace.traceEvents) {
    assert(e.ph === "X" || e.ph === "M", `phase ${e.ph}`);
    assert(typeof e.name === "string" && Number.isFinite(e.ts) && e.pid === 1);
    if (e.ph === "X") assert(Number.isFinite(e.dur) && e.dur! >= 0, `duration ${e.dur}`);
  }
  const kernels = trace.traceEvents.filter((e) => e.ph === "X" && e.tid === GPU_TRACK);
  const host = trace.traceEvents.filter((e) => e.ph === "X" && e.tid === HOST_TRACK);
  assertEquals(kernels.length, 3);
  assertEquals(host.map((e) => e.name), ["record"]);
  const traceMs = kernels.reduce((s, e) => s + e.dur!, 0) / 1000;
  const tableMs = kernelRows(p).reduce((s, r) => s + r.ms, 0);
  assert(Math.abs(traceMs - tableMs) <= 1e-9 * tableMs, `trace ${traceMs} ms, table ${tableMs}`);
  assert(Math.abs(tableMs - kernelTotalMs(p)) <= 1e-9 * tableMs);
  assertEquals(profileJson(p).kernels.length, 1);
  assert(formatProfile(p).includes("test_spin"));
  y.dispose();
});

Deno.test("profileStep() times kernels with GPU timestamps: 100x the work takes longer", async () => {
  const y = zeros([4096]);
  const p = await profileStep(rt, "spins", () => spins(rt, y), "timestamps");
  assertEquals(p.source, "timestamps");
  const [light, heavy, light2] = p.dispatches.map((d) => d.gpuMs) as [number, number, number];
  assert(light > 0 && light2 > 0, `light kernels ${light}, ${light2} ms`);
  assert(heavy > 5 * Math.max(light, light2), `heavy ${heavy} ms, light ${light}, ${light2}`);
  assert(p.dispatches[1]!.gpuStartMs >= p.dispatches[0]!.gpuStartMs);
  y.dispose();
});

Deno.test("by default the profiler uses timestamps only where the device's are trusted (not on lavapipe)", async () => {
  const y = zeros([4096]);
  const sources: string[] = [];
  for (const trustTimestamps of [true, false]) {
    const r = new Runtime(rt.device, { ...rt.info, trustTimestamps });
    sources.push((await profileStep(r, "spins", () => spins(r, y))).source);
  }
  assertEquals(sources, ["timestamps", "isolated"]);
  assertEquals(rt.info.trustTimestamps, !/llvmpipe|lavapipe/i.test(rt.info.description));
  y.dispose();
});

Deno.test("without timestamp-query the profiler times each distinct dispatch in isolation", async () => {
  const bare = new Runtime(rt.device, { ...rt.info, hasTimestamps: false });
  const y = zeros([4096]);
  const p = await profileStep(bare, "spins", (pr) => pr.phase("record", () => spins(bare, y)));
  assertEquals(p.source, "isolated");
  assertEquals(p.counts.dispatches, 3);
  const [light, heavy, light2] = p.dispatches.map((d) => d.gpuMs) as [number, number, number];
  assertEquals(light, light2); // one signature, timed once
  assert(light > 0, `light kernel ${light} ms`);
  assert(heavy > 5 * light, `heavy ${heavy} ms, light ${light}`);
  // Laid end to end on the GPU track.
  assert(Math.abs(p.dispatches[2]!.gpuStartMs - (light + heavy)) < 1e-9);
  const trace = chromeTrace(p);
  const sum = trace.traceEvents.filter((e) => e.tid === GPU_TRACK && e.ph === "X")
    .reduce((s, e) => s + e.dur!, 0) / 1000;
  assert(Math.abs(sum - kernelTotalMs(p)) <= 1e-9 * sum);
  y.dispose();
});

// Attention's flops per (query value, key): 4 forward, 6 in dQ, 8 in dK/dV, per key source.
for (const variant of ["rows", "uniform", "tiled"] as AttentionVariant[]) {
  for (const dtype of ["f32", "f16"] as const) {
    Deno.test(`profileStep() gives ${variant} attention kernels their flops (${dtype}) and the table their GFLOP/s`, async () => {
      const [b, nq, nk, nc, heads, d] = [2, 5, 7, 3, 2, 8];
      const values = b * nq * heads * d;
      const p = await profileStep(rt, "attention", () =>
        tidy(() => {
          const x = (n: number, seed: number) => {
            const t = randn([b, n, heads * d], seed);
            const y = dtype === "f16" ? cast(t, "f16") : t;
            y.requiresGrad = true;
            return y;
          };
          const [q, k, v, ck, cv] = [x(nq, 1), x(nk, 2), x(nk, 3), x(nc, 4), x(nc, 5)];
          const y = attention(q, k, v, { heads, cache: { k: ck, v: cv }, kernel: { variant } });
          const g = randn([b, nq, heads * d], 6);
          backward(y, dtype === "f16" ? cast(g, "f16") : g);
        }));
      const flopsOf = (re: RegExp) =>
        p.dispatches.filter((s) => re.test(s.name)).map((s) => s.flops);
      assertEquals(flopsOf(/^attention_\w*forward/), [4 * values * (nc + nk)]);
      assertEquals(flopsOf(/backward_dq_/), [6 * values * nc, 6 * values * nk]);
      assertEquals(flopsOf(/backward_dkv_/), [8 * values * nc, 8 * values * nk]);
      assertEquals(flopsOf(/backward_prep/), [null]);
      const rows = kernelRows(p, { gflops: 100, gbps: 10 }).filter((r) =>
        /^attention/.test(r.name)
      );
      for (const r of rows) {
        const known = !/prep/.test(r.name);
        assert((r.gflops !== null) === known, `${r.name}: GFLOP/s ${r.gflops}`);
      }
    });
  }
}

Deno.test("takeProfileFlag() takes --profile and --profile=<dir> out of the arguments", () => {
  assertEquals(takeProfileFlag(["a.yaml", "--x=1"]), { args: ["a.yaml", "--x=1"], dir: null });
  assertEquals(takeProfileFlag(["--profile", "a.yaml"]), { args: ["a.yaml"], dir: "profile" });
  assertEquals(takeProfileFlag(["a.yaml", "--profile=out/p"]), { args: ["a.yaml"], dir: "out/p" });
});

Deno.test("isolated timing replays texture-reading kernels on textures of the same sizes (texture matmul)", async () => {
  const a = randn([40, 24], 1), b = randn([24, 16], 2);
  const p = await profileStep(
    rt,
    "matmul",
    () => tidy(() => void matmul(a, b, { kernel: { variant: "texture" } })),
    "isolated",
  );
  assertEquals(p.source, "isolated");
  assertEquals(p.dispatches.map((d) => d.name), [
    "texture_pack",
    "texture_pack_transposed",
    "matmul_texture_12x16",
  ]);
  for (const d of p.dispatches) assert(d.gpuMs > 0, `${d.name}: ${d.gpuMs} ms`);
  // The operand textures count as bytes moved: 40 x 6 and 16 x 6 texels of 16 bytes.
  assertEquals(p.dispatches[2]!.bytes, (40 * 6 + 16 * 6) * 16 + 40 * 24 * 4 + 40 * 16 * 4);
  a.dispose();
  b.dispose();
});
