/**
 * Differentiable GPU ops, one family per file.
 *
 * @module
 */

export * from "./creation.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./matmul.ts";
export * from "./shape.ts";
export * from "./layout.ts";
export * from "./norm.ts";
export * from "./softmax.ts";
export * from "./attention.ts";
export * from "./gather.ts";
export * from "./topk.ts";
export * from "./resize.ts";
export * from "./pool.ts";
export * from "./patch.ts";
export * from "./conv.ts";
export * from "./storage_type.ts";
export * from "./cast.ts";
