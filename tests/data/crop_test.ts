import { deepStrictEqual as assertEquals, ok as assert } from "node:assert";
import type { Box } from "../../src/data/pipeline/annotations.ts";
import {
  randomResizedCropParams,
  resizedCrop,
  resizedCropBoxes,
  roundHalfEven,
} from "../../src/data/pipeline/crop.ts";
import { Rng } from "../../src/util/rng.ts";

/** An Rng whose uniform draws are scripted (uniform() and int() both go through next()). */
class ScriptedRng extends Rng {
  #values: number[];
  constructor(values: number[]) {
    super(0);
    this.#values = [...values];
  }
  override next(): number {
    const v = this.#values.shift();
    if (v === undefined) throw new Error("ScriptedRng ran out of values");
    return v;
  }
}

Deno.test("roundHalfEven() rounds ties to even like Python's round()", () => {
  assertEquals([0.5, 1.5, 2.5, 2.4999, 2.5001, 133.5, -1.5].map(roundHalfEven), [
    0,
    2,
    2,
    2,
    3,
    134,
    -2,
  ]);
});

Deno.test("randomResizedCropParams() accepts a draw as torchvision does (square image)", () => {
  // scale 0.9 + 0.1 * 0.5 = 0.95, log-ratio midpoint = ratio 1: w = h = round(sqrt(950000))
  // = 975; then top = floor(u * 26), left = floor(u * 26).
  const rng = new ScriptedRng([0.5, 0.5, 7.5 / 26, 19.5 / 26]);
  assertEquals(randomResizedCropParams({ width: 1000, height: 1000 }, rng), {
    left: 19,
    top: 7,
    width: 975,
    height: 975,
  });
});

Deno.test("randomResizedCropParams() falls back to the centre crop after 10 failed draws", () => {
  // A 3:2 image can never fit: h = sqrt(s*W*H/r) <= H needs s <= r / 1.5 <= 0.889 < 0.9.
  // Fallback: ratio 1.5 > 4/3, so h = 1500, w = round(1500 * 4/3) = 2000, centred.
  for (const seed of [0, 1, 2, 3]) {
    assertEquals(randomResizedCropParams({ width: 2250, height: 1500 }, new Rng(seed)), {
      left: 125,
      top: 0,
      width: 2000,
      height: 1500,
    });
  }
  // Too tall: w = 10, h = round(10 / (3/4)) = 13, top = (1000 - 13) // 2 = 493.
  assertEquals(randomResizedCropParams({ width: 10, height: 1000 }, new Rng(5)), {
    left: 0,
    top: 493,
    width: 10,
    height: 13,
  });
});

Deno.test("randomResizedCropParams() draws crops within the scale and ratio ranges", () => {
  const rng = new Rng(11);
  const tops = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const c = randomResizedCropParams({ width: 640, height: 600 }, rng);
    const area = (c.width * c.height) / (640 * 600);
    const ratio = c.width / c.height;
    assert(c.left >= 0 && c.top >= 0 && c.left + c.width <= 640 && c.top + c.height <= 600);
    if (c.width === 640 && c.height === 600 && c.left === 0) continue; // fallback: whole image
    // Rounding w and h to integers moves area and ratio by at most about 1/300 here.
    assert(area >= 0.9 - 4e-3 && area <= 1 + 4e-3, `area fraction ${area}`);
    assert(ratio >= 0.75 - 4e-3 && ratio <= 4 / 3 + 4e-3, `ratio ${ratio}`);
    tops.add(c.top);
  }
  assert(tops.size > 20, `offsets should vary, saw ${tops.size}`);
  const a = randomResizedCropParams({ width: 640, height: 600 }, new Rng(99));
  const b = randomResizedCropParams({ width: 640, height: 600 }, new Rng(99));
  assertEquals(a, b);
});

Deno.test("resizedCropBoxes() shifts, clamps and scales boxes (int64 boxes truncate)", () => {
  const crop = { left: 125, top: 0, width: 2000, height: 1500 };
  const boxes: Box[] = [
    { x1: 1020, y1: 780, x2: 1380, y2: 1020, integral: true },
    { x1: 0, y1: 10, x2: 300, y2: 60, integral: true }, // starts left of the crop
    { x1: 1020.25, y1: 780.5, x2: 1380.75, y2: 1020, integral: false },
  ];
  const [a, b, c] = resizedCropBoxes(boxes, { crop, width: 1512, height: 1512 });
  // x: (v - 125) * 0.756, y: v * 1.008, truncated for integral boxes.
  assertEquals(a, { x1: 676, y1: 786, x2: 948, y2: 1028, integral: true });
  assertEquals(b, { x1: 0, y1: 10, x2: 132, y2: 60, integral: true });
  const close = (x: number, y: number) => Math.abs(x - y) < 1e-3;
  assert(close(c!.x1, 895.25 * 0.756) && close(c!.y1, 780.5 * 1.008), JSON.stringify(c));
  assert(close(c!.x2, 1255.75 * 0.756) && close(c!.y2, 1028.16), JSON.stringify(c));
});

Deno.test("resizedCropBoxes() reproduces torchvision's float32 ratio (1126 -> 378 edge)", () => {
  // float32(378 / 1126) * 1126 = 377.99997 in float32, truncated to 377 for an int64 box.
  const crop = { left: 0, top: 0, width: 1126, height: 900 };
  const [b] = resizedCropBoxes([{ x1: 0, y1: 0, x2: 1126, y2: 900, integral: true }], {
    crop,
    width: 378,
    height: 378,
  });
  assertEquals(b, { x1: 0, y1: 0, x2: 377, y2: 378, integral: true });
});

Deno.test("resizedCrop() resizes the crop and maps its boxes together", () => {
  const width = 40, height = 30;
  const data = new Uint8Array(width * height * 3);
  // A white rectangle on black at x 20..29, y 10..19.
  for (let y = 10; y < 20; y++) data.fill(255, (y * width + 20) * 3, (y * width + 30) * 3);
  const crop = { left: 10, top: 5, width: 20, height: 20 };
  const box: Box = { x1: 20, y1: 10, x2: 30, y2: 20, integral: true };
  const out = resizedCrop({ width, height, data }, [box], { crop, width: 10, height: 10 });
  assertEquals(out.boxes, [{ x1: 5, y1: 2, x2: 10, y2: 7, integral: true }]);
  // Inside the mapped box is bright, well outside is dark.
  const at = (x: number, y: number) => out.image.data[(y * 10 + x) * 3]!;
  assert(at(7, 4) > 200 && at(2, 4) < 30 && at(7, 9) < 30, "rectangle moved with its box");
});
