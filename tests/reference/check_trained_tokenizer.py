#!/usr/bin/env python3
"""Independent checks of `kvlab tokenizer train` (docs/tokenizer-training.md).

The fixture folder tests/fixtures/tokenizers/trained/ holds a small tokenizer
trained by kvlab:

    kvlab tokenizer train --vocab 1024 --out tests/fixtures/tokenizers/trained \
        corpus2m.txt

where corpus2m.txt is the first 2,000,000 bytes of the decompressed
shared/corpus/train-00.txt.zst, cut after its last '\\n' (1,999,965 bytes).
corpus5m.txt, used by tests/tokenizer/test_bpe_train.c, is the same with
5,000,000 bytes (4,999,999 bytes).

Modes
-----
--make-texts VAL.txt.zst
    Writes FIXTURE/texts.json: the conformance inputs (paragraphs of the
    validation corpus, which the tokenizer never saw, and hand-written
    torture strings).  Needs only the standard library and the zstd program.

--corpus corpus2m.txt [--corpus5 corpus5m.txt] --out DIR
    Needs `tokenizers` (and `transformers` for the last check).
    1. Loads FIXTURE/tokenizer.json with `tokenizers`.
    2. Re-trains from scratch with a deliberately naive BPE written here:
       words come from `tokenizers`' own normalizer + pre-tokenizer applied
       to the whole corpus as one string; every step recounts the pairs of
       the words that hold the merged pair and takes the most frequent pair,
       ties going to the smallest (left id, right id) with ids = byte value
       for single bytes and creation order after that (kvlab's documented
       rule).  The merges and the vocabulary must equal the fixture's.
       Writes DIR/reference_merges.json (all merges) and, with --corpus5,
       DIR/reference_merges_5m.json (the first 200 merges for vocab 4096 on
       corpus5m.txt, which test_bpe_train.c compares with).
    3. Encodes every text of texts.json with `tokenizers`: ids with special
       tokens recognised, ids with them encoded as plain text
       (encode_special_tokens), and the decodings with and without special
       tokens.  Writes DIR/expected.json for test_trained_conformance.c.
    4. Loads the folder with transformers.AutoTokenizer and checks the
       special tokens, the size and the ChatML chat template rendering.
    5. With --extra TOKENIZER_JSON (e.g. the 32k tokenizer trained on 100 MB
       for docs/tokenizer-training.md): loads it, checks that every text
       decodes back to its NFC form and writes DIR/expected_extra.json.
Exits non-zero when a check fails.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "tokenizers", "trained")

TORTURE = [
    "Hello, world! It's 2024: the year we'll see 3.14159 apples.",
    "I'm sure they've gone; you'd think THEY'LL return... DON'T.",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\t\ttabs\n\nnew lines\r\nwindows\r\n\r\n",
    "Caf\u00e9 vs Cafe\u0301 (decomposed: NFC makes them equal); \u212b ANGSTROM",
    "na\u00efve co\u00f6perate r\u00e9sum\u00e9 \u00fcber Stra\u00dfe",
    "\u201cCurly quotes\u201d \u2014 and \u2018single\u2019 ones\u2026",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u4e2d\u6587\u5b57\u7b26\u3002\ud55c\uad6d\uc5b4",
    "emoji: \U0001f600\U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7 zwj \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947",
    "numbers 1234567890 12,345.67 -42 +7 1e10 0x1F",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "text<|endoftext|>more text <|endoftext|> and <|im_end|",
    "\u00a0non-breaking\u00a0spaces\u2003em space\u3000ideographic",
    "a\u0000nul and \u0007bell and \u007fdel",
    "\n\n\n   \n\t\n",
    "x",
    "",
    "    def f(x):\n        return x ** 2  # square\n",
    "------======******......!!!???",
]


def make_texts(val_zst):
    raw = subprocess.run(["zstd", "-dc", val_zst], check=True,
                         stdout=subprocess.PIPE).stdout.decode("utf-8")
    paras = [p for p in raw.split("\n\n") if 200 <= len(p) <= 1500]
    # every 97th paragraph of the right length, 40 of them: a fixed selection
    picked = paras[::97][:40]
    texts = picked + TORTURE
    path = os.path.join(FIXTURE, "texts.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"texts": texts}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(texts)} texts")


def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def naive_train(tok, text, n_merges):
    """Plain BPE, recounting every word that holds the chosen pair."""
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    norm = tok.normalizer.normalize_str(text) if tok.normalizer else text
    counts = collections.Counter(
        w for w, _ in tok.pre_tokenizer.pre_tokenize_str(norm))
    names = [bytes_to_unicode()[b] for b in range(256)]  # id -> token text
    ids = {t: i for i, t in enumerate(names)}
    words = [[u2b[ch] for ch in w] for w in counts]
    freq = list(counts.values())
    pairs = collections.Counter()
    for w, c in zip(words, freq):
        for i in range(len(w) - 1):
            pairs[(w[i], w[i + 1])] += c
    merges = []
    while len(merges) < n_merges and pairs:
        (a, b), c = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if c <= 0:
            break
        t = names[a] + names[b]
        if t not in ids:
            ids[t] = len(names)
            names.append(t)
        nid = ids[t]
        merges.append([names[a], names[b]])
        for w, c in zip(words, freq):
            if a not in w:
                continue
            hit = any(w[i] == a and w[i + 1] == b for i in range(len(w) - 1))
            if not hit:
                continue
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] -= c
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(nid)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            w[:] = out
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] += c
        pairs = collections.Counter({k: v for k, v in pairs.items() if v > 0})
    return merges, names


def check(args):
    from tokenizers import Tokenizer

    failures = []
    fx = args.fixture
    tok = Tokenizer.from_file(os.path.join(fx, "tokenizer.json"))
    with open(os.path.join(fx, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    specials = [t["content"] for t in tj["added_tokens"]]
    print("loaded:", tok.get_vocab_size(with_added_tokens=True), "ids,",
          len(tj["model"]["merges"]), "merges, specials", specials)

    # 2. naive reference training
    with open(args.corpus, encoding="utf-8", newline="") as f:
        corpus = f.read()
    assert not any(s in corpus for s in specials), "corpus holds a special token"
    n_model = len(tj["model"]["vocab"])
    t0 = time.time()
    ref, names = naive_train(tok, corpus, n_model - 256)
    print(f"naive reference: {len(ref)} merges in {time.time() - t0:.1f} s")
    fx_merges = [list(m) if isinstance(m, list) else m.split(" ")
                 for m in tj["model"]["merges"]]
    if ref != fx_merges:
        k = next((i for i, (x, y) in enumerate(zip(ref, fx_merges)) if x != y),
                 min(len(ref), len(fx_merges)))
        failures.append(f"merges differ from the naive reference at {k}: "
                        f"{ref[k:k + 1]} vs {fx_merges[k:k + 1]}")
    ref_vocab = {t: i for i, t in enumerate(names)}
    if ref_vocab != tj["model"]["vocab"]:
        failures.append("vocabulary differs from the naive reference")
    with open(os.path.join(args.out, "reference_merges.json"), "w",
              encoding="utf-8") as f:
        json.dump({"corpus": "corpus2m.txt", "vocab_size": 1024,
                   "merges": ref}, f, ensure_ascii=False, indent=0)
    if args.corpus5:
        with open(args.corpus5, encoding="utf-8", newline="") as f:
            c5 = f.read()
        t0 = time.time()
        ref5, _ = naive_train(tok, c5, 200)
        print(f"naive reference on corpus5m: 200 merges in {time.time() - t0:.1f} s")
        with open(os.path.join(args.out, "reference_merges_5m.json"), "w",
                  encoding="utf-8") as f:
            json.dump({"corpus": "corpus5m.txt", "merges": ref5}, f,
                      ensure_ascii=False, indent=0)

    # 3. encodings of texts.json
    with open(os.path.join(fx, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    records = []
    for text in texts:
        tok.encode_special_tokens = False
        ids = tok.encode(text).ids
        tok.encode_special_tokens = True
        plain = tok.encode(text).ids
        tok.encode_special_tokens = False
        records.append({
            "text": text,
            "ids": ids,
            "ids_plain": plain,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
        })
    import tokenizers
    with open(os.path.join(args.out, "expected.json"), "w",
              encoding="utf-8") as f:
        json.dump({"generator": f"tokenizers {tokenizers.__version__}",
                   "records": records}, f, ensure_ascii=False, indent=0)
    n_ids = sum(len(r["ids"]) for r in records)
    print(f"encoded {len(records)} texts: {n_ids} ids")

    # 4. transformers
    try:
        import transformers
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(fx)
        info = {"transformers": transformers.__version__,
                "class": type(t).__name__, "len": len(t),
                "eos": t.eos_token, "pad": t.pad_token, "bos": t.bos_token}
        msgs = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi!"}]
        rendered = t.apply_chat_template(msgs, tokenize=False,
                                         add_generation_prompt=True)
        want = ("<|im_start|>system\nBe brief.<|im_end|>\n"
                "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")
        info["chat"] = rendered
        print("transformers:", info)
        if rendered != want:
            failures.append(f"chat template renders {rendered!r}")
        if len(t) != 1024 or t.eos_token != "<|endoftext|>" or \
                t.pad_token != "<|endoftext|>" or t.bos_token is not None:
            failures.append(f"transformers sees {info}")
        for r in records[:5] + records[-len(TORTURE):]:
            got = t(r["text"])["input_ids"]
            if got != r["ids"]:
                failures.append(f"transformers encodes {r['text'][:40]!r} "
                                f"differently")
        with open(os.path.join(args.out, "transformers.json"), "w") as f:
            json.dump(info, f, indent=1)
    except ImportError as e:
        print("transformers check skipped:", e)
    except Exception as e:  # a loading or rendering error is a failure
        failures.append(f"transformers: {type(e).__name__}: {e}")

    # 5. optionally, a larger trained tokenizer: loads, round-trips, and its
    # encodings of texts.json are written for a local comparison with kvlab
    if args.extra:
        big = Tokenizer.from_file(args.extra)
        recs = []
        for text in texts:
            ids = big.encode(text).ids
            back = big.decode(ids, skip_special_tokens=False)
            nfc = big.normalizer.normalize_str(text) if big.normalizer else text
            if back != nfc:
                failures.append(f"{args.extra}: {text[:30]!r} does not round-trip")
            recs.append({"text": text, "ids": ids, "decoded": back})
        with open(os.path.join(args.out, "expected_extra.json"), "w",
                  encoding="utf-8") as f:
            json.dump({"tokenizer": args.extra, "records": recs}, f,
                      ensure_ascii=False, indent=0)
        print(f"{args.extra}: {big.get_vocab_size()} ids, "
              f"{sum(len(r['ids']) for r in recs)} ids for the texts")

    for msg in failures:
        print("FAIL:", msg)
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", default=FIXTURE)
    ap.add_argument("--make-texts", metavar="VAL_ZST")
    ap.add_argument("--corpus")
    ap.add_argument("--corpus5")
    ap.add_argument("--out", default=".")
    ap.add_argument("--extra", metavar="TOKENIZER_JSON",
                    help="another trained tokenizer.json to load and round-trip")
    args = ap.parse_args()
    if args.make_texts:
        make_texts(args.make_texts)
        return 0
    if not args.corpus:
        ap.error("--corpus (or --make-texts) is required")
    os.makedirs(args.out, exist_ok=True)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
