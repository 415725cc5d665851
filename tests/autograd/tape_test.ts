import { ok as assert, throws as assertThrows } from "node:assert";
import { assertClose, rt } from "../harness.ts";
import { backward, noGrad } from "../../src/autograd/tape.ts";
import { tidy } from "../../src/autograd/scope.ts";
import { checkpoint } from "../../src/autograd/checkpoint.ts";
import type { Tensor } from "../../src/autograd/tensor.ts";
import {
  add,
  detach,
  gelu,
  matmul,
  mean,
  mul,
  randn,
  square,
  sum,
  tensor,
} from "../../src/ops/mod.ts";

function leaf(data: number[], shape = [data.length]): Tensor {
  const t = tensor(data, shape);
  t.requiresGrad = true;
  return t;
}

Deno.test("backward() accumulates fan-out: d(x*x + x)/dx = 2x + 1", async () => {
  const x = leaf([1, -2, 3.5]);
  tidy(() => backward(sum(add(mul(x, x), x))));
  assertClose(await x.grad!.read(), [3, -3, 8], { atol: 1e-6, rtol: 0 });
});

Deno.test("backward() accumulates into .grad across calls", async () => {
  const x = leaf([2, 3]);
  tidy(() => backward(sum(square(x))));
  tidy(() => backward(sum(square(x))));
  assertClose(await x.grad!.read(), [8, 12], { atol: 1e-6, rtol: 0 });
});

Deno.test("backward() through a reused intermediate sums both paths", async () => {
  const x = leaf([0.5, -1]);
  tidy(() => {
    const h = mul(x, x); // used twice below
    backward(sum(add(mul(h, h), h))); // x^4 + x^2 -> 4x^3 + 2x
  });
  assertClose(await x.grad!.read(), [1.5, -6], { atol: 1e-6, rtol: 0 });
});

Deno.test("noGrad() records nothing and detach() stops the gradient", async () => {
  const x = leaf([1, 2]);
  const y = noGrad(() => mul(x, x));
  assert(!y.requiresGrad && y.node === null);
  tidy(() => backward(sum(add(mul(detach(x), x), x)))); // d/dx (c*x + x) = c + 1
  assertClose(await x.grad!.read(), [2, 3], { atol: 1e-6, rtol: 0 });
});

Deno.test("backward() names both shapes when a gradient does not match", () => {
  const x = leaf([1, 2, 3]);
  tidy(() => {
    const y = mul(x, x);
    assertThrows(
      () => backward(y, tensor([1, 2], [2])),
      /shape \[2\] does not match \[3\]/,
    );
  });
});

Deno.test("backward() refuses a graph that an earlier backward freed", () => {
  const x = leaf([1, 2]);
  tidy(() => {
    const y = sum(mul(x, x));
    backward(y);
    assertThrows(() => backward(y), /freed by an earlier backward/);
  });
});

Deno.test("tidy() frees temporaries, keeps results, and flags use after dispose", () => {
  const before = rt.memory().inUseBytes;
  const x = tensor([1, 2, 3]);
  const y = tidy(() => add(mul(x, x), x));
  assert(!y.disposed);
  const inner: Tensor[] = [];
  tidy(() => {
    inner.push(mul(x, x));
  });
  assert(inner[0]!.disposed);
  assertThrows(() => add(inner[0]!, x), /used after dispose/);
  x.dispose();
  y.dispose();
  assert(rt.memory().inUseBytes === before);
});

Deno.test("checkpoint() gives the same gradients as the plain graph", async () => {
  const w1 = randn([6, 8], 1, 0.5), w2 = randn([8, 5], 2, 0.5), x = randn([4, 6], 3);
  for (const t of [w1, w2, x]) t.requiresGrad = true;
  const block = (h: Tensor) => [gelu(matmul(gelu(matmul(h, w1)), w2))];
  const grads = async (useCheckpoint: boolean) => {
    for (const t of [w1, w2, x]) {
      t.grad?.dispose();
      t.grad = null;
    }
    tidy(() => {
      const [y] = useCheckpoint ? checkpoint(block, [x]) : block(x);
      backward(mean(square(y!)));
    });
    return await rt.read([w1.grad!, w2.grad!, x.grad!]);
  };
  const plain = await grads(false);
  const recomputed = await grads(true);
  for (let i = 0; i < 3; i++) {
    assertClose(new Float32Array(recomputed[i]!), new Float32Array(plain[i]!), {
      atol: 0,
      rtol: 0,
      label: `checkpointed gradient ${i}`,
    });
  }
});

Deno.test("checkpoint() reaches parameters when no input requires a gradient", async () => {
  const w = randn([3, 3], 4);
  w.requiresGrad = true;
  const x = randn([2, 3], 5);
  tidy(() => {
    const [y] = checkpoint((h) => [matmul(h, w)], [x]);
    backward(sum(y!));
  });
  // d sum(x @ w) / dw[i][j] = sum over rows of x[:, i]
  const xs = await x.read();
  const expect = [0, 1, 2].flatMap((i) => [0, 1, 2].map(() => xs[i]! + xs[3 + i]!));
  assertClose(await w.grad!.read(), expect, { atol: 1e-6, rtol: 1e-6 });
});
