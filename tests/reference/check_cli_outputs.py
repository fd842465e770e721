#!/usr/bin/env python3
"""Checks files written by the kvlab program against transformers, with
nothing of kvlab's on the Python side (run where torch + transformers +
safetensors are installed, e.g. the GPU machine):

    python3 tests/reference/check_cli_outputs.py DIR

DIR holds, for fixture models NAME (made here by scripts/make-cli-samples.sh):
    NAME.dump.safetensors  from `kvlab forward --model tests/fixtures/NAME --tokens ... --dump`
    NAME.f32.kvc / NAME.bf16.kvc  from `kvlab cache save ... --dtype F32|BF16`
    tokens.txt             the token ids used
For each, transformers (fp32, eager, CPU) recomputes the logits and
past_key_values from tests/fixtures/NAME and the files must agree within
1e-4 relative (F32) or BF16 rounding (2^-8 relative per element).
Exit status 0 when every check passes.
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")


def rel(a, b):
    return float((a - b).norm() / b.norm())


def reference(name, ids):
    model = AutoModelForCausalLM.from_pretrained(
        os.path.join(FIXTURES, name), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
    pkv = out.past_key_values
    if hasattr(pkv, "layers"):
        kv = [(l.keys[0], l.values[0]) for l in pkv.layers]
    else:
        kv = [(k[0], v[0]) for k, v in zip(pkv.key_cache, pkv.value_cache)]
    return out.logits[0], kv


def load(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata(), {k: f.get_tensor(k).float() for k in f.keys()}


def main(d):
    ids = [int(x) for x in open(os.path.join(d, "tokens.txt")).read().split(",")]
    failures = 0
    names = sorted({f.split(".")[0] for f in os.listdir(d) if f.endswith(".kvc")})
    for name in names:
        logits, kv = reference(name, ids)
        meta, dump = load(os.path.join(d, name + ".dump.safetensors"))
        checks = [("dump logits", rel(dump["logits"], logits), 1e-4)]
        for i, (k, v) in enumerate(kv):
            checks.append((f"dump layers.{i}.k", rel(dump[f"layers.{i}.k"], k), 1e-4))
            checks.append((f"dump layers.{i}.v", rel(dump[f"layers.{i}.v"], v), 1e-4))
        for dt, tol in (("f32", 1e-4), ("bf16", 2 ** -8)):
            meta, c = load(os.path.join(d, f"{name}.{dt}.kvc"))
            assert meta["format"] == "kvlab.kvcache", meta
            assert meta["format_version"] == "1", meta
            assert c["token_ids"].int().tolist() == ids
            assert c["positions"].int().tolist() == list(range(len(ids)))
            for i, (k, v) in enumerate(kv):
                checks.append((f"{dt}.kvc layers.{i}.k", rel(c[f"layers.{i}.k"], k), tol))
                checks.append((f"{dt}.kvc layers.{i}.v", rel(c[f"layers.{i}.v"], v), tol))
        for what, err, tol in checks:
            ok = err <= tol
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:28s} {what:22s} rel err {err:.2e} (tol {tol:.0e})")
    print(f"{sum(1 for _ in names)} models, {failures} failures")
    return 1 if failures or not names else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
