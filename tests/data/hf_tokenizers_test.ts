// tokenizer.json files of both kinds the PS3 text towers use (tests/testdata/tokenizers,
// made by make.py from SentencePiece models trained on free text) against the Python
// `tokenizers` library's ids on 607 varied lines.
import { deepStrictEqual as assertEquals, ok } from "node:assert";
import { join } from "node:path";
import { BpeTokenizer } from "../../src/data/formats/bpe_tokenizer.ts";
import {
  basicClean,
  canonicalizeText,
  loadTokenizer,
  Tokenizer,
} from "../../src/data/formats/tokenizer.ts";

const dir = new URL("../testdata/tokenizers/", import.meta.url).pathname;
const lines = (await Deno.readTextFile(join(dir, "lines.txt"))).split("\n").slice(0, -1);
const expected = JSON.parse(await Deno.readTextFile(join(dir, "expected.json"))) as Record<
  string,
  number[][]
>;

for (const [kind, cls] of [["unigram", Tokenizer], ["bpe", BpeTokenizer]] as const) {
  Deno.test(`${kind} tokenizer.json: ids equal the Python tokenizers library's on every test line`, async () => {
    const tok = await loadTokenizer(join(dir, kind, "tokenizer.json"));
    ok(tok instanceof cls);
    assertEquals(lines.length, expected[kind]!.length);
    ok(lines.length >= 500);
    const bad: string[] = [];
    lines.forEach((line, i) => {
      const got = tok.rawIds(line);
      if (JSON.stringify(got) !== JSON.stringify(expected[kind]![i])) {
        bad.push(
          `${JSON.stringify(line)}: ${JSON.stringify(got)} != ${
            JSON.stringify(expected[kind]![i])
          }`,
        );
      }
    });
    console.log(`${kind}: ${lines.length - bad.length}/${lines.length} lines exact`);
    assertEquals(bad.slice(0, 3), []);
  });
}

Deno.test("the BPE tokenizer: pad id from tokenizer_config.json, <eos> kept when truncating, byte fallback", async () => {
  const tok = await loadTokenizer(join(dir, "bpe", "tokenizer.json"));
  assertEquals([tok.padId, tok.unkId], [0, 3]);
  ok(tok.vocabSize >= 1000);
  const line = "A Red Boat 🤖 at the dock, 2025!";
  const body = tok.pieces(line);
  assertEquals(body, tok.rawIds(canonicalizeText(basicClean(line))).slice(0, -1));
  ok(body.some((id) => id >= 4 && id < 260), "the emoji is spelt with byte-fallback pieces");
  assertEquals([...tok.encode(line, 64)], [...body, 1, ...Array(63 - body.length).fill(0)]);
  const short = tok.encode(line, 4);
  assertEquals([...short], [...body.slice(0, 3), 1]);
});
