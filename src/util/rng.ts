/**
 * A small seedable random number generator (xoshiro128**) whose whole state is four 32-bit
 * words, so it can be saved in a checkpoint and restored for a bit-exact resume.
 *
 * @module
 */

/** Serialisable RNG state. */
export type RngState = [number, number, number, number];

/** Deterministic pseudo-random numbers. */
export class Rng {
  #s: Uint32Array;

  /**
   * Creates a generator from a seed, or restores one from a saved {@linkcode RngState}.
   *
   * @param seed Integer seed (any 32-bit value) or a saved state.
   */
  constructor(seed: number | RngState = 0) {
    this.#s = new Uint32Array(4);
    if (Array.isArray(seed)) {
      this.#s.set(seed);
    } else {
      // splitmix32 expands the seed into four non-zero words.
      let x = seed >>> 0;
      for (let i = 0; i < 4; i++) {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        this.#s[i] = (z ^ (z >>> 16)) >>> 0;
      }
    }
  }

  /**
   * Copies the four-word state, for checkpoints.
   *
   * @returns The state.
   */
  state(): RngState {
    return [this.#s[0]!, this.#s[1]!, this.#s[2]!, this.#s[3]!];
  }

  /**
   * Draws the next raw output of the generator.
   *
   * @returns A uniform 32-bit unsigned integer.
   */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /**
   * Draws a uniform float in the unit interval.
   *
   * @returns A uniform float in [0, 1) with 32 bits of randomness.
   */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /**
   * Draws a uniform float in a half-open interval.
   *
   * @param lo Lower bound.
   * @param hi Upper bound.
   * @returns A uniform float in [lo, hi).
   */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /**
   * Draws a uniform integer below a bound.
   *
   * @param n Exclusive upper bound (positive integer).
   * @returns A uniform integer in [0, n).
   */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /**
   * Draws a standard normal sample by Box-Muller from two uniforms, keeping no cached spare,
   * so the four-word state is the whole state.
   *
   * @returns A sample of N(0, 1).
   */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Shuffles an array in place (Fisher-Yates).
   *
   * @param a The array.
   * @returns The same array.
   */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
