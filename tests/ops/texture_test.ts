/**
 * Tensors copied into textures (`src/ops/texture.ts`): every texel against a JavaScript
 * reference of the layout (rows along K, zero past K, batch entries stacked), from row-major
 * and transposed tensors, f32 and f16; and the size check.
 */

import { deepStrictEqual as assertEquals, throws } from "node:assert";
import { randArr, Rng, rt } from "../harness.ts";
import { tensor } from "../../src/ops/creation.ts";
import { cast } from "../../src/ops/cast.ts";
import { releaseTextures, textureFits, toTexture } from "../../src/ops/texture.ts";
import type { GpuTextureBinding } from "../../src/gpu/runtime.ts";
import { defineKernel } from "../../src/gpu/kernel.ts";

const rng = new Rng(11);

/** Reads a texture's texels back (rows padded to 256 bytes for the copy). */
async function readTexture(t: GpuTextureBinding): Promise<Float32Array> {
  const { width, height } = t.texture;
  const row = Math.ceil((width * 16) / 256) * 256;
  const dst = rt.device.createBuffer({
    size: row * height,
    usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
  });
  await rt.sync(); // the fill is submitted before the copy below
  const enc = rt.device.createCommandEncoder();
  enc.copyTextureToBuffer({ texture: t.texture }, { buffer: dst, bytesPerRow: row }, [
    width,
    height,
  ]);
  rt.device.queue.submit([enc.finish()]);
  await dst.mapAsync(GPUMapMode.READ);
  const all = new Float32Array(dst.getMappedRange().slice(0));
  dst.destroy();
  const out = new Float32Array(width * 4 * height);
  for (let y = 0; y < height; y++) {
    out.set(all.subarray((y * row) / 4, (y * row) / 4 + width * 4), y * width * 4);
  }
  return out;
}

for (
  const c of [
    { batch: 1, rows: 5, k: 8, trans: false },
    { batch: 2, rows: 3, k: 7, trans: false },
    { batch: 2, rows: 6, k: 5, trans: true },
    { batch: 1, rows: 9, k: 12, trans: true },
  ]
) {
  for (const dtype of ["f32", "f16"] as const) {
    const label = `batch ${c.batch}, ${c.rows} rows, K ${c.k}${c.trans ? ", transposed" : ""}`;
    Deno.test(`toTexture() lays out every texel (${label}, ${dtype})`, async () => {
      if (dtype === "f16" && !rt.info.hasF16) return;
      const { batch, rows, k, trans } = c;
      const shape = trans ? [batch, k, rows] : [batch, rows, k];
      const src = cast(tensor(Float32Array.from(randArr(shape, rng).data), shape), dtype);
      const values = await cast(src, "f32").read(); // as stored (f16 rounded once)
      const t = toTexture(src, { rows, k, batch, trans });
      const kq = Math.ceil(k / 4);
      assertEquals([t.texture.width, t.texture.height], [kq, batch * rows]);
      const want = new Float32Array(kq * 4 * batch * rows);
      for (let b = 0; b < batch; b++) {
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < k; j++) {
            const at = trans ? (b * k + j) * rows + r : (b * rows + r) * k + j;
            want[(b * rows + r) * kq * 4 + j] = values[at]!;
          }
        }
      }
      assertEquals(await readTexture(t), want);
      releaseTextures([t]);
    });
  }
}

Deno.test("textureFits() takes rows and ceil(K/4) texels up to the largest texture side", () => {
  const side = rt.info.maxTextureSide;
  assertEquals(
    [[side, 4 * side], [side + 1, 4], [1, 4 * side + 1], [1, 4 * side - 3]].map(([r, k]) =>
      textureFits(r!, k!)
    ),
    [true, false, false, true],
  );
});

Deno.test("a texture binding refuses a buffer and a buffer binding a texture, naming the kernel", () => {
  const src = tensor(new Float32Array(8), [1, 2, 4]);
  const t = toTexture(src, { rows: 2, k: 4, batch: 1, trans: false });
  const kernel = defineKernel({
    name: "texture_probe",
    source: "@group(0) @binding(0) var T: texture_2d<f32>;\n" +
      "@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;\n" +
      "@compute @workgroup_size(1) fn main() { y[0] = textureLoad(T, vec2u(0u, 0u), 0); }",
    bindings: ["texture", "write"],
  });
  throws(() => rt.dispatch(kernel, [src, src], {}, [1]), /binding 0 takes a texture/);
  throws(() => rt.dispatch(kernel, [t, t], {}, [1]), /binding 1 takes a buffer/);
  releaseTextures([t]);
});
