/**
 * Float64 references of `src/ops/patch.ts`, and a direct strided convolution to check that
 * patchify + matmul is the patch-embedding Conv2d.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/**
 * `F.unfold(img, p, stride=p).transpose(1, 2)`.
 *
 * @param img [B, Cin, H, W].
 * @param p Patch size (divides H and W).
 * @returns [B, (H / p) * (W / p), Cin * p * p], features (cin, ky, kx).
 */
export function patchifyRef(img: Arr, p: number): Arr {
  const [b, cin, h, w] = img.shape as [number, number, number, number];
  const gh = h / p, gw = w / p;
  const y = arr([b, gh * gw, cin * p * p]);
  let i = 0;
  for (let n = 0; n < b; n++) {
    for (let py = 0; py < gh; py++) {
      for (let px = 0; px < gw; px++) {
        for (let c = 0; c < cin; c++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              y.data[i++] = img.data[((n * cin + c) * h + py * p + ky) * w + px * p + kx]!;
            }
          }
        }
      }
    }
  }
  return y;
}

/**
 * The rows `index[b, k]` of `patchifyRef(img, p)[b]`; an index outside the patch range
 * gives a zero row.
 *
 * @param img [B, Cin, H, W].
 * @param p Patch size.
 * @param index Selected patch numbers [B][K].
 * @returns [B, K, Cin * p * p].
 */
export function gatherPatchesRef(img: Arr, p: number, index: readonly (readonly number[])[]): Arr {
  const all = patchifyRef(img, p);
  const [b, P, F] = all.shape as [number, number, number];
  const K = index[0]?.length ?? 0;
  const y = arr([b, K, F]);
  for (let n = 0; n < b; n++) {
    for (let k = 0; k < K; k++) {
      const q = index[n]![k]!;
      if (q < 0 || q >= P) continue;
      y.data.set(all.data.subarray((n * P + q) * F, (n * P + q + 1) * F), (n * K + k) * F);
    }
  }
  return y;
}

/**
 * Direct 2-D convolution without padding (PyTorch `F.conv2d`, NCHW).
 *
 * @param img [B, Cin, H, W].
 * @param weight [Cout, Cin, k, k].
 * @param bias [Cout].
 * @param stride Stride.
 * @returns [B, Cout, Ho, Wo] with Ho = floor((H - k) / stride) + 1.
 */
export function conv2dRef(img: Arr, weight: Arr, bias: Arr, stride: number): Arr {
  const [b, cin, h, w] = img.shape as [number, number, number, number];
  const [cout, , k] = weight.shape as [number, number, number, number];
  const ho = Math.floor((h - k) / stride) + 1, wo = Math.floor((w - k) / stride) + 1;
  const y = arr([b, cout, ho, wo]);
  for (let n = 0; n < b; n++) {
    for (let o = 0; o < cout; o++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          let s = bias.data[o]!;
          for (let c = 0; c < cin; c++) {
            for (let ky = 0; ky < k; ky++) {
              for (let kx = 0; kx < k; kx++) {
                s += weight.data[((o * cin + c) * k + ky) * k + kx]! *
                  img.data[((n * cin + c) * h + oy * stride + ky) * w + ox * stride + kx]!;
              }
            }
          }
          y.data[((n * cout + o) * ho + oy) * wo + ox] = s;
        }
      }
    }
  }
  return y;
}
