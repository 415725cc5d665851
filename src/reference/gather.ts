/**
 * Float64 references of the index ops in `src/ops/gather.ts`. Index arrays hold integers;
 * out-of-range indices give zero rows (gathers) or are skipped (scatters), as on the GPU.
 *
 * @module
 */

import { type Arr, arr } from "./array.ts";

/**
 * Gathers table rows per sample.
 *
 * @param table Shared table [N, C] or per-sample table [B, N, C].
 * @param idx Indices [B, K].
 * @returns Rows [B, K, C].
 */
export function gatherRowsRef(table: Arr, idx: Arr): Arr {
  const [batch, perB] = idx.shape as [number, number];
  const shared = table.shape.length === 2;
  const c = table.shape[table.shape.length - 1]!;
  const n = table.shape[table.shape.length - 2]!;
  const out = arr([batch, perB, c]);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < perB; k++) {
      const id = idx.data[b * perB + k]!;
      if (id < 0 || id >= n) continue;
      const src = ((shared ? 0 : b * n) + id) * c;
      out.data.set(table.data.subarray(src, src + c), (b * perB + k) * c);
    }
  }
  return out;
}

/**
 * Embedding lookup.
 *
 * @param table Table [V, C].
 * @param ids Ids of any shape.
 * @returns Rows [...ids.shape, C].
 */
export function embeddingRef(table: Arr, ids: Arr): Arr {
  const m = ids.data.length;
  const rows = gatherRowsRef(table, { data: ids.data, shape: [1, m] });
  return { data: rows.data, shape: [...ids.shape, table.shape[1]!] };
}

/**
 * Overwrites indexed entries of a copy.
 *
 * @param x Input [B, N].
 * @param idx Indices [B, K].
 * @param value Value written.
 * @returns The copy with `x[b, idx[b, k]] = value`.
 */
export function scatterValueRef(x: Arr, idx: Arr, value: number): Arr {
  const [batch, n] = x.shape as [number, number];
  const perB = idx.shape[1]!;
  const out = arr(x.shape, x.data);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < perB; k++) {
      const id = idx.data[b * perB + k]!;
      if (id >= 0 && id < n) out.data[b * n + id] = value;
    }
  }
  return out;
}
