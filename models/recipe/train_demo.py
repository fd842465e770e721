#!/usr/bin/env python3
"""Trains kvlab's demo model pair (issue 4; docs/demo-models.md).

    receiver  Qwen3ForCausalLM  (q/k norm, GQA)  tokenizer models/demo-receiver
    sharer    LlamaForCausalLM  (GQA)            tokenizer models/demo-sharer

Runs on the GPU machine (PyTorch 2.11, transformers 5.17, tokenizers 0.23,
numpy; no network).  The data folder comes from
models/recipe/prepare_data.sh (train.txt.zst, dialogues.txt.zst,
val.txt.zst, eval.jsonl).  For each model it

  1. tokenizes the prose corpus and the generated dialogues with the model's
     own tokenizer (`tokenizers`, all CPU cores), caching the ids as .npy;
  2. builds the model with AutoModelForCausalLM.from_config (fp32 master
     weights; fixed seed);
  3. trains with AdamW (betas 0.9/0.95, weight decay 0.1 on matrices),
     linear warm-up then cosine decay to 10% of the peak learning rate,
     gradient clipping 1.0, bf16 autocast, batches of BATCH rows of SEQ+1
     tokens: a fraction DIALOGUE_FRAC of the rows starts at the beginning of
     a random dialogue (whole dialogues packed back to back, so the facts a
     question asks about are in the row), the rest at random offsets of the
     prose stream;
  4. stops at --max-steps or at the time budget (--minutes): after 30 steps
     the measured speed fixes the number of steps that fit, and the cosine
     schedule is laid over that number (recorded in the log);
  5. casts to BF16 and evaluates what is shipped: validation loss,
     perplexity and bits per byte on the val slice, greedy in-context
     recall on the eval items (the answer must appear as a whole word,
     ignoring case, in the greedy reply before <|im_end|>), greedy samples;
  6. saves OUT/<model>/ with save_pretrained (BF16 safetensors, config,
     generation_config with eos [<|im_end|>, <|endoftext|>]) plus the
     tokenizer files, and OUT/<model>_log.json (config, parameter count,
     loss curve, metrics, samples, per-item recall outputs).

OUT/<model>_loss.png plots its curves (when matplotlib is there); at the
end OUT/results.json summarises the models of the run and
OUT/loss_curves.png plots them together.

Full training, one model per device call (a call may last 10 minutes;
7.5 minutes of training plus about a minute of tokenizing and evaluating):
    python3 models/recipe/train_demo.py --data .device-demo --out OUT \
        --models receiver --minutes 7.5
    python3 models/recipe/train_demo.py --data .device-demo --out OUT \
        --models sharer --minutes 7.5
Smoke test (both models, about 3.5 minutes in all):
    python3 models/recipe/train_demo.py --data .device-demo --out OUT --smoke
"""

import argparse
import ctypes
import ctypes.util
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Architectures.  Sizes (parameters, tied embeddings): receiver 8.39M
# (16.8 MB in BF16), sharer 5.85M (11.7 MB): 28.5 MB together (limit 32).
MODELS = {
    "receiver": {
        "arch": "qwen3",
        "tokenizer": os.path.join(ROOT, "models", "demo-receiver"),
        "config": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=8,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                       max_position_embeddings=2048, rms_norm_eps=1e-6,
                       tie_word_embeddings=True),
        "lr": 3e-3,
    },
    "sharer": {
        "arch": "llama",
        "tokenizer": os.path.join(ROOT, "models", "demo-sharer"),
        "config": dict(hidden_size=192, intermediate_size=640, num_hidden_layers=10,
                       num_attention_heads=6, num_key_value_heads=2, head_dim=32,
                       max_position_embeddings=2048, rms_norm_eps=1e-5,
                       tie_word_embeddings=True),
        "lr": 3e-3,
    },
}

STORY_PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The old house at the end of the lane had been empty for years.",
]
CHAT_SAMPLE = ("<|im_start|>system\nYou are Tamsor. You live in Brellick. You work as a "
               "cartographer. You have a cat named Pim.<|im_end|>\n<|im_start|>user\n"
               "Hello! What is your name, and where do you live?<|im_end|>\n"
               "<|im_start|>assistant\n")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------
# zstd: Python 3.14's compression.zstd, the zstandard package, libzstd via
# ctypes (the system's or DATA/lib/libzstd.so.1), pyarrow, the zstd program
# --------------------------------------------------------------------------

def _zstd_ctypes(data, libpaths):
    lib = None
    for p in libpaths:
        try:
            lib = ctypes.CDLL(p)
            break
        except OSError:
            continue
    if lib is None:
        raise OSError("no libzstd")

    class Buf(ctypes.Structure):
        _fields_ = [("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t),
                    ("pos", ctypes.c_size_t)]

    lib.ZSTD_createDStream.restype = ctypes.c_void_p
    lib.ZSTD_freeDStream.argtypes = [ctypes.c_void_p]
    lib.ZSTD_decompressStream.argtypes = [ctypes.c_void_p, ctypes.POINTER(Buf),
                                          ctypes.POINTER(Buf)]
    lib.ZSTD_decompressStream.restype = ctypes.c_size_t
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
    lib.ZSTD_getErrorName.restype = ctypes.c_char_p
    src = ctypes.create_string_buffer(data, len(data))
    inb = Buf(ctypes.cast(src, ctypes.c_void_p), len(data), 0)
    chunk = 1 << 24
    dst = ctypes.create_string_buffer(chunk)
    ds = lib.ZSTD_createDStream()
    parts = []
    try:
        while True:
            outb = Buf(ctypes.cast(dst, ctypes.c_void_p), chunk, 0)
            r = lib.ZSTD_decompressStream(ds, ctypes.byref(outb), ctypes.byref(inb))
            if lib.ZSTD_isError(r):
                raise ValueError("zstd: " + lib.ZSTD_getErrorName(r).decode())
            parts.append(ctypes.string_at(dst, outb.pos))
            if inb.pos == inb.size and outb.pos < chunk:
                if r != 0:
                    raise ValueError("zstd: truncated input")
                break
    finally:
        lib.ZSTD_freeDStream(ds)
    return b"".join(parts)


def read_zst(path, data_dir=None):
    """Whole decompressed contents of a (possibly multi-frame) zstd file.
    Where X.zst is absent but X exists (for example dialogues.txt generated
    on the GPU machine to keep the carried folder small), X is read as is."""
    if not os.path.exists(path) and path.endswith(".zst") and os.path.exists(path[:-4]):
        with open(path[:-4], "rb") as f:
            return f.read()
    try:
        from compression import zstd as czstd  # Python 3.14
        with open(path, "rb") as f:
            return czstd.decompress(f.read())
    except ImportError:
        pass
    try:
        import zstandard
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(
                f, read_across_frames=True).read()
    except ImportError:
        pass
    libs = [p for p in (ctypes.util.find_library("zstd"), "libzstd.so.1") if p]
    if data_dir:
        libs.append(os.path.join(data_dir, "lib", "libzstd.so.1"))
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _zstd_ctypes(data, libs)
    except OSError:
        pass
    try:
        import pyarrow as pa
        return pa.input_stream(path, compression="zstd").read()
    except ImportError:
        pass
    return subprocess.run(["zstd", "-dc", path], check=True, stdout=subprocess.PIPE).stdout


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def split_prose(text, chunk=1 << 16):
    """Pieces of about `chunk` characters cut after a blank line."""
    out, i, n = [], 0, len(text)
    while i < n:
        j = min(n, i + chunk)
        if j < n:
            k = text.find("\n\n", j)
            j = n if k < 0 else k + 2
        out.append(text[i:j])
        i = j
    return out


def read_text(path, data_dir, max_mb=0):
    raw = read_zst(path, data_dir)
    if max_mb:
        raw = raw[: int(max_mb * 1e6)]
        raw = raw[: raw.rfind(b"\n") + 1]
    return raw.decode("utf-8")


def read_dialogues(path, data_dir, max_docs=0):
    text = read_zst(path, data_dir).decode("utf-8")
    docs = text.split("<|endoftext|>\n")
    if docs and docs[-1] == "":
        docs.pop()
    if max_docs:
        docs = docs[:max_docs]
    return docs


def encode_all(tok, texts, np):
    enc = getattr(tok, "encode_batch_fast", tok.encode_batch)
    ids, lens = [], []
    step = 20000
    for i in range(0, len(texts), step):
        for e in enc(texts[i:i + step], add_special_tokens=False):
            ids.append(e.ids)
            lens.append(len(e.ids))
    total = sum(lens)
    flat = np.fromiter((t for seq in ids for t in seq), dtype=np.int32, count=total)
    return flat, np.asarray(lens, dtype=np.int64)


def tokenize_data(name, tok, args, np):
    """Token streams for one tokenizer, cached in OUT/cache_<name>.npz."""
    cache = os.path.join(args.out, f"cache_{name}.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        return z["prose"], z["dlg"], z["dlg_starts"], z["val"], float(z["val_bytes"])
    t0 = time.time()
    eot = tok.token_to_id("<|endoftext|>")
    prose_text = read_text(os.path.join(args.data, "train.txt.zst"), args.data, args.max_prose_mb)
    prose, _ = encode_all(tok, split_prose(prose_text), np)
    docs = read_dialogues(os.path.join(args.data, "dialogues.txt.zst"), args.data,
                          args.max_dialogues)
    flat, lens = encode_all(tok, docs, np)
    # each dialogue followed by <|endoftext|>
    n = len(lens)
    ends = np.cumsum(lens + 1)
    starts = ends - (lens + 1)
    dlg = np.empty(int(ends[-1]), dtype=np.int32)
    mask = np.ones(len(dlg), dtype=bool)
    mask[ends - 1] = False
    dlg[mask] = flat
    dlg[ends - 1] = eot
    val_text = read_text(os.path.join(args.data, "val.txt.zst"), args.data)
    val, _ = encode_all(tok, split_prose(val_text), np)
    val_bytes = len(val_text.encode("utf-8"))
    np.savez(cache, prose=prose, dlg=dlg, dlg_starts=starts, val=val, val_bytes=val_bytes)
    log(f"{name}: tokenized {len(prose_text)/1e6:.1f} MB prose -> {len(prose)/1e6:.2f} M "
        f"tokens, {n} dialogues -> {len(dlg)/1e6:.2f} M tokens, val {len(val)/1e6:.2f} M "
        f"tokens ({time.time()-t0:.1f} s)")
    return prose, dlg, starts, val, float(val_bytes)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def build_model(spec, tok, torch):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config
    eot = tok.token_to_id("<|endoftext|>")
    kw = dict(spec["config"], vocab_size=tok.get_vocab_size(), bos_token_id=eot,
              eos_token_id=eot, pad_token_id=eot)
    config = Qwen3Config(**kw) if spec["arch"] == "qwen3" else LlamaConfig(**kw)
    return AutoModelForCausalLM.from_config(config)


def write_generation_config(path, tok):
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    with open(os.path.join(path, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot,
                   "do_sample": False}, f, indent=2)
        f.write("\n")


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------

def val_loss(model, val, args, torch, max_windows=0):
    """Mean next-token loss over non-overlapping windows of SEQ+1 tokens."""
    import torch.nn.functional as F
    T = args.seq
    nwin = (len(val) - 1) // T
    if max_windows:
        nwin = min(nwin, max_windows)
    v = torch.from_numpy(val[: nwin * T + 1].astype("int64")).to(args.device)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, nwin, args.batch):
            rows = range(i, min(nwin, i + args.batch))
            x = torch.stack([v[r * T: r * T + T] for r in rows])
            y = torch.stack([v[r * T + 1: r * T + T + 1] for r in rows])
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(input_ids=x, use_cache=False).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                   y.reshape(-1), reduction="sum")
            total += loss.item()
            count += y.numel()
    model.train()
    return total / max(count, 1), count


def greedy(model, prompts, max_new, stop_ids, pad_id, args, torch):
    """Greedy continuations of token-id prompts, batched with right padding:
    with causal attention the padding after a row's last token never
    affects it, so no attention mask or position ids are needed."""
    outs = []
    model.eval()
    with torch.no_grad():
        for b0 in range(0, len(prompts), args.eval_batch):
            ps = prompts[b0:b0 + args.eval_batch]
            B = len(ps)
            L = max(len(p) for p in ps)
            buf = torch.full((B, L + max_new), pad_id, dtype=torch.long, device=args.device)
            for i, p in enumerate(ps):
                buf[i, :len(p)] = torch.tensor(p, dtype=torch.long, device=args.device)
            cur = torch.tensor([len(p) for p in ps], dtype=torch.long, device=args.device)
            done = torch.zeros(B, dtype=torch.bool, device=args.device)
            rows = torch.arange(B, device=args.device)
            stops = torch.tensor(stop_ids, dtype=torch.long, device=args.device)
            for _ in range(max_new):
                W = int(cur.max().item())
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    h = model.model(input_ids=buf[:, :W], use_cache=False).last_hidden_state
                    logits = model.lm_head(h[rows, cur - 1])
                nxt = logits.float().argmax(-1)
                live = ~done
                buf[rows[live], cur[live]] = nxt[live]
                cur = cur + live.long()
                done = done | (live & torch.isin(nxt, stops))
                if bool(done.all()):
                    break
            for i, p in enumerate(ps):
                gen = buf[i, len(p):int(cur[i].item())].tolist()
                if gen and gen[-1] in stop_ids:
                    gen = gen[:-1]
                outs.append(gen)
    model.train()
    return outs


def recall_eval(model, tok, items, args, torch):
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    prompts = [tok.encode(it["prefix"], add_special_tokens=False).ids for it in items]
    gens = greedy(model, prompts, args.eval_max_new, [im_end, eot], eot, args, torch)
    per = {}
    rows = []
    for it, g in zip(items, gens):
        reply = tok.decode(g, skip_special_tokens=False)
        ok = re.search(r"(?<![A-Za-z])" + re.escape(it["answer"]) + r"(?![A-Za-z])", reply,
                       re.IGNORECASE) is not None
        for key in (it["kind"], f'{it["kind"]}/{it["source"]}'):
            c = per.setdefault(key, [0, 0])
            c[0] += ok
            c[1] += 1
        rows.append({"id": it["id"], "kind": it["kind"], "source": it["source"],
                     "answer": it["answer"], "reply": reply, "ok": ok})
    acc = {k: round(v[0] / v[1], 4) for k, v in sorted(per.items())}
    return acc, {k: v[1] for k, v in sorted(per.items())}, rows


def samples(model, tok, args, torch):
    eot, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    out = {}
    for p in STORY_PROMPTS:
        g = greedy(model, [tok.encode(p, add_special_tokens=False).ids], 60, [eot], eot, args,
                   torch)[0]
        out[p] = tok.decode(g, skip_special_tokens=False)
    g = greedy(model, [tok.encode(CHAT_SAMPLE, add_special_tokens=False).ids], 40,
               [im_end, eot], eot, args, torch)[0]
    out[CHAT_SAMPLE] = tok.decode(g, skip_special_tokens=False)
    return out


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def train_one(name, args, items):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer

    spec = MODELS[name]
    tok = Tokenizer.from_file(os.path.join(spec["tokenizer"], "tokenizer.json"))
    prose_np, dlg_np, starts_np, val_np, val_bytes = tokenize_data(name, tok, args, np)

    torch.manual_seed(args.seed)
    model = build_model(spec, tok, torch).float().to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{name}: {type(model).__name__}, {n_params/1e6:.3f} M parameters")

    dev = args.device
    T, B = args.seq, args.batch
    prose = torch.from_numpy(prose_np).to(dev)
    dlg = torch.from_numpy(dlg_np).to(dev)
    starts = torch.from_numpy(starts_np[starts_np <= len(dlg_np) - T - 1]).to(dev)
    ar = torch.arange(T + 1, device=dev)
    n_dlg = int(round(B * args.dialogue_frac))
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)

    def batch():
        ps = torch.randint(0, len(prose) - T - 1, (B - n_dlg,), generator=gen).to(dev)
        ds = starts[torch.randint(0, len(starts), (n_dlg,), generator=gen).to(dev)]
        rows = torch.cat([prose[ps[:, None] + ar], dlg[ds[:, None] + ar]]).long()
        return rows[:, :-1], rows[:, 1:]

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=spec["lr"], betas=(0.9, 0.95), eps=1e-8, fused=True)
    sched = {"total": args.max_steps}

    def lr_at(step):
        if step < args.warmup:
            return (step + 1) / args.warmup
        p = min(1.0, (step - args.warmup) / max(1, sched["total"] - args.warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    fwd = torch.compile(model) if args.compile else model
    curve, val_curve = [], []
    budget = args.minutes * 60
    torch.cuda.synchronize()
    t0 = time.time()
    t10 = 0.0
    step = 0
    run_loss, run_n = 0.0, 0
    while step < sched["total"]:
        x, y = batch()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        step += 1
        if step % 10 == 0:  # sampled every 10 steps: .item() waits for the GPU
            run_loss += loss.item()
            run_n += 1
        if step == 10:
            torch.cuda.synchronize()
            t10 = time.time() - t0
        if step == 30 and budget > 0:
            # measured speed over steps 11..30 fixes the step count
            torch.cuda.synchronize()
            el = time.time() - t0
            per = (el - t10) / 20
            fit = 30 + int((budget - el) / per)
            sched["total"] = max(args.warmup + 10, min(args.max_steps, fit))
            log(f"{name}: {per*1000:.1f} ms/step -> {sched['total']} steps in "
                f"{args.minutes:.2f} min")
        if (step % args.log_every == 0 or step == sched["total"]) and run_n:
            el = time.time() - t0
            curve.append({"step": step, "time_s": round(el, 2),
                          "tokens": step * B * T,
                          "lr": lr_sched.get_last_lr()[0],
                          "loss": round(run_loss / max(run_n, 1), 4),
                          "grad_norm": round(float(gnorm), 3)})
            run_loss, run_n = 0.0, 0
        if step % args.val_every == 0 or step == sched["total"]:
            vl, _ = val_loss(model, val_np, args, torch, max_windows=32)
            val_curve.append({"step": step, "val_loss": round(vl, 4)})
            log(f"{name}: step {step}/{sched['total']} loss {curve[-1]['loss']:.3f} "
                f"val {vl:.3f} lr {lr_sched.get_last_lr()[0]:.2e} "
                f"{time.time()-t0:.0f} s")
    torch.cuda.synchronize()
    train_s = time.time() - t0

    # what is shipped: BF16 weights
    model = model.to(torch.bfloat16)
    t1 = time.time()
    vl, vcount = val_loss(model, val_np, args, torch)
    tokens_per_byte = len(val_np) / val_bytes
    acc, counts, rows = recall_eval(model, tok, items, args, torch)
    smp = samples(model, tok, args, torch)
    eval_s = time.time() - t1
    log(f"{name}: val loss {vl:.4f} (ppl {math.exp(vl):.2f}, "
        f"{vl * tokens_per_byte / math.log(2):.3f} bits/byte), recall {acc} "
        f"({eval_s:.0f} s)")

    mdir = os.path.join(args.out, name)
    model.save_pretrained(mdir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(spec["tokenizer"], f), mdir)
    write_generation_config(mdir, tok)
    result = {
        "model": name, "class": type(model).__name__, "parameters": n_params,
        "config": json.loads(model.config.to_json_string()),
        "recipe": {"batch": B, "seq": T, "dialogue_frac": args.dialogue_frac,
                   "lr": spec["lr"], "warmup": args.warmup, "min_lr_frac": 0.1,
                   "weight_decay": args.weight_decay, "betas": [0.9, 0.95], "clip": 1.0,
                   "steps": step, "tokens": step * B * T, "seed": args.seed,
                   "minutes_budget": args.minutes, "train_s": round(train_s, 1),
                   "compile": args.compile},
        "data": {"prose_tokens": int(len(prose_np)), "dialogue_tokens": int(len(dlg_np)),
                 "dialogues": int(len(starts_np)), "val_tokens": int(len(val_np)),
                 "val_bytes": int(val_bytes), "max_prose_mb": args.max_prose_mb,
                 "max_dialogues": args.max_dialogues},
        "val": {"loss": round(vl, 4), "ppl": round(math.exp(vl), 3),
                "bits_per_byte": round(vl * tokens_per_byte / math.log(2), 4),
                "tokens": vcount},
        "recall": acc, "recall_counts": counts, "samples": smp,
        "curve": curve, "val_curve": val_curve, "eval_s": round(eval_s, 1),
        "recall_items": rows,
    }
    with open(os.path.join(args.out, f"{name}_log.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot([result], os.path.join(args.out, f"{name}_loss.png"))
    del prose, dlg, starts, model, opt
    torch.cuda.empty_cache()
    return result


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot([c["tokens"] / 1e6 for c in r["curve"]], [c["loss"] for c in r["curve"]],
                label=f'{r["model"]} train')
        toks = r["recipe"]["batch"] * r["recipe"]["seq"] / 1e6
        ax.plot([c["step"] * toks for c in r["val_curve"]], [c["val_loss"] for c in r["val_curve"]],
                "--", label=f'{r["model"]} val (prose)')
    ax.set_xlabel("training tokens (M)")
    ax.set_ylabel("loss (nats/token, own tokenizer)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, ".device-demo"))
    ap.add_argument("--out", default="demo_out")
    ap.add_argument("--models", default="receiver,sharer")
    ap.add_argument("--minutes", type=float, default=8.0,
                    help="training time budget per model (0: --max-steps only)")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dialogue-frac", type=float, default=0.4)
    ap.add_argument("--max-prose-mb", type=float, default=0, help="0: all")
    ap.add_argument("--max-dialogues", type=int, default=0, help="0: all")
    ap.add_argument("--eval-max-new", type=int, default=24)
    ap.add_argument("--eval-batch", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="1.2 min per model on 25 MB of prose and 60k dialogues")
    args = ap.parse_args()
    if args.smoke:
        args.minutes, args.max_prose_mb, args.max_dialogues = 1.2, 25, 60000
        args.val_every = 250
    args.device = "cuda"
    os.makedirs(args.out, exist_ok=True)

    import torch
    import transformers
    import tokenizers
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
           "python": sys.version.split()[0], "cpus": os.cpu_count(), "argv": sys.argv}
    log("environment", env)
    with open(os.path.join(args.data, "eval.jsonl")) as f:
        items = [json.loads(line) for line in f]
    results = []
    t0 = time.time()
    for name in args.models.split(","):
        results.append(train_one(name, args, items))
    summary = {"env": env, "wall_s": round(time.time() - t0, 1),
               "models": {r["model"]: {k: r[k] for k in ("class", "parameters", "val", "recall",
                                                         "recall_counts", "samples")}
                          | {"steps": r["recipe"]["steps"], "tokens": r["recipe"]["tokens"],
                             "train_s": r["recipe"]["train_s"]}
                          for r in results}}
    summary["plot"] = plot(results, os.path.join(args.out, "loss_curves.png"))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log("done", json.dumps({k: {"val": v["val"], "recall": v["recall"]}
                            for k, v in summary["models"].items()}))


if __name__ == "__main__":
    main()
