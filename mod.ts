/**
 * ps3: pre-training PS3 high-resolution vision encoders on any GPU through WebGPU.
 *
 * The library surface: the GPU runtime and autograd, differentiable ops, and (as they land)
 * the model, the data pipeline, training and checkpoint conversion. Importing this module
 * has no side effects; call {@linkcode initGpu} before recording GPU work.
 *
 * @example
 * ```ts
 * import { backward, initGpu, matmul, mean, randn, square, tidy } from "./mod.ts";
 * await initGpu();
 * const w = randn([4, 4], 1);
 * w.requiresGrad = true;
 * tidy(() => backward(mean(square(matmul(randn([8, 4], 2), w)))));
 * console.log(await w.grad!.read());
 * ```
 *
 * @module
 */

export * from "./src/gpu/device.ts";
export * from "./src/gpu/runtime.ts";
export * from "./src/gpu/kernel.ts";
export * from "./src/gpu/buffer_pool.ts";
export * from "./src/autograd/tensor.ts";
export * from "./src/autograd/scope.ts";
export * from "./src/autograd/tape.ts";
export * from "./src/ops/mod.ts";
export * from "./src/util/rng.ts";
