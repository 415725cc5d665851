/**
 * Float64 reference of `src/ops/pool.ts`: PyTorch's `adaptive_max_pool2d` loop on
 * channels-last [N, H, W, C] arrays.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";
import { adaptiveWindow } from "./resize.ts";

/**
 * `F.adaptive_max_pool2d(x, size)`: the max over each window [floor(i * H / outH),
 * ceil((i + 1) * H / outH)) x [floor(j * W / outW), ceil((j + 1) * W / outW)).
 *
 * @param x [N, H, W, C].
 * @param size Output [outH, outW].
 * @returns [N, outH, outW, C].
 */
export function adaptiveMaxPoolRef(x: Arr, size: readonly [number, number]): Arr {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [oh, ow] = size;
  const y = arr([n, oh, ow, c]);
  let i = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      const [y0, y1] = adaptiveWindow(oy, oh, h);
      for (let ox = 0; ox < ow; ox++) {
        const [x0, x1] = adaptiveWindow(ox, ow, w);
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          for (let yy = y0; yy < y1; yy++) {
            for (let xx = x0; xx < x1; xx++) {
              best = Math.max(best, x.data[((b * h + yy) * w + xx) * c + ch]!);
            }
          }
          y.data[i++] = best;
        }
      }
    }
  }
  return y;
}
