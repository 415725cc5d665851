/**
 * The `ps3` subcommands: name, one-line summary, and the module that runs it. Each module
 * exports `run(args: string[]): Promise<number>` (the exit code) and is loaded on demand,
 * so `ps3 --help` starts fast and no GPU is touched before a command needs one.
 *
 * @module
 */

/** A subcommand's entry. */
export interface Command {
  /** One-line summary for `ps3 --help`. */
  summary: string;
  /** Loads the module that runs it. */
  load: () => Promise<{ run: (args: string[]) => Promise<number> }>;
}

/** Every subcommand, in the order `ps3 --help` lists them. */
export const COMMANDS: Record<string, Command> = {
  // Entries are added by each capability as it lands; keep this order: train, data,
  // interchange, inspection, tooling.
  train: {
    summary: "Train a PS3 model from a run config (configs/ps3-tiny.yaml trains anywhere)",
    load: () => import("./train.ts"),
  },
  check: {
    summary: "Validate a dataset's shards without training: counts, problems by kind, examples",
    load: () => import("./check.ts"),
  },
  pack: {
    summary: "Build paired image and text-box shards from an image folder and a JSONL",
    load: () => import("./pack.ts"),
  },
  synth: {
    summary: "Write the synthetic shapes dataset and its tokenizer (tiny config, tests)",
    load: () => import("./synth.ts"),
  },
  tokenize: {
    summary: "Print the token ids of each line of standard input (tokenizer check)",
    load: () => import("./tokenize.ts"),
  },
  convert: {
    summary: "Training checkpoint or SigLIP weights -> Hugging Face PS3 folder; list HF names",
    load: () => import("./convert.ts"),
  },
  verify: {
    summary: "Verify checkpoints against their digests: step, complete, verified, size",
    load: () => import("./verify.ts"),
  },
  encode: {
    summary: "Features and selection heat maps of images (or a folder / shard) from a PS3 model",
    load: () => import("./encode.ts"),
  },
  eval: {
    summary: "Retrieval, grounding and zero-shot figures of a model on a whole evaluation set",
    load: () => import("./eval.ts"),
  },
  "debug-step": {
    summary: "One training step (or inference) of an HF PS3 folder on a batch, all outputs saved",
    load: () => import("./debug_step.ts"),
  },
  bench: {
    summary: "Benchmark the kernels on the model's shapes (the performance record)",
    load: () => import("./bench.ts"),
  },
  info: {
    summary: "Show the GPU adapter ps3 runs on and its limits",
    load: () => import("./info.ts"),
  },
};
