/**
 * Parameter initialisers (host side, seeded): the PyTorch and timm defaults the reference's
 * modules are created with.
 *
 * @module
 */

import type { Rng } from "../util/rng.ts";

/** Fills an array in place. */
export type Init = (out: Float32Array) => void;

/**
 * @param value The constant.
 * @returns An initialiser writing it everywhere.
 */
export const constant = (value: number): Init => (out) => void out.fill(value);

/** Zeros. */
export const zeros: Init = constant(0);

/** Ones. */
export const ones: Init = constant(1);

/**
 * Normal values.
 *
 * @param rng Generator.
 * @param std Standard deviation.
 * @returns The initialiser.
 */
export const normal = (rng: Rng, std: number): Init => (out) => {
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
};

/**
 * Truncated normal in [-2, 2] (absolute, timm's trunc_normal_ defaults) by rejection.
 *
 * @param rng Generator.
 * @param std Standard deviation.
 * @returns The initialiser.
 */
export const truncNormal = (rng: Rng, std: number): Init => (out) => {
  for (let i = 0; i < out.length; i++) {
    let v: number;
    do v = rng.normal() * std; while (v < -2 || v > 2);
    out[i] = v;
  }
};

/**
 * Uniform in [-bound, bound].
 *
 * @param rng Generator.
 * @param bound Half-width.
 * @returns The initialiser.
 */
export const uniformInit = (rng: Rng, bound: number): Init => (out) => {
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
};

/**
 * PyTorch's default for Linear / Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * (kaiming_uniform with a = sqrt(5) gives exactly this bound for weights).
 *
 * @param rng Generator.
 * @param fanIn Input features (times kernel area for convolutions).
 * @returns The initialiser.
 */
export const torchDefault = (rng: Rng, fanIn: number): Init =>
  uniformInit(rng, 1 / Math.sqrt(fanIn));
