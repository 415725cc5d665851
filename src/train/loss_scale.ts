/**
 * Dynamic loss scaling for float16 compute (torch.cuda.amp.GradScaler's rule): gradients are
 * computed for `loss * scale` so small values survive float16; a step whose gradients are
 * not finite is skipped and the scale halved; after `growthInterval` good steps in a row the
 * scale doubles.
 *
 * @module
 */

/** The scaler's state (saved in checkpoints for a bit-exact resume). */
export interface LossScaleState {
  /** Current scale. */
  scale: number;
  /** Good steps since the last change. */
  goodSteps: number;
}

/** Dynamic loss scale. */
export class LossScaler {
  /** Current scale. */
  scale: number;
  /** Good steps since the last change. */
  goodSteps = 0;
  /** Good steps before the scale doubles. */
  readonly growthInterval: number;

  /**
   * @param options Initial scale (GradScaler's 65536) and growth interval (2000).
   */
  constructor(options: { init?: number | undefined; growthInterval?: number | undefined } = {}) {
    this.scale = options.init ?? 2 ** 16;
    this.growthInterval = options.growthInterval ?? 2000;
  }

  /**
   * Records a step's outcome and adjusts the scale.
   *
   * @param finite Whether the step's gradients were finite (the update was applied).
   */
  update(finite: boolean): void {
    if (!finite) {
      this.scale /= 2;
      this.goodSteps = 0;
    } else if (++this.goodSteps >= this.growthInterval) {
      this.scale *= 2;
      this.goodSteps = 0;
    }
  }

  /** @returns The state to save. */
  state(): LossScaleState {
    return { scale: this.scale, goodSteps: this.goodSteps };
  }

  /**
   * Restores a saved state.
   *
   * @param s The state.
   */
  restore(s: LossScaleState): void {
    this.scale = s.scale;
    this.goodSteps = s.goodSteps;
  }
}
