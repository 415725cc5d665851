/**
 * Data-parallel benchmarks, run under `mpirun` (`ps3 bench --allreduce`): the gradient
 * all-reduce of ps3 (device readback in buckets, `MPI_Allreduce`, upload) against MPI's own
 * `MPI_Allreduce` on host buffers of the same sizes in the same run, and the share of a
 * tiny-config training step spent in collectives.
 *
 * @module
 */

import { gpu } from "../gpu/runtime.ts";
import { keep } from "../autograd/scope.ts";
import { randn } from "../ops/creation.ts";
import type { Tensor } from "../autograd/tensor.ts";
import type { Communicator } from "../dist/communicator.ts";
import { timedCommunicator } from "../dist/communicator.ts";
import { allreduceBuffers } from "../dist/grad_allreduce.ts";
import { Ps3Clip } from "../model/ps3_clip.ts";
import { referenceGroups } from "../optim/param_groups.ts";
import { AdamW } from "../optim/adamw.ts";
import { forwardBackwardGlobal, optimizerStep } from "../train/step.ts";
import { loadRunConfig } from "../train/config.ts";
import type { Batch } from "../data/pipeline/loader.ts";
import { Rng } from "../util/rng.ts";
import { type BenchRow, median } from "./timing.ts";

/** Options of {@linkcode benchAllreduce}. */
export interface AllreduceBenchOptions {
  /** Bytes reduced per timed run (default 512 MiB: a slice of PS3-1.5K's 3.75 GB). */
  bytes?: number | undefined;
  /** Bucket size (default 64 MiB, `train.distributed.bucket_mb`'s default). */
  bucketBytes?: number | undefined;
  /** Timed runs (median kept; default 3). */
  runs?: number | undefined;
}

/** Median seconds of `fn` over runs, every rank starting together. */
async function timed(comm: Communicator, runs: number, fn: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    await comm.barrier();
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

/**
 * The gradient all-reduce of gradient buckets of the 1.5K model's size, ps3's path (device
 * buffers) and MPI's raw `MPI_Allreduce` (host buffers), in the same run.
 *
 * @param comm The ranks (2 or more).
 * @param options Bytes, bucket size, runs.
 * @returns Rows with GB/s (bytes reduced per rank per second).
 */
export async function benchAllreduce(
  comm: Communicator,
  options: AllreduceBenchOptions = {},
): Promise<BenchRow[]> {
  const rt = gpu();
  const bytes = options.bytes ?? 512 * 2 ** 20, bucket = options.bucketBytes ?? 64 * 2 ** 20;
  const runs = options.runs ?? 3;
  const chunk = Math.min(rt.info.maxBindingBytes, rt.info.maxBufferBytes, 1 << 30);
  const buffers: Tensor[] = [];
  for (let left = bytes; left > 0; left -= chunk) {
    buffers.push(keep(randn([Math.min(chunk, left) / 4], 3 + buffers.length)));
  }
  const host = buffers.map((b) => {
    const n = b.size;
    return Array.from(
      { length: Math.ceil((n * 4) / bucket) },
      (_, k) => new Float32Array(Math.min(bucket / 4, n - (k * bucket) / 4)).fill(1),
    );
  }).flat();
  const raw = await timed(comm, runs, async () => {
    for (const h of host) await comm.allreduceSum(h);
  });
  const ours = await timed(comm, runs, async () => {
    await allreduceBuffers(buffers, comm, bucket);
    await rt.sync();
  });
  for (const b of buffers) b.dispose();
  const gb = bytes / 1e9;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const what = `${mib(bytes)} in ${mib(bucket)} buckets, ${comm.size} ranks (${comm.flavor})`;
  return [
    {
      name: `all-reduce of gradient buckets, ${what}: device -> MPI -> device`,
      ms: ours * 1000,
      rate: gb / ours,
      unit: "GB/s",
      note: `${(raw / ours).toFixed(2)}x the raw MPI_Allreduce's rate`,
    },
    {
      name: `MPI_Allreduce alone on host buffers, ${what}`,
      ms: raw * 1000,
      rate: gb / raw,
      unit: "GB/s",
      note: "same bytes, same run",
    },
  ];
}

/**
 * Data-parallel training steps of a config (random batches of its sizes): the time per step
 * and the share spent in collectives (feature exchange, gradient all-reduce, loss sums).
 *
 * @param comm The ranks.
 * @param options Config file, samples per rank, steps timed (after one untimed).
 * @returns One row.
 */
export async function benchDataParallelStep(
  comm: Communicator,
  options: { config: string; batch: number; steps?: number | undefined },
): Promise<BenchRow[]> {
  const config = await loadRunConfig(options.config);
  const m = config.resolvedModel;
  const S = m.vision.scales[m.vision.scales.length - 1]!, T = m.text.context;
  const model = new Ps3Clip(m, { seed: 1, group: referenceGroups(false) });
  const opt = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 1e-4,
    clipNorm: 0,
  });
  const rng = new Rng(7 + comm.rank);
  const n = options.batch;
  const batch: Batch = {
    images: new Float32Array(n * 3 * S * S).map(() => rng.uniform(-1, 1)),
    tokens: new Int32Array(n * T).map(() => 1 + rng.int(100)),
    boxMaps: new Uint8Array(n * S * S).map(() => (rng.uniform(0, 1) < 0.2 ? 1 : 0)),
    isGlobal: Uint8Array.from({ length: n }, (_, i) => (i % 4 === 3 ? 1 : 0)),
    keys: [...Array(n).keys()].map(String),
    epoch: 0,
    index: 0,
  };
  const timedComm = timedCommunicator(comm);
  const step = async () => {
    model.params.zeroGrad();
    const s = await forwardBackwardGlobal(model, batch, {
      train: { selectWithGt: true, poolGtOnly: true, useGlobalCaption: true, checkpoint: true },
      weights: { prior: 1, posterior: 1 },
      micro: 1,
    }, timedComm);
    await allreduceBuffers(model.params.grads, timedComm, 64 * 2 ** 20);
    optimizerStep(model, opt, { lr: { base: 1e-4, selection: 1e-4 }, loss: s.total });
    const shares = new Float64Array(
      (await gpu().read([s.total])).map((b) => new Float32Array(b)[0]!),
    );
    await timedComm.allreduceSum64(shares);
    for (const t of Object.values(s)) t.dispose();
  };
  await step(); // compiles the pipelines
  const steps = options.steps ?? 5;
  const c0 = timedComm.seconds, t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const total = (performance.now() - t0) / 1000 / steps;
  const commS = (timedComm.seconds - c0) / steps;
  return [{
    name: `data-parallel step, ${m.name}, ${n} samples x ${comm.size} ranks`,
    ms: total * 1000,
    note: `${(100 * commS / total).toFixed(1)}% in collectives (${(commS * 1000).toFixed(0)} ms: ` +
      "feature exchange, gradient all-reduce, loss sums; waiting for the slower rank included)",
  }];
}
