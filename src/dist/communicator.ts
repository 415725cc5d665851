/**
 * The ranks of a data-parallel run and their collectives. {@linkcode openCommunicator}
 * returns a single-process communicator when no MPI launcher started the process (no MPI
 * library is loaded then), and an MPI one under `mpirun` / `mpiexec` / `srun`.
 *
 * Every MPI collective runs on a helper thread (a nonblocking FFI call) while the main
 * thread waits with a deadline: a collective that does not complete in time (a peer that
 * hangs or died without the launcher noticing) aborts the whole job with a message naming
 * the collective and the rank, instead of hanging forever. Collectives are serialised (one
 * in flight at a time, MPI_THREAD_SERIALIZED).
 *
 * @module
 */

import { loadMpi, MPI_THREAD_SERIALIZED, type MpiFlavor, type MpiLibrary } from "./mpi_library.ts";

/** The ranks of a run and their collectives. */
export interface Communicator {
  /** This process's rank (0 is the one that writes). */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** Rank among the ranks of this machine (chooses the GPU). */
  readonly localRank: number;
  /** The MPI implementation, or "none" for a single process. */
  readonly flavor: MpiFlavor | "none";
  /** Sums float32 values over the ranks, in place. */
  allreduceSum(data: Float32Array): Promise<void>;
  /** Sums float64 values over the ranks, in place. */
  allreduceSum64(data: Float64Array): Promise<void>;
  /** Maxima of int32 values over the ranks, in place. */
  allreduceMax(data: Int32Array): Promise<void>;
  /** Every rank's equal-length block, concatenated in rank order. */
  allgather(data: Float32Array): Promise<Float32Array>;
  /** Every rank's bytes (any lengths), in rank order. */
  allgatherBytes(data: Uint8Array): Promise<Uint8Array[]>;
  /** Rank 0's bytes on every rank. */
  broadcastBytes(data: Uint8Array | null): Promise<Uint8Array>;
  /** Waits for every rank. */
  barrier(): Promise<void>;
  /** Ends every rank of the job at once (MPI_Abort), after printing the message. */
  abort(message: string, code?: number): never;
  /** Shuts MPI down (after the last collective). */
  finalize(): void;
}

/** The single-process communicator: every collective is the identity. */
export const SINGLE_PROCESS: Communicator = {
  rank: 0,
  size: 1,
  localRank: 0,
  flavor: "none",
  allreduceSum: () => Promise.resolve(),
  allreduceSum64: () => Promise.resolve(),
  allreduceMax: () => Promise.resolve(),
  allgather: (data) => Promise.resolve(data.slice()),
  allgatherBytes: (data) => Promise.resolve([data.slice()]),
  broadcastBytes: (data) => Promise.resolve(data ?? new Uint8Array()),
  barrier: () => Promise.resolve(),
  abort(message: string, code = 1): never {
    console.error(message);
    Deno.exit(code);
  },
  finalize() {},
};

/** The environment variables MPI launchers set: world size, rank, local rank. */
const LAUNCHERS = [
  {
    size: "OMPI_COMM_WORLD_SIZE",
    rank: "OMPI_COMM_WORLD_RANK",
    local: "OMPI_COMM_WORLD_LOCAL_RANK",
    flavor: "openmpi",
  },
  { size: "PMI_SIZE", rank: "PMI_RANK", local: "MPI_LOCALRANKID", flavor: "mpich" },
  { size: "PMIX_SIZE", rank: "PMIX_RANK", local: "PMIX_LOCAL_RANK", flavor: "openmpi" },
  { size: "SLURM_NTASKS", rank: "SLURM_PROCID", local: "SLURM_LOCALID", flavor: null },
] as const;

/**
 * What the launcher says about this process, without loading MPI.
 *
 * @returns World size, rank, local rank and the launcher's MPI implementation (if it tells),
 *   or null when no launcher started the process.
 */
export function launcherInfo(): {
  size: number;
  rank: number;
  localRank: number;
  flavor: MpiFlavor | null;
} | null {
  const env = (k: string) => {
    const ok = Deno.permissions.querySync({ name: "env", variable: k }).state === "granted";
    return ok ? Deno.env.get(k) : undefined;
  };
  for (const l of LAUNCHERS) {
    const size = env(l.size), rank = env(l.rank);
    // srun alone (no MPI) sets SLURM_* too: only an MPI-capable launch counts there.
    if (l.size === "SLURM_NTASKS" && !env("PMI_FD") && !env("PMIX_RANK")) continue;
    if (size !== undefined && rank !== undefined) {
      return {
        size: Number(size),
        rank: Number(rank),
        localRank: Number(env(l.local) ?? 0),
        flavor: l.flavor,
      };
    }
  }
  return null;
}

/** Options of {@linkcode openCommunicator}. */
export interface CommunicatorOptions {
  /** The MPI library to load instead of the one found (`train.distributed.mpi_library`). */
  library?: string | null | undefined;
  /** Seconds a collective may take before the job is aborted. */
  timeoutSeconds?: number | undefined;
}

/**
 * The communicator of this process: MPI when a launcher started it, else a single process.
 *
 * @param options Library override and collective timeout.
 * @returns The communicator (MPI initialised).
 */
export function openCommunicator(options: CommunicatorOptions = {}): Communicator {
  const info = launcherInfo();
  if (!info) return SINGLE_PROCESS;
  const mpi = loadMpi(options.library, info.flavor);
  return new MpiCommunicator(mpi, info.localRank, options.timeoutSeconds);
}

/** A communicator over MPI_COMM_WORLD. */
class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly flavor: MpiFlavor;
  readonly #mpi: MpiLibrary;
  readonly #timeoutMs: number;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(mpi: MpiLibrary, localRank: number, timeoutSeconds = 600) {
    this.#mpi = mpi;
    this.flavor = mpi.flavor;
    this.localRank = localRank;
    this.#timeoutMs = timeoutSeconds * 1000;
    const { fn, c } = mpi;
    const flag = new Int32Array(1);
    this.#check("MPI_Initialized", fn.MPI_Initialized(flag));
    if (!flag[0]) {
      const provided = new Int32Array(1);
      this.#check(
        "MPI_Init_thread",
        fn.MPI_Init_thread(null, null, MPI_THREAD_SERIALIZED, provided),
      );
      if (provided[0]! < MPI_THREAD_SERIALIZED) {
        this.abort(
          `ps3: the MPI library ${mpi.path} provides thread level ${provided[0]}; ps3 needs ` +
            `MPI_THREAD_SERIALIZED (${MPI_THREAD_SERIALIZED})`,
        );
      }
    }
    const out = new Int32Array(1);
    this.#check("MPI_Comm_rank", fn.MPI_Comm_rank(c.commWorld, out));
    this.rank = out[0]!;
    this.#check("MPI_Comm_size", fn.MPI_Comm_size(c.commWorld, out));
    this.size = out[0]!;
  }

  /** Throws a readable error for an MPI error code. */
  #check(what: string, code: number): void {
    if (code === 0) return;
    const buf = new Uint8Array(512), len = new Int32Array(1);
    this.#mpi.fn.MPI_Error_string(code, buf, len);
    const text = new TextDecoder().decode(buf.subarray(0, len[0]));
    throw new Error(`${what} failed on rank ${this.rank}: ${text} (code ${code})`);
  }

  /**
   * Runs one collective on a helper thread, after the previous one, with the deadline.
   *
   * @param what Its name, for messages.
   * @param call The nonblocking FFI call.
   */
  #run(what: string, call: () => Promise<number>): Promise<void> {
    const next = this.#queue.then(async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `${what} did not complete within ${this.#timeoutMs / 1000} s on rank ` +
                  `${this.rank} of ${this.size}: another rank hangs or died`,
              ),
            ),
          this.#timeoutMs,
        );
      });
      try {
        this.#check(what, await Promise.race([call(), deadline]));
      } catch (e) {
        this.abort(`ps3 (rank ${this.rank}): ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        clearTimeout(timer);
      }
    });
    this.#queue = next;
    return next;
  }

  allreduceSum(data: Float32Array): Promise<void> {
    const { fn, c } = this.#mpi;
    return this.#run(
      "MPI_Allreduce",
      () => fn.MPI_Allreduce(c.inPlace, data, data.length, c.float, c.sum, c.commWorld),
    );
  }

  allreduceSum64(data: Float64Array): Promise<void> {
    const { fn, c } = this.#mpi;
    return this.#run(
      "MPI_Allreduce",
      () => fn.MPI_Allreduce(c.inPlace, data, data.length, c.double, c.sum, c.commWorld),
    );
  }

  allreduceMax(data: Int32Array): Promise<void> {
    const { fn, c } = this.#mpi;
    return this.#run(
      "MPI_Allreduce",
      () => fn.MPI_Allreduce(c.inPlace, data, data.length, c.int, c.max, c.commWorld),
    );
  }

  async allgather(data: Float32Array): Promise<Float32Array> {
    const { fn, c } = this.#mpi;
    const out = new Float32Array(data.length * this.size);
    await this.#run(
      "MPI_Allgather",
      () => fn.MPI_Allgather(data, data.length, c.float, out, data.length, c.float, c.commWorld),
    );
    return out;
  }

  async allgatherBytes(data: Uint8Array): Promise<Uint8Array[]> {
    const lengths = new Int32Array(this.size);
    lengths[this.rank] = data.length;
    await this.allreduceMax(lengths);
    const block = Math.max(...lengths);
    const send = new Uint8Array(block);
    send.set(data);
    const { fn, c } = this.#mpi;
    const all = new Uint8Array(block * this.size);
    await this.#run(
      "MPI_Allgather",
      () => fn.MPI_Allgather(send, block, c.byte, all, block, c.byte, c.commWorld),
    );
    return [...lengths].map((n, r) => all.slice(r * block, r * block + n));
  }

  async broadcastBytes(data: Uint8Array | null): Promise<Uint8Array> {
    const len = new Int32Array([this.rank === 0 ? data?.length ?? 0 : 0]);
    await this.allreduceMax(len);
    const buf = new Uint8Array(len[0]!);
    if (this.rank === 0 && data) buf.set(data);
    const { fn, c } = this.#mpi;
    await this.#run("MPI_Bcast", () => fn.MPI_Bcast(buf, buf.length, c.byte, 0, c.commWorld));
    return buf;
  }

  barrier(): Promise<void> {
    const { fn, c } = this.#mpi;
    return this.#run("MPI_Barrier", () => fn.MPI_Barrier(c.commWorld));
  }

  abort(message: string, code = 1): never {
    console.error(message);
    this.#mpi.fn.MPI_Abort(this.#mpi.c.commWorld, code);
    Deno.exit(code);
  }

  finalize(): void {
    this.#mpi.fn.MPI_Finalize();
  }
}

/** A communicator that adds up the wall time its collectives take. */
export interface TimedCommunicator extends Communicator {
  /** Seconds spent in collectives so far (waiting for the other ranks included). */
  readonly seconds: number;
}

/**
 * Wraps a communicator to measure the time its collectives take (the communication share of
 * a data-parallel step).
 *
 * @param comm The communicator.
 * @returns The same collectives, timed.
 */
export function timedCommunicator(comm: Communicator): TimedCommunicator {
  let ms = 0;
  const timed = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => async (...a: A) => {
    const t0 = performance.now();
    try {
      return await f(...a);
    } finally {
      ms += performance.now() - t0;
    }
  };
  return {
    rank: comm.rank,
    size: comm.size,
    localRank: comm.localRank,
    flavor: comm.flavor,
    get seconds() {
      return ms / 1000;
    },
    allreduceSum: timed((d: Float32Array) => comm.allreduceSum(d)),
    allreduceSum64: timed((d: Float64Array) => comm.allreduceSum64(d)),
    allreduceMax: timed((d: Int32Array) => comm.allreduceMax(d)),
    allgather: timed((d: Float32Array) => comm.allgather(d)),
    allgatherBytes: timed((d: Uint8Array) => comm.allgatherBytes(d)),
    broadcastBytes: timed((d: Uint8Array | null) => comm.broadcastBytes(d)),
    barrier: timed(() => comm.barrier()),
    abort: (message: string, code?: number) => comm.abort(message, code),
    finalize: () => comm.finalize(),
  };
}
