/**
 * The data loader: shard units -> paired samples -> shuffle buffer -> parallel decode in
 * workers -> batches, with exact skip counters and a resumable position.
 *
 * Determinism: the sample stream is built on the main thread from headers only, so its order
 * depends on (seed, epoch, rank) and the files, never on the number of workers. Each sample
 * gets its own Rng derived from (seed, epoch, rank, index), so its preparation does not
 * depend on which worker runs it or when. Results are consumed in stream order; a batch is
 * the next `batchSize` samples that prepared successfully.
 *
 * Resume: {@link DataLoader.state} is (epoch, next stream index, batches so far, counters).
 * {@link DataLoader.resume} rebuilds the epoch's stream and passes over `index` samples
 * without reading or decoding them (headers only), so the batches after a resume are
 * identical to those of an uninterrupted run.
 *
 * @module
 */

import { DataError, type DataProblem } from "./pairing.ts";
import { type Candidate, type EpochEnd, epochStream } from "./sample_stream.ts";
import {
  deriveRng,
  missingShards,
  type ShardMode,
  shardOrder,
  type ShardUnit,
  shardUnits,
  STREAM,
} from "./shards.ts";
import type { WorkerRequest } from "./loader_worker.ts";
import { type Outcome, WorkerPool } from "./worker_pool.ts";
import { type LoaderOptions, normalise, type Settings } from "./loader_options.ts";
import type { SampleOptions } from "./sample.ts";
import { countSkipOnce } from "./skip_tally.ts";

export type { LoaderOptions, SampleOptions };

/** A batch: B samples, images NCHW. */
export interface Batch {
  /** Images `[B, 3, S, S]`, normalised. */
  images: Float32Array;
  /** Token ids `[B, T]`. */
  tokens: Int32Array;
  /** Box maps `[B, S, S]` (1 inside a chosen box). */
  boxMaps: Uint8Array;
  /** 1 where the caption is the global one `[B]`. */
  isGlobal: Uint8Array;
  /** Sample keys. */
  keys: string[];
  /** Epoch the batch belongs to. */
  epoch: number;
  /** Index of the batch within its epoch. */
  index: number;
}

/** Counters of what the loader consumed, exact at every batch boundary. */
export interface LoaderStats {
  /** Current epoch. */
  epoch: number;
  /** Batches yielded. */
  batches: number;
  /** Samples handed to the per-sample function and consumed. */
  samples: number;
  /** Samples in yielded batches. */
  yielded: number;
  /** Good samples dropped with an epoch's partial last batch. */
  dropped: number;
  /** Samples skipped, by reason (pairing, tar and `SampleError` kinds): each sample once. */
  skipped: Record<string, number>;
  /** Samples skipped, by shard then reason (see `skip_tally.ts`). */
  skippedByShard?: Record<string, Record<string, number>> | undefined;
  /** The skips already counted, so that a sample met again is not counted twice. */
  skipSeen?: string[] | undefined;
  /** Fixes applied to used samples (clipped boxes, dropped captions), by kind. */
  repaired: Record<string, number>;
  /** Problems that skip nothing by themselves (key mismatches, broken shards), by kind. */
  problems: Record<string, number>;
  /** The first problems seen (at most 3 of each kind), for reports. */
  examples: DataProblem[];
}

/** A serialisable loader position (JSON-safe). */
export interface LoaderState {
  /** Format version. */
  version: 1;
  /** Epoch. */
  epoch: number;
  /** Next stream index within the epoch. */
  index: number;
  /** Batches yielded in the epoch. */
  batch: number;
  /** Counters at this position. */
  stats: LoaderStats;
  /** What the position is relative to; resuming with different settings is refused. */
  stream: StreamIdentity;
}

/** The settings that give stream positions their meaning. */
export interface StreamIdentity {
  /** Hash of the shard list (paths and weights). */
  shards: string;
  /** Number of shard units. */
  units: number;
  /** Base seed. */
  seed: number;
  /** Shard order. */
  mode: ShardMode;
  /** Shuffle buffer size. */
  shuffleBuffer: number;
  /** Rank. */
  rank: number;
  /** World size. */
  worldSize: number;
  /** Batch size. */
  batchSize: number;
  /** Batches per epoch (0: unlimited). */
  batchesPerEpoch: number;
  /** Partial batches kept. */
  partial: boolean;
}

interface Slot {
  epoch: number;
  candidate?: Candidate | undefined;
  end?: EpochEnd | undefined;
  error?: unknown;
  outcome?: Promise<Outcome> | undefined;
}

function freshStats(epoch: number): LoaderStats {
  return {
    epoch,
    batches: 0,
    samples: 0,
    yielded: 0,
    dropped: 0,
    skipped: {},
    repaired: {},
    problems: {},
    examples: [],
  };
}

function hashString(s: string): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 16777619) >>> 0;
    h2 = Math.imul(h2 + c, 2246822519) >>> 0;
  }
  return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
}

type Good = Extract<Outcome, { ok: true }>;

/**
 * Streams batches from webdataset shards.
 *
 * @example
 * ```ts
 * await using loader = await DataLoader.create({
 *   images: "data/images/image_{00000..00099}.tar",
 *   texts: "data/text_boxes/text_box_{00000..00099}.tar",
 *   tokenizer: "data/tokenizer.json",
 *   batchSize: 32,
 *   sample: { imageSize: 256, train: true, globalCaptionProb: 0.25, sampleNBoxEachImage: 1,
 *     sentenceMasking: true, maxPixels: 100e6, contextLength: 64, mean: [0.5, 0.5, 0.5],
 *     std: [0.5, 0.5, 0.5] },
 *   shards: "resampled",
 *   batchesPerEpoch: 1000,
 * });
 * const batch = await loader.next();
 * const saved = loader.state(); // store in the checkpoint; later: await loader.resume(saved)
 * ```
 */
export class DataLoader implements AsyncDisposable {
  readonly #o: Settings;
  readonly #units: ShardUnit[];
  readonly #identity: StreamIdentity;
  #pool!: WorkerPool;
  #fatal: unknown;
  #closed = false;
  #busy = false;

  // Consumer position.
  #epoch = 0;
  #index = 0;
  #batch = 0;
  #stats: LoaderStats;
  #done = false;

  // Producer: reads the stream ahead of the consumer and dispatches samples to workers.
  #generation = 0;
  #producerEpoch = 0;
  #stream: AsyncGenerator<Candidate | EpochEnd> | undefined;
  #slots: Slot[] = [];
  #filling = false;
  #wake: (() => void) | undefined;

  private constructor(o: Settings, units: ShardUnit[], identity: StreamIdentity) {
    this.#o = o;
    this.#units = units;
    this.#identity = identity;
    this.#stats = freshStats(0);
    this.#done = o.epochs <= 0;
    this.#install(0, this.#done ? undefined : this.#openStream(0));
  }

  /**
   * Validates the options, checks that every shard exists, and starts the workers.
   *
   * @param options Dataset, batch and worker options.
   * @returns A loader positioned at the start of epoch 0 (see {@link resume}).
   */
  static async create(options: LoaderOptions): Promise<DataLoader> {
    const o = normalise(options);
    const units = shardUnits(options.images, {
      texts: options.texts,
      weights: options.weights,
      baseDir: options.baseDir,
    });
    const missing = await missingShards(units);
    if (missing.length > 0) {
      const list = missing.slice(0, 5).map((p) => `"${p}"`).join(", ");
      throw new Error(
        `Cannot load the dataset: ${missing.length} shard(s) are missing, e.g. ${list}`,
      );
    }
    // Validates rank, world size and weights against the shard list before any worker starts.
    shardOrder(units, {
      mode: o.mode,
      seed: o.seed,
      epoch: 0,
      rank: o.rank,
      worldSize: o.worldSize,
    })
      .next();
    const identity: StreamIdentity = {
      shards: hashString(JSON.stringify(units.map((u) => [u.image, u.text ?? "", u.weight]))),
      units: units.length,
      seed: o.seed,
      mode: o.mode,
      shuffleBuffer: o.shuffleBuffer,
      rank: o.rank,
      worldSize: o.worldSize,
      batchSize: o.batchSize,
      batchesPerEpoch: o.batchesPerEpoch,
      partial: o.partial,
    };
    const init: WorkerRequest = {
      type: "init",
      sampleModule: options.sampleModule,
      tokenizerModule: options.tokenizerModule,
      tokenizer: options.tokenizer,
      options: o.sample,
    };
    const loader = new DataLoader(o, units, identity);
    loader.#pool = await WorkerPool.start(o.workers, init, (e) => loader.#fail(e));
    return loader;
  }

  /** The shard units of the dataset (all ranks'). */
  get units(): readonly ShardUnit[] {
    return this.#units;
  }

  /**
   * Reports the data counters: batches, samples, skips, repairs and problems by kind.
   *
   * @returns A copy of the counters, exact for the batches yielded so far.
   */
  stats(): LoaderStats {
    return structuredClone({ ...this.#stats, epoch: this.#epoch });
  }

  /**
   * Saves the loader's position for a checkpoint.
   *
   * @returns The position after the last yielded batch (JSON-safe; store it in checkpoints).
   */
  state(): LoaderState {
    if (this.#busy) {
      throw new Error("Cannot save the data loader's state while next() or resume() is running");
    }
    return {
      version: 1,
      epoch: this.#epoch,
      index: this.#index,
      batch: this.#batch,
      stats: this.stats(),
      stream: { ...this.#identity },
    };
  }

  /**
   * Moves to a saved position: the next batch is the one that followed it in the run that
   * saved it. Prefetched work is discarded; the epoch's stream is replayed from its start
   * reading tar headers only (no image is read or decoded).
   *
   * @param state A state from {@link state} of a loader with the same dataset and settings.
   */
  async resume(state: LoaderState): Promise<void> {
    this.#enter();
    try {
      if (state.version !== 1) {
        throw new TypeError(`Cannot resume from data loader state version ${state.version}`);
      }
      for (const [k, v] of Object.entries(this.#identity)) {
        const saved = (state.stream as unknown as Record<string, unknown>)[k];
        if (saved !== v) {
          throw new RangeError(
            `Cannot resume the data loader: ${k} was ${JSON.stringify(saved)} when the state ` +
              `was saved and is ${JSON.stringify(v)} now`,
          );
        }
      }
      this.#install(state.epoch, undefined);
      const done = state.epoch >= this.#o.epochs;
      let stream: AsyncGenerator<Candidate | EpochEnd> | undefined;
      if (!done) {
        stream = this.#openStream(state.epoch);
        for (let i = 0; i < state.index; i++) {
          const r = await stream.next();
          if (r.done || "end" in r.value) {
            throw new RangeError(
              `Cannot resume the data loader: epoch ${state.epoch} has ${i} samples now, but ` +
                `the state is at sample ${state.index} (did the shards change?)`,
            );
          }
        }
      }
      this.#epoch = state.epoch;
      this.#index = state.index;
      this.#batch = state.batch;
      this.#stats = structuredClone(state.stats);
      this.#done = done;
      this.#install(state.epoch, stream);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Prepares the next batch.
   *
   * @returns The batch, or undefined after the last epoch (see `epochs`).
   */
  async next(): Promise<Batch | undefined> {
    this.#enter();
    try {
      return await this.#next();
    } finally {
      this.#busy = false;
    }
  }

  async #next(): Promise<Batch | undefined> {
    const parts: Good[] = [];
    while (true) {
      if (this.#done) return undefined;
      const slot = await this.#take();
      if (slot.error !== undefined) {
        this.#fatal = slot.error;
        throw slot.error;
      }
      if (slot.end) {
        this.#count(slot.end.problems);
        if (parts.length > 0 && this.#o.partial) {
          const batch = this.#assemble(parts);
          this.#endEpoch();
          return batch;
        }
        this.#stats.dropped += parts.length;
        parts.length = 0;
        const empty = this.#batch === 0;
        this.#endEpoch();
        if (empty && !this.#done) {
          this.#fatal = new Error(
            `Epoch ${this.#epoch - 1} ended without a single batch of ${this.#o.batchSize} ` +
              `usable samples on rank ${this.#o.rank}; check the dataset with \`ps3 check\``,
          );
          throw this.#fatal;
        }
        continue;
      }
      const c = slot.candidate!;
      this.#count(c.problems);
      const outcome = await slot.outcome!;
      if ("fatal" in outcome) {
        this.#fatal = outcome.fatal;
        throw outcome.fatal;
      }
      this.#index = c.index + 1;
      this.#stats.samples++;
      if (!outcome.ok) {
        const { image, json } = c.sample;
        const file = image.shard === json.shard ? image.shard : `${image.shard} / ${json.shard}`;
        const problem: DataProblem = {
          kind: outcome.kind,
          skipped: 1,
          file,
          key: c.sample.key,
          message: `${outcome.message} (shard "${file}")`,
        };
        if (this.#o.strict) {
          this.#fatal = new DataError(problem);
          throw this.#fatal;
        }
        this.#count([problem]);
        continue;
      }
      for (const r of outcome.repairs) {
        this.#stats.repaired[r] = (this.#stats.repaired[r] ?? 0) + 1;
      }
      parts.push(outcome);
      if (parts.length === this.#o.batchSize) {
        const batch = this.#assemble(parts);
        if (this.#o.batchesPerEpoch > 0 && this.#batch >= this.#o.batchesPerEpoch) {
          this.#endEpoch();
        }
        return batch;
      }
    }
  }

  /**
   * Iterates over batches until the last epoch.
   *
   * @returns An async iterator of batches.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    while (true) {
      const b = await this.next();
      if (!b) return;
      yield b;
    }
  }

  /** Stops the workers. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#generation++;
    this.#pool.close();
    this.#wake?.();
  }

  /** Stops the workers. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #enter(): void {
    if (this.#closed) throw new Error("Cannot use the data loader: it is closed");
    if (this.#fatal !== undefined) throw this.#fatal;
    if (this.#busy) {
      throw new Error("Cannot use the data loader: a previous next() or resume() is still running");
    }
    this.#busy = true;
  }

  #count(problems: DataProblem[]): void {
    for (const p of problems) {
      const table = p.skipped > 0 ? this.#stats.skipped : this.#stats.problems;
      const n = p.skipped > 0 ? countSkipOnce(this.#stats, p) : 1;
      if (n > 0) table[p.kind] = (table[p.kind] ?? 0) + n;
      // Keep the first examples, at most 3 of a kind so that one common problem does not
      // hide the others.
      const ex = this.#stats.examples;
      if (ex.length < this.#o.keepExamples && ex.filter((e) => e.kind === p.kind).length < 3) {
        ex.push(p);
      }
    }
  }

  #assemble(parts: Good[]): Batch {
    const { imageSize: S, contextLength: T } = this.#o.sample;
    const n = parts.length;
    const images = new Float32Array(n * 3 * S * S);
    const tokens = new Int32Array(n * T);
    const boxMaps = new Uint8Array(n * S * S);
    const isGlobal = new Uint8Array(n);
    parts.forEach((p, i) => {
      if (p.image.length !== 3 * S * S || p.tokens.length !== T || p.boxMap.length !== S * S) {
        throw new RangeError(
          `Sample "${p.key}" came back with image ${p.image.length}, tokens ${p.tokens.length}, ` +
            `box map ${p.boxMap.length} values; expected ${3 * S * S}, ${T}, ${S * S}`,
        );
      }
      images.set(p.image, i * 3 * S * S);
      tokens.set(p.tokens, i * T);
      boxMaps.set(p.boxMap, i * S * S);
      isGlobal[i] = p.isGlobal ? 1 : 0;
    });
    const batch: Batch = {
      images,
      tokens,
      boxMaps,
      isGlobal,
      keys: parts.map((p) => p.key),
      epoch: this.#epoch,
      index: this.#batch,
    };
    this.#batch++;
    this.#stats.batches++;
    this.#stats.yielded += n;
    return batch;
  }

  /** Moves the consumer to the next epoch; the producer follows if it is not there yet. */
  #endEpoch(): void {
    const finished = this.#epoch;
    this.#epoch++;
    this.#index = 0;
    this.#batch = 0;
    this.#done = this.#epoch >= this.#o.epochs;
    if (this.#producerEpoch === finished) {
      this.#install(this.#epoch, this.#done ? undefined : this.#openStream(this.#epoch));
    } else {
      // The producer already runs in a later epoch: drop what is left of the finished one.
      while (this.#slots.length > 0 && this.#slots[0]!.epoch === finished) this.#slots.shift();
    }
  }

  /** Makes `stream` (positioned in `epoch`) the producer's, discarding queued work. */
  #install(epoch: number, stream: AsyncGenerator<Candidate | EpochEnd> | undefined): void {
    this.#generation++;
    this.#slots = [];
    this.#filling = false;
    this.#producerEpoch = epoch;
    this.#stream = stream;
  }

  #openStream(epoch: number): AsyncGenerator<Candidate | EpochEnd> {
    return epochStream(this.#units, {
      mode: this.#o.mode,
      seed: this.#o.seed,
      epoch,
      rank: this.#o.rank,
      worldSize: this.#o.worldSize,
      shuffleBuffer: this.#o.shuffleBuffer,
      strict: this.#o.strict,
    });
  }

  /** Waits for the next slot in stream order. */
  async #take(): Promise<Slot> {
    while (true) {
      if (this.#closed) throw new Error("Cannot use the data loader: it is closed");
      if (this.#fatal !== undefined) throw this.#fatal;
      this.#fill();
      const slot = this.#slots.shift();
      if (slot) {
        this.#fill();
        return slot;
      }
      if (!this.#filling) throw new Error("The data loader's sample stream stopped unexpectedly");
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  /** Keeps up to `window` samples dispatched ahead of the consumer. */
  #fill(): void {
    if (this.#filling || !this.#stream || this.#closed) return;
    if (this.#slots.length >= this.#o.window) return;
    const generation = this.#generation;
    this.#filling = true;
    const current = () => generation === this.#generation;
    (async () => {
      try {
        while (current() && this.#stream && this.#slots.length < this.#o.window) {
          const stream = this.#stream;
          const epoch = this.#producerEpoch;
          let r: IteratorResult<Candidate | EpochEnd>;
          try {
            r = await stream.next();
          } catch (error) {
            if (!current()) return;
            this.#slots.push({ epoch, error });
            this.#stream = undefined;
            break;
          }
          if (!current()) return;
          if (r.done) {
            this.#stream = undefined;
            break;
          }
          const item = r.value;
          if ("end" in item) {
            this.#slots.push({ epoch, end: item });
            // Run ahead into the next epoch (dropped if the consumer ends this one early).
            const next = epoch + 1;
            this.#producerEpoch = next;
            this.#stream = next < this.#o.epochs ? this.#openStream(next) : undefined;
          } else {
            this.#slots.push({ epoch, candidate: item, outcome: this.#dispatch(item, epoch) });
          }
          this.#wake?.();
        }
      } finally {
        if (current()) this.#filling = false;
        this.#wake?.();
      }
    })();
  }

  #dispatch(c: Candidate, epoch: number): Promise<Outcome> {
    const rng = deriveRng([this.#o.seed, epoch, this.#o.rank, c.index, STREAM.sample]);
    return this.#pool.run({
      key: c.sample.key,
      image: c.sample.image,
      json: c.sample.json,
      rng: rng.state(),
    });
  }

  #fail(e: Error): void {
    this.#fatal ??= e;
    this.#wake?.();
  }
}
