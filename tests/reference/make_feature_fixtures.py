#!/usr/bin/env python3
"""Reference values for src/experiments/features.c (the features of a KV cache
and of a generation), computed with NumPy alone.

For two of the committed transformers fixtures (tests/fixtures/<model>/:
config.json, model.safetensors or shards, reference.safetensors written by
make_fixtures.py with transformers) this script

  1. reads the checkpoint with NumPy (8-byte header length, JSON header, raw
     little-endian data; shards through model.safetensors.index.json);
  2. runs its own float64 forward pass (RMSNorm, rotate-half RoPE with the
     default inverse frequencies, Qwen3 per-head q/k RMSNorm, grouped-query
     causal attention, SwiGLU MLP, final norm, lm_head) over the fixture's
     11-token prompt followed by its first greedy token (12 tokens);
  3. CHECKS that forward against transformers: the prompt logits, the K/V of
     every layer after the prompt, the RoPE inverse frequencies and the logits
     after the first greedy token (greedy_logits[1]) stored in
     reference.safetensors must agree (transformers ran in fp32, so 1e-4);
  4. computes the features the spec in src/experiments/features.h defines:
       - cache features over token ranges [0, 12), [3, 9) and [4, 5): mean and
         population variance of the L2 norms of the K rows (after RoPE) and V
         rows (one row = one token x kv head), effective rank (exp of the
         entropy of s / sum s) and spectral entropy (entropy of s^2 / sum s^2
         divided by log(min(rows, cols))) of the [tokens][n_kv * head_dim]
         matrices, singular values from numpy.linalg.svd;
       - attention entropies (nats) per layer and query head of the softmax of
         q . k / sqrt(head_dim) over the keys each row attends to (every
         earlier token and itself), for the 12 tokens processed in three
         forward calls of 5, 6 and 1 tokens (the causal n_past logic): the
         mean over each call's rows, and over all 12 rows;
       - generation features for 12 steps: row r's logits with chosen token
         tokens[r + 1] (r < 11) and, for the last row, greedy_ids[1]: the mean
         entropy of softmax(logits) and exp(mean -log p(chosen));
  5. writes tests/fixtures/experiments/features_reference.json.

Needs only NumPy (Debian's python3-numpy 1.24 here: run it with
/usr/bin/python3 when another python3 comes first on PATH):

    /usr/bin/python3 tests/reference/make_feature_fixtures.py [--out FILE]
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = ["llama_gqa_f32", "qwen3_qknorm_f32_sharded"]
CALLS = [5, 6, 1]
RANGES = [(0, 12), (3, 9), (4, 5)]
TF_TOL = 1e-4   # our float64 forward vs transformers' fp32 reference

ST_DTYPES = {"F32": np.float32, "I32": np.int32, "F16": np.float16}


# --------------------------------------------------------------------------
# safetensors, read by hand
# --------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, ent in header.items():
        if name == "__metadata__":
            continue
        dt = ST_DTYPES.get(ent["dtype"])
        assert dt is not None, f"{path}: {name} has dtype {ent['dtype']}"
        b, e = ent["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=np.dtype(dt).newbyteorder("<"))
        out[name] = arr.reshape(ent["shape"]).copy()
    return out, header.get("__metadata__", {})


def read_checkpoint(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        tensors, _ = read_safetensors(os.path.join(folder, name))
        weights.update(tensors)
    return {k: v.astype(np.float64) for k, v in weights.items()}


# --------------------------------------------------------------------------
# The forward pass, float64
# --------------------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope(x, pos, inv_freq):
    """x [..., T, hd] at positions pos [T], transformers' rotate-half form."""
    ang = np.outer(pos, inv_freq)
    emb = np.concatenate([ang, ang], axis=-1)
    return x * np.cos(emb) + rotate_half(x) * np.sin(emb)


class Model:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json")) as f:
            c = json.load(f)
        self.cfg = c
        self.L = c["num_hidden_layers"]
        self.nh = c["num_attention_heads"]
        self.nkv = c["num_key_value_heads"]
        self.hd = c.get("head_dim") or c["hidden_size"] // self.nh
        self.eps = c["rms_norm_eps"]
        rp = c.get("rope_parameters") or {}
        assert rp.get("rope_type", "default") == "default", "default RoPE only"
        theta = rp.get("rope_theta", c.get("rope_theta"))
        self.inv_freq = 1.0 / theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd)
        self.qk_norm = c["model_type"] == "qwen3"
        self.w = read_checkpoint(folder)
        assert not any(k.endswith(".bias") for k in self.w), "no biases expected"
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def layer(self, i, name):
        return self.w[f"model.layers.{i}.{name}.weight"]

    def forward(self, tokens):
        """All rows of one uncached forward: logits [T][V], and per layer
        q [nh][T][hd], k and v [nkv][T][hd] (q, k after q/k-norm and RoPE)."""
        T = len(tokens)
        pos = np.arange(T)
        x = self.w["model.embed_tokens.weight"][tokens]
        qs, ks, vs = [], [], []
        mask = np.triu(np.full((T, T), -np.inf), 1)
        group = self.nh // self.nkv
        for i in range(self.L):
            xn = rmsnorm(x, self.layer(i, "input_layernorm"), self.eps)
            q = (xn @ self.layer(i, "self_attn.q_proj").T).reshape(T, self.nh, self.hd)
            k = (xn @ self.layer(i, "self_attn.k_proj").T).reshape(T, self.nkv, self.hd)
            v = (xn @ self.layer(i, "self_attn.v_proj").T).reshape(T, self.nkv, self.hd)
            q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))
            if self.qk_norm:
                q = rmsnorm(q, self.layer(i, "self_attn.q_norm"), self.eps)
                k = rmsnorm(k, self.layer(i, "self_attn.k_norm"), self.eps)
            q = rope(q, pos, self.inv_freq)
            k = rope(k, pos, self.inv_freq)
            qs.append(q)
            ks.append(k)
            vs.append(v)
            heads = []
            for h in range(self.nh):
                s = q[h] @ k[h // group].T / np.sqrt(self.hd) + mask
                p = np.exp(s - s.max(axis=-1, keepdims=True))
                p /= p.sum(axis=-1, keepdims=True)
                heads.append(p @ v[h // group])
            ao = np.stack(heads, axis=1).reshape(T, self.nh * self.hd)
            x = x + ao @ self.layer(i, "self_attn.o_proj").T
            xn = rmsnorm(x, self.layer(i, "post_attention_layernorm"), self.eps)
            g = xn @ self.layer(i, "mlp.gate_proj").T
            u = xn @ self.layer(i, "mlp.up_proj").T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ self.layer(i, "mlp.down_proj").T
        x = rmsnorm(x, self.w["model.norm.weight"], self.eps)
        return x @ self.lm_head.T, qs, ks, vs


# --------------------------------------------------------------------------
# Checks against transformers
# --------------------------------------------------------------------------

def rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_against_transformers(name, model, ref):
    prompt = ref["input_ids"].astype(np.int64)
    P = len(prompt)
    tokens = np.concatenate([prompt, ref["greedy_ids"][:1].astype(np.int64)])
    logits, _, ks, vs = model.forward(tokens)
    checks = {
        "inv_freq": rel_err(model.inv_freq, ref["rope.inv_freq"].astype(np.float64)),
        "prompt logits": rel_err(logits[:P], ref["logits"]),
        "logits after greedy[0]": rel_err(logits[P], ref["greedy_logits"][1]),
    }
    for i in range(model.L):
        checks[f"layers.{i}.k"] = rel_err(ks[i][:, :P], ref[f"layers.{i}.k"])
        checks[f"layers.{i}.v"] = rel_err(vs[i][:, :P], ref[f"layers.{i}.v"])
    for what, err in checks.items():
        print(f"  {name}: {what}: relative error {err:.2e} vs transformers")
        if not err < TF_TOL:
            sys.exit(f"{name}: NumPy forward disagrees with transformers on {what}")
    # The greedy token really is the argmax of the prompt's last row.
    assert int(np.argmax(logits[P - 1])) == int(ref["greedy_ids"][0])
    return tokens, logits


# --------------------------------------------------------------------------
# Features (the spec of src/experiments/features.h)
# --------------------------------------------------------------------------

def entropy(p):
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def spectrum_features(m):
    s = np.linalg.svd(m, compute_uv=False)
    k = len(s)
    eff_rank = float(np.exp(entropy(s / s.sum()))) if s.sum() > 0 else 0.0
    e = s * s
    spec = entropy(e / e.sum()) / np.log(k) if k >= 2 and e.sum() > 0 else 0.0
    return eff_rank, float(spec)


def cache_features(model, ks, vs, t0, t1):
    out = {"t0": t0, "t1": t1}
    for kind, planes in (("k", ks), ("v", vs)):
        means, variances, ranks, specs = [], [], [], []
        for l in range(model.L):
            rows = planes[l][:, t0:t1]               # [nkv][n][hd]
            norms = np.linalg.norm(rows, axis=-1).ravel()
            means.append(float(norms.mean()))
            variances.append(float(norms.var()))   # population (ddof 0)
            mat = rows.transpose(1, 0, 2).reshape(t1 - t0, model.nkv * model.hd)
            r, s = spectrum_features(mat)
            ranks.append(r)
            specs.append(s)
        out[f"{kind}_norm_mean"] = means
        out[f"{kind}_norm_var"] = variances
        out[f"{kind}_eff_rank"] = ranks
        out[f"{kind}_spec_entropy"] = specs
    return out


def attention_entropy_rows(model, qs, ks, r0, r1):
    """[L][nh] sums over query rows r0..r1-1 of the attention entropy, every
    row attending to keys 0..r (independent of how calls were split)."""
    group = model.nh // model.nkv
    sums = np.zeros((model.L, model.nh))
    for l in range(model.L):
        for h in range(model.nh):
            for r in range(r0, r1):
                s = ks[l][h // group][: r + 1] @ qs[l][h][r] / np.sqrt(model.hd)
                p = np.exp(s - s.max())
                p /= p.sum()
                sums[l, h] += entropy(p)
    return sums


def generation_features(logits, chosen):
    ents, nlls = [], []
    for row, c in zip(logits, chosen):
        z = row - row.max()
        logp = z - np.log(np.exp(z).sum())
        ents.append(entropy(np.exp(logp)))
        nlls.append(-logp[c])
    nll = float(np.mean(nlls))
    return {"chosen": [int(c) for c in chosen],
            "next_token_entropy": float(np.mean(ents)),
            "self_nll": nll, "self_perplexity": float(np.exp(nll))}


def model_entry(name):
    folder = os.path.join(ROOT, "tests", "fixtures", name)
    ref, _ = read_safetensors(os.path.join(folder, "reference.safetensors"))
    model = Model(folder)
    tokens, logits = check_against_transformers(name, model, ref)
    _, qs, ks, vs = model.forward(tokens)
    T = len(tokens)
    assert sum(CALLS) == T
    calls, start = [], 0
    for n in CALLS:
        calls.append((attention_entropy_rows(model, qs, ks, start, start + n) / n).tolist())
        start += n
    total = attention_entropy_rows(model, qs, ks, 0, T) / T
    chosen = np.concatenate([tokens[1:], ref["greedy_ids"][1:2].astype(np.int64)])
    return {
        "name": name,
        "folder": f"tests/fixtures/{name}",
        "n_layers": model.L, "n_heads": model.nh, "n_kv_heads": model.nkv,
        "head_dim": model.hd,
        "tokens": [int(t) for t in tokens],
        "calls": CALLS,
        "cache": [cache_features(model, ks, vs, t0, t1) for t0, t1 in RANGES],
        "attn_entropy_calls": calls,
        "attn_entropy": total.tolist(),
        "generation": generation_features(logits, chosen),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(
        ROOT, "tests", "fixtures", "experiments", "features_reference.json"))
    args = ap.parse_args()
    doc = {
        "generator": "tests/reference/make_feature_fixtures.py",
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "models": [model_entry(name) for name in MODELS],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
