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
