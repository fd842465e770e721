#!/usr/bin/env python3
"""kvlab's CUDA engine beside HF transformers on the same GPU, in one command.

    python3 bench/cuda_compare.py --bench PATH/TO/bench_cuda [--out DIR]

Runs bench/cuda_reference.py (transformers, bf16, sdpa) and then kvlab's
bench_cuda on the same machine, one after the other, with the same four
random-weight shapes, and prints a comparison table last: prefill 512 and
4096 tokens/s (kvlab, transformers, ratio), decode at batch 1 (kvlab and
its fraction of the bandwidth bound measured by bench_cuda, transformers),
decode at batch 32, and kvlab's KV export / import GB/s.  bench_cuda's and
the reference's own outputs are kept in --out (default: a temporary folder)
as bench_cuda.txt and reference.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_reference(out_dir):
    path = os.path.join(out_dir, "reference.json")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "cuda_reference.py"), "--out", path],
                   check=True)
    with open(path) as f:
        return json.load(f)


def run_kvlab(bench, out_dir):
    p = subprocess.run([bench], check=True, capture_output=True, text=True)
    with open(os.path.join(out_dir, "bench_cuda.txt"), "w") as f:
        f.write(p.stdout)
    print(p.stdout, end="")
    rows, head = {}, None
    for line in p.stdout.splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if head is None:
            head = cells
            continue
        rows[cells[0]] = dict(zip(head, cells))
    return p.stdout.splitlines()[0], rows


def num(s):
    return float(s.rstrip("%"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="the bench_cuda program (or its wrapper)")
    ap.add_argument("--out", default=None, help="folder for the raw outputs")
    args = ap.parse_args()
    out_dir = args.out or tempfile.mkdtemp(prefix="kvlab-cuda-compare-")
    os.makedirs(out_dir, exist_ok=True)
    ref = run_reference(out_dir)
    kv_head, kv = run_kvlab(args.bench, out_dir)
    print()
    print(f"transformers {ref['transformers']}, torch {ref['torch']} on {ref['device']}; "
          f"kvlab: {kv_head}")
    print("| shape | prefill 512: kvlab / transformers (x) | prefill 4096: kvlab / "
          "transformers (x) | decode b1: kvlab (of bound) / transformers | decode b32: "
          "kvlab / transformers | KV export / import GB/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in ref["rows"]:
        k = kv.get(r["shape"])
        if not k:
            print(f"| {r['shape']} | kvlab row missing | | | | |")
            continue
        p512, p4k = num(k["prefill 512 tok/s"]), num(k["prefill 4096 tok/s"])
        d1, d32 = num(k["decode b1 tok/s"]), num(k["decode b32 tok/s"])
        print(f"| {r['shape']} | {p512:,.0f} / {r['prefill_512']:,.0f} "
              f"({p512 / r['prefill_512']:.1f}x) | {p4k:,.0f} / {r['prefill_4096']:,.0f} "
              f"({p4k / r['prefill_4096']:.2f}x) | {d1:,.0f} ({k['of bound']}) / "
              f"{r['decode_b1']:,.1f} | {d32:,.0f} / {r['decode_b32']:,.0f} | "
              f"{k['KV export GB/s']} / {k['KV import GB/s']} |")


if __name__ == "__main__":
    main()
