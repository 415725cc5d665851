/**
 * The kernel choice of an attention op, as a value held by whoever runs it (a model, a
 * benchmark, a test): the family (`rows` or `tiled`, or "auto": `rows` on CPU adapters,
 * where workgroup memory is slow, `tiled` on GPUs), the rows per thread of `rows`, and the
 * block and tile sizes of `tiled`; and the plan an attention runs with, decided once for its
 * forward and backward.
 *
 * @module
 */

import { grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { RowCode, WG } from "./attention_common.ts";
import { stageTrips } from "./attention_tiled.ts";

/** An attention kernel family (see `attention.ts`). */
export type AttentionVariant = "rows" | "tiled";

/** Every kernel family, for benchmarks and tests. */
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ["rows", "tiled"];

/** Block and tile sizes of the `tiled` family. */
export interface AttentionTiles {
  /**
   * Rows one workgroup owns, one per thread: query rows in the forward and dQ kernels, key
   * rows in the dK/dV kernel (1 to 256).
   */
  block: number;
  /**
   * Rows of the other side staged in workgroup memory per step (key and value rows; query
   * and dO rows in dK/dV), or "auto": as many as fit the adapter's workgroup memory, at most
   * 32.
   */
  tile: number | "auto";
}

/** The tiles used unless an {@linkcode AttentionKernel} changes them. */
export const DEFAULT_ATTENTION_TILES: Readonly<AttentionTiles> = { block: 64, tile: "auto" };

/** An attention's kernel choice; every field defaults to the adapter's choice. */
export interface AttentionKernel {
  /** Kernel family, or "auto". `tiled` falls back to `rows` when its tile cannot fit. */
  variant?: AttentionVariant | "auto" | undefined;
  /** Query (key) rows per thread of `rows` (1 to 8), or "auto": 4 on CPU adapters, 1 else. */
  rows?: number | "auto" | undefined;
  /** Block and tile sizes of `tiled` that differ from the defaults. */
  tiles?: Partial<AttentionTiles> | undefined;
}

/**
 * The rows per thread of a kernel choice on the current adapter.
 *
 * @param kernel The choice.
 * @returns Rows per thread.
 */
export function attentionRows(kernel: AttentionKernel = {}): number {
  const rows = kernel.rows ?? "auto";
  if (rows !== "auto" && (!Number.isInteger(rows) || rows < 1 || rows > 8)) {
    throw new RangeError(`Attention rows per thread must be 1 to 8, got ${rows}`);
  }
  return rows === "auto" ? (gpu().info.isSoftware ? 4 : 1) : rows;
}

/**
 * The tiles of a kernel choice: the defaults with its changes, validated.
 *
 * @param t Changes to the default tiles.
 * @returns The tiles.
 */
export function attentionTiles(t: Partial<AttentionTiles> = {}): AttentionTiles {
  const next = { ...DEFAULT_ATTENTION_TILES, ...t };
  if (!Number.isInteger(next.block) || next.block < 1 || next.block > 256) {
    throw new RangeError(`Attention block must be 1 to 256 rows, got ${next.block}`);
  }
  if (next.tile !== "auto" && (!Number.isInteger(next.tile) || next.tile < 1)) {
    throw new RangeError(`Attention tile must be a positive number of rows, got ${next.tile}`);
  }
  return next;
}

/** Bytes of workgroup memory per staged row of head dim d: two rows and a mask or stats. */
const stagedRowBytes = (d: number) => 8 * d + 8;

/** Rows staged per step for head dim d on this adapter; 0 when the chosen tile does not fit. */
function tileRows(d: number, tiles: AttentionTiles): number {
  // A little slack for the alignment of the three workgroup arrays.
  const fit = Math.floor(
    (gpu().device.limits.maxComputeWorkgroupStorageSize - 64) / stagedRowBytes(d),
  );
  if (tiles.tile === "auto") return Math.min(32, fit);
  return tiles.tile <= fit ? tiles.tile : 0;
}

/**
 * The kernel family attention with head dim `d` runs with on the current adapter.
 *
 * @param d Head dim (decides whether a `tiled` tile fits workgroup memory).
 * @param kernel The choice (default: the adapter's).
 * @returns The family.
 */
export function attentionVariant(d: number, kernel: AttentionKernel = {}): AttentionVariant {
  const v = kernel.variant ?? "auto";
  if (v !== "auto" && !ATTENTION_VARIANTS.includes(v)) {
    throw new RangeError(`Unknown attention variant "${v}"`);
  }
  const wanted = v === "auto" ? (gpu().info.isSoftware ? "rows" : "tiled") : v;
  if (wanted === "tiled" && tileRows(d, attentionTiles(kernel.tiles)) < 1) return "rows";
  return wanted;
}

/** How one attention runs: its family and sizes, work units, grid and loop trips. */
export interface AttentionPlan {
  /** Whether the `tiled` family runs. */
  tiled: boolean;
  /** Rows per thread (`rows`). */
  rows: number;
  /** Rows per workgroup (`tiled`). */
  block: number;
  /** Rows staged per tile (`tiled`; 0 otherwise). */
  tile: number;
  /** The name of the work-unit count among the kernels' params. */
  unitParam: "threads" | "groups";
  /** Work units over n rows per (batch, head). */
  units(n: number): number;
  /** The dispatch grid of a number of units. */
  gridOf(units: number): [number, number];
  /** Loop trips of a kernel that walks n rows, `passes` times per staged tile. */
  trips(n: number, passes?: number): number;
}

/**
 * The plan of one attention: the family and its sizes are chosen once, for the forward and
 * the backward.
 *
 * @param dims Batch, heads and head dim.
 * @param kernel The kernel choice.
 * @returns The plan.
 */
export function attentionPlan(
  dims: { batch: number; heads: number; d: number },
  kernel: AttentionKernel = {},
): AttentionPlan {
  const { batch, heads, d } = dims;
  const tiled = attentionVariant(d, kernel) === "tiled";
  const tiles = attentionTiles(kernel.tiles);
  const r = attentionRows(kernel), wg = tiles.block, tt = tiled ? tileRows(d, tiles) : 0;
  // Loop trips of a kernel that walks n rows: single rows (`rows`), or tiles of T rows, each
  // staged, then walked `passes` times (`tiled`: the forward's scores, then its values).
  // llvmpipe counts a loop's final, failing test as a trip too (measured: a loop of N trips
  // costs N + 1 unless the compiler unrolled it).
  const stage = tiled ? stageTrips(new RowCode(d), wg, tt) : 0;
  return {
    tiled,
    rows: r,
    block: wg,
    tile: tt,
    unitParam: tiled ? "groups" : "threads",
    units: (n) => batch * heads * Math.ceil(n / (tiled ? wg : r)),
    gridOf: (n) => (tiled ? grid(n, 1) : grid(n, WG)),
    trips: (n, passes = 1) =>
      tiled ? 1 + Math.ceil(n / tt) * (1 + (stage + 1) + passes * (tt + 1)) : n + 1,
  };
}
