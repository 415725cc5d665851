import { ok as assert } from "node:assert";
import { assertClose, Rng, rt } from "../harness.ts";
import { type ParamSpec, ParamTable } from "../../src/params/param_table.ts";
import { AdamW } from "../../src/optim/adamw.ts";
import { tensor } from "../../src/ops/creation.ts";
import { type AdamWRefParam, adamwStepRef } from "../../src/reference/adamw.ts";

function specs(rng: Rng): ParamSpec[] {
  const mk = (name: string, shape: number[], decay: boolean, lrGroup: "base" | "selection") => ({
    name,
    shape,
    decay,
    lrGroup,
    init: (a: Float32Array) => a.forEach((_, i) => a[i] = rng.uniform(-1, 1)),
  });
  return [
    mk("w1", [7, 5], true, "base"),
    mk("b1", [5], false, "base"),
    mk("sel.w", [3, 9], true, "selection"),
    mk("scale", [], false, "base"),
    mk("w2", [130], true, "base"),
  ];
}

async function runSteps(clipNorm: number, chunkBytes?: number) {
  const rng = new Rng(5);
  const table = new ParamTable(specs(rng), { chunkBytes });
  const o = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm };
  const opt = new AdamW(table, o);
  const lrs = { base: 0.01, selection: 0.003 };
  const init = await rt.read(table.params.map((p) => p.value));
  const ref: AdamWRefParam[] = table.params.map((p, k) => ({
    p: Float64Array.from(new Float32Array(init[k]!)),
    m: new Float64Array(p.value.size),
    v: new Float64Array(p.value.size),
    lr: lrs[p.spec.lrGroup],
    wd: p.spec.decay ? 0.1 : 0,
  }));
  let norm = 0;
  for (let step = 1; step <= 3; step++) {
    const grads = table.params.map((p) => {
      const g = new Float32Array(p.value.size).map(() => rng.uniform(-2, 2));
      rt.upload(p.grad, g);
      return Float64Array.from(g);
    });
    opt.update(lrs);
    norm = adamwStepRef(ref, grads, step, { ...o });
  }
  const got = await rt.read([...table.params.map((p) => p.value), opt.stats]);
  table.params.forEach((p, k) => {
    // f32 state vs f64: a few ulp per step on values of size ~1.
    assertClose(new Float32Array(got[k]!), ref[k]!.p, {
      atol: 2e-6,
      rtol: 2e-6,
      label: `${p.spec.name} after 3 steps`,
    });
  });
  return { stats: new Float32Array(got[got.length - 1]!), norm, table };
}

Deno.test("AdamW matches torch.optim.AdamW (float64) over 3 steps, two lr groups", async () => {
  const { stats, norm } = await runSteps(0);
  assertClose([stats[0]!, stats[1]!], [1, norm], { atol: 0, rtol: 1e-5, label: "clip, norm" });
});

Deno.test("AdamW clips by the global gradient norm like clip_grad_norm_", async () => {
  const { stats, norm } = await runSteps(1.5);
  assert(norm > 1.5);
  assertClose([stats[0]!], [1.5 / (norm + 1e-6)], { atol: 0, rtol: 1e-5, label: "clip factor" });
});

Deno.test("AdamW works when parameters span several table buffers", async () => {
  const { table } = await runSteps(0, 512);
  assert(table.values.length > 2, `expected several buffers, got ${table.values.length}`);
});

Deno.test("AdamW skips the step when a gradient is NaN", async () => {
  const rng = new Rng(9);
  const table = new ParamTable(specs(rng));
  const opt = new AdamW(table, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clipNorm: 0 });
  const before = await rt.read(table.params.map((p) => p.value));
  const g = new Float32Array(35).fill(0.5);
  g[3] = NaN;
  rt.upload(table.get("w1").grad, g);
  opt.update({ base: 0.1, selection: 0.1 });
  const after = await rt.read(table.params.map((p) => p.value));
  const stats = await opt.stats.read();
  assert(Number.isNaN(stats[1]), "the norm reports NaN");
  before.forEach((b, k) => {
    assertClose(new Float32Array(after[k]!), new Float32Array(b), {
      atol: 0,
      rtol: 0,
      label: "unchanged",
    });
  });
});

Deno.test("ParamTable zeroGrad() clears every gradient in one fill per buffer", async () => {
  const table = new ParamTable(specs(new Rng(1)), { chunkBytes: 512 });
  for (const p of table.params) rt.upload(p.grad, new Float32Array(p.grad.size).fill(3));
  const before = rt.counters.dispatches;
  table.zeroGrad();
  assert(rt.counters.dispatches - before === table.grads.length);
  for (const g of await rt.read(table.params.map((p) => p.grad))) {
    assert(new Float32Array(g).every((x) => x === 0));
  }
});

Deno.test("AdamW skips the step when the loss it is given is not finite", async () => {
  const table = new ParamTable(specs(new Rng(10)));
  const opt = new AdamW(table, {
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    clipNorm: 0,
  });
  for (const p of table.params) rt.upload(p.grad, new Float32Array(p.grad.size).fill(0.25));
  const before = await rt.read(table.params.map((p) => p.value));
  opt.update({ base: 0.1, selection: 0.1 }, tensor([Infinity], []));
  const after = await rt.read(table.params.map((p) => p.value));
  before.forEach((b, k) => {
    assertClose(new Float32Array(after[k]!), new Float32Array(b), {
      atol: 0,
      rtol: 0,
      label: "unchanged",
    });
  });
  opt.update({ base: 0.1, selection: 0.1 }, tensor([2.5], []));
  const moved = await rt.read([table.params[0]!.value]);
  assert(new Float32Array(moved[0]!).some((v, i) => v !== new Float32Array(before[0]!)[i]));
});

Deno.test("AdamW.update() leaves no buffer behind (steady memory over steps)", async () => {
  const table = new ParamTable(specs(new Rng(11)), { chunkBytes: 512 });
  const opt = new AdamW(table, {
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    clipNorm: 1,
  });
  const loss = tensor([1.5], []);
  opt.update({ base: 0.01, selection: 0.01 }, loss);
  await rt.sync();
  const before = rt.memory();
  for (let i = 0; i < 5; i++) opt.update({ base: 0.01, selection: 0.01 }, loss);
  await rt.sync();
  const after = rt.memory();
  assert(
    after.liveBuffers === before.liveBuffers,
    `${before.liveBuffers} -> ${after.liveBuffers} live buffers`,
  );
  assert(after.inUseBytes === before.inUseBytes);
});

Deno.test("AdamW with gradScale S on gradients times S equals AdamW on the gradients", async () => {
  const run = async (scale: number) => {
    const table = new ParamTable(specs(new Rng(12)));
    const opt = new AdamW(table, {
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      clipNorm: 2,
    });
    const rng = new Rng(13);
    for (let step = 0; step < 3; step++) {
      for (const p of table.params) {
        rt.upload(p.grad, new Float32Array(p.grad.size).map(() => rng.uniform(-1, 1) * scale));
      }
      opt.update({ base: 0.01, selection: 0.01 }, undefined, { gradScale: scale });
    }
    const stats = await opt.stats.read();
    return { values: await rt.read(table.params.map((p) => p.value)), norm: stats[1]! };
  };
  const plain = await run(1), scaled = await run(1024);
  assertClose([scaled.norm], [plain.norm], { atol: 0, rtol: 1e-6, label: "unscaled norm" });
  plain.values.forEach((b, k) => {
    // S = 1024 is a power of two: scaling and unscaling are exact.
    assertClose(new Float32Array(scaled.values[k]!), new Float32Array(b), {
      atol: 0,
      rtol: 0,
      label: "params",
    });
  });
});
