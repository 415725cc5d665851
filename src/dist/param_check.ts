/**
 * The cheap proof that every rank holds the same parameters: per parameter buffer, the sum
 * and the sum of squares of its values, computed on the device (one small readback),
 * gathered from every rank and compared bit for bit with rank 0's. Identical operations on
 * identical values give identical bits on every rank, so any difference means the ranks have
 * diverged (a missed all-reduce, a rank that skipped an update, different data types).
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { tidy } from "../autograd/scope.ts";
import { noGrad } from "../autograd/tape.ts";
import { sum, sumSquares } from "../ops/reduce.ts";
import type { ParamTable } from "../params/param_table.ts";
import type { Communicator } from "./communicator.ts";

/**
 * This rank's checksum of a parameter table: [sum, sum of squares] per buffer.
 *
 * @param table The parameters.
 * @returns The checksum values.
 */
export async function paramChecksum(table: ParamTable): Promise<Float32Array> {
  const parts = tidy(() => noGrad(() => table.values.flatMap((v) => [sum(v), sumSquares(v)])));
  const host = await gpu().read(parts);
  for (const p of parts) p.dispose();
  return Float32Array.from(host.map((b) => new Float32Array(b)[0]!));
}

/**
 * Compares every rank's checksum with rank 0's.
 *
 * @param table The parameters.
 * @param comm The ranks.
 * @returns The ranks whose parameters differ from rank 0's (empty when all agree).
 */
export async function divergentRanks(table: ParamTable, comm: Communicator): Promise<number[]> {
  const mine = await paramChecksum(table);
  const all = await comm.allgather(mine);
  const bits = new Uint32Array(all.buffer);
  const n = mine.length;
  const bad: number[] = [];
  for (let r = 1; r < comm.size; r++) {
    for (let i = 0; i < n; i++) {
      if (bits[r * n + i] !== bits[i]) {
        bad.push(r);
        break;
      }
    }
  }
  return bad;
}
