#!/usr/bin/env python3
"""Reads kvlab cache files (.kvc, format v1) with nothing of kvlab's.

Not run by ctest (it needs the `safetensors` Python package and numpy).
It prints the metadata and the tensors of each file and checks that the
file is what docs/cache-format.md says: the format name and version, every
tensor with the shape and dtype the metadata gives, positions >= 0.

When `safetensors` is installed, each file is read twice, once with
safetensors (safe_open(...).metadata(), safetensors.numpy.load_file) and
once with the few lines of json + numpy below (--raw forces only the latter),
and the two readings must agree.  numpy has no bfloat16, so BF16 tensors are
widened by hand: the 16 stored bits are the top half of a float32.

Sample files: run the C test with KVT_CACHE_SAMPLES=<dir> to get
sample-f32.kvc, sample-f16.kvc, sample-bf16.kvc and sample-empty.kvc (the
same cache in three dtypes, and one with 0 tokens); then

    python3 tests/cache/test_cache_python.py <dir>/sample-*.kvc

also compares the F16 and BF16 files with the F32 one (within rounding).
Exit status 0 when every file passes, 1 otherwise.
"""
import json
import struct
import sys

import numpy as np

try:
    import safetensors
    import safetensors.numpy
except ImportError:  # the raw reader still works
    safetensors = None

NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32}


def widen_bf16(raw):
    """BF16 bytes -> float32 array: the bits are the top half of a float32."""
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


def read_raw(path):
    """(metadata, {name: array}) from the bytes, per the safetensors spec."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    data = blob[8 + hlen :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        raw = data[begin:end]
        if e["dtype"] == "BF16":
            arr = widen_bf16(raw)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(NP_DTYPES[e["dtype"]]).newbyteorder("<"))
        tensors[name] = (e["dtype"], arr.reshape(e["shape"]))
    return meta, tensors


def read_safetensors(path):
    """The same through the safetensors package (BF16 is not a numpy type,
    so BF16 files only get their metadata and keys from it)."""
    with safetensors.safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
        keys = set(f.keys())
    if meta.get("dtype") == "BF16":
        return meta, keys, None
    return meta, keys, safetensors.numpy.load_file(path)


def check(path, problems):
    meta, tensors = read_raw(path)
    say = lambda msg: problems.append(f"{path}: {msg}")
    print(f"== {path}")
    for k in sorted(meta):
        print(f"   {k:28s} {meta[k]!r}")
    if meta.get("format") != "kvlab.kvcache":
        say(f"format is {meta.get('format')!r}")
        return None
    if meta.get("format_version") != "1":
        say(f"format_version is {meta.get('format_version')!r}")
        return None
    n_layers, n_kv, hd, n_tok = (int(meta[k]) for k in ("n_layers", "n_kv_heads", "head_dim", "n_tokens"))
    float(meta["rope_theta"])  # must parse
    want = {"token_ids": ("I32", (n_tok,)), "positions": ("I32", (n_tok,))}
    for i in range(n_layers):
        for kv in "kv":
            want[f"layers.{i}.{kv}"] = (meta["dtype"], (n_kv, n_tok, hd))
    if set(want) != set(tensors):
        say(f"tensors {sorted(tensors)} != expected {sorted(want)}")
        return None
    for name, (dtype, shape) in want.items():
        got_dtype, arr = tensors[name]
        print(f"   {name:12s} {got_dtype:5s} {list(arr.shape)}  first: {arr.reshape(-1)[:4].tolist()}")
        if got_dtype != dtype or tuple(arr.shape) != shape:
            say(f"{name} is {got_dtype} {list(arr.shape)}, expected {dtype} {list(shape)}")
    if (tensors["positions"][1] < 0).any() or (tensors["token_ids"][1] < 0).any():
        say("negative position or token id")

    if safetensors is not None and "--raw" not in sys.argv:
        n_before = len(problems)
        st_meta, st_keys, st_tensors = read_safetensors(path)
        if st_meta != meta or st_keys != set(tensors):
            say("safetensors sees different metadata or tensor names")
        for name, arr in (st_tensors or {}).items():
            if not np.array_equal(arr, tensors[name][1]):
                say(f"safetensors reads different values for {name}")
        if len(problems) == n_before:
            print("   (the safetensors package reads the same)")
    return {name: arr.astype(np.float32) for name, (_, arr) in tensors.items()}


def main():
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not paths:
        print(__doc__)
        return 2
    problems, loaded = [], {}
    for p in paths:
        loaded[p] = check(p, problems)
    # Same cache in several dtypes: 16-bit copies within their rounding.
    f32 = next((v for p, v in loaded.items() if p.endswith("sample-f32.kvc") and v), None)
    for p, v in loaded.items():
        tol = {"sample-f16.kvc": 2.0**-11, "sample-bf16.kvc": 2.0**-8}
        key = next((k for k in tol if p.endswith(k)), None)
        if f32 is None or v is None or key is None:
            continue
        for name, ref in f32.items():
            err = np.abs(v[name] - ref)
            # relative rounding bound, plus an absolute floor for F16 subnormals
            bound = tol[key] * np.abs(ref) + 2.0**-24
            if (err > bound).any():
                problems.append(f"{p}: {name} differs from sample-f32 beyond rounding")
        print(f"== {p} matches sample-f32.kvc within {key[7:-4].upper()} rounding")
    for msg in problems:
        print("FAIL", msg)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
