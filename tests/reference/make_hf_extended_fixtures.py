#!/usr/bin/env python3
"""Extended tokenizer.json reference fixtures for kvlab's HF engine.

Builds 26 tokenizer setups with the Hugging Face `tokenizers` library and
records what it does with them, so that tests/tokenizer/test_hf_extended.c
can hold kvlab's tokenizer.json engine (src/tokenizer/hf_*.c) to the same
ids and decodings.  The setups (SETUPS below says what each one covers):

  shared   the real Qwen3 tokenizer.json (../shared/tokenizers/qwen3/), as
           shipped and with a JSON patch that makes it Llama-3-like; only
           the patch is committed, the C test applies it to the shared file
  trained  small BPE tokenizers trained here on English prose (vocabularies
           of 600-1200 tokens) to exercise the other components: Metaspace
           (prepend_scheme first / always / never, split on and off),
           byte fallback, Prepend/Replace/NFKC/NFD/NFKD/StripAccents/
           Lowercase/Strip normalizers, Split with every behaviour and
           invert, Punctuation, Digits, WhitespaceSplit, Whitespace,
           BertPreTokenizer, CharDelimiterSplit, ByteLevel without regex,
           continuing_subword_prefix / end_of_word_suffix, unk and
           fuse_unk, ByteFallback/Fuse/Strip/Replace/Metaspace/BPEDecoder/
           ByteLevel decoders, Template/Bert/Roberta/ByteLevel
           post-processors, and added tokens with every flag (special,
           normalized, lstrip, rstrip, single_word)
  probe    hand-written JSON around a 10-token vocabulary: duplicate merges
           and duplicate vocabulary keys (the raw text is committed, since
           `tokenizers` re-serialises them away), and regexes that match the
           empty string in Split (all 5 behaviours x invert) and Replace

For every setup and text the script records Tokenizer.encode(text,
add_special_tokens=add) with `encode_special_tokens` = plain, for the
(add, plain) modes of the setup, and for plain = False also
decode(ids, skip_special_tokens=False) and (..., True).

Llama 2 (transformers' conversion of the Llama 2 tokenizer.model, legacy
True and False) was part of the original run but is not here: files derived
from that model are under Meta's licence and are not committed.

Two steps:

  record  (needs `tokenizers`; ran on the project's GPU machine) builds the
          setups and writes one raw JSON file:
              {"version": tokenizers version,
               "tokenizers": [{"name", "json" (tokenizer.to_str(); not for
                               the shared setups), "cases": [...]}]}
          a case is {"text", "add", "plain", "ids"} plus "dec", "dec_skip"
          when plain is false, or {"text", "add", "plain", "error"}.
  pack    (needs only Python and the `zstd` program) turns raw files into
          tests/fixtures/tokenizers/hf_extended/ (README.md there):
              setups.json                 the list below, with case counts,
                                          the tokenizer file or the shared
                                          file + patch of every setup
              tokenizers/<name>.json      tokenizer.json of each trained or
                                          probe setup
              cases.jsonl.zst             line 1 a header, then one case per
                                          line: {"setup", "text", "add",
                                          "plain", "ids"[, "dec", "dec_skip"]}
          It drops the Llama 2 setups of the original run, refuses unknown
          ones, checks that every setup listed here is present, has the
          texts (rebuilt from torture.json and --val) and modes listed here
          and no error case, and for probes that the committed raw JSON is
          what `tokenizers` serialised after loading it.  It records the
          size and FNV-1a hash of --qwen3 (the C test checks them).

The committed fixture was packed from the raw files of the two runs that
this script was cleaned up from (gen.py and gen2.py, not committed: the same
setups, parameters and texts; tokenizers 0.23.2 on the project's GPU
machine):

    python3 tests/reference/make_hf_extended_fixtures.py pack \\
        results.json results2.json --val val.txt \\
        --qwen3 ../shared/tokenizers/qwen3/tokenizer.json \\
        --out tests/fixtures/tokenizers/hf_extended

To regenerate from scratch (here, then on the GPU machine, carrying .device-x,
a folder that git ignores, e.g. through .git/info/exclude):

    mkdir -p .device-x
    zstd -dc ../shared/corpus/val.txt.zst | head -c 400000 > .device-x/val.txt
    zstd -dc ../shared/corpus/train-00.txt.zst | head -n 10000 > .device-x/train.txt
    cp ../shared/tokenizers/qwen3/tokenizer.json .device-x/qwen3.json
    # there:
    PYTHONUNBUFFERED=1 python3 tests/reference/make_hf_extended_fixtures.py \\
        record --qwen3 .device-x/qwen3.json --val .device-x/val.txt \\
        --train .device-x/train.txt --out $OUT/raw.json
    # here, with the fetched raw.json:
    python3 tests/reference/make_hf_extended_fixtures.py pack raw.json \\
        --val .device-x/val.txt --qwen3 ../shared/tokenizers/qwen3/tokenizer.json \\
        --out tests/fixtures/tokenizers/hf_extended

val.txt is the first 400,000 bytes of the decompressed val corpus (the
committed cases were made from exactly that).  The trained setups are
retrained from train.txt: the original run used an excerpt of
train-00.txt.zst whose size was not recorded, so a regeneration rewrites
their tokenizer.json files together with their cases (the two always come
from the same run and stay consistent).
"""

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time

FORMAT = 1
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TORTURE = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "torture.json")

# ---------------------------------------------------------------------------
# Texts

# Added to torture.json for the Qwen3, Llama-3-like and trained-A setups:
# literal added / special tokens of the setups with and without spaces
# around them, case and Unicode normalisation, digits, hyphens, long runs.
EXTRA_TEXTS = [
    "Hello world", "  Hello  world  ", "hello<mask>world", "hello <mask> world",
    "x <mask>y", "<mask>", " <mask> ", "a\t<mask>\tb", "<s>hi</s>", "<s> hi </s>",
    "hi<s>", "<unk>", "[CLS] a [SEP]", "[MASK]", "foo bar baz", "Ünïcödé ÀÉÎ",
    "mixed 123 numbers 4567 and 89", "tab\tand\nnewline\r\n", "ЁЖИК Σίσυφος ΟΔΟΣ",
    "İstanbul", "ﬁne ½ ①", "don't-stop re-enter x-ray", "a--b---c", "9-10-11",
    "<special_1>abc<special_2>", "abc <special_1> def", "word<extra>word",
    "word <extra> word", "<extra>", "ab  <extra>  cd", "<|endoftext|>x",
    "<|im_start|>", "x<|im_end|>y", "\u2581Hello", "<0x41>",
    "a" * 300, "ab" * 200, " " * 50 + "x", "1234567890" * 20,
]

# Added to torture.json for the BERT-like setups: accents, compatibility
# forms, no-break and ideographic spaces, titlecase digraphs, punctuation.
EXTRA_TEXTS_BERT = [
    "Hello world", "  Hello  world  ", "[CLS] a [SEP]", "[MASK]", "x[MASK] y", "Ünïcödé ÀÉÎ",
    "mixed 123 numbers 4567 and 89", "tab\tand\nnewline\r\n", "ЁЖИК Σίσυφος ΟΔΟΣ", "İstanbul",
    "ﬁne ½ ①", "don't-stop re-enter x-ray", "a--b---c", "9-10-11", "   ", "", "é", "e\u0301",
    "\u00a0x\u3000y", "a_b c__d", "(((x)))", "¿qué?", "ø Ø æ Æ œ", "ǅ ǈ ǋ",
]

PROBE_TEXTS = ["abc", "axxb", "ab", "xa", "xxx", "a", "", "bcab", "abcabc",
               "x-x", "a x b", "xaxbx"]

# The texts of a setup, by name: [source, ...]; "val_lines:N" = the first N
# lines of val.txt (split on "\n"), "val_prefix:N" = its first N characters.
TEXT_SETS = {
    "A400": ["torture", "extra", "val_lines:400", "val_prefix:200000"],
    "A150": ["torture", "extra", "val_lines:150"],
    "A100": ["torture", "extra", "val_lines:100"],
    "A60": ["torture", "extra", "val_lines:60"],
    "B120": ["torture", "extra_bert", "val_lines:120"],
    "P": ["probe"],
}


def build_texts(set_name, torture, val):
    out = []
    for src in TEXT_SETS[set_name]:
        if src == "torture":
            out += torture
        elif src == "extra":
            out += EXTRA_TEXTS
        elif src == "extra_bert":
            out += EXTRA_TEXTS_BERT
        elif src == "probe":
            out += PROBE_TEXTS
        elif src.startswith("val_lines:"):
            out += val.split("\n")[:int(src.split(":")[1])]
        elif src.startswith("val_prefix:"):
            out.append(val[:int(src.split(":")[1])])
        else:
            raise ValueError(src)
    return out


# (add_special_tokens, encode_special_tokens) pairs.
MODES = {
    "all4": [(False, False), (True, False), (False, True), (True, True)],
    "three": [(False, False), (True, False), (False, True)],
    "plain": [(False, False)],
}

# ---------------------------------------------------------------------------
# The shared setups: Qwen3 as shipped, and a patch (RFC 6902 "replace"
# operations with JSON Pointer paths; the C test applies the same ones).

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
LLAMA3ISH_PATCH = [
    {"op": "replace", "path": "/normalizer", "value": None},
    {"op": "replace", "path": "/pre_tokenizer/pretokenizers/0/pattern/Regex", "value": LLAMA3_REGEX},
    {"op": "replace", "path": "/model/ignore_merges", "value": True},
    {"op": "replace", "path": "/post_processor", "value": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643],
                                              "tokens": ["<|endoftext|>"]}}}]}},
]


def json_pointer_replace(doc, path, value):
    keys = [k.replace("~1", "/").replace("~0", "~") for k in path.split("/")[1:]]
    node = doc
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        if last not in node:
            raise KeyError(path)
        node[last] = value


def apply_patch(doc, patch):
    doc = copy.deepcopy(doc)
    for op in patch:
        assert op["op"] == "replace", op
        json_pointer_replace(doc, op["path"], copy.deepcopy(op["value"]))
    return doc


# ---------------------------------------------------------------------------
# The probes: pure JSON, built here for both steps.

PROBE_VOCAB = {"a": 0, "b": 1, "c": 2, "x": 3, "-": 4,
               "ab": 5, "bc": 6, "xx": 7, "ax": 8, "xb": 9}


def plain_bpe(merges, pre=None, norm=None):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
         "vocab": dict(PROBE_VOCAB), "merges": merges}
    return json.dumps({"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                       "normalizer": norm, "pre_tokenizer": pre, "post_processor": None, "decoder": None,
                       "model": m})


def probe_json(name):
    """The exact text handed to Tokenizer.from_str for a probe setup."""
    if name == "dupmerge":
        return plain_bpe(["b c", "a b", "b c"])
    if name == "dupvocab":
        return plain_bpe(["a b", "b c"]).replace('"a": 0,', '"a": 0, "a": 11,', 1)
    if name.startswith("empty_"):
        beh, inv = name[len("empty_"):].rsplit("_", 1)
        pre = {"type": "Split", "pattern": {"Regex": "x*"}, "behavior": beh, "invert": inv == "1"}
        return plain_bpe(["a b", "x x", "a x"], pre=pre)
    if name == "replace_empty":
        return plain_bpe(["a b"], norm={"type": "Replace", "pattern": {"Regex": "x*"}, "content": "-"})
    raise KeyError(name)


SPLIT_BEHAVIOURS = ["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]

# ---------------------------------------------------------------------------
# Every setup: name, kind, text set, modes, what it covers.

SETUPS = [
    ("qwen3", "shared", "A400", "all4",
     "the real Qwen3 tokenizer.json as shipped: byte-level BPE, NFC, Qwen2 split regex, "
     "26 added tokens; includes one 200,000-character text"),
    ("llama3ish", "shared", "A150", "all4",
     "Qwen3 patched to be Llama-3-like: no normalizer, the Llama 3 split regex, "
     "ignore_merges, post-processor Sequence[ByteLevel, TemplateProcessing adding "
     "<|endoftext|> in front]"),
    ("metaspace_first", "trained", "A100", "all4",
     "BPE with byte_fallback + fuse_unk; NFKC then Replace(\\s+ -> ' '); Metaspace "
     "prepend_scheme=first, split=true; decoders Replace/ByteFallback/Fuse/Strip; "
     "TemplateProcessing <s> $A </s>; added <mask> (special, lstrip, single_word, not "
     "normalized), <extra> (normalized), [MASK] (rstrip)"),
    ("metaspace_always", "trained", "A60", "all4",
     "metaspace_first with prepend_scheme=always and the Metaspace decoder"),
    ("metaspace_never_nosplit", "trained", "A60", "all4",
     "metaspace_first with prepend_scheme=never, split=false, Metaspace decoder"),
    ("legacy_llama", "trained", "A100", "all4",
     "old Llama-style tokenizer.json: no pre-tokenizer, normalizer Prepend(\u2581) + "
     "Replace(' ' -> \u2581), byte fallback, TemplateProcessing <s> $A; added <extra> and "
     "'hello world' (normalized, lstrip)"),
    ("splits", "trained", "A100", "all4",
     "pre-tokenizer Sequence of Split: \\d+ merged_with_previous, '-' merged_with_next, "
     "[aeiou] contiguous inverted, \\s removed; then ByteLevel without regex, "
     "add_prefix_space; added ' spaced ' (not normalized) and 'x-y'"),
    ("splits2", "trained", "A60", "all4",
     "splits with the first Split inverted, '-' Isolated, string pattern 'e' "
     "MergedWithNext inverted, \\s+ MergedWithPrevious"),
    ("gpt2ish", "trained", "A100", "all4",
     "byte-level BPE, NFC + Lowercase, ByteLevel(add_prefix_space, regex); "
     "Sequence[ByteLevel, TemplateProcessing <|endoftext|> $A <|endoftext|>]; special "
     "<special_1> (lstrip, rstrip), <special_2> (single_word); added <extra> "
     "(normalized, single_word), Hello (normalized: its content is lowercased too, so it "
     "matches 'hello'), "
     "WORLD (not normalized, rstrip)"),
    ("bertish", "trained", "B120", "three",
     "BPE with unk [UNK], continuing_subword_prefix ##, end_of_word_suffix </w>; NFD, "
     "StripAccents, Lowercase, Strip; WhitespaceSplit + Punctuation + Digits(individual); "
     "BPEDecoder; BertProcessing; added [MASK] (special, lstrip, single_word)"),
    ("bert_pretok", "trained", "B120", "three",
     "bertish with BertPreTokenizer and RobertaProcessing"),
    ("whitespace_nfkd", "trained", "B120", "three",
     "bert_pretok with the Whitespace pre-tokenizer, NFKD only and fuse_unk"),
    ("chardelim_nfkc", "trained", "B120", "three",
     "whitespace_nfkd with CharDelimiterSplit(' ') + Punctuation(contiguous) + "
     "Digits(grouped) and NFKC"),
    ("dupmerge", "probe", "P", "plain",
     "merges [b c, a b, b c]: a repeated merge takes its later rank"),
    ("dupvocab", "probe", "P", "plain",
     "vocabulary with the key \"a\" twice (ids 0 and 11): the later one wins"),
] + [
    ("empty_%s_%d" % (beh, inv), "probe", "P", "plain",
     "Split on regex x* (matches the empty string), behaviour %s, invert %s"
     % (beh, "true" if inv else "false"))
    for beh in SPLIT_BEHAVIOURS for inv in (0, 1)
] + [
    ("replace_empty", "probe", "P", "plain",
     "Replace normalizer on regex x* (matches the empty string) with '-'"),
]
SETUP_NAMES = [s[0] for s in SETUPS]
DROPPED = {"llama2": "derived from the Llama 2 tokenizer.model (Meta's licence)",
           "llama2_legacy": "derived from the Llama 2 tokenizer.model (Meta's licence)"}

# ---------------------------------------------------------------------------
# record


def record(args):
    import tokenizers
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                            normalizers, pre_tokenizers, processors, trainers)

    torture = json.load(open(args.torture, encoding="utf-8"))
    val = open(args.val, encoding="utf-8").read()
    train = open(args.train, encoding="utf-8").read()
    spec = {s[0]: s for s in SETUPS}
    results = {"version": tokenizers.__version__, "python": platform.python_version(),
               "tokenizers": []}
    print("tokenizers", tokenizers.__version__, flush=True)

    def run(name, tok, keep_json=True):
        _, _, text_set, modes, _ = spec[name]
        t0 = time.time()
        entry = {"name": name, "cases": []}
        if keep_json:
            entry["json"] = probe_json(name) if spec[name][1] == "probe" else tok.to_str()
        for text in build_texts(text_set, torture, val):
            for add, plain in MODES[modes]:
                tok.encode_special_tokens = plain
                try:
                    ids = tok.encode(text, add_special_tokens=add).ids
                    case = {"text": text, "add": add, "plain": plain, "ids": ids}
                    if not plain:
                        case["dec"] = tok.decode(ids, skip_special_tokens=False)
                        case["dec_skip"] = tok.decode(ids, skip_special_tokens=True)
                except Exception as e:  # recorded; pack refuses such cases
                    case = {"text": text, "add": add, "plain": plain, "error": str(e)[:300]}
                entry["cases"].append(case)
        tok.encode_special_tokens = False
        results["tokenizers"].append(entry)
        print("%-28s %5d cases in %.1f s" % (name, len(entry["cases"]), time.time() - t0), flush=True)

    def train_bpe(tok, trainer, byte_fallback=False, special=(), added=()):
        tok.train_from_iterator([train], trainer)
        if byte_fallback:  # every <0xNN> byte token, after the trained ones
            d = json.loads(tok.to_str())
            v = d["model"]["vocab"]
            nxt = max(v.values()) + 1
            for b in range(256):
                if "<0x%02X>" % b not in v:
                    v["<0x%02X>" % b] = nxt
                    nxt += 1
            tok = Tokenizer.from_str(json.dumps(d))
        if special:
            tok.add_special_tokens(list(special))
        if added:
            tok.add_tokens(list(added))
        return tok

    # Qwen3 and its Llama-3-like patch
    run("qwen3", Tokenizer.from_file(args.qwen3), keep_json=False)
    base = json.load(open(args.qwen3, encoding="utf-8"))
    run("llama3ish", Tokenizer.from_str(json.dumps(apply_patch(base, LLAMA3ISH_PATCH))),
        keep_json=False)

    # Metaspace family
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex("\\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok = train_bpe(tok, trainers.BpeTrainer(vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"],
                                             show_progress=False),
                    byte_fallback=True,
                    added=[AddedToken("<mask>", lstrip=True, rstrip=False, single_word=True,
                                      normalized=False, special=True),
                           AddedToken("<extra>", normalized=True),
                           AddedToken("[MASK]", rstrip=True, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    run("metaspace_first", tok)
    d = json.loads(tok.to_str())
    d["pre_tokenizer"]["prepend_scheme"] = "always"
    d["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    run("metaspace_always", Tokenizer.from_str(json.dumps(d)))
    d["pre_tokenizer"]["prepend_scheme"] = "never"
    d["pre_tokenizer"]["split"] = False
    d["decoder"]["prepend_scheme"] = "never"
    run("metaspace_never_nosplit", Tokenizer.from_str(json.dumps(d)))

    # Old Llama-style: normalizer does the Metaspace work, no pre-tokenizer
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()  # for training only
    tok = train_bpe(tok, trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"],
                                             show_progress=False),
                    byte_fallback=True,
                    added=[AddedToken("<extra>", normalized=True),
                           AddedToken("hello world", normalized=True, lstrip=True)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d = json.loads(tok.to_str())
    d["pre_tokenizer"] = None
    run("legacy_llama", Tokenizer.from_str(json.dumps(d)))

    # Split behaviours
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\\d+"), "merged_with_previous"),
        pre_tokenizers.Split("-", "merged_with_next"),
        pre_tokenizers.Split(Regex("[aeiou]"), "contiguous", invert=True),
        pre_tokenizers.Split(Regex("\\s"), "removed"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok = train_bpe(tok, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                             special_tokens=["<|endoftext|>"], show_progress=False),
                    added=[AddedToken(" spaced ", normalized=False), AddedToken("x-y")])
    run("splits", tok)
    d = json.loads(tok.to_str())
    pts = d["pre_tokenizer"]["pretokenizers"]
    pts[0]["invert"] = True
    pts[1]["behavior"] = "Isolated"
    pts[2] = {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithNext", "invert": True}
    pts[3] = {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False}
    run("splits2", Tokenizer.from_str(json.dumps(d)))

    # GPT-2-like byte level with added-token flags
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok = train_bpe(tok, trainers.BpeTrainer(vocab_size=1200, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                             special_tokens=["<|endoftext|>"], show_progress=False),
                    special=[AddedToken("<special_1>", lstrip=True, rstrip=True, normalized=False, special=True),
                             AddedToken("<special_2>", single_word=True, normalized=False, special=True)],
                    added=[AddedToken("<extra>", normalized=True, single_word=True),
                           AddedToken("Hello", normalized=True),
                           AddedToken("WORLD", normalized=False, rstrip=True)])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|endoftext|> $A <|endoftext|>",
                                      special_tokens=[("<|endoftext|>", 0)])])
    run("gpt2ish", tok)

    # BERT-like components
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok = train_bpe(tok, trainers.BpeTrainer(vocab_size=700, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                             continuing_subword_prefix="##", end_of_word_suffix="</w>",
                                             show_progress=False, limit_alphabet=60),
                    added=[AddedToken("[MASK]", lstrip=True, single_word=True, normalized=False, special=True)])
    sep, cls = tok.token_to_id("[SEP]"), tok.token_to_id("[CLS]")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    run("bertish", tok)
    d = json.loads(tok.to_str())
    d["pre_tokenizer"] = {"type": "BertPreTokenizer"}
    d["post_processor"] = {"type": "RobertaProcessing", "sep": ["[SEP]", sep], "cls": ["[CLS]", cls],
                           "trim_offsets": True, "add_prefix_space": False}
    run("bert_pretok", Tokenizer.from_str(json.dumps(d)))
    d["pre_tokenizer"] = {"type": "Whitespace"}
    d["normalizer"] = {"type": "NFKD"}
    d["model"]["fuse_unk"] = True
    run("whitespace_nfkd", Tokenizer.from_str(json.dumps(d)))
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "CharDelimiterSplit", "delimiter": " "},
        {"type": "Punctuation", "behavior": "Contiguous"},
        {"type": "Digits", "individual_digits": False}]}
    d["normalizer"] = {"type": "NFKC"}
    run("chardelim_nfkc", Tokenizer.from_str(json.dumps(d)))

    # Probes
    for name in SETUP_NAMES:
        if spec[name][1] == "probe":
            run(name, Tokenizer.from_str(probe_json(name)))

    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)
    print("wrote", args.out, flush=True)


# ---------------------------------------------------------------------------
# pack


def effective_model(d):
    """vocab and merge ranks as `tokenizers` holds them after loading d
    (parsed with later duplicate keys winning): a repeated merge keeps its
    later rank."""
    m = d["model"]
    ranks = {}
    for r, mg in enumerate(m["merges"]):
        ranks[tuple(mg.split(" ", 1)) if isinstance(mg, str) else tuple(mg)] = r
    return m["vocab"], sorted(ranks, key=ranks.get)


def check_probe(name, raw, recorded):
    a, b = json.loads(raw), json.loads(recorded)
    if effective_model(a) != effective_model(b):
        raise SystemExit("%s: the probe JSON is not what the recorded run loaded" % name)
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens"):
        if a[key] != b[key]:
            raise SystemExit("%s: %s differs from the recorded run's" % (name, key))


def fnv1a(data):
    h = 2166136261
    for c in data:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def pack(args):
    entries, version = {}, None
    for path in args.raw:
        raw = json.load(open(path, encoding="utf-8"))
        if version not in (None, raw["version"]):
            raise SystemExit("%s: tokenizers %s, others %s" % (path, raw["version"], version))
        version = raw["version"]
        for e in raw["tokenizers"]:
            if e["name"] in DROPPED:
                print("dropped %s: %s" % (e["name"], DROPPED[e["name"]]))
                continue
            if e["name"] not in SETUP_NAMES:
                raise SystemExit("%s: unknown setup %s" % (path, e["name"]))
            if e["name"] in entries:
                raise SystemExit("setup %s recorded twice" % e["name"])
            entries[e["name"]] = e
    missing = [n for n in SETUP_NAMES if n not in entries]
    if missing:
        raise SystemExit("setups missing from the raw files: %s" % ", ".join(missing))

    torture = json.load(open(args.torture, encoding="utf-8"))
    val = open(args.val, encoding="utf-8").read() if args.val else None
    os.makedirs(os.path.join(args.out, "tokenizers"), exist_ok=True)
    setups_out, lines, n_cases = [], [], 0
    for name, kind, text_set, modes, covers in SETUPS:
        e = entries[name]
        errors = [c for c in e["cases"] if "error" in c]
        if errors:
            raise SystemExit("%s: %d cases are errors, e.g. %r" % (name, len(errors), errors[0]))
        # the cases are the texts of text_set, each in every mode, in order
        want_modes = MODES[modes]
        got_modes = [(c["add"], c["plain"]) for c in e["cases"]]
        if len(got_modes) % len(want_modes) or \
                got_modes != want_modes * (len(got_modes) // len(want_modes)):
            raise SystemExit("%s: cases are not in the modes %s" % (name, modes))
        texts = [c["text"] for c in e["cases"][::len(want_modes)]]
        if any(c["text"] != texts[i // len(want_modes)] for i, c in enumerate(e["cases"])):
            raise SystemExit("%s: the modes of a text are not together" % name)
        if val is not None and texts != build_texts(text_set, torture, val):
            raise SystemExit("%s: the texts are not the set %s" % (name, text_set))
        s = {"name": name, "kind": kind, "covers": covers, "texts": TEXT_SETS[text_set],
             "modes": [{"add": a, "plain": p} for a, p in want_modes], "cases": len(e["cases"])}
        if kind == "shared":
            s["shared"] = "tokenizers/qwen3/tokenizer.json"
            if name == "llama3ish":
                s["patch"] = LLAMA3ISH_PATCH
            data = open(args.qwen3, "rb").read()
            s["shared_bytes"], s["shared_fnv1a"] = len(data), fnv1a(data)
        else:
            if kind == "probe":
                text = probe_json(name)
                check_probe(name, text, e["json"])
            else:
                text = e["json"]
            rel = "tokenizers/%s.json" % name
            with open(os.path.join(args.out, rel), "w", encoding="utf-8") as f:
                f.write(text)
            s["tokenizer"] = rel
        setups_out.append(s)
        for c in e["cases"]:
            rec = {"setup": name, "text": c["text"], "add": c["add"], "plain": c["plain"], "ids": c["ids"]}
            if "dec" in c:
                rec["dec"], rec["dec_skip"] = c["dec"], c["dec_skip"]
            lines.append(json.dumps(rec, ensure_ascii=False))
        n_cases += len(e["cases"])
        print("%-28s %-7s %5d cases" % (name, kind, len(e["cases"])))

    meta = {"kvlab_hf_extended_fixture": FORMAT, "tokenizers_version": version,
            "setups": len(setups_out), "cases": n_cases}
    with open(os.path.join(args.out, "setups.json"), "w", encoding="utf-8") as f:
        json.dump(dict(meta, setups=setups_out), f, ensure_ascii=False, indent=1)
        f.write("\n")
    body = json.dumps(meta) + "\n" + "\n".join(lines) + "\n"
    path = os.path.join(args.out, "cases.jsonl.zst")
    subprocess.run(["zstd", "-19", "-q", "-f", "-o", path], input=body.encode("utf-8"), check=True)
    print("%d setups, %d cases; %s: %d bytes (%d uncompressed)"
          % (len(setups_out), n_cases, path, os.path.getsize(path), len(body.encode())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    r = sub.add_parser("record", help="run `tokenizers` on every setup")
    r.add_argument("--qwen3", required=True, help="Qwen3 tokenizer.json")
    r.add_argument("--val", required=True, help="val.txt: the first 400,000 bytes of the val corpus")
    r.add_argument("--train", required=True, help="training text for the small tokenizers")
    r.add_argument("--torture", default=TORTURE)
    r.add_argument("--out", required=True, help="raw results JSON to write")
    p = sub.add_parser("pack", help="write the fixture folder from raw results")
    p.add_argument("raw", nargs="+", help="raw results JSON files")
    p.add_argument("--val", help="val.txt, to check every setup's texts")
    p.add_argument("--qwen3", required=True,
                   help="the shared Qwen3 tokenizer.json the raw files were made with")
    p.add_argument("--torture", default=TORTURE)
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizers", "hf_extended"))
    args = ap.parse_args()
    if args.step == "record":
        record(args)
    else:
        pack(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
