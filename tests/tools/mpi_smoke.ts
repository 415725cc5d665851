/**
 * The collectives of ps3's MPI binding, by hand under any launcher (outside CI, which runs the
 * OpenMPI tests in tests/dist/): allreduce, allgather, gathering bytes, broadcast, barrier.
 *
 * ```sh
 * mpirun -n 3 --oversubscribe deno run -A tests/tools/mpi_smoke.ts      # OpenMPI
 * mpiexec.mpich -n 3 deno run -A tests/tools/mpi_smoke.ts               # MPICH (hydra)
 * ```
 *
 * @module
 */

import { openCommunicator } from "../../src/dist/communicator.ts";

const c = openCommunicator({ timeoutSeconds: 20 });
const x = new Float32Array([c.rank + 1, 10 * (c.rank + 1)]);
await c.allreduceSum(x);
const g = await c.allgather(new Float32Array([c.rank, c.rank]));
const b = await c.allgatherBytes(new TextEncoder().encode("r".repeat(c.rank + 1)));
const bc = await c.broadcastBytes(c.rank === 0 ? new TextEncoder().encode("hello") : null);
const n = c.size;
const ok = x[0] === (n * (n + 1)) / 2 && x[1] === (10 * n * (n + 1)) / 2 &&
  g.every((v, i) => v === Math.floor(i / 2)) && b.every((u, r) => u.length === r + 1) &&
  new TextDecoder().decode(bc) === "hello";
await c.barrier();
console.log(`${c.flavor} rank ${c.rank}/${c.size} (local ${c.localRank}): ${ok ? "ok" : "WRONG"}`);
c.finalize();
if (!ok) Deno.exit(1);
