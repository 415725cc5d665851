import { deepStrictEqual as assertEquals } from "node:assert";
import { assertThrows } from "./sample_fixtures.ts";
import {
  basicClean,
  canonicalizeText,
  loadTokenizer,
  Tokenizer,
} from "../../src/data/formats/tokenizer.ts";
import { run } from "../../src/cli/tokenize.ts";

/** A small T5-style vocabulary; scores chosen so the hand-worked cases below are decisive. */
const VOCAB: [string, number][] = [
  ["<pad>", 0], //   0
  ["</s>", 0], //    1
  ["<unk>", 0], //   2
  ["\u2581", -2], // 3 "▁"
  ["\u2581a", -1.5], // 4
  ["\u2581the", -2.5], // 5
  ["\u2581boat", -3], // 6
  ["b", -4], //      7
  ["o", -4], //      8
  ["a", -3.5], //    9
  ["t", -3.5], //    10
  ["\u2581bo", -3.2], // 11
  ["at", -3.1], //   12
  ["\u2581d", -4.5], // 13
  ["ock", -4.2], //  14
  ["\u2581do", -3.9], // 15
  ["ck", -3.8], //   16
  ["c", -5], //      17
  ["k", -5], //      18
  ["d", -5], //      19
  ["h", -5], //      20
  ["e", -5], //      21
  ["\u2581bat", -9], // 22: the minimum score, so unknown pieces score -19
];

/** The structure Hugging Face writes for T5 / SigLIP tokenizers (legacy pre-tokenizer). */
function t5Json(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: "<pad>", special: true },
      { id: 1, content: "</s>", special: true },
      { id: 2, content: "<unk>", special: true },
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Precompiled", precompiled_charsmap: "AAAA" },
        { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "WhitespaceSplit" },
        { type: "Metaspace", replacement: "\u2581", add_prefix_space: true },
      ],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, {
        SpecialToken: { id: "</s>", type_id: 0 },
      }],
      pair: [],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    decoder: null,
    model: { type: "Unigram", unk_id: 2, vocab: VOCAB, byte_fallback: false },
    ...overrides,
  };
}

const tok = Tokenizer.fromJson(t5Json(), { padToken: "<pad>" });

Deno.test("canonicalizeText() removes ASCII punctuation, maps _ to space, lower-cases", () => {
  assertEquals(canonicalizeText("A red_boat,  at the DOCK!"), "a red boat at the dock");
  assertEquals(canonicalizeText('"Hi" (x-y) [z] {w} ~a@b#c$'), "hi xy z w abc");
  assertEquals(canonicalizeText(" tab\there\u3000ideo "), "tab here ideo");
});

Deno.test("basicClean() unescapes HTML twice, straightens quotes and strips", () => {
  assertEquals(
    basicClean("  Tom &amp;amp; Jerry\u2019s \u201cboat\u201d "),
    'Tom & Jerry\'s "boat"',
  );
  assertEquals(basicClean("&#65;&#x42;&lt;"), "AB<");
  assertEquals(basicClean("&unknown; stays"), "&unknown; stays");
});

Deno.test("Tokenizer.encode() picks the best Viterbi segmentation, appends </s>, pads", () => {
  // "▁a" -1.5 beats "▁"+"a" -5.5; "▁boat" -3 beats "▁bo"+"at" -6.3; "▁a"+"t" -5.0 beats
  // "▁"+"at" -5.1; "▁do"+"ck" -7.7 beats "▁d"+"ock" -8.7.
  assertEquals(
    Array.from(tok.encode("A boat, at the dock.", 12)),
    [4, 6, 4, 10, 5, 15, 16, 1, 0, 0, 0, 0],
  );
});

Deno.test("Tokenizer.encode() maps unknown characters to <unk>, fusing runs of them", () => {
  // "▁zebra": ▁, z (unk), e, b, r (unk), a.  "▁xyz": ▁ then one fused unk.
  assertEquals(Array.from(tok.encode("zebra xyz", 10)), [3, 2, 21, 7, 2, 9, 3, 2, 1, 0]);
});

Deno.test("Tokenizer.encode() truncates keeping </s> last and encodes empty text as </s>", () => {
  assertEquals(Array.from(tok.encode("a boat at the dock", 4)), [4, 6, 4, 1]);
  assertEquals(Array.from(tok.encode("...", 3)), [1, 0, 0]);
  assertThrows(() => tok.encode("a", 1), RangeError, "context length 1");
});

Deno.test("Tokenizer handles Metaspace prepend_scheme 'first' after WhitespaceSplit", () => {
  const json = t5Json({
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "WhitespaceSplit" },
        { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true },
      ],
    },
  });
  const first = Tokenizer.fromJson(json, { padToken: "<pad>" });
  // Only the first word gets "▁": "boat" -> "b" "o" "at" (-11.1 beats b o a t, -15).
  assertEquals(Array.from(first.encode("a boat", 6)), [4, 7, 8, 12, 1, 0]);
});

Deno.test("Tokenizer handles the modern single Metaspace pre-tokenizer", () => {
  const json = t5Json({
    pre_tokenizer: {
      type: "Metaspace",
      replacement: "\u2581",
      prepend_scheme: "always",
      split: true,
    },
  });
  const modern = Tokenizer.fromJson(json, { padToken: "<pad>" });
  assertEquals(Array.from(modern.encode("A boat, at the dock.", 9)), [
    4,
    6,
    4,
    10,
    5,
    15,
    16,
    1,
    0,
  ]);
});

Deno.test("Tokenizer.fromJson() takes the pad id from padding, rejects unsupported models", () => {
  const padded = Tokenizer.fromJson(t5Json({ padding: { pad_id: 1, pad_token: "</s>" } }));
  assertEquals(Array.from(padded.encode("a", 4)), [4, 1, 1, 1]);
  assertThrows(() => Tokenizer.fromJson(t5Json()), SyntaxError, "no padding token");
  assertThrows(
    () => Tokenizer.fromJson(t5Json({ model: { type: "BPE", vocab: {}, merges: [] } })),
    SyntaxError,
    'field "model.type"',
  );
  assertThrows(
    () => Tokenizer.fromJson(t5Json(), { padToken: "<nope>" }),
    SyntaxError,
    "not in the vocabulary",
  );
});

Deno.test("loadTokenizer() reads the pad token from a tokenizer_config.json beside the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(t5Json()));
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ pad_token: "</s>", eos_token: "</s>" }),
    );
    const loaded = await loadTokenizer(`${dir}/tokenizer.json`);
    assertEquals(loaded.padId, 1);
    assertEquals(loaded.vocabSize, VOCAB.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ps3 tokenize prints one JSON array of ids per input line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify(t5Json({ padding: { pad_id: 0 } })),
    );
    const cmd = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../main.ts", import.meta.url).pathname,
        "tokenize",
        "--tokenizer",
        `${dir}/tokenizer.json`,
        "--context-length",
        "6",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    const child = cmd.spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("a boat\r\nthe dock\nxyz"));
    await w.close();
    const { code, stdout, stderr } = await child.output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    assertEquals(
      new TextDecoder().decode(stdout),
      "[4,6,1,0,0,0]\n[5,15,16,1,0,0]\n[3,2,1,0,0,0]\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ps3 tokenize without --tokenizer exits 2", async () => {
  const code = await run([]);
  assertEquals(code, 2);
});
