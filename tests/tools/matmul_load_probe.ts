/**
 * What bounds the CPU-adapter matmuls: the vec4 / texture kernels' inner loop (a TM x TN
 * register tile: per trip TM + TN vec4 loads and 4 * TM * TN/4 vec4 FMAs) with its operands
 * read four ways, each the same arithmetic:
 * - storage: `array<vec4f>` storage buffers (the `vec4` family; llvmpipe runs each such load
 *   as a loop over the SIMD lanes with a branch per lane),
 * - uniform: uniform buffers (gathered without branches, but a binding holds 64 KiB),
 * - texture: rgba32float textures read with `textureLoad` (the `texture` family),
 * - registers: no loads (each operand a register value scaled by the loop counter): the
 *   tile's arithmetic alone.
 * Indices are spread per thread and wrapped to 4096 vec4s, so the data stays in cache; the
 * figures are GFLOP/s of the loop, to set against the adapter's FMA ceiling.
 *
 * Usage: `DENO_WEBGPU_BACKEND=vulkan deno run -A tests/tools/matmul_load_probe.ts [TMxTN ...]`
 * (default 12x16 8x16 4x8)
 *
 * @module
 */

const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("no WebGPU adapter");
const device = await adapter.requestDevice();
const SOURCES = ["storage", "uniform", "texture", "registers"] as const;
type Source = typeof SOURCES[number];
const ITERS = 1024, WORKGROUPS = 128;

/** The probe kernel of one tile and operand source. */
function kernel(source: Source, tm: number, tn: number): string {
  const decl: Record<Source, string> = {
    storage: "var<storage, read> A: array<vec4f>;\n@group(0) @binding(1) var<storage, read> B: " +
      "array<vec4f>;",
    uniform: "var<uniform> A: array<vec4f, 4096>;\n@group(0) @binding(1) var<uniform> B: " +
      "array<vec4f, 4096>;",
    texture: "var A: texture_2d<f32>;\n@group(0) @binding(1) var B: texture_2d<f32>;",
    registers: "",
  };
  const load = (op: "A" | "B", base: string) => {
    if (source === "registers") return `v${base} * kf`;
    const i = `((${base} + k) & 4095u)`;
    return source === "texture"
      ? `textureLoad(${op}, vec2u(${i} & 63u, ${i} >> 6u), 0)`
      : `${op}[${i}]`;
  };
  const setup: string[] = [], body = ["let kf = vec4f(f32(k));"];
  for (let i = 0; i < tm; i++) setup.push(`let ra${i} = (t * ${tm}u + ${i}u) * 61u;`);
  for (let j = 0; j < tn; j++) setup.push(`let cb${j} = (t * ${tn}u + ${j}u) * 67u;`);
  if (source === "registers") {
    for (let i = 0; i < tm; i++) setup.push(`let vra${i} = vec4f(f32(ra${i}));`);
    for (let j = 0; j < tn; j++) setup.push(`let vcb${j} = vec4f(f32(cb${j}));`);
  }
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn / 4; j++) setup.push(`var acc${i}_${j} = vec4f(0.0);`);
  }
  for (let i = 0; i < tm; i++) body.push(`let a${i} = ${load("A", `ra${i}`)};`);
  for (let j = 0; j < tn; j++) body.push(`let b${j} = ${load("B", `cb${j}`)};`);
  const sum: string[] = [];
  for (let kk = 0; kk < 4; kk++) {
    for (let i = 0; i < tm; i++) {
      for (let j = 0; j < tn / 4; j++) {
        const b = [0, 1, 2, 3].map((e) => `b${4 * j + e}[${kk}]`).join(", ");
        body.push(`acc${i}_${j} = fma(vec4f(a${i}[${kk}]), vec4f(${b}), acc${i}_${j});`);
        if (kk === 0) sum.push(`acc${i}_${j}`);
      }
    }
  }
  const out = source === "registers" ? 0 : 2;
  return `${source === "registers" ? "" : `@group(0) @binding(0) ${decl[source]}`}
@group(0) @binding(${out}) var<storage, read_write> O: array<vec4f>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  ${setup.join("\n  ")}
  for (var k = 0u; k < ${ITERS}u; k++) {
    ${body.join("\n    ")}
  }
  O[t] = ${sum.join(" + ")};
}`;
}

const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
const a = device.createBuffer({ size: 65536, usage }),
  b = device.createBuffer({ size: 65536, usage });
const values = new Float32Array(16384).map((_, i) => Math.sin(i));
device.queue.writeBuffer(a, 0, values);
device.queue.writeBuffer(b, 0, values);
const texture = () => {
  const t = device.createTexture({
    size: [64, 64],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
  });
  device.queue.writeTexture({ texture: t }, values, { bytesPerRow: 1024 }, [64, 64]);
  return t.createView();
};
const ta = texture(), tb = texture();
const out = device.createBuffer({ size: WORKGROUPS * 64 * 16, usage: GPUBufferUsage.STORAGE });

const tiles = (Deno.args.length > 0 ? Deno.args : ["12x16", "8x16", "4x8"]).map((s) =>
  s.split("x").map(Number) as [number, number]
);
for (const [tm, tn] of tiles) {
  const rates: string[] = [];
  for (const source of SOURCES) {
    const module = device.createShaderModule({ code: kernel(source, tm, tn) });
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const operands: GPUBindingResource[] = source === "texture"
      ? [ta, tb]
      : source === "registers"
      ? []
      : [{ buffer: a }, { buffer: b }];
    const entries = [...operands, { buffer: out }].map((resource, binding) => ({
      binding,
      resource,
    }));
    const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const run = async () => {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(WORKGROUPS);
      pass.end();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    };
    await run(); // compile, warm
    const t0 = performance.now();
    for (let r = 0; r < 3; r++) await run();
    const ms = (performance.now() - t0) / 3;
    const flops = WORKGROUPS * 64 * ITERS * tm * tn * 4 * 2;
    rates.push(`${source} ${(flops / ms / 1e6).toFixed(1)}`);
  }
  console.log(`tile ${tm}x${tn}, GFLOP/s: ${rates.join(", ")}`);
}
