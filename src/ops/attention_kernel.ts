/**
 * The kernel choice of an attention op, as a value held by whoever runs it (a model, a
 * benchmark, a test): the family (`rows`, `tiled` or `uniform`, or "auto": on CPU adapters,
 * where workgroup memory is slow, `uniform` for the forward of at least
 * {@linkcode UNIFORM_MIN_QUERIES} queries and `rows` otherwise; `tiled` on GPUs), the rows per
 * thread of `rows`, the block and tile sizes of `tiled`, the workgroup, rows and chunk of
 * `uniform`; and the plan an attention runs with, decided once for its forward and backward.
 *
 * `uniform` is a forward kernel (`attention_uniform.ts`); its backward runs the `rows`
 * kernels.
 *
 * @module
 */

import { grid } from "../gpu/kernel.ts";
import { gpu } from "../gpu/runtime.ts";
import { RowCode, WG } from "./attention_common.ts";
import { stageTrips } from "./attention_tiled.ts";
import type { UniformShape } from "./attention_uniform.ts";

export type { UniformShape } from "./attention_uniform.ts";

/** An attention kernel family (see `attention.ts`). */
export type AttentionVariant = "rows" | "tiled" | "uniform" | "texture";

/** Every kernel family, for benchmarks and tests. */
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = [
  "rows",
  "tiled",
  "uniform",
  "texture",
];

/**
 * The `uniform` forward's shape unless an {@linkcode AttentionKernel} changes it: 16 threads,
 * 16 query rows each, keys in chunks of 4. Measured on llvmpipe at PS3-1.5K's high-res shape
 * (2 heads, side by side in one process): more rows per thread share each key load among more
 * FMAs (8 rows: 1.6x the `rows` kernel, 12: 2.0x, 16: 2.3x); 24 rows took minutes to compile.
 */
export const DEFAULT_UNIFORM_SHAPE: Readonly<UniformShape> = { wg: 16, rows: 16, chunk: 4 };

/**
 * The fewest queries for which "auto" picks `uniform` on a CPU adapter: a workgroup owns
 * wg * rows = 256 query rows, so fewer queries leave most of its lanes idle. PS3-tiny's
 * attention (at most 96 queries; measured at B=16, H=4, D=16, Nq=96, Nc=64: 0.74x to 1.09x
 * the `rows` kernel with 4 to 16 rows per thread) and the MAP pool's single query stay on
 * `rows`.
 */
export const UNIFORM_MIN_QUERIES = 256;

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
  /** Workgroup, rows per thread and key chunk of `uniform` that differ from the defaults. */
  uniform?: Partial<UniformShape> | undefined;
}

/**
 * The shape of the `uniform` forward of a kernel choice: the defaults with its changes,
 * validated.
 *
 * @param u Changes to the default shape.
 * @returns The shape.
 */
export function uniformShape(u: Partial<UniformShape> = {}): UniformShape {
  const next = { ...DEFAULT_UNIFORM_SHAPE, ...u };
  const ok = (x: number, most: number) => Number.isInteger(x) && x >= 1 && x <= most;
  if (!ok(next.wg, 256) || !ok(next.rows, 32) || !ok(next.chunk, 16)) {
    throw new RangeError(
      `Attention uniform shape needs 1 to 256 threads, 1 to 32 rows and chunks of 1 to 16 ` +
        `keys, got ${next.wg} threads, ${next.rows} rows, chunks of ${next.chunk}`,
    );
  }
  return next;
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
 * @param d Head dim (decides whether a `tiled` tile fits workgroup memory, and whether keys
 *   and values can be read as vec4 texels: `texture` needs D % 4 == 0, else `uniform` runs).
 * @param kernel The choice (default: the adapter's).
 * @param nq Queries (on CPU adapters, "auto" picks `texture` (`uniform` for D % 4 != 0) from
 *   {@linkcode UNIFORM_MIN_QUERIES} on; unknown: `rows`).
 * @returns The family.
 */
export function attentionVariant(
  d: number,
  kernel: AttentionKernel = {},
  nq?: number,
): AttentionVariant {
  const v = kernel.variant ?? "auto";
  if (v !== "auto" && !ATTENTION_VARIANTS.includes(v)) {
    throw new RangeError(`Unknown attention variant "${v}"`);
  }
  const cpu = (nq ?? 0) >= UNIFORM_MIN_QUERIES ? (d % 4 === 0 ? "texture" : "uniform") : "rows";
  const wanted = v === "auto" ? (gpu().info.isSoftware ? cpu : "tiled") : v;
  if (wanted === "tiled" && tileRows(d, attentionTiles(kernel.tiles)) < 1) return "rows";
  if (wanted === "texture" && d % 4 !== 0) return "uniform";
  return wanted;
}

/** How one attention's forward runs: its kernel's work units, grid and loop trips. */
export interface AttentionForwardPlan {
  /** The `uniform` kernel's shape, or null when the family's own forward runs. */
  uniform: UniformShape | null;
  /** Whether the `uniform` kernel reads keys and values from textures (family `texture`). */
  texture: boolean;
  /** The name of the work-unit count among the kernel's params. */
  unitParam: "threads" | "groups";
  /** Work units over nq query rows per (batch, head). */
  units(nq: number): number;
  /** The dispatch grid of a number of units. */
  gridOf(units: number): [number, number];
  /** Loop trips over nc cached and nk own keys. */
  trips(nc: number, nk: number): number;
}

/**
 * How one attention runs: its family and sizes, work units, grid and loop trips (of the
 * backward, and of the forward unless `forward` says otherwise).
 */
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
  /** The forward's kernel, units, grid and trips. */
  forward: AttentionForwardPlan;
}

/**
 * The plan of one attention: the family and its sizes are chosen once, for the forward and
 * the backward.
 *
 * @param dims Batch, heads, head dim and queries (the queries decide "auto" on CPU adapters).
 * @param kernel The kernel choice.
 * @returns The plan.
 */
export function attentionPlan(
  dims: { batch: number; heads: number; d: number; nq?: number },
  kernel: AttentionKernel = {},
): AttentionPlan {
  const { batch, heads, d } = dims;
  const variant = attentionVariant(d, kernel, dims.nq);
  const tiled = variant === "tiled";
  const tiles = attentionTiles(kernel.tiles);
  const r = attentionRows(kernel), wg = tiles.block, tt = tiled ? tileRows(d, tiles) : 0;
  // Loop trips of a kernel that walks n rows: single rows (`rows`), or tiles of T rows, each
  // staged, then walked `passes` times (`tiled`: the forward's scores, then its values).
  // llvmpipe counts a loop's final, failing test as a trip too (measured: a loop of N trips
  // costs N + 1 unless the compiler unrolled it).
  const stage = tiled ? stageTrips(new RowCode(d), wg, tt) : 0;
  const units = (n: number) => batch * heads * Math.ceil(n / (tiled ? wg : r));
  const gridOf = (n: number) => (tiled ? grid(n, 1) : grid(n, WG));
  const trips = (n: number, passes = 1) =>
    tiled ? 1 + Math.ceil(n / tt) * (1 + (stage + 1) + passes * (tt + 1)) : n + 1;
  const unitParam = tiled ? "groups" : "threads";
  return {
    tiled,
    rows: r,
    block: wg,
    tile: tt,
    unitParam,
    units,
    gridOf,
    trips,
    forward: variant === "uniform" || variant === "texture"
      ? uniformForward(batch * heads, uniformShape(kernel.uniform), variant === "texture")
      : {
        uniform: null,
        texture: false,
        unitParam,
        units,
        gridOf,
        trips: (nc, nk) => trips(nc, 2) + trips(nk, 2),
      },
  };
}

/** The forward plan of the `uniform` kernel over `bh` (batch, head) pairs. */
function uniformForward(bh: number, u: UniformShape, texture: boolean): AttentionForwardPlan {
  // A workgroup per (batch, head, block of wg * rows queries); one loop over key chunks per
  // key source (with its final, failing test).
  return {
    uniform: u,
    texture,
    unitParam: "groups",
    units: (nq) => bh * Math.ceil(nq / (u.wg * u.rows)),
    gridOf: (n) => grid(n, 1),
    trips: (nc, nk) => Math.ceil(nc / u.chunk) + 1 + Math.ceil(nk / u.chunk) + 1,
  };
}
