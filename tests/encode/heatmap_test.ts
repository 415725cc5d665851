import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import { decodeImage, type RgbImage } from "../../src/data/formats/image.ts";
import {
  displayImage,
  displaySize,
  gaussianBlur,
  heatmapOverlay,
  jetColor,
  resizeMap,
  selectionOverlay,
} from "../../src/encode/heatmap.ts";
import { DOCK_SMALL, greyCorrelation } from "./helpers.ts";

const DOCK = decodeImage(Deno.readFileSync(DOCK_SMALL), { file: "dock", maxPixels: 1e6 }).image;

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) =>
  a.length === b.length && Array.from(a).every((v, i) => Math.abs(v - b[i]!) <= tol);

Deno.test("jetColor() matches matplotlib's jet table ((cm.jet(v) * 255).astype(uint8))", () => {
  // matplotlib: cm.jet(0) = (0, 0, 0.5), cm.jet(0.5) = (0.4902, 1, 0.4775), cm.jet(1) = (0.5, 0, 0).
  assertEquals(jetColor(0), [0, 0, 127]);
  assertEquals(jetColor(0.5), [125, 255, 121]);
  assertEquals(jetColor(1), [127, 0, 0]);
  assertEquals(jetColor(-3), jetColor(0));
  assertEquals(jetColor(0.25), [0, 128, 255]); // cm.jet(0.25) = (0, 0.5039, 1)
});

Deno.test("resizeMap() is PyTorch's antialiased bilinear: half-pixel upsampling, triangle downsampling", () => {
  const up = resizeMap([0, 1, 2, 3], [2, 2], [4, 4]);
  const want = [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3];
  assert(close(up, want, 1e-12), `got ${Array.from(up)}`);
  // torch.nn.functional.interpolate([[0, 1, 2, 3]], size=2, mode="bilinear", antialias=True)
  const down = resizeMap([0, 1, 2, 3], [1, 4], [1, 2]);
  assert(close(down, [1.25 / 1.75, 4 / 1.75], 1e-12), `got ${Array.from(down)}`);
});

Deno.test("gaussianBlur() matches scipy's gaussian_filter: separable kernel, reflect borders", () => {
  const n = 21, sigma = 1.5, r = Math.trunc(4 * sigma + 0.5);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-0.5 * ((i - r) / sigma) ** 2));
  const s = k.reduce((a, b) => a + b, 0);
  const g = k.map((v) => v / s);
  const impulse = (y: number, x: number) => {
    const m = new Float64Array(n * n);
    m[y * n + x] = 1;
    return gaussianBlur(m, [n, n], sigma);
  };
  // Away from the borders: the outer product of the kernel.
  const mid = impulse(10, 10);
  assert(Math.abs(mid[10 * n + 12]! - g[r]! * g[r + 2]!) < 1e-15);
  assert(Math.abs(mid[8 * n + 9]! - g[r - 2]! * g[r - 1]!) < 1e-15);
  // At a corner, "reflect" repeats the edge sample (d c b a | a b c d), so the impulse at 0
  // also sits at -1: out[0] = (g[0] + g[1])^2 in kernel offsets.
  const corner = impulse(0, 0);
  assert(Math.abs(corner[0]! - (g[r]! + g[r + 1]!) ** 2) < 1e-15);
  const flat = gaussianBlur(new Float64Array(35).fill(0.7), [5, 7], 3);
  assert(close(flat, new Float64Array(35).fill(0.7), 1e-12), "a constant map stays constant");
});

Deno.test("displaySize() keeps the aspect ratio within 256..1024 px unless a size is given", () => {
  assertEquals(displaySize({ width: 2250, height: 1500 }), [683, 1024]);
  assertEquals(displaySize({ width: 300, height: 200 }), [200, 300]);
  assertEquals(displaySize({ width: 5, height: 3 }), [154, 256]);
  assertEquals(displaySize({ width: 1, height: 40 }), [256, 6]);
  assertEquals(displaySize({ width: 2250, height: 1500 }, { longSide: 2250 }), [1500, 2250]);
  assertEquals(displayImage(DOCK, [200, 300]), DOCK);
});

/** The colour layer of a blended pixel: (out - 0.6 * photo) / 0.4. */
function layer(out: RgbImage, photo: RgbImage, i: number): number[] {
  return [0, 1, 2].map((c) => (out.data[3 * i + c]! - 0.6 * photo.data[3 * i + c]!) / 0.4);
}

Deno.test("heatmapOverlay() shows the photo darkened under jet: red where the map is high, blue where low", () => {
  // Left half of an 4x6 grid high, right half low.
  const probs = Array.from({ length: 24 }, (_, i) => (i % 6 < 3 ? 0.9 : 0.1));
  const out = heatmapOverlay(DOCK, probs, [4, 6], { sigma: 2 });
  assertEquals([out.width, out.height], [300, 200]);
  assert(greyCorrelation(out, DOCK) > 0.8, "the photo shows under the overlay");
  for (const [x, want] of [[20, [127, 0, 0]], [280, [0, 0, 127]]] as const) {
    for (const y of [10, 100, 190]) {
      const got = layer(out, DOCK, y * 300 + x);
      // Rounding of the blend to bytes moves the recovered layer by at most 0.5 / 0.4.
      assert(close(got, want, 1.25 + 1e-9), `pixel (${x}, ${y}): layer ${got}, want ${want}`);
    }
  }
  // The blend is exactly 0.6 photo + 0.4 colour, rounded: the mean brightness drops to about
  // 0.6 of the photo's plus the colour's share.
  const mean = (im: RgbImage) => im.data.reduce((a, b) => a + b, 0) / im.data.length;
  assert(mean(out) < 0.6 * mean(DOCK) + 0.4 * 255 && mean(out) > 0.6 * mean(DOCK));
});

Deno.test("heatmapOverlay() draws a constant map in one colour instead of failing", () => {
  const out = heatmapOverlay(DOCK, new Float32Array(16).fill(0.5), [4, 4]);
  for (const i of [0, 777, 300 * 200 - 1]) {
    assert(close(layer(out, DOCK, i), [0, 0, 127], 1.25 + 1e-9));
  }
});

Deno.test("selectionOverlay() keeps encoded patches, dims the others and outlines the regions", () => {
  // 2x3 grid on 300x200: patches of 100x100; the middle top patch selected.
  const sel = [0, 1, 0, 0, 0, 0];
  const out = selectionOverlay(DOCK, sel, [2, 3]);
  const px = (im: RgbImage, x: number, y: number) =>
    Array.from(im.data.subarray(3 * (y * 300 + x), 3 * (y * 300 + x) + 3));
  assertEquals(px(out, 150, 50), px(DOCK, 150, 50)); // inside: the photo
  assertEquals(px(out, 50, 150), px(DOCK, 50, 150).map((v) => Math.round(v * 0.3))); // dimmed
  assertEquals(px(out, 100, 50), [255, 220, 0]); // left edge of the selected patch
  assertEquals(px(out, 150, 99), [255, 220, 0]); // bottom edge
  assertEquals(px(out, 150, 0), px(DOCK, 150, 0)); // the picture border is not an outline
});
