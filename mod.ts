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
export * from "./src/params/param_table.ts";
export * from "./src/nn/module.ts";
export type { Init } from "./src/nn/init.ts";
export type { LayerNorm, Linear, LinearForwardOptions, LinearOptions } from "./src/nn/linear.ts";
export type { Activation, Mlp, MlpOptions } from "./src/nn/mlp.ts";
export type { BlockDims, BlockOutput, KvCache, VitBlock } from "./src/nn/vit_block.ts";
export type { AttentionPool } from "./src/nn/attention_pool.ts";
export type { ConvNetDims, ConvNextBlock, ShallowConvNet } from "./src/nn/convnet.ts";
export type { TextBlock, TextTransformer } from "./src/nn/text_transformer.ts";
// The zod schema and its issue formatter stay internal: zod's types are not part of the API.
export {
  KNOWN_TRUNKS,
  loadModelConfig,
  resolveModelConfig,
  resolveVisionConfig,
  splitBudget,
} from "./src/model/config.ts";
export type {
  ModelConfig,
  ModelConfigInput,
  PreprocessConfigInput,
  TextConfig,
  TextConfigInput,
  TrunkDims,
  VisionConfig,
  VisionConfigInput,
} from "./src/model/config.ts";
export * from "./src/model/hf_config.ts";
export * from "./src/model/scales.ts";
export * from "./src/model/ps3_vision.ts";
export * from "./src/model/ps3_inference.ts";
export * from "./src/model/ps3_clip.ts";
export * from "./src/model/ps3_vision_model.ts";
export * from "./src/compare/debug_step.ts";
export * from "./src/loss/siglip.ts";
export * from "./src/loss/box.ts";
export * from "./src/loss/ps3_loss.ts";
export * from "./src/optim/adamw.ts";
export * from "./src/optim/param_groups.ts";
export * from "./src/optim/schedule.ts";

// Data pipeline
export * from "./src/data/pipeline/loader.ts";
export type { ShardMode, ShardUnit } from "./src/data/pipeline/shards.ts";
export type { DataProblem } from "./src/data/pipeline/pairing.ts";
export { prepareSample, SampleError } from "./src/data/pipeline/sample.ts";
export type {
  PreparedSample,
  SampleErrorKind,
  SampleInput,
  SampleRepair,
} from "./src/data/pipeline/sample.ts";
export type { SampleWhere } from "./src/data/formats/sample_error.ts";
export * from "./src/data/formats/tokenizer.ts";
export * from "./src/data/formats/bpe_tokenizer.ts";
export { decodeImage } from "./src/data/formats/image.ts";
export type {
  DecodedImage,
  DecodeImageOptions,
  ImageFormat,
  ImageInfo,
  RgbImage,
} from "./src/data/formats/image.ts";
export { writeSynthDataset } from "./src/data/tools/synth.ts";
export type { SynthManifest, SynthOptions, SynthSplit } from "./src/data/tools/synth.ts";

// Training (one process, or data-parallel ranks over MPI)
export * from "./src/dist/communicator.ts";
export type { MpiFlavor } from "./src/dist/mpi_library.ts";
export * from "./src/train/config.ts";
export * from "./src/train/trainer.ts";
export type { StepRecord } from "./src/train/progress.ts";
export type { EvalMetrics } from "./src/train/evaluate.ts";
export { signalExitCode, STOP_SIGNALS, type StopSignal } from "./src/train/signals.ts";
export { LOCK_FILE, type LockInfo, RunLock } from "./src/train/run_lock.ts";

// Checkpoints and interchange
export * from "./src/checkpoint/safetensors.ts";
export type { ByteSource } from "./src/checkpoint/safetensors_stream.ts";
export * from "./src/checkpoint/train_checkpoint.ts";
export * from "./src/checkpoint/digest.ts";
export * from "./src/checkpoint/manifest.ts";
export * from "./src/checkpoint/recovery.ts";
export * from "./src/checkpoint/hf.ts";
export * from "./src/checkpoint/convert.ts";
export * from "./src/checkpoint/tokenizer_files.ts";
export * from "./src/checkpoint/siglip_init.ts";
export * from "./src/checkpoint/torch_checkpoint.ts";
export * from "./src/checkpoint/torch_init.ts";
export * from "./src/checkpoint/pickle.ts";
export * from "./src/checkpoint/torch_zip.ts";

// Encoding
export * from "./src/encode/ps3_encoder.ts";
export type { DisplayOptions, HeatmapOptions } from "./src/encode/heatmap.ts";
export type { Preprocessing, ResizeMode } from "./src/encode/preprocess.ts";

// Evaluation and TensorBoard
export * from "./src/eval/retrieval.ts";
export * from "./src/eval/grounding.ts";
export * from "./src/eval/zeroshot.ts";
export * from "./src/eval/run_eval.ts";
export * from "./src/eval/report.ts";
export * from "./src/report/tfevents.ts";
export { TrainBoard } from "./src/train/tensorboard.ts";
