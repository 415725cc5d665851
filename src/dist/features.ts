/**
 * Every rank's rows of some tensors, gathered onto every rank without gradient (the
 * feature exchange of the data-parallel SigLIP loss).
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import type { Tensor } from "../autograd/tensor.ts";
import { tensor } from "../ops/creation.ts";
import type { Communicator } from "./communicator.ts";

/**
 * Gathers [b, E] tensors of every rank into [size * b, E] tensors in rank order.
 *
 * @param parts This rank's tensors (equal row counts on every rank).
 * @param comm The ranks.
 * @returns The gathered tensors, new and without gradient (the caller disposes them).
 */
export async function gatherFeatures(
  parts: readonly Tensor[],
  comm: Communicator,
): Promise<Tensor[]> {
  const host = await gpu().read(parts);
  const out: Tensor[] = [];
  for (let i = 0; i < parts.length; i++) {
    const [b, ...rest] = parts[i]!.shape;
    const all = await comm.allgather(new Float32Array(host[i]!));
    out.push(tensor(all, [b! * comm.size, ...rest]));
  }
  return out;
}
