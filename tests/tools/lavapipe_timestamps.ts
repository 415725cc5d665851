/**
 * Shows why the profiler does not trust GPU timestamps on lavapipe (llvmpipe's Vulkan):
 * a storage-only kernel timed with pass timestamps, then a kernel that samples a texture,
 * then the first kernel again. On Mesa 22.3 the third measurement reads ~0 ms while its wall
 * time is unchanged (measured: 330.8 ms, then 0.1 ms, for 343 and 331 ms wall).
 *
 * Usage: `DENO_WEBGPU_BACKEND=vulkan deno run -A tests/tools/lavapipe_timestamps.ts`
 *
 * @module
 */

const adapter = await navigator.gpu.requestAdapter();
if (!adapter?.features.has("timestamp-query")) throw new Error("no timestamp-query here");
const device = await adapter.requestDevice({ requiredFeatures: ["timestamp-query"] });
const side = 512;
const texture = device.createTexture({
  size: [side, side],
  format: "rgba32float",
  usage: GPUTextureUsage.TEXTURE_BINDING,
});
const usage = GPUBufferUsage.STORAGE;
const src = device.createBuffer({ size: side * side * 16, usage });
const out = device.createBuffer({ size: side * side * 16, usage });

/** A kernel of 2000 dependent FMAs per thread on values loaded from `decl`'s binding. */
function kernel(decl: string, load: string): GPUComputePipeline {
  const code = `${decl}
@group(0) @binding(1) var<storage, read_write> O: array<vec4f>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var a = vec4f(0.0);
  for (var i = 0u; i < 2000u; i++) { a = fma(a, vec4f(0.999), ${load}); }
  O[g.x] = a;
}`;
  const module = device.createShaderModule({ code });
  return device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
}
const storage = kernel(
  "@group(0) @binding(0) var<storage, read> S: array<vec4f>;",
  "S[(g.x + i * 512u) % 262144u]",
);
const sampled = kernel(
  "@group(0) @binding(0) var T: texture_2d<f32>;",
  "textureLoad(T, vec2u(g.x % 512u, (g.x / 512u + i) % 512u), 0)",
);
const queries = device.createQuerySet({ type: "timestamp", count: 2 });
const resolved = device.createBuffer({
  size: 16,
  usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
});
const readback = device.createBuffer({
  size: 16,
  usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
});

/** Runs one dispatch in a timestamped pass: wall and timestamp milliseconds. */
async function run(pipeline: GPUComputePipeline, resource: GPUBindingResource) {
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource }, { binding: 1, resource: { buffer: out } }],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass({
    timestampWrites: { querySet: queries, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(1024);
  pass.end();
  enc.resolveQuerySet(queries, 0, 2, resolved, 0);
  enc.copyBufferToBuffer(resolved, 0, readback, 0, 16);
  const t0 = performance.now();
  device.queue.submit([enc.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const wall = performance.now() - t0;
  const [begin, end] = new BigUint64Array(readback.getMappedRange().slice(0));
  readback.unmap();
  return { wall, stamps: Number(end! - begin!) / 1e6 };
}

for (
  const [name, pipeline, resource] of [
    ["storage kernel", storage, { buffer: src }],
    ["texture kernel", sampled, texture.createView()],
    ["storage kernel, after the texture", storage, { buffer: src }],
  ] as const
) {
  await run(pipeline, resource); // warm-up
  const { wall, stamps } = await run(pipeline, resource);
  console.log(`${name}: wall ${wall.toFixed(1)} ms, timestamps ${stamps.toFixed(1)} ms`);
}
