/**
 * One rank's stream of samples for one epoch: shard order, pairing, then a shuffle buffer.
 * Each sample that leaves the buffer gets the next index of the epoch; the problems found
 * since the previous one ride along with it, so counting them when the sample is consumed
 * makes the counters a function of the stream position alone (not of how far reading ran
 * ahead), which is what a bit-exact resume needs.
 *
 * The stream holds only member references (shard, offset, size), never image bytes, so a
 * large shuffle buffer is cheap and replaying a stream to a saved position reads headers
 * only.
 *
 * @module
 */

import { type DataProblem, type PairedSample, pairUnit } from "./pairing.ts";
import { deriveRng, type ShardMode, shardOrder, type ShardUnit, STREAM } from "./shards.ts";

/** A sample leaving the stream. */
export interface Candidate {
  /** Position in this rank's epoch stream (0, 1, 2 ...). */
  index: number;
  /** The paired sample. */
  sample: PairedSample;
  /** Problems found since the previous candidate. */
  problems: DataProblem[];
}

/** The end of an epoch's stream, with the problems found after the last candidate. */
export interface EpochEnd {
  /** Marks the end. */
  end: true;
  /** Number of candidates in the epoch. */
  count: number;
  /** Problems found after the last candidate. */
  problems: DataProblem[];
}

/** Options of {@link epochStream}. */
export interface EpochStreamOptions {
  /** Shard order (see {@link shardOrder}). */
  mode: ShardMode;
  /** Base seed. */
  seed: number;
  /** Epoch. */
  epoch: number;
  /** This process's rank (default 0). */
  rank?: number | undefined;
  /** Number of processes (default 1). */
  worldSize?: number | undefined;
  /** Samples held in the shuffle buffer (0 or 1: no shuffling). */
  shuffleBuffer: number;
  /** Throw at the first data problem. */
  strict?: boolean | undefined;
}

/**
 * One rank's candidates for one epoch.
 *
 * @param units Shard units of the dataset.
 * @param options Order, seeds, rank, buffer size, strictness.
 * @returns A generator of candidates, ending with an {@link EpochEnd} (never, for resampled
 *   shards). It throws a `DataError` in strict mode, and an `Error` when resampled shards
 *   keep yielding no sample at all.
 * @example
 * ```ts
 * for await (const c of epochStream(units, { mode: "shuffled", seed: 0, epoch: 0, shuffleBuffer: 1000 })) {
 *   if ("end" in c) break;
 *   console.log(c.index, c.sample.key);
 * }
 * ```
 */
export async function* epochStream(
  units: ShardUnit[],
  options: EpochStreamOptions,
): AsyncGenerator<Candidate | EpochEnd> {
  const rank = options.rank ?? 0;
  const rng = deriveRng([options.seed, options.epoch, rank, STREAM.buffer]);
  const size = Math.max(1, Math.floor(options.shuffleBuffer));
  const buf: PairedSample[] = [];
  let pending: DataProblem[] = [];
  let index = 0;
  const take = (sample: PairedSample): Candidate => {
    const c = { index: index++, sample, problems: pending };
    pending = [];
    return c;
  };
  const pick = (): PairedSample => {
    const j = rng.int(buf.length);
    const s = buf[j]!;
    buf[j] = buf[buf.length - 1]!;
    buf.pop();
    return s;
  };
  // Resampled shards are endless: give up if many draws in a row hold no usable sample.
  const patience = 2 * units.length + 16;
  let barren = 0;
  for (const unit of shardOrder(units, options)) {
    let got = false;
    for await (const item of pairUnit(unit, { strict: options.strict })) {
      if ("problem" in item) {
        pending.push(item.problem);
        continue;
      }
      got = true;
      buf.push(item.sample);
      if (buf.length >= size) yield take(pick());
    }
    barren = got ? 0 : barren + 1;
    if (options.mode === "resampled" && barren >= patience) {
      throw new Error(
        `No usable sample in ${barren} shards drawn in a row (e.g. "${unit.image}"); ` +
          "check the dataset with `ps3 check`",
      );
    }
  }
  while (buf.length > 0) yield take(pick());
  yield { end: true, count: index, problems: pending };
}
