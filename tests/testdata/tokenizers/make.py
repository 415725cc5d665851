"""Writes tests/testdata/tokenizers/: two small tokenizer.json files of the kinds the PS3 text
towers use, trained here on free text, and the Python tokenizers' ids for a varied test set.

    python3 tests/testdata/tokenizers/make.py tests/testdata/tokenizers

(sentencepiece, tokenizers, transformers and protobuf installed; reads the licence texts in
/usr/share/common-licenses as training text.)

- `unigram/`: a SentencePiece Unigram model (vocabulary 1000, T5 ids: <pad> 0, </s> 1, <unk> 2,
  nmt_nfkc normalisation) exported by transformers' `T5TokenizerFast` as SigLIP's
  `timm/ViT-B-16-SigLIP` is (`from_pretrained` of a folder with `spiece.model`).
- `bpe/`: a SentencePiece BPE model with byte fallback (vocabulary 1000, Gemma ids: <pad> 0,
  <eos> 1, <bos> 2, <unk> 3, digits split, whitespace kept, no normalisation) exported by
  `GemmaTokenizerFast.from_pretrained` (a folder with `tokenizer.model`), its post-processor set
  to `$A <eos>` (no <bos>), as open_clip configures SigLIP2's Gemma tokenizer
  (`add_bos_token=False, add_eos_token=True`).
- `lines.txt`: 600 test lines (licence sentences and generated lines with Unicode scripts,
  emoji and ZWJ sequences, combining marks, digits, punctuation runs, long words, whitespace
  runs and tabs), one per line (`\n`-separated; no line contains `\n` or `\r`).
- `expected.json`: per tokenizer, `tokenizers.Tokenizer.from_file(...).encode(line).ids` for
  every line (checked equal to transformers' `input_ids`).
"""
import glob
import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm
import tokenizers
from tokenizers.processors import TemplateProcessing
import transformers
from transformers import GemmaTokenizerFast, T5TokenizerFast

SCRIPTS = [
    "café naïve Ångström façade jalapeño", "漢字とひらがなとカタカナ", "日本語のテキストです。",
    "한국어 문장입니다", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "Привет, мир!",
    "Γειά σου Κόσμε", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３", "ﬁne ﬂour ligatures", "e\u0301 a\u0308 o\u0302",
    "ẞ straße", "İstanbul ıi", "Ⅻ ① ㎏ ™", "\u00a0non\u00a0breaking\u00a0", "zero\u200bwidth\u200djoin",
]
EMOJI = ["👍", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🏳️‍🌈", "😀😃😄", "❤️", "🤖", "🐈‍⬛", "✌🏿"]
PUNCT = ["!!!", "???", "...", "---", "—", "–", "«»", "“quoted”", "'single'", "(paren)", "[x]",
         "{y}", "#hash", "@user", "a/b\\c", "100%", "$5.00", "€12,50", "~~~", "***", "&amp;", "<tag>"]
NUMBERS = ["3.14159", "1,000,000", "2025-01-01", "0x1F", "42", "007", "1e-9", "12:30", "+44 20 7946 0958",
           "9999999999999999"]
LONG = ["pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious",
        "Donaudampfschifffahrtsgesellschaftskapitän", "x" * 120, "ab" * 70, "ünïcödé" * 15]
SPACES = ["  ", "   ", "    ", "\t", "\t\t", " \t ", "        "]


def corpus_lines():
    text = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="ignore") as f:
                text += [l.strip() for l in f if l.strip()]
    return text


def test_lines(corpus, rng):
    out = rng.sample(corpus, 250)
    words = " ".join(corpus[:2000]).split()
    pools = [SCRIPTS, EMOJI, PUNCT, NUMBERS, LONG]
    while len(out) < 600:
        parts = []
        for _ in range(rng.randint(1, 8)):
            k = rng.random()
            if k < 0.35:
                parts.append(rng.choice(words))
            else:
                parts.append(rng.choice(rng.choice(pools)))
            parts.append(rng.choice(SPACES) if rng.random() < 0.25 else " ")
        line = "".join(parts)
        if rng.random() < 0.2:
            line = rng.choice(SPACES) + line
        if rng.random() < 0.5:
            line = line.rstrip()
        if rng.random() < 0.3:
            line = line.upper() if rng.random() < 0.5 else line.title()
        out.append(line)
    out += ["", " ", "a", "A.", "\t", "   leading", "trailing   "]
    assert all("\n" not in l and "\r" not in l for l in out)
    return out


def main(out):
    rng = random.Random(0)
    corpus = corpus_lines()
    tmp = tempfile.mkdtemp()
    train = os.path.join(tmp, "train.txt")
    with open(train, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus + SCRIPTS * 5 + EMOJI * 3) + "\n")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=os.path.join(tmp, "unigram"), vocab_size=1000,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=0.9995, normalization_rule_name="nmt_nfkc", seed_sentencepiece_size=100000,
        num_threads=1)
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=os.path.join(tmp, "bpe"), vocab_size=1000, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", character_coverage=0.9995, num_threads=1)
    for name, file in [("unigram", "spiece.model"), ("bpe", "tokenizer.model")]:
        os.makedirs(os.path.join(tmp, name))
        shutil.copy(os.path.join(tmp, f"{name}.model"), os.path.join(tmp, name, file))
    uni = T5TokenizerFast.from_pretrained(os.path.join(tmp, "unigram"), extra_ids=0, legacy=False)
    bpe = GemmaTokenizerFast.from_pretrained(os.path.join(tmp, "bpe"), legacy=False)
    # open_clip's SigLipTokenizer("gemma"): add_bos_token=False, add_eos_token=True.
    bpe._tokenizer.post_processor = TemplateProcessing(
        single="$A <eos>", pair="$A <eos> $B:1 <eos>:1", special_tokens=[("<eos>", 1)])
    for name, hf in [("unigram", uni), ("bpe", bpe)]:
        assert len(hf) >= 1000, (name, len(hf))  # Gemma adds <mask> and turn markers
        hf.save_pretrained(os.path.join(out, name))
    lines = test_lines(corpus, rng)
    with open(os.path.join(out, "lines.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    expected = {"versions": {"tokenizers": tokenizers.__version__,
                             "transformers": transformers.__version__,
                             "sentencepiece": spm.__version__}}
    for name, hf in [("unigram", uni), ("bpe", bpe)]:
        tok = tokenizers.Tokenizer.from_file(os.path.join(out, name, "tokenizer.json"))
        ids = [tok.encode(l).ids for l in lines]
        assert ids == [hf(l).input_ids for l in lines], name
        expected[name] = ids
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, separators=(",", ":"))
    print({k: len(v) for k, v in expected.items()})


if __name__ == "__main__":
    main(sys.argv[1])
