/**
 * A stand-in for `src/data/pipeline/sample.ts` and `src/data/formats/tokenizer.ts` in the loader tests: it
 * checks the bytes the loader hands over and returns small outputs that encode the sample
 * key and draws from the sample's Rng, so tests can see which sample and which random
 * stream produced each batch row.
 *
 * Bytes "IMG:<key>" are a good image; anything else is "image-corrupt". JSON that does not
 * parse is "json-invalid"; `{"bug": true}` throws a TypeError (a bug, not bad input).
 *
 * @module
 */

import { SampleError } from "../../src/data/formats/sample_error.ts";
import type { Rng } from "../../src/util/rng.ts";

export { SampleError };

const dec = new TextDecoder();

/** Options the fake reads. */
export interface FakeOptions {
  imageSize: number;
  contextLength: number;
  globalCaptionProb: number;
}

/**
 * Loads the "tokenizer": the file's JSON.
 *
 * @param path File path.
 * @returns Parsed JSON.
 */
export async function loadTokenizer(path: string): Promise<unknown> {
  return JSON.parse(await Deno.readTextFile(path));
}

/**
 * A key's numeric value (keys are digits, possibly after a folder).
 *
 * @param key Sample key.
 * @returns Its number.
 */
export function keyNumber(key: string): number {
  return Number(key.slice(key.lastIndexOf("/") + 1));
}

/**
 * Prepares a fake sample.
 *
 * @param input Key, member names and bytes.
 * @param _tokenizer Unused.
 * @param opts Sizes and the global caption probability.
 * @param rng The sample's Rng.
 * @returns image[0] = first draw of the Rng, image[1] = key number; tokens[0] = key number;
 *   a "box-clipped" repair for keys divisible by 4.
 */
export function prepareSample(
  input: {
    key: string;
    imageName: string;
    imageBytes: Uint8Array;
    jsonName: string;
    jsonBytes: Uint8Array;
  },
  _tokenizer: unknown,
  opts: FakeOptions,
  rng: Rng,
): {
  key: string;
  image: Float32Array;
  tokens: Int32Array;
  boxMap: Uint8Array;
  isGlobal: boolean;
  repairs: string[];
} {
  const where = { key: input.key, file: input.imageName };
  const base = input.key.slice(input.key.lastIndexOf("/") + 1);
  if (dec.decode(input.imageBytes) !== `IMG:${base}`) {
    throw new SampleError("image-corrupt", "not a fake image", where);
  }
  let json: { bug?: boolean; global_text?: string };
  try {
    json = JSON.parse(dec.decode(input.jsonBytes));
  } catch {
    throw new SampleError("json-invalid", "not JSON", { key: input.key, file: input.jsonName });
  }
  if (json.bug) throw new TypeError("fake bug");
  if (json.global_text !== base) {
    throw new Error(`Mis-paired: image "${input.key}" got the JSON of "${json.global_text}"`);
  }
  // Spin a key-dependent while so workers finish out of order.
  const until = performance.now() + (keyNumber(input.key) * 7919 % 5) * 0.3;
  while (performance.now() < until) { /* busy */ }
  const S = opts.imageSize, T = opts.contextLength;
  const image = new Float32Array(3 * S * S);
  image[0] = rng.next();
  image[1] = keyNumber(input.key);
  const tokens = new Int32Array(T);
  tokens[0] = keyNumber(input.key);
  tokens[1] = rng.nextU32() | 0;
  const boxMap = new Uint8Array(S * S);
  boxMap[keyNumber(input.key) % (S * S)] = 1;
  const isGlobal = rng.next() < opts.globalCaptionProb;
  const repairs = keyNumber(input.key) % 4 === 0 ? ["box-clipped"] : [];
  return { key: input.key, image, tokens, boxMap, isGlobal, repairs };
}
