#!/usr/bin/env python3
"""Generates kvlab's tokenizer conformance fixtures.

The reference libraries are

  * Hugging Face `tokenizers` for the real Qwen3 tokenizer.json
    (`Tokenizer.from_file(path)`), and
  * `sentencepiece` for the real Llama 2 tokenizer.model
    (`SentencePieceProcessor(model_file=path)`),

and the texts are two sets:

  val      >= 1,000,000 bytes of English prose from shared/corpus/val.txt.zst,
           chosen by the rule in VAL_RULE below (tests/tokenizer/*.c repeat
           it with libzstd); every selected line is encoded on its own,
           without its "\\n".
  torture  the JSON list tests/fixtures/tokenizers/torture.json (committed):
           whitespace runs, CRLF, numbers, contractions, CJK, emoji with ZWJ
           and skin tones, combining marks, full-width forms, literal special
           tokens, code, URLs, mixed scripts, control characters.

For each tokenizer and set it writes <out>/<tokenizer>_<set>.jsonl.zst
(JSON Lines, zstd level 19): the first line is a header object, then one
object per text, in order:

  header  {"kvlab_tokenizer_fixture": 1, "tokenizer", "tokenizer_file",
           "tokenizer_sha256", "set", "source", "rule", "count", "bytes",
           "library", "python", "vocab_size", "bos", "eos", "encode",
           "decode", "fields"}   ("fields" explains every record key)
  record  {"i": index, "len": UTF-8 byte length, "fnv": FNV-1a 32-bit hash of
           the UTF-8 bytes (lets the C test check that it rebuilt the same
           text), "ids": [...], "rt": decode(ids) == text, ...}

Qwen3 records also have "ids_special" (add_special_tokens=True: Qwen3's
post-processor is ByteLevel, so it adds nothing; kept to check that),
"ids_plain" (encode_special_tokens=True: literal special tokens encoded as
text, kvlab's KVL_ENCODE_PLAIN_SPECIAL), "dec" (decode(ids,
skip_special_tokens=False)) and "dec_skip" (decode(ids,
skip_special_tokens=True)); in the val set "ids_special" only for the first
VAL_SPECIAL_LINES lines, "ids_plain" and "dec_skip" not at all, "dec" only
where "rt" is false.  Llama 2 records have "ids" (encode(text): no BOS),
"ids_bos" (encode(text, add_bos=True), what transformers' LlamaTokenizer
does with add_special_tokens=True) and "dec" (decode(ids)), with the same
val-set restrictions.  SentencePiece reads "<s>", "</s>" and "<unk>" in a
text as plain text (kvlab: KVL_ENCODE_PLAIN_SPECIAL).

The script checks its own output: a second tokenizer instance re-encodes a
sample one text at a time (the main pass uses the batch calls), every id is
in range, the files are read back and compared, and the counts are printed.

Usage (from the repository root; the GPU machine has tokenizers 0.23,
sentencepiece 0.2 and transformers 5.17, no network):

    python3 tests/reference/make_tokenizer_fixtures.py \\
        --val ../shared/corpus/val.txt.zst \\
        --qwen3 ../shared/tokenizers/qwen3/tokenizer.json \\
        --llama2 ../shared/tokenizers/llama2/tokenizer.model \\
        [--torture tests/fixtures/tokenizers/torture.json] \\
        [--out tests/fixtures/tokenizers]

--val may also be the decompressed text.  Compression uses the `zstandard`
module or the `zstd` program, whichever exists; with neither the files are
written uncompressed (<name>.jsonl) and must be compressed with
`zstd -19 --rm` before they are committed.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

VAL_EVERY = 7
VAL_MIN_BYTES = 1_000_000
VAL_SPECIAL_LINES = 64
VAL_RULE = (
    "split the UTF-8 text of corpus/val.txt.zst on '\\n'; number the "
    "non-empty pieces 1, 2, 3, ...; take pieces %d, %d, %d, ... (without "
    "their '\\n'), in order, until the byte lengths taken add up to at "
    "least %d" % (VAL_EVERY, 2 * VAL_EVERY, 3 * VAL_EVERY, VAL_MIN_BYTES))
ZSTD_LEVEL = 19
SAMPLE_STEP = 37  # re-encode every 37th text one at a time


def log(*a):
    print(*a, flush=True)


def fnv1a32(b):
    h = 0x811C9DC5
    for c in b:
        h ^= c
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_maybe_zst(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x28\xb5\x2f\xfd"):
        return data
    try:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    except ImportError:
        pass
    if shutil.which("zstd"):
        return subprocess.run(["zstd", "-dc", path], check=True,
                              stdout=subprocess.PIPE).stdout
    sys.exit("cannot decompress %s: no zstandard module and no zstd program "
             "(pass the decompressed text instead)" % path)


def select_val(data):
    """The val selection rule (VAL_RULE).  Returns a list of str."""
    out, total, k = [], 0, 0
    for piece in data.split(b"\n"):
        if not piece:
            continue
        k += 1
        if k % VAL_EVERY:
            continue
        out.append(piece.decode("utf-8"))  # strict: the corpus is UTF-8
        total += len(piece)
        if total >= VAL_MIN_BYTES:
            return out, total
    sys.exit("the corpus holds only %d selectable bytes (< %d)"
             % (total, VAL_MIN_BYTES))


def compressor():
    try:
        import zstandard
        c = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return "zstandard %s" % zstandard.__version__, c.compress
    except ImportError:
        pass
    if shutil.which("zstd"):
        def comp(b):
            return subprocess.run(["zstd", "-q", "-%d" % ZSTD_LEVEL, "-c"],
                                  input=b, check=True,
                                  stdout=subprocess.PIPE).stdout
        return "zstd program", comp
    return None, None


def decompress(b):
    try:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(b).read()
    except ImportError:
        return subprocess.run(["zstd", "-dc"], input=b, check=True,
                              stdout=subprocess.PIPE).stdout


def dumps(obj):
    # ASCII only (\u escapes), compact, one line.
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"))


def write_fixture(out_dir, name, header, records, comp):
    text = "\n".join([dumps(header)] + [dumps(r) for r in records]) + "\n"
    raw = text.encode("ascii")
    if comp:
        path = os.path.join(out_dir, name + ".jsonl.zst")
        blob = comp(raw)
        with open(path, "wb") as f:
            f.write(blob)
        back = decompress(blob)
    else:
        path = os.path.join(out_dir, name + ".jsonl")
        with open(path, "wb") as f:
            f.write(raw)
        with open(path, "rb") as f:
            back = f.read()
    # Read back what was written and compare.
    lines = back.decode("ascii").split("\n")
    assert lines[-1] == "", name
    lines = lines[:-1]
    assert json.loads(lines[0]) == header, name
    assert len(lines) == 1 + len(records), name
    for line, r in zip(lines[1:], records):
        assert json.loads(line) == r, (name, r["i"])
    log("  wrote %s: %d records, %d bytes (%d uncompressed)"
        % (path, len(records), os.path.getsize(path), len(raw)))


def base_record(i, text):
    b = text.encode("utf-8")
    return {"i": i, "len": len(b), "fnv": fnv1a32(b)}


def check_range(name, records, keys, n):
    for r in records:
        for k in keys:
            for t in r.get(k, []):
                assert 0 <= t < n, (name, r["i"], k, t)


# ---- Qwen3: Hugging Face tokenizers -----------------------------------------

def qwen3_records(path, texts, full):
    """full: torture-style records (every field for every text)."""
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(path)
    encs = tok.encode_batch(texts, add_special_tokens=False)
    ids = [e.ids for e in encs]
    n_special = len(texts) if full else min(VAL_SPECIAL_LINES, len(texts))
    special = [e.ids for e in tok.encode_batch(texts[:n_special],
                                               add_special_tokens=True)]
    plain = None
    if full:
        plain_tok = tokenizers.Tokenizer.from_file(path)
        try:
            plain_tok.encode_special_tokens = True
            plain = [e.ids for e in plain_tok.encode_batch(
                texts, add_special_tokens=False)]
        except AttributeError as e:  # tokenizers < 0.15
            log("  (no encode_special_tokens: %s)" % e)
    decs = tok.decode_batch(ids, skip_special_tokens=False)
    decs_skip = tok.decode_batch(ids, skip_special_tokens=True) if full else None
    records = []
    for i, t in enumerate(texts):
        r = base_record(i, t)
        r["ids"] = ids[i]
        r["rt"] = decs[i] == t
        if i < n_special:
            r["ids_special"] = special[i]
        if full:
            if plain is not None:
                r["ids_plain"] = plain[i]
            r["dec"] = decs[i]
            r["dec_skip"] = decs_skip[i]
        elif not r["rt"]:
            r["dec"] = decs[i]
        records.append(r)

    # Self-check: a fresh instance, one text at a time.
    check = tokenizers.Tokenizer.from_file(path)
    n_checked = 0
    for i in range(0, len(texts), SAMPLE_STEP if not full else 1):
        assert check.encode(texts[i], add_special_tokens=False).ids == ids[i], i
        assert check.decode(ids[i], skip_special_tokens=False) == decs[i], i
        n_checked += 1
    if plain is not None:
        check.encode_special_tokens = True
        for i, t in enumerate(texts):
            assert check.encode(t, add_special_tokens=False).ids == plain[i], i
    vocab = tok.get_vocab_size(with_added_tokens=True)
    check_range("qwen3", records, ("ids", "ids_special", "ids_plain"), vocab)
    # Informational: transformers' fast tokenizer over the same file.
    try:
        import transformers
        tft = transformers.PreTrainedTokenizerFast(tokenizer_file=path)
        agree = sum(1 for i, t in enumerate(texts)
                    if tft.encode(t, add_special_tokens=False) == ids[i])
        log("  qwen3: transformers %s PreTrainedTokenizerFast agrees on %d/%d"
            % (transformers.__version__, agree, len(texts)))
    except Exception as e:
        log("  (no transformers check: %s: %s)" % (type(e).__name__, e))
    log("  qwen3: %d texts, %d ids, %d round-trip, %d re-encoded singly"
        % (len(texts), sum(len(x) for x in ids),
           sum(r["rt"] for r in records), n_checked))
    info = {
        "library": "tokenizers %s" % tokenizers.__version__,
        "vocab_size": vocab,
        "bos": None, "eos": None,
        "encode": "tokenizers.Tokenizer.from_file(tokenizer.json)"
                  ".encode(text, add_special_tokens=False).ids",
        "decode": "Tokenizer.decode(ids, skip_special_tokens=False)",
        "fields": {
            "ids": "encode(text, add_special_tokens=False)",
            "rt": "decode(ids, skip_special_tokens=False) == text",
            "ids_special": "encode(text, add_special_tokens=True)" +
                           ("" if full else " (first %d records only)"
                            % VAL_SPECIAL_LINES),
            "ids_plain": "encode with Tokenizer.encode_special_tokens = True "
                         "(special added tokens in the text are plain text)",
            "dec": "decode(ids, skip_special_tokens=False)" +
                   ("" if full else " (only where rt is false)"),
            "dec_skip": "decode(ids, skip_special_tokens=True)",
        },
    }
    if not full:
        del info["fields"]["dec_skip"]
    if plain is None:
        del info["fields"]["ids_plain"]
    # Special tokens found in the torture texts, for the report.
    if plain is not None:
        diff = sum(1 for i in range(len(texts)) if plain[i] != ids[i])
        log("  qwen3: %d torture texts encode differently with "
            "encode_special_tokens=True" % diff)
    same_special = sum(1 for r in records[:n_special]
                       if r["ids_special"] == r["ids"])
    log("  qwen3: add_special_tokens=True adds nothing in %d/%d"
        % (same_special, n_special))
    return records, info


# ---- Llama 2: sentencepiece -------------------------------------------------

def transformers_llama(path):
    """transformers' LlamaTokenizer built from the .model, or None."""
    try:
        import transformers
        from transformers import LlamaTokenizer
        t = LlamaTokenizer(vocab_file=path)
        return t, "transformers %s %s" % (transformers.__version__,
                                          type(t).__name__)
    except Exception as e:  # informational only
        log("  (no transformers LlamaTokenizer: %s: %s)"
            % (type(e).__name__, e))
        return None, None


def llama2_records(path, texts, full):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    ids = sp.encode(texts)
    n_bos = len(texts) if full else min(VAL_SPECIAL_LINES, len(texts))
    bos = sp.encode(texts[:n_bos], add_bos=True)
    decs = [sp.decode(x) for x in ids]
    records = []
    for i, t in enumerate(texts):
        r = base_record(i, t)
        r["ids"] = ids[i]
        r["rt"] = decs[i] == t
        if i < n_bos:
            r["ids_bos"] = bos[i]
        if full or not r["rt"]:
            r["dec"] = decs[i]
        records.append(r)

    check = spm.SentencePieceProcessor(model_file=path)
    n_checked = 0
    for i in range(0, len(texts), SAMPLE_STEP if not full else 1):
        assert check.encode(texts[i]) == ids[i], i
        assert check.EncodeAsIds(texts[i]) == ids[i], i
        assert check.decode(ids[i]) == decs[i], i
        n_checked += 1
    for i in range(n_bos):
        assert bos[i] == [sp.bos_id()] + ids[i], i
    vocab = sp.get_piece_size()
    check_range("llama2", records, ("ids", "ids_bos"), vocab)
    log("  llama2: %d texts, %d ids, %d round-trip, %d re-encoded singly"
        % (len(texts), sum(len(x) for x in ids),
           sum(r["rt"] for r in records), n_checked))

    # Informational only (logged, not recorded): with transformers 5.17,
    # LlamaTokenizer(vocab_file=tokenizer.model) agreed on 0/17282 val lines,
    # i.e. it does not rebuild this model's vocabulary from the .model file,
    # so it is no reference here.
    tft, tf_name = transformers_llama(path)
    if tft is not None:
        try:
            agree = sum(1 for i, t in enumerate(texts)
                        if tft.encode(t, add_special_tokens=False) == ids[i])
            log("  llama2: %s agrees with sentencepiece on %d/%d texts "
                "(informational)" % (tf_name, agree, len(texts)))
        except Exception as e:
            log("  (transformers encode failed: %s: %s)" % (type(e).__name__, e))

    info = {
        "library": "sentencepiece %s" % spm.__version__,
        "vocab_size": vocab,
        "bos": sp.bos_id(), "eos": sp.eos_id(),
        "encode": "sentencepiece.SentencePieceProcessor(model_file="
                  "tokenizer.model).encode(text)",
        "decode": "SentencePieceProcessor.decode(ids)",
        "fields": {
            "ids": "encode(text) (no BOS)",
            "rt": "decode(ids) == text",
            "ids_bos": "encode(text, add_bos=True)" +
                       ("" if full else " (first %d records only)"
                        % VAL_SPECIAL_LINES),
            "dec": "decode(ids)" + ("" if full else
                                    " (only where rt is false)"),
        },
    }
    return records, info


# ---- main ---------------------------------------------------------------------

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.normpath(os.path.join(here, "..", "fixtures",
                                             "tokenizers"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--val", required=True,
                    help="shared/corpus/val.txt.zst (or its decompressed text)")
    ap.add_argument("--qwen3", required=True, help="Qwen3 tokenizer.json")
    ap.add_argument("--llama2", required=True, help="Llama 2 tokenizer.model")
    ap.add_argument("--torture", default=os.path.join(fixtures, "torture.json"))
    ap.add_argument("--out", default=fixtures)
    ap.add_argument("--only", choices=("qwen3", "llama2"), default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    comp_name, comp = compressor()
    log("python %s; compression: %s" % (platform.python_version(),
                                         comp_name or "none (write .jsonl)"))

    data = read_maybe_zst(args.val)
    val_texts, val_bytes = select_val(data)
    log("val: %d bytes of corpus, %d lines selected, %d bytes"
        % (len(data), len(val_texts), val_bytes))
    with open(args.torture, encoding="utf-8") as f:
        torture = json.load(f)
    assert isinstance(torture, list) and all(isinstance(t, str)
                                             for t in torture)
    assert all("\0" not in t for t in torture), "torture texts must be NUL-free"
    log("torture: %d texts" % len(torture))

    sets = [("val", val_texts, False, "corpus/val.txt.zst", VAL_RULE,
             val_bytes),
            ("torture", torture, True, "tests/fixtures/tokenizers/torture.json",
             "every entry of the JSON list, in order",
             sum(len(t.encode("utf-8")) for t in torture))]
    toks = [("qwen3", args.qwen3, "tokenizers/qwen3/tokenizer.json",
             qwen3_records),
            ("llama2", args.llama2, "tokenizers/llama2/tokenizer.model",
             llama2_records)]
    for tname, tpath, tshared, fn in toks:
        if args.only and tname != args.only:
            continue
        sha = sha256_file(tpath)
        for sname, texts, full, source, rule, nbytes in sets:
            log("%s / %s" % (tname, sname))
            records, info = fn(tpath, texts, full)
            header = {"kvlab_tokenizer_fixture": 1, "tokenizer": tname,
                      "tokenizer_file": tshared, "tokenizer_sha256": sha,
                      "set": sname, "source": source, "rule": rule,
                      "count": len(texts), "bytes": nbytes,
                      "python": platform.python_version(),
                      "hash": "fnv: FNV-1a 32-bit (offset 2166136261, prime "
                              "16777619) of the text's UTF-8 bytes"}
            header.update(info)
            write_fixture(args.out, "%s_%s" % (tname, sname), header, records,
                          comp)
    log("done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
