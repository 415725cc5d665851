/**
 * One side of the data-parallel equivalence test (run by `data_parallel_test.ts`, alone or
 * under `mpirun`): three AdamW steps of the tiny config on a global batch of G random
 * samples, each rank training on its rows. Writes the global loss terms of each step, rank
 * 0's gradients of the first step (summed over the ranks) and its parameters after the
 * last step.
 *
 * Usage: deno run -A tests/dist/dp_worker.ts <out prefix> <global batch> <micro-batches>
 *
 * @module
 */

import { gpu, initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { Ps3Clip } from "../../src/model/ps3_clip.ts";
import { referenceGroups } from "../../src/optim/param_groups.ts";
import { AdamW } from "../../src/optim/adamw.ts";
import { forwardBackward, forwardBackwardGlobal, optimizerStep } from "../../src/train/step.ts";
import { openCommunicator } from "../../src/dist/communicator.ts";
import { allreduceBuffers } from "../../src/dist/grad_allreduce.ts";
import type { Batch } from "../../src/data/pipeline/loader.ts";
import { Rng } from "../../src/util/rng.ts";

const [prefix, globalArg, microArg] = Deno.args;
const G = Number(globalArg), micro = Number(microArg);
const comm = openCommunicator({ timeoutSeconds: 300 });
await initGpu();
const config = await loadRunConfig("configs/ps3-tiny.yaml");
const m = config.resolvedModel;
const S = m.vision.scales[m.vision.scales.length - 1]!, T = m.text.context;

/** The global batch of a step: identical on every rank. */
function globalBatch(n: number, seed: number): Batch {
  const rng = new Rng(seed);
  const boxMaps = new Uint8Array(n * S * S);
  for (let i = 0; i < n; i++) {
    const x0 = rng.int(S / 2),
      y0 = rng.int(S / 2),
      w = 16 + rng.int(S / 3),
      h = 16 + rng.int(S / 3);
    for (let y = y0; y < Math.min(S, y0 + h); y++) {
      for (let x = x0; x < Math.min(S, x0 + w); x++) boxMaps[i * S * S + y * S + x] = 1;
    }
  }
  return {
    images: new Float32Array(n * 3 * S * S).map(() => rng.uniform(-1, 1)),
    tokens: new Int32Array(n * T).map(() => 1 + rng.int(120)),
    boxMaps,
    // Global captions on an irregular pattern, so ranks hold different counts of local ones.
    isGlobal: Uint8Array.from({ length: n }, (_, i) => (i % 5 === 3 ? 1 : 0)),
    keys: [...Array(n).keys()].map(String),
    epoch: 0,
    index: 0,
  };
}

/** Rows [a, b) of a batch. */
function rows(x: Batch, a: number, b: number): Batch {
  const img = 3 * S * S;
  return {
    images: x.images.slice(a * img, b * img),
    tokens: x.tokens.slice(a * T, b * T),
    boxMaps: x.boxMaps.slice(a * S * S, b * S * S),
    isGlobal: x.isGlobal.slice(a, b),
    keys: x.keys.slice(a, b),
    epoch: 0,
    index: 0,
  };
}

const b = G / comm.size;
const model = new Ps3Clip(m, { seed: 5, group: referenceGroups(false) });
const o = config.optim;
const opt = new AdamW(model.params, {
  beta1: o.beta1,
  beta2: o.beta2,
  eps: o.eps,
  weightDecay: o.weight_decay,
  clipNorm: 1,
});
const options = {
  train: { selectWithGt: true, poolGtOnly: true, useGlobalCaption: true, checkpoint: true },
  weights: { prior: 1, posterior: 1 },
  micro,
};
const losses: number[][] = [];
let grads: ArrayBuffer[] = [];
for (let step = 0; step < 3; step++) {
  const mine = rows(globalBatch(G, 100 + step), comm.rank * b, (comm.rank + 1) * b);
  model.params.zeroGrad();
  const s = comm.size > 1
    ? await forwardBackwardGlobal(model, mine, options, comm)
    : forwardBackward(model, mine, options);
  // Small buckets: several per gradient buffer, so the pipelining is exercised.
  if (comm.size > 1) await allreduceBuffers(model.params.grads, comm, 256 * 1024);
  if (step === 0) grads = await gpu().read(model.params.params.map((p) => p.grad));
  const stats = optimizerStep(model, opt, { lr: { base: 2e-3, selection: 2e-3 }, loss: s.total });
  const terms = [s.total, s.contrastive, s.priorBox, s.posteriorBox];
  const host = await gpu().read([...terms, stats]);
  const shares = new Float64Array(terms.map((_, i) => new Float32Array(host[i]!)[0]!));
  await comm.allreduceSum64(shares);
  losses.push([...shares]);
  for (const t of terms) t.dispose();
}
/** Concatenates buffers of f32 values. */
function joined(parts: ArrayBuffer[]): Uint8Array {
  const all = new Float32Array(parts.reduce((a, v) => a + v.byteLength / 4, 0));
  let off = 0;
  for (const v of parts) {
    all.set(new Float32Array(v), off);
    off += v.byteLength / 4;
  }
  return new Uint8Array(all.buffer);
}

if (comm.rank === 0) {
  const values = await gpu().read(model.params.params.map((p) => p.value));
  const names = model.params.params.map((p) => p.spec.name);
  const sizes = values.map((v) => v.byteLength / 4);
  await Deno.writeFile(`${prefix}.params.bin`, joined(values));
  await Deno.writeFile(`${prefix}.grads.bin`, joined(grads));
  await Deno.writeTextFile(`${prefix}.json`, JSON.stringify({ losses, names, sizes }));
}
comm.finalize();
