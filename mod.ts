/**
 * ps3: pre-training PS3 high-resolution vision encoders on any GPU through WebGPU.
 *
 * The library surface: the GPU runtime and autograd, differentiable ops, the PS3 model and its
 * losses, the data pipeline, training, checkpoints (safetensors, training checkpoints, Hugging
 * Face PS3 folders, SigLIP initialisation) and encoding. Importing this module has no side
 * effects; call {@linkcode initGpu} before recording GPU work.
 *
 * @example
 * ```ts
 * import { initGpu, loadModelConfig, Ps3Clip } from "./mod.ts";
 * await initGpu();
 * const model = new Ps3Clip(await loadModelConfig("configs/ps3-tiny.yaml"));
 * console.log(model.params.describe());
 * ```
 *
 * @module
 */

// GPU runtime, tensors, autograd
export * from "./src/gpu/device.ts";
export * from "./src/gpu/runtime.ts";
export * from "./src/gpu/kernel.ts";
export * from "./src/gpu/buffer_pool.ts";
export * from "./src/autograd/tensor.ts";
export * from "./src/autograd/scope.ts";
export * from "./src/autograd/tape.ts";
export * from "./src/autograd/checkpoint.ts";
export * from "./src/ops/mod.ts";
export * from "./src/util/rng.ts";

// Modules, model, losses, optimizer
export * from "./src/nn/params.ts";
export * from "./src/nn/module.ts";
export * from "./src/model/config.ts";
export * from "./src/model/scales.ts";
export * from "./src/model/ps3_vision.ts";
export * from "./src/model/ps3_inference.ts";
export * from "./src/model/ps3_clip.ts";
export * from "./src/model/debug_step.ts";
export * from "./src/loss/siglip.ts";
export * from "./src/loss/box.ts";
export * from "./src/optim/adamw.ts";

// Data pipeline
export * from "./src/data/loader.ts";
export { prepareSample, SampleError } from "./src/data/sample.ts";
export * from "./src/data/tokenizer.ts";
export { decodeImage } from "./src/data/image.ts";
export { writeSynthDataset } from "./src/data/synth.ts";

// Training
export * from "./src/train/config.ts";
export * from "./src/train/trainer.ts";

// Checkpoints and interchange
export * from "./src/checkpoint/safetensors.ts";
export * from "./src/checkpoint/train_checkpoint.ts";
export * from "./src/checkpoint/hf.ts";
export * from "./src/checkpoint/convert.ts";
export * from "./src/checkpoint/siglip_init.ts";

// Encoding
export * from "./src/encode/ps3_encoder.ts";
