/**
 * SentencePiece's precompiled normalisation (`Precompiled` normalizer of `tokenizer.json`, the
 * `precompiled_charsmap` of a SentencePiece model: nmt_nfkc and friends), as the `tokenizers`
 * library applies it (its `spm_precompiled` crate): the charsmap is a darts-clone double-array
 * trie over UTF-8 byte strings followed by a blob of NUL-terminated replacements; the text is
 * walked by extended grapheme clusters, a cluster shorter than 6 bytes is replaced whole when
 * the trie has a prefix of it, otherwise each of its characters is looked up alone.
 *
 * @module
 */

/** A parsed charsmap. */
export interface Charsmap {
  /** The double-array units. */
  trie: Uint32Array;
  /** The replacement strings, NUL-terminated, UTF-8. */
  normalized: Uint8Array;
}

/**
 * Parses a base64 `precompiled_charsmap`.
 *
 * @param base64 The field's value.
 * @returns The trie and the replacement blob, or null for a blob of fewer than 4 bytes (a
 *   placeholder with no trie).
 * @throws {SyntaxError} For a blob shorter than its declared trie.
 */
export function parseCharsmap(base64: string): Charsmap | null {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (bytes.length < 4) return null;
  const v = new DataView(bytes.buffer);
  const trieSize = v.getUint32(0, true);
  if (trieSize % 4 !== 0 || 4 + trieSize > bytes.length) {
    throw new SyntaxError(
      `Invalid precompiled_charsmap: a trie of ${trieSize} bytes in a ${bytes.length}-byte blob`,
    );
  }
  const trie = new Uint32Array(trieSize / 4);
  for (let i = 0; i < trie.length; i++) trie[i] = v.getUint32(4 + 4 * i, true);
  return { trie, normalized: bytes.subarray(4 + trieSize) };
}

const hasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
const value = (u: number) => u & 0x7fffffff;
const label = (u: number) => u & 0x800000ff;
const offset = (u: number) => (u >>> 10) << ((u & 0x200) >>> 6);

/** The value of the shortest key of the trie that prefixes `key`, or -1. */
function firstPrefix(trie: Uint32Array, key: Uint8Array): number {
  let pos = 0;
  let unit = trie[pos]!;
  pos ^= offset(unit);
  for (const c of key) {
    if (c === 0) break;
    pos ^= c;
    unit = trie[pos] ?? 0;
    if (label(unit) >>> 0 !== c) return -1;
    pos ^= offset(unit);
    if (hasLeaf(unit)) return value(trie[pos] ?? 0);
  }
  return -1;
}

/**
 * Builds the normalising function of a charsmap.
 *
 * @param map The parsed charsmap.
 * @returns text -> normalised text.
 */
export function precompiledNormalizer(map: Charsmap): (text: string) => string {
  const enc = new TextEncoder(), dec = new TextDecoder();
  const seg = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  const cache = new Map<string, string | null>();
  const transform = (chunk: string): string | null => {
    let out = cache.get(chunk);
    if (out !== undefined) return out;
    const i = firstPrefix(map.trie, enc.encode(chunk));
    if (i < 0 || i > map.normalized.length) out = null;
    else {
      let j = i;
      while (j < map.normalized.length && map.normalized[j] !== 0) j++;
      out = dec.decode(map.normalized.subarray(i, j));
    }
    if (cache.size < 65536) cache.set(chunk, out);
    return out;
  };
  const cluster = (segment: string): string => {
    if (utf8Length(segment) < 6) {
      const t = transform(segment);
      if (t !== null) return t;
    }
    let s = "";
    for (const ch of segment) s += transform(ch) ?? ch;
    return s;
  };
  return (text) => {
    let s = "";
    let i = 0;
    const n = text.length;
    const ascii = (k: number) => k < n && text.charCodeAt(k) < 0x80;
    while (i < n) {
      const c = text.charCodeAt(i);
      // Between two ASCII characters there is always a grapheme boundary except CR LF.
      if (
        c < 0x80 && (i + 1 === n || ascii(i + 1)) && !(c === 13 && text.charCodeAt(i + 1) === 10)
      ) {
        s += cluster(text[i]!);
        i++;
        continue;
      }
      let j = i + 1;
      while (
        j < n &&
        !(ascii(j - 1) && ascii(j) && !(text.charCodeAt(j - 1) === 13 && text.charCodeAt(j) === 10))
      ) j++;
      for (const { segment } of seg.segment(text.slice(i, j))) s += cluster(segment);
      i = j;
    }
    return s;
  };
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
