/**
 * Region grounding of local captions from the top-down selection probabilities: pointing
 * accuracy (is the most probable patch of each high-res scale inside the caption's box?)
 * and the mean probability inside vs outside the boxes.
 *
 * Ties follow the rule of `retrieval.ts`: when several patches share the highest
 * probability (PS3's probabilities are tied in blocks by construction), the point is one of
 * them drawn uniformly at random and the figure is the expectation, i.e. the fraction of
 * the tied maxima that lie inside the box.
 *
 * @module
 */

/** Accumulates grounding figures over samples and scales. */
export class GroundingAccumulator {
  readonly #scales: number;
  readonly #hits: Float64Array;
  readonly #chance: Float64Array;
  #samples = 0;
  #inSum = 0;
  #inN = 0;
  #outSum = 0;
  #outN = 0;

  /**
   * Starts with no sample.
   *
   * @param scales High-res scales evaluated.
   */
  constructor(scales: number) {
    this.#scales = scales;
    this.#hits = new Float64Array(scales);
    this.#chance = new Float64Array(scales);
  }

  /**
   * Adds one sample's probabilities and box targets.
   *
   * @param probs Probabilities per high-res scale (`[g_s]` each, row-major grid).
   * @param targets 1 inside the box, 0 outside, same layout.
   */
  add(probs: readonly ArrayLike<number>[], targets: readonly ArrayLike<number>[]): void {
    if (probs.length !== this.#scales || targets.length !== this.#scales) {
      throw new RangeError(
        `Cannot add ${probs.length} probability maps and ${targets.length} targets to ` +
          `grounding figures of ${this.#scales} scales`,
      );
    }
    for (let s = 0; s < this.#scales; s++) {
      const p = probs[s]!, t = targets[s]!;
      if (p.length !== t.length) {
        throw new RangeError(`Scale ${s}: ${p.length} probabilities but ${t.length} targets`);
      }
      this.#hits[s]! += pointingHit(p, t);
      let inside = 0;
      for (let j = 0; j < p.length; j++) {
        if (t[j]! > 0) {
          inside++;
          this.#inSum += p[j]!;
          this.#inN++;
        } else {
          this.#outSum += p[j]!;
          this.#outN++;
        }
      }
      this.#chance[s]! += inside / p.length;
    }
    this.#samples++;
  }

  /** The figures so far. */
  result(): GroundingFigures {
    const n = this.#samples;
    const per = (a: Float64Array) => Array.from(a, (v) => (n ? v / n : NaN));
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const pointing = per(this.#hits), chance = per(this.#chance);
    return {
      n,
      pointing: mean(pointing),
      pointingPerScale: pointing,
      pointingChance: mean(chance),
      probInside: this.#inN ? this.#inSum / this.#inN : NaN,
      probOutside: this.#outN ? this.#outSum / this.#outN : NaN,
    };
  }
}

/** Grounding figures (fractions in [0, 1]). */
export interface GroundingFigures {
  /** Local captions evaluated. */
  n: number;
  /** Pointing accuracy, mean over the high-res scales. */
  pointing: number;
  /** Pointing accuracy per high-res scale. */
  pointingPerScale: number[];
  /** Pointing accuracy of a uniformly random patch (the mean box area fraction). */
  pointingChance: number;
  /** Mean probability of the patches inside the boxes. */
  probInside: number;
  /** Mean probability of the patches outside the boxes. */
  probOutside: number;
}

/**
 * Whether the most probable patch lies inside the target, in expectation over ties.
 *
 * @param probs Probabilities.
 * @param target 1 inside, 0 outside.
 * @returns The fraction of the maxima that are inside (1 or 0 without ties).
 */
export function pointingHit(probs: ArrayLike<number>, target: ArrayLike<number>): number {
  let best = -Infinity, at = 0, inside = 0;
  for (let j = 0; j < probs.length; j++) {
    const v = probs[j]!;
    if (v > best) {
      best = v;
      at = 1;
      inside = target[j]! > 0 ? 1 : 0;
    } else if (v === best) {
      at++;
      if (target[j]! > 0) inside++;
    }
  }
  return at ? inside / at : 0;
}
