/**
 * Float64 reference of `src/ops/attention.ts`: multi-head scaled dot-product attention over
 * [cached keys ; own keys] with an optional key mask.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/** Options of {@linkcode attentionRef}, mirroring the GPU op's. */
export interface AttentionRefOptions {
  /** Number of heads H; the last dim of q, k, v is H*D. */
  heads: number;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number | undefined;
  /** Cached keys and values [B, Nc, H*D], attended before the own keys. */
  cache?: { k: Arr; v: Arr } | undefined;
  /** Key mask [B, Nc+Nk]: 0 = masked, anything else = attend. */
  keyMask?: Arr | undefined;
}

/**
 * Attention: out[b, i, h] = sum_j softmax_j(scale * q[b, i, h] . key[b, j, h]) value[b, j, h]
 * with key = [cache.k ; k] and value = [cache.v ; v] along the token axis, masked keys left
 * out of the softmax. A row whose keys are all masked is zero.
 *
 * @param q Queries [B, Nq, H*D].
 * @param k Own keys [B, Nk, H*D].
 * @param v Own values [B, Nk, H*D].
 * @param opts Heads, scale, cache and key mask.
 * @returns The output [B, Nq, H*D].
 */
export function attentionRef(q: Arr, k: Arr, v: Arr, opts: AttentionRefOptions): Arr {
  const [bs, nq, hd] = q.shape as [number, number, number];
  const nk = k.shape[1]!;
  const nc = opts.cache ? opts.cache.k.shape[1]! : 0;
  const heads = opts.heads;
  const d = hd / heads;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const nt = nc + nk;
  const out = arr([bs, nq, hd]);
  const s = new Float64Array(nt);
  // Row start of key/value j of sample b, and the array it lives in.
  const keyRow = (b: number, j: number): [Arr, Arr, number] =>
    j < nc ? [opts.cache!.k, opts.cache!.v, (b * nc + j) * hd] : [k, v, (b * nk + j - nc) * hd];
  for (let b = 0; b < bs; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < nq; i++) {
        const qo = (b * nq + i) * hd + h * d;
        let m = -Infinity;
        for (let j = 0; j < nt; j++) {
          if (opts.keyMask && opts.keyMask.data[b * nt + j] === 0) {
            s[j] = -Infinity;
            continue;
          }
          const [ka, , ko] = keyRow(b, j);
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q.data[qo + e]! * ka.data[ko + h * d + e]!;
          s[j] = scale * dot;
          if (s[j]! > m) m = s[j]!;
        }
        if (m === -Infinity) continue; // every key masked: the row stays zero
        let l = 0;
        for (let j = 0; j < nt; j++) {
          s[j] = Math.exp(s[j]! - m);
          l += s[j]!;
        }
        for (let j = 0; j < nt; j++) {
          if (s[j] === 0) continue;
          const p = s[j]! / l;
          const [, va, vo] = keyRow(b, j);
          for (let e = 0; e < d; e++) out.data[qo + e]! += p * va.data[vo + h * d + e]!;
        }
      }
    }
  }
  return out;
}
