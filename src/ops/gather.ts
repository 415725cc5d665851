/**
 * Index-driven data movement: row gathers from shared or per-sample tables (`gatherRows`),
 * token embedding lookup (`embedding`) and overwriting indexed entries (`scatterValue`).
 *
 * Gradients are deterministic and use no atomics: `gatherRows` inverts the index map per
 * sample (its indices must be distinct within a row, as top-k output is); `embedding` sorts
 * the token positions by id on the GPU so repeated ids sum in a fixed order.
 *
 * Tables larger than one storage binding (the 32000 x 1152 f32 token table is 147 MB, the
 * limit is often 128 MiB) are bound in windows of whole rows, one dispatch per window, for
 * the lookup and for the table gradient alike.
 *
 * `gatherRows` also gathers from per-sample tables of f16 activations (issue 14): rows move
 * as f16 words, the table gradient is f16 (summed in f32). Shared tables are parameters
 * (f32), and so are embedding tables.
 *
 * Indices outside the table are never read or written through: a lookup of such an index
 * gives a zero row and contributes no gradient (the GPU cannot report them without a
 * readback, so they pass silently).
 *
 * @module
 */

import {
  embedding_backward as embBackwardSrc,
  embedding_rank as rankSrc,
  embedding_segments as segmentsSrc,
  gather_rows as rowsSrc,
  gather_rows_backward as rowsBackwardSrc,
  gather_rows_inverse as inverseSrc,
  gather_scatter_value as scatterSrc,
} from "../../wgsl/sources.ts";
import { defineKernel, grid, type Kernel, KernelCache } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { record } from "../autograd/tape.ts";
import { DTYPE_BYTES, fmtShape, type Tensor } from "../autograd/tensor.ts";
import { empty, full } from "./creation.ts";
import { enableF16 } from "./storage_type.ts";

const kernels = new KernelCache();

/** The row gather moving words of a table's element size: u32 for 4 bytes, or f16. */
function rowsKernel(half: boolean): Kernel {
  return kernels.get(`rows:${half}`, () =>
    defineKernel({
      name: "gather_rows",
      source: rowsSrc,
      bindings: ["read", "read", "write"],
      params: [
        "m:u32",
        "perB:u32",
        "c:u32",
        "n:u32",
        "rowStride:u32",
        "row0:u32",
        "wrows:u32",
        "first:u32",
        "p0:u32",
      ],
      defines: { T: half ? "f16" : "u32", ENABLE: enableF16(half ? "f16" : "f32") },
    }));
}

const inverseKernel = defineKernel({
  name: "gather_rows_inverse",
  source: inverseSrc,
  bindings: ["read", "write"],
  params: ["m:u32", "perB:u32", "n:u32"],
});

/** The table gradient of gatherRows, for f32 or f16 gradients. */
function rowsBackwardKernel(half: boolean): Kernel {
  return kernels.get(`rowsBackward:${half}`, () =>
    defineKernel({
      name: "gather_rows_backward",
      source: rowsBackwardSrc,
      bindings: ["read", "read", "write"],
      params: [
        "wrows:u32",
        "row0:u32",
        "c:u32",
        "n:u32",
        "batch:u32",
        "perB:u32",
        "isShared:u32",
        "p0:u32",
        "pw:u32",
        "first:u32",
      ],
      defines: { T: half ? "f16" : "f32", ENABLE: enableF16(half ? "f16" : "f32") },
    }));
}

const scatterKernel = defineKernel({
  name: "gather_scatter_value",
  source: scatterSrc,
  bindings: ["read", "write"],
  params: ["m:u32", "perB:u32", "n:u32", "value:f32"],
});

const rankKernel = defineKernel({
  name: "embedding_rank",
  source: rankSrc,
  bindings: ["read", "write"],
  params: ["m:u32"],
});

const segmentsKernel = defineKernel({
  name: "embedding_segments",
  source: segmentsSrc,
  bindings: ["read", "read", "write"],
  params: ["m:u32", "v:u32"],
});

/** The last step of embedding's backward: rows written (dense), or added into (`add`). */
function embBackwardKernel(add: boolean): Kernel {
  return kernels.get(`embBackward:${add}`, () =>
    defineKernel({
      name: "embedding_backward",
      source: embBackwardSrc,
      bindings: ["read", "read", "read", "write"],
      params: ["wrows:u32", "row0:u32", "c:u32"],
      defines: { ADD: String(add) },
    }));
}

/** Options of the table ops ({@linkcode gatherRows}, {@linkcode embedding}). */
export interface TableOptions {
  /**
   * Largest table (and output / output-gradient) window bound at once, in bytes (default: the
   * device's storage binding limit). Lower it to exercise the windowed paths on small tensors.
   */
  maxWindowBytes?: number | undefined;
}

/** A run of whole table rows bound together. */
interface RowWindow {
  row0: number;
  rows: number;
}

/**
 * Splits `rows` rows of `c` elements into windows no larger than the binding limit and
 * starting at aligned byte offsets.
 *
 * @param op Op name, for messages.
 * @param size Rows of the table, elements per row and bytes per element.
 * @param maxWindowBytes Optional lower limit than the device's.
 * @returns The windows, in row order.
 */
function rowWindows(
  op: string,
  size: { rows: number; c: number; bytes: number },
  maxWindowBytes?: number,
): RowWindow[] {
  const { rows, c } = size;
  const info = gpu().info;
  const limit = Math.min(maxWindowBytes ?? Infinity, info.maxBindingBytes);
  const rowBytes = c * size.bytes;
  if (rows * rowBytes <= limit || rowBytes === 0) return [{ row0: 0, rows }];
  const align = info.bindingOffsetAlignment / gcd(rowBytes, info.bindingOffsetAlignment);
  const per = Math.floor(limit / rowBytes / align) * align;
  if (per === 0) {
    throw new RangeError(
      `${op}(): cannot bind rows of ${rowBytes} bytes in windows of at most ${limit} bytes ` +
        `aligned to ${info.bindingOffsetAlignment} bytes`,
    );
  }
  const out: RowWindow[] = [];
  for (let r = 0; r < rows; r += per) out.push({ row0: r, rows: Math.min(per, rows - r) });
  return out;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Dispatches `fn` once per window of `table` (viewed as [rows, c]) with the bound window.
 *
 * @param table The whole table (its element 0 aligned when it needs several windows).
 * @param wins Windows from {@linkcode rowWindows}.
 * @param c Words per row.
 * @param fn Records the dispatch for one window.
 */
function forWindows(
  table: Tensor,
  wins: readonly RowWindow[],
  c: number,
  fn: (bound: Tensor, win: RowWindow, index: number) => void,
): void {
  if (wins.length === 1) {
    fn(table, wins[0]!, 0);
    return;
  }
  wins.forEach((win, i) => {
    const bound = table.window(win.row0 * c, [win.rows, c]);
    fn(bound, win, i);
    bound.dispose();
  });
}

function checkIndex(op: string, idx: Tensor): void {
  idx.assertAlive();
  if (idx.dtype !== "i32") {
    throw new TypeError(`${op}(): indices must be i32, got ${idx.describe()}`);
  }
}

function checkTable(op: string, table: Tensor, f16: boolean): void {
  table.assertAlive();
  if (table.dtype === "f16" && !f16) {
    throw new TypeError(
      `${op}(): tables hold 4-byte elements (f32, i32, u32)${f16 ? " or f16" : ""}, got ` +
        table.describe(),
    );
  }
}

/** The forward of both table ops: out[p, :] = table[(p / perB) * rowStride + idx[p], :]. */
function gatherForward(
  op: string,
  table: Tensor,
  idx: Tensor,
  shape: { m: number; perB: number; c: number; n: number; rowStride: number },
  outShape: readonly number[],
  wins: readonly RowWindow[],
  maxWindowBytes: number | undefined,
): Tensor {
  const out = empty(outShape, table.dtype);
  if (out.size === 0) return out;
  const { m, c } = shape;
  const outWins = rowWindows(
    op,
    { rows: m, c, bytes: DTYPE_BYTES[table.dtype] },
    maxWindowBytes,
  );
  forWindows(out, outWins, c, (outBound, ow) => {
    forWindows(table, wins, c, (bound, win, i) => {
      gpu().dispatch(
        rowsKernel(table.dtype === "f16"),
        [bound, idx, outBound],
        {
          ...shape,
          m: ow.rows,
          p0: ow.row0,
          row0: win.row0,
          wrows: win.rows,
          first: i === 0 ? 1 : 0,
        },
        grid(ow.rows * c, 256),
      );
    });
  });
  return out;
}

/**
 * The inverse of a per-row index list: `inv[b, idx[b, k]] = k`, and -1 where no k points.
 * Indices of one row must be distinct; out-of-range indices are skipped. No gradient.
 *
 * @param idx Indices [B, K] i32.
 * @param n Row length N of the inverse.
 * @returns inv [B, N] i32.
 * @example
 * ```ts
 * const inv = inverseIndex(tensor(new Int32Array([2, 0]), [1, 2], "i32"), 3); // [[1, -1, 0]]
 * ```
 */
export function inverseIndex(idx: Tensor, n: number): Tensor {
  checkIndex("inverseIndex", idx);
  if (idx.rank !== 2) {
    throw new RangeError(`inverseIndex() takes [B, K] indices, got ${idx.describe()}`);
  }
  const [batch, perB] = idx.shape as [number, number];
  const inv = full([batch, n], -1, "i32");
  const m = batch * perB;
  if (m > 0) gpu().dispatch(inverseKernel, [idx, inv], { m, perB, n }, grid(m, 256));
  return inv;
}

/**
 * Gathers rows of a table per sample: `out[b, k, :] = table[idx[b, k], :]` for a shared
 * table [N, C] (e.g. a position-embedding table), or `table[b, idx[b, k], :]` for a
 * per-sample table [B, N, C] (e.g. patch tokens).
 *
 * The gradient scatters into the table through an inverse index map (for a shared table,
 * summed over the batch in ascending b): deterministic, no atomics, and it REQUIRES the
 * indices of each row of `idx` to be distinct, as top-k selections are. With repeats the
 * table row receives the gradient of only one of its positions. Indices outside [0, N)
 * give zero rows and no gradient.
 *
 * @param table Table [N, C] or [B, N, C] (4-byte elements, f32 for gradients; a per-sample
 *   table may hold f16 activations, then its gradient is f16).
 * @param idx Indices [B, K] i32.
 * @param options Window size for large tables.
 * @returns The gathered rows [B, K, C].
 * @example
 * ```ts
 * const ids = topkIndices(probs, 512);          // [B, 512] i32
 * const pos = gatherRows(posEmbed, ids);        // [B, 512, C] from a [N, C] table
 * const tokens = gatherRows(patchTokens, ids);  // [B, 512, C] from [B, N, C]
 * ```
 */
export function gatherRows(table: Tensor, idx: Tensor, options: TableOptions = {}): Tensor {
  // f16 tables are per-sample activations; shared tables are parameters (f32).
  checkTable("gatherRows", table, table.rank === 3);
  checkIndex("gatherRows", idx);
  const shared = table.rank === 2;
  const [batch, perB] = idx.shape;
  if (
    idx.rank !== 2 || (table.rank !== 2 && table.rank !== 3) ||
    (!shared && table.shape[0] !== batch)
  ) {
    throw new RangeError(
      `gatherRows(): cannot gather ${idx.describe()} from ${table.describe()}: expected a table ` +
        "[N, C] or [B, N, C] and indices [B, K]",
    );
  }
  const c = table.shape[table.rank - 1]!;
  const n = table.shape[table.rank - 2]!;
  const rows = shared ? n : batch! * n;
  const bytes = DTYPE_BYTES[table.dtype];
  const wins = rowWindows("gatherRows", { rows, c, bytes }, options.maxWindowBytes);
  const shape = { m: batch! * perB!, perB: perB!, c, n, rowStride: shared ? 0 : n };
  const out = gatherForward(
    "gatherRows",
    table,
    idx,
    shape,
    [batch!, perB!, c],
    wins,
    options.maxWindowBytes,
  );
  record("gatherRows", [table, idx], [out], ([g]) => {
    const inv = inverseIndex(idx, n);
    if (shared) gpu().assertLoopTrips("gather_rows_backward", batch!);
    const gt = table.dtype === "f16" ? "f16" : "f32";
    if (g!.dtype !== gt) {
      throw new TypeError(`gatherRows() backward takes a ${gt} gradient, got ${g!.describe()}`);
    }
    const dtable = empty(table.shape, gt);
    const m = batch! * perB!;
    const gWins = rowWindows(
      "gatherRows",
      { rows: m, c, bytes: DTYPE_BYTES[gt] },
      options.maxWindowBytes,
    );
    forWindows(g!, gWins, c, (gBound, gw, j) => {
      forWindows(dtable, wins, c, (bound, win) => {
        gpu().dispatch(
          rowsBackwardKernel(table.dtype === "f16"),
          [inv, gBound, bound],
          {
            wrows: win.rows,
            row0: win.row0,
            c,
            n,
            batch: batch!,
            perB: perB!,
            isShared: shared ? 1 : 0,
            p0: gw.row0,
            pw: gw.rows,
            first: j === 0 ? 1 : 0,
          },
          grid(win.rows * c, 256),
        );
      });
    });
    return [dtable, null];
  });
  return out;
}

/**
 * Token embedding lookup: `out[..., :] = table[ids[...], :]`.
 *
 * The gradient sums the rows of repeated ids deterministically (a stable sort of the
 * positions by id on the GPU, then one thread per table element over its id's positions in
 * ascending order), without atomics. Its sort makes each thread loop over all positions, so
 * `ids.size` must stay within the adapter's loop limit (65535 on llvmpipe; it is asserted).
 * Ids outside [0, V) give zero rows and no gradient.
 *
 * When the table is a leaf that already has a gradient buffer (a parameter of the table:
 * `table.grad` set), the backward adds each occurring id's summed row straight into that
 * buffer and leaves the other rows alone, instead of building a dense [V, C] gradient that
 * the tape would then add (147 MB for a 32000 x 1152 f32 table). The sums and the one add
 * per element are the same as the dense path's followed by `addInto` (bit-identical);
 * otherwise (no gradient buffer yet) the dense gradient is returned as before.
 *
 * @param table Embedding table [V, C] (4-byte elements; f32 for gradients).
 * @param ids Token ids of any shape, i32.
 * @param options Window size for large tables.
 * @returns The embeddings [...ids.shape, C].
 * @example
 * ```ts
 * const x = embedding(tokenTable, textIds); // [B, T] ids -> [B, T, C]
 * ```
 */
export function embedding(table: Tensor, ids: Tensor, options: TableOptions = {}): Tensor {
  checkTable("embedding", table, false);
  checkIndex("embedding", ids);
  if (table.rank !== 2) {
    throw new RangeError(`embedding(): the table must be [V, C], got ${table.describe()}`);
  }
  const [v, c] = table.shape as [number, number];
  const m = ids.size;
  const wins = rowWindows("embedding", { rows: v, c, bytes: 4 }, options.maxWindowBytes);
  const shape = { m, perB: Math.max(m, 1), c, n: v, rowStride: 0 };
  const out = gatherForward(
    "embedding",
    table,
    ids,
    shape,
    [...ids.shape, c],
    wins,
    options.maxWindowBytes,
  );
  record("embedding", [table, ids], [out], ([g]) => {
    const into = table.node === null && table.grad !== null ? table.grad : null;
    const dtable = into ?? empty([v, c]);
    gpu().assertLoopTrips("embedding_rank", m);
    const sorted = empty([m], "u32");
    gpu().dispatch(rankKernel, [ids, sorted], { m }, grid(m, 64));
    const seg = full([v, 2], 0, "u32");
    gpu().dispatch(segmentsKernel, [ids, sorted, seg], { m, v }, grid(m, 256));
    forWindows(dtable, wins, c, (bound, win) => {
      gpu().dispatch(
        embBackwardKernel(into !== null),
        [seg, sorted, g!, bound],
        { wrows: win.rows, row0: win.row0, c },
        grid(win.rows * c, 256),
      );
    });
    return [into ? null : dtable, null];
  });
  return out;
}

/** Options of {@linkcode scatterValue}. */
export interface ScatterValueOptions {
  /** The value written at the indexed positions (finite). */
  value: number;
}

/**
 * A copy of `x` with `x[b, idx[b, k]] = value` (e.g. -1 on already-selected patches so a
 * new top-k skips them). Repeated indices are fine; indices outside [0, N) are skipped.
 *
 * @param x Input [B, N] f32.
 * @param idx Indices [B, K] i32 (no gradient).
 * @param options The value.
 * @returns The modified copy [B, N]; its gradient passes to x except at the overwritten
 *   positions, where it is 0.
 * @example
 * ```ts
 * const remaining = scatterValue(probs, selected, { value: -1 });
 * ```
 */
export function scatterValue(x: Tensor, idx: Tensor, options: ScatterValueOptions): Tensor {
  x.assertAlive();
  checkIndex("scatterValue", idx);
  if (x.dtype !== "f32") throw new TypeError(`scatterValue(): x must be f32, got ${x.describe()}`);
  const [batch, n] = x.shape;
  const [ib, perB] = idx.shape;
  if (x.rank !== 2 || idx.rank !== 2 || ib !== batch) {
    throw new RangeError(
      `scatterValue(): cannot scatter ${idx.describe()} into ${x.describe()}: expected x ` +
        `[B, N] and indices [B, K] with the same B (got ${fmtShape(x.shape)}, ` +
        `${fmtShape(idx.shape)})`,
    );
  }
  const p = { m: batch! * perB!, perB: perB!, n: n! };
  const overwrite = (src: Tensor, value: number): Tensor => {
    const y = empty(src.shape);
    gpu().copy(src, y, src.byteLength);
    gpu().dispatch(scatterKernel, [idx, y], { ...p, value }, grid(p.m, 256));
    return y;
  };
  const y = overwrite(x, options.value);
  record("scatterValue", [x, idx], [y], ([g]) => [overwrite(g!, 0), null]);
  return y;
}
