/**
 * Float64 reference of `src/ops/conv.ts`: a direct depthwise convolution with zero padding on
 * channels-last arrays, written as PyTorch's grouped Conv2d computes it.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/**
 * Depthwise Conv2d (groups = C, stride 1, zero padding) on [B, H, W, C].
 *
 * @param x [B, H, W, C].
 * @param weight [C, 1, k, k].
 * @param bias [C], or null.
 * @param padding Zero padding per side.
 * @returns [B, H + 2 * padding - k + 1, W + 2 * padding - k + 1, C].
 */
export function depthwiseConv2dRef(x: Arr, weight: Arr, bias: Arr | null, padding: number): Arr {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const k = weight.shape[2]!;
  const ho = h + 2 * padding - k + 1, wo = w + 2 * padding - k + 1;
  const y = arr([b, ho, wo, c]);
  for (let n = 0; n < b; n++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let ch = 0; ch < c; ch++) {
          let s = bias ? bias.data[ch]! : 0;
          for (let ky = 0; ky < k; ky++) {
            const iy = oy + ky - padding;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox + kx - padding;
              if (ix < 0 || ix >= w) continue;
              s += weight.data[(ch * k + ky) * k + kx]! * x.data[((n * h + iy) * w + ix) * c + ch]!;
            }
          }
          y.data[((n * ho + oy) * wo + ox) * c + ch] = s;
        }
      }
    }
  }
  return y;
}
