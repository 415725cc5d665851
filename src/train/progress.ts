/**
 * Training progress: a one-line progress bar (step, ETA, samples/s, loss terms, lr) redrawn
 * in place on a terminal, plain log lines otherwise; metrics appended as JSON lines.
 *
 * @module
 */

import { writeFileAtomic } from "../checkpoint/atomic.ts";
import { parseJsonLines } from "./jsonl.ts";

/** What one step reports. */
export interface StepRecord {
  /** Step number (1-based: steps done). */
  step: number;
  /** Epoch of the batch. */
  epoch: number;
  /** Learning rate. */
  lr: number;
  /** Total loss. */
  loss: number;
  /** SigLIP loss. */
  contrastive: number;
  /** Weighted prior box loss. */
  prior_box: number;
  /** Weighted posterior box loss. */
  posterior_box: number;
  /** Global gradient norm (before clipping). */
  grad_norm: number;
  /** Loss scale of float16 compute (absent in float32). */
  loss_scale?: number | undefined;
  /** Seconds this step took (forward, backward, update; not the wait for its batch). */
  step_s: number;
  /** Seconds this step waited for its batch (near 0 while loading keeps ahead of the GPU). */
  data_wait_s: number;
  /** Samples per second over this step. */
  samples_per_s: number;
  /** Samples skipped so far (bad data). */
  skipped: number;
  /** Seconds of this step spent communicating with the other ranks (data-parallel runs). */
  comm_s?: number | undefined;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}

/** Prints progress to the terminal or as log lines. */
export class Progress {
  readonly #total: number;
  readonly #every: number;
  readonly #tty: boolean;
  readonly #started = performance.now();
  readonly #firstStep: number;
  readonly #rank: number;
  #drawn = false;

  /**
   * @param total Total steps of the run.
   * @param options First step of this process (after a resume), log interval, whether to
   *   draw a bar (default: when stdout is a terminal), and the rank of a data-parallel run
   *   (only rank 0 reports progress; the others print warnings only).
   */
  constructor(
    total: number,
    options: {
      firstStep: number;
      every: number;
      tty?: boolean | undefined;
      rank?: number | undefined;
    },
  ) {
    this.#rank = options.rank ?? 0;
    this.#total = total;
    this.#every = options.every;
    this.#firstStep = options.firstStep;
    this.#tty = options.tty ?? Deno.stdout.isTerminal();
  }

  /**
   * Reports a step.
   *
   * @param r The step's record.
   */
  step(r: StepRecord): void {
    if (this.#rank !== 0) return;
    const done = r.step - this.#firstStep;
    const elapsed = (performance.now() - this.#started) / 1000;
    const eta = done > 0 ? elapsed / done * (this.#total - r.step) : Infinity;
    const losses = `loss ${r.loss.toFixed(4)} (siglip ${r.contrastive.toFixed(4)}, prior ${
      r.prior_box.toFixed(4)
    }, posterior ${r.posterior_box.toFixed(4)})`;
    const rate = `${r.step_s.toFixed(2)} s/step, ${r.samples_per_s.toFixed(1)} samples/s`;
    if (this.#tty) {
      const width = 24, fill = Math.round(width * r.step / this.#total);
      const bar = "=".repeat(fill) + (fill < width ? ">" : "") +
        " ".repeat(Math.max(0, width - fill - 1));
      const line = `\r[${bar}] ${r.step}/${this.#total} | ETA ${fmtDuration(eta)} | lr ${
        r.lr.toExponential(2)
      } | ${losses} | ${rate}`;
      Deno.stdout.writeSync(
        new TextEncoder().encode(
          line.padEnd(Deno.consoleSize().columns - 1).slice(0, Deno.consoleSize().columns - 1),
        ),
      );
      this.#drawn = true;
    } else if (
      r.step % this.#every === 0 || r.step === this.#total || r.step === this.#firstStep + 1
    ) {
      console.log(
        `step ${r.step}/${this.#total} epoch ${r.epoch} | ${losses} | lr ${
          r.lr.toExponential(2)
        } | ` +
          `grad norm ${r.grad_norm.toFixed(3)} | ${rate} | ETA ${fmtDuration(eta)}` +
          (r.skipped ? ` | skipped ${r.skipped}` : ""),
      );
    }
  }

  /**
   * Prints a message on its own line (ending the bar's line first).
   *
   * @param text The message.
   */
  log(text: string): void {
    if (this.#rank !== 0) return;
    if (this.#drawn) {
      Deno.stdout.writeSync(new TextEncoder().encode("\n"));
      this.#drawn = false;
    }
    console.log(text);
  }

  /**
   * Prints a warning: on rank 0 as a log line, on other ranks to stderr with the rank.
   *
   * @param text The message.
   */
  warn(text: string): void {
    if (this.#rank === 0) this.log(text);
    else console.error(`ps3 (rank ${this.#rank}): ${text}`);
  }
}

/** Appends JSON lines to a file. */
export class JsonLines {
  readonly #path: string;
  readonly #warn: (message: string) => void;

  /**
   * @param path The file (created or appended to).
   * @param warn Receives the warning about a torn last line dropped on reading.
   */
  constructor(path: string, warn: (message: string) => void = console.warn) {
    this.#path = path;
    this.#warn = warn;
  }

  /**
   * Appends one record.
   *
   * @param record A JSON-safe object.
   */
  async append(record: Record<string, unknown>): Promise<void> {
    await Deno.writeTextFile(this.#path, JSON.stringify(record) + "\n", { append: true });
  }

  /**
   * Reads every record back.
   *
   * @returns The records (none if the file does not exist).
   */
  async readAll(): Promise<Record<string, unknown>[]> {
    try {
      const text = await Deno.readTextFile(this.#path);
      return parseJsonLines(text, this.#path, this.#warn);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  }

  /**
   * Keeps only records with `step <= step` (after a resume, so the file matches the run).
   *
   * @param step Last step kept.
   */
  async truncateAfter(step: number): Promise<void> {
    const keep = (await this.readAll()).filter((r) => typeof r.step !== "number" || r.step <= step);
    await writeFileAtomic(this.#path, keep.map((r) => JSON.stringify(r) + "\n").join(""));
  }
}
