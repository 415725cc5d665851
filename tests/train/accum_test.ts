import { ok } from "node:assert";
import { gpu, initGpu } from "../../src/gpu/runtime.ts";
import { loadRunConfig } from "../../src/train/config.ts";
import { Ps3Clip, type TrainOptions } from "../../src/model/ps3_clip.ts";
import { referenceGroups } from "../../src/optim/param_groups.ts";
import { forwardBackward, optimizerStep } from "../../src/train/step.ts";
import { AdamW } from "../../src/optim/adamw.ts";
import type { Batch } from "../../src/data/pipeline/loader.ts";
import { Rng } from "../../src/util/rng.ts";

await initGpu();
const config = await loadRunConfig("tests/testdata/train_tiny.yaml");

/** A random batch of 8 with boxes and a mix of global and local captions. */
function randomBatch(n: number, seed: number): Batch {
  const rng = new Rng(seed);
  const s = 128, t = config.resolvedModel.text.context;
  const boxMaps = new Uint8Array(n * s * s);
  for (let i = 0; i < n; i++) {
    const x0 = rng.int(80), y0 = rng.int(80), w = 8 + rng.int(40), h = 8 + rng.int(40);
    for (let y = y0; y < Math.min(s, y0 + h); y++) {
      for (let x = x0; x < Math.min(s, x0 + w); x++) boxMaps[i * s * s + y * s + x] = 1;
    }
  }
  return {
    images: new Float32Array(n * 3 * s * s).map(() => rng.uniform(-1, 1)),
    tokens: new Int32Array(n * t).map(() => rng.int(128)),
    boxMaps,
    isGlobal: Uint8Array.from({ length: n }, (_, i) => (i % 3 === 2 ? 1 : 0)),
    keys: [...Array(n).keys()].map(String),
    epoch: 0,
    index: 0,
  };
}

const opts: TrainOptions = {
  selectWithGt: true,
  poolGtOnly: true,
  useGlobalCaption: true,
  checkpoint: true,
};
const weights = { prior: 1, posterior: 1 };

async function gradsAndLoss(model: Ps3Clip, batch: Batch, micro: number) {
  model.params.zeroGrad();
  const s = forwardBackward(model, batch, { train: opts, weights, micro });
  const [total] = await s.total.read();
  for (const t of Object.values(s)) t.dispose();
  const grads = await Promise.all(
    model.params.params.map(async (p) => ({ name: p.spec.name, g: await p.grad.read() })),
  );
  return { grads, total: total! };
}

Deno.test("forwardBackward() over 2 micro-batches equals one batch of twice the size", async () => {
  const model = new Ps3Clip(config.resolvedModel, { seed: 5, group: referenceGroups(false) });
  const batch = randomBatch(8, 7);
  const whole = await gradsAndLoss(model, batch, 1);
  const accum = await gradsAndLoss(model, batch, 2);
  // float32: the same sums in another order (the SigLIP terms of the other micro-batch's
  // rows come from a separate no-gradient pass), so a few ulps per term.
  ok(
    Math.abs(whole.total - accum.total) <= 1e-5 * Math.abs(whole.total),
    `loss ${whole.total} vs ${accum.total}`,
  );
  let worst = 0, worstName = "";
  whole.grads.forEach(({ name, g }, i) => {
    const h = accum.grads[i]!.g;
    let num = 0, den = 0;
    for (let j = 0; j < g.length; j++) {
      num += (g[j]! - h[j]!) ** 2;
      den += g[j]! ** 2;
    }
    const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
    if (rel > worst) {
      worst = rel;
      worstName = name;
    }
  });
  ok(worst < 1e-4, `gradient of ${worstName} differs by ${worst.toExponential(2)} (relative L2)`);
});

Deno.test("training steps (forward, backward, AdamW, clamp) keep memory flat", async () => {
  const model = new Ps3Clip(config.resolvedModel, { seed: 6, group: referenceGroups(false) });
  const opt = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 1e-4,
    clipNorm: 1,
  });
  const batch = randomBatch(8, 9);
  let after2 = gpu().memory();
  for (let step = 1; step <= 6; step++) {
    model.params.zeroGrad();
    const s = forwardBackward(model, batch, { train: opts, weights, micro: step % 2 + 1 });
    optimizerStep(model, opt, { lr: { base: 1e-3, selection: 1e-3 }, loss: s.total });
    await s.total.read();
    for (const t of Object.values(s)) t.dispose();
    if (step === 2) after2 = gpu().memory();
  }
  const end = gpu().memory();
  ok(
    end.liveBuffers === after2.liveBuffers,
    `${after2.liveBuffers} -> ${end.liveBuffers} live buffers`,
  );
  ok(
    end.inUseBytes === after2.inUseBytes,
    `${after2.inUseBytes} -> ${end.inUseBytes} bytes in use`,
  );
});
