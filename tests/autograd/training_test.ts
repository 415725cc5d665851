import { ok as assert, strictEqual } from "node:assert";
import {
  addInto,
  backward,
  gelu,
  initGpu,
  keep,
  matmul,
  mean,
  randn,
  Rng,
  square,
  sub,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../../mod.ts";

const rt = await initGpu();

/** A 2-layer MLP regression problem: y = sin(3 x0) + x1^2 on random points. */
function problem(n: number, seed: number) {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 2), y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(-1, 1), b = rng.uniform(-1, 1);
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = Math.sin(3 * a) + b * b;
  }
  return { x: keep(tensor(x, [n, 2])), y: keep(tensor(y, [n, 1])) };
}

function mlp(seed: number) {
  const params = [
    randn([2, 32], seed, 0.7),
    zeros([32]),
    randn([32, 1], seed + 1, 0.2),
    zeros([1]),
  ].map((p) => {
    p.requiresGrad = true;
    return keep(p);
  });
  const forward = (x: Tensor) =>
    matmul(gelu(matmul(x, params[0]!, { bias: params[1] })), params[2]!, { bias: params[3] });
  return { params, forward };
}

function sgdStep(params: Tensor[], lr: number): void {
  for (const p of params) {
    addInto(p, p.grad!, -lr);
    p.grad!.dispose();
    p.grad = null;
  }
}

Deno.test("an MLP built from mod.ts trains: loss falls by 5x in 150 SGD steps", async () => {
  const { x, y } = problem(64, 1);
  const { params, forward } = mlp(2);
  const losses: Tensor[] = [];
  for (let step = 0; step < 150; step++) {
    losses.push(keep(tidy(() => {
      const loss = mean(square(sub(forward(x), y)));
      backward(loss);
      return loss;
    })));
    sgdStep(params, 0.2);
  }
  const [first, last] = await rt.read([losses[0]!, losses[149]!]);
  const l0 = new Float32Array(first!)[0]!, l1 = new Float32Array(last!)[0]!;
  assert(l1 < l0 / 5, `loss fell from ${l0} to ${l1}, expected at least 5x`);
});

Deno.test("100 forward+backward steps end with the pooled bytes of step 2", async () => {
  const { x, y } = problem(40, 3);
  const { params, forward } = mlp(4);
  let afterStep2 = { allocatedBytes: -1, inUseBytes: -1, liveBuffers: -1 };
  for (let step = 1; step <= 100; step++) {
    tidy(() => backward(mean(square(sub(forward(x), y)))));
    sgdStep(params, 0.05);
    if (step === 2) afterStep2 = rt.memory();
  }
  await rt.sync();
  const end = rt.memory();
  strictEqual(end.inUseBytes, afterStep2.inUseBytes);
  strictEqual(end.liveBuffers, afterStep2.liveBuffers);
  strictEqual(end.allocatedBytes, afterStep2.allocatedBytes);
});
