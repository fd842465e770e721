#!/usr/bin/env python3
"""Single-thread encode speed of kvlab's tokenizer beside Hugging Face
`tokenizers`, on the same text, in one run.

    python3 bench/tokenizer_vs_hf.py --tokenizer tokenizer.json[.xz|.gz] \
        --text corpus.txt[.zst] --bundle .device-bundle [--reps 3] [--out DIR]

1. The bundled bench_tokenizer (scripts/device-bundle.sh) writes the text it
   will measure (decompressed, optionally cut with --max-mb) to a work file;
   Python reads the same bytes, so both sides encode identical input.
2. HF tokenizers with one thread (RAYON_NUM_THREADS=1 and
   TOKENIZERS_PARALLELISM=false, set before the import): Tokenizer.from_file
   (first and best of --load-reps loads), then
   - line by line: tok.encode(line, add_special_tokens=False) per line, the
     '\\n' kept (as `for line in file` gives it), ids dropped;
   - encode_batch of all lines (one call; single-threaded as configured);
   - the whole text in one tok.encode call.
   One warm-up pass (which also keeps the ids), then --reps timed passes;
   best and median reported.  CPU time / wall time is printed to show that
   one thread did the work.
3. bench_tokenizer on the same text and tokenizer: the same measurements
   through kvl_tokenizer_encode_alloc (no BOS/EOS), writing its ids.
4. The ids of both are compared (whole text, and the per-line ids
   concatenated): the numbers are only comparable when both did the same
   work.
5. One table with both, and the ratio kvlab / HF.

MB/s are 10^6 bytes of UTF-8 input per second.
"""
import argparse
import array
import gzip
import json
import lzma
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# Before `import tokenizers`: its rayon pool reads these once.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "1")


def log(*a):
    print(*a, flush=True)


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = {}
        for line in out.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
        return (f"{info.get('Model name', '?')}; {info.get('CPU(s)', '?')} CPUs, "
                f"{info.get('Thread(s) per core', '?')} threads/core, "
                f"L2 {info.get('L2 cache', '?')}, L3 {info.get('L3 cache', '?')}")
    except OSError:
        return platform.processor() or "?"


def unpack_tokenizer(path, work):
    """A plain, .xz or .gz tokenizer.json -> path of a plain file."""
    if path.endswith(".xz"):
        opener = lzma.open
    elif path.endswith(".gz"):
        opener = gzip.open
    else:
        return path
    dst = os.path.join(work, "tokenizer.json")
    with opener(path, "rb") as src, open(dst, "wb") as f:
        shutil.copyfileobj(src, f)
    return dst


def split_lines(text):
    """Lines ending in '\\n' (kept), as bench_tokenizer splits them; unlike
    str.splitlines, no other character ends a line."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def timed_passes(fn, reps):
    """Warm-up pass (its result is returned), then reps timed passes."""
    result = fn()
    times = []
    c0 = time.process_time()
    for r in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    st = sorted(times)
    n = len(st)
    median = st[n // 2] if n % 2 else 0.5 * (st[n // 2 - 1] + st[n // 2])
    return result, {"best_s": st[0], "median_s": median, "times": times,
                    "cpu_per_wall": cpu / sum(times) if sum(times) else 0.0}


def bench_hf(tok_path, text, nbytes, reps, load_reps, with_batch):
    import tokenizers
    from tokenizers import Tokenizer

    res = {"version": tokenizers.__version__}
    loads = []
    tok = None
    for _ in range(load_reps):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(tok_path)
        loads.append(time.perf_counter() - t0)
    res["load_first_s"], res["load_best_s"] = loads[0], min(loads)
    log(f"HF tokenizers {tokenizers.__version__}: load {1e3 * loads[0]:.1f} ms first, "
        f"{1e3 * min(loads):.1f} ms best of {load_reps}")

    lines = split_lines(text)
    enc = tok.encode
    encb = tok.encode_batch

    def per_line():
        ids = []
        for line in lines:
            ids.extend(enc(line, add_special_tokens=False).ids)
        return ids

    def per_line_timed():
        for line in lines:
            enc(line, add_special_tokens=False)

    def batch():
        return encb(lines, add_special_tokens=False)

    def whole():
        return enc(text, add_special_tokens=False).ids

    line_ids = per_line()  # warm-up pass with the ids kept
    _, st = timed_passes(per_line_timed, reps)
    st["tokens"] = len(line_ids)
    res["lines"] = st
    log(f"  HF line by line: best {nbytes / 1e6 / st['best_s']:.2f} MB/s, "
        f"CPU/wall {st['cpu_per_wall']:.2f}")

    if with_batch:
        _, st = timed_passes(batch, reps)
        st["tokens"] = len(line_ids)
        res["batch"] = st
        log(f"  HF encode_batch: best {nbytes / 1e6 / st['best_s']:.2f} MB/s, "
            f"CPU/wall {st['cpu_per_wall']:.2f}")

    whole_ids, st = timed_passes(whole, reps)
    st["tokens"] = len(whole_ids)
    res["whole"] = st
    log(f"  HF whole text: best {nbytes / 1e6 / st['best_s']:.2f} MB/s, "
        f"CPU/wall {st['cpu_per_wall']:.2f}")
    return res, line_ids, whole_ids, tok


def read_ids(path):
    a = array.array("i")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


def compare(name, hf, kv, tok):
    if hf == kv:
        return f"identical ({len(hf)} ids)"
    n = min(len(hf), len(kv))
    i = next((k for k in range(n) if hf[k] != kv[k]), n)
    ctx_hf = hf[max(0, i - 3):i + 4]
    ctx_kv = kv[max(0, i - 3):i + 4]

    def text(ids):
        try:
            return repr(tok.decode(ids))
        except Exception as e:  # e.g. an id outside HF's vocabulary
            return f"(not decodable: {e})"

    n_diff = sum(a != b for a, b in zip(hf, kv))
    msg = (f"DIFFER: {len(hf)} HF vs {len(kv)} kvlab ids, {n_diff} of the first {n} "
           f"differ, the first at id {i}: "
           f"HF {ctx_hf} {text(ctx_hf)} vs kvlab {ctx_kv} {text(ctx_kv)}")
    log(f"  {name}: {msg}")
    return msg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True,
                    help="tokenizer.json (may be .xz or .gz compressed)")
    ap.add_argument("--text", required=True, help="UTF-8 text, plain or .zst")
    ap.add_argument("--bundle", default=".device-bundle",
                    help="folder made by scripts/device-bundle.sh")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load-reps", type=int, default=3)
    ap.add_argument("--max-mb", type=float, default=0)
    ap.add_argument("--no-batch", action="store_true",
                    help="skip HF's encode_batch measurement")
    ap.add_argument("--out", default=None, help="folder for results.json")
    args = ap.parse_args()

    bench = os.path.join(args.bundle, "bench_tokenizer")
    work = tempfile.mkdtemp(prefix="tokbench-")
    try:
        tok_path = unpack_tokenizer(args.tokenizer, work)
        text_path = os.path.join(work, "text.txt")
        cmd = [bench, "--text", args.text, "--save-text", text_path]
        if args.max_mb:
            cmd += ["--max-mb", str(args.max_mb)]
        subprocess.run(cmd, check=True)
        with open(text_path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
        nbytes = len(raw)
        n_lines = len(split_lines(text))

        manifest = ""
        mpath = os.path.join(args.bundle, "MANIFEST")
        if os.path.exists(mpath):
            with open(mpath) as f:
                manifest = f.read()
        commit = next((l.split(":", 1)[1].strip() for l in manifest.splitlines()
                       if l.startswith("commit:")), "?")
        info = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "kvlab_commit": commit,
            "text": args.text, "bytes": nbytes, "lines": n_lines,
            "tokenizer": args.tokenizer, "reps": args.reps,
        }
        log(f"date {info['date']}; CPU {info['cpu']}")
        log(f"text {args.text}: {nbytes} bytes, {n_lines} lines; kvlab commit {commit}")

        hf, hf_line_ids, hf_whole_ids, tok = bench_hf(tok_path, text, nbytes,
                                                      args.reps, args.load_reps,
                                                      not args.no_batch)
        del text

        kv_json = os.path.join(work, "kvlab.json")
        kv_ids = os.path.join(work, "ids.bin")
        kv_line_ids = os.path.join(work, "line_ids.bin")
        cmd = [bench, "--tokenizer", tok_path, "--text", text_path,
               "--reps", str(args.reps), "--load-reps", str(args.load_reps),
               "--json", kv_json, "--ids-out", kv_ids, "--line-ids-out", kv_line_ids]
        log("$ " + " ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        log(p.stdout.rstrip())
        kv, kv_error = None, None
        if p.returncode != 0:
            kv_error = (p.stderr.strip() or f"exit {p.returncode}").splitlines()[-1]
            log(f"kvlab failed: {kv_error}")
        else:
            with open(kv_json) as f:
                kv = json.load(f)
            kv["ids_whole"] = compare("whole text", hf_whole_ids, read_ids(kv_ids), tok)
            kv["ids_lines"] = compare("line by line", hf_line_ids, read_ids(kv_line_ids), tok)

        def mbs(d, key, which="best_s"):
            return nbytes / 1e6 / d[key][which]

        rows = []
        hfv = hf["version"]
        rows.append(("load (ms), first / best of %d" % args.load_reps,
                     f"{1e3 * hf['load_first_s']:.1f} / {1e3 * hf['load_best_s']:.1f}",
                     f"{1e3 * kv['load_first_s']:.1f} / {1e3 * kv['load_best_s']:.1f}" if kv else "-",
                     f"{hf['load_best_s'] / kv['load_best_s']:.2f}" if kv else "-"))
        for label, key in (("encode line by line", "lines"), ("encode whole text", "whole")):
            rows.append((f"{label} (MB/s), best / median of {args.reps}",
                         f"{mbs(hf, key):.2f} / {mbs(hf, key, 'median_s'):.2f}",
                         f"{mbs(kv, key):.2f} / {mbs(kv, key, 'median_s'):.2f}" if kv else "-",
                         f"{mbs(kv, key) / mbs(hf, key):.2f}" if kv else "-"))
            rows.append((f"{label}: ids, CPU/wall",
                         f"{hf[key]['tokens']}, {hf[key]['cpu_per_wall']:.2f}",
                         f"{kv[key]['tokens']}, {kv[key]['cpu_per_wall']:.2f}" if kv else "-",
                         ""))
        if "batch" in hf:
            rows.append((f"HF encode_batch of the lines, 1 thread (MB/s), best / median of {args.reps}",
                         f"{mbs(hf, 'batch'):.2f} / {mbs(hf, 'batch', 'median_s'):.2f}",
                         "-",
                         f"{mbs(kv, 'lines') / mbs(hf, 'batch'):.2f} (kvlab lines)" if kv else "-"))
        rows.append(("ids of the whole text", "reference", kv["ids_whole"] if kv else "-", ""))
        rows.append(("ids line by line", "reference", kv["ids_lines"] if kv else "-", ""))

        log("")
        log(f"Date {info['date']}; CPU: {info['cpu']}; kvlab commit {commit}; "
            f"text {os.path.basename(args.text)} ({nbytes} bytes, {n_lines} lines); "
            f"Python {info['python']}")
        if kv_error:
            log(f"kvlab failed: {kv_error}")
        log("")
        log(f"| 1 thread | HF tokenizers {hfv} | kvlab | kvlab / HF (speed, best) |")
        log("| --- | ---: | ---: | ---: |")
        for r in rows:
            log("| " + " | ".join(r) + " |")

        if args.out:
            os.makedirs(args.out, exist_ok=True)
            for k in ("lines", "batch", "whole"):
                if k in hf:
                    hf[k]["best_mb_s"] = mbs(hf, k)
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump({"info": info, "hf": hf, "kvlab": kv, "kvlab_error": kv_error,
                           "bundle_manifest": manifest}, f, indent=1)
        return 0 if kv and "DIFFER" not in kv["ids_whole"] + kv["ids_lines"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
