/**
 * The frame every tokenizer puts around a caption's pieces: the special tokens before and
 * after, truncation to the context length keeping them, padding with the pad id.
 *
 * @module
 */

/**
 * Frames a caption's piece ids into `contextLength` ids.
 *
 * @param pieces The caption's piece ids (without special tokens).
 * @param frame Special tokens before and after, the pad id and the context length.
 * @returns `contextLength` ids.
 * @example
 * ```ts
 * frameIds([9, 710], { prefix: [], suffix: [1], padId: 0, contextLength: 6 }); // [9, 710, 1, 0, 0, 0]
 * ```
 */
export function frameIds(
  pieces: readonly number[],
  frame: {
    prefix: readonly number[];
    suffix: readonly number[];
    padId: number;
    contextLength: number;
  },
): Int32Array {
  const { prefix, suffix, padId, contextLength } = frame;
  const special = prefix.length + suffix.length;
  if (!Number.isInteger(contextLength) || contextLength < special + 1) {
    throw new RangeError(
      `Cannot encode to context length ${contextLength}: need an integer >= ${special + 1}`,
    );
  }
  const body = pieces.slice(0, contextLength - special);
  const out = new Int32Array(contextLength).fill(padId);
  out.set([...prefix, ...body, ...suffix]);
  return out;
}
