#!/usr/bin/env python3
"""The reference side of kvlab's CUDA benchmark (issue 6): HF transformers
(PyTorch, bf16, sdpa) on random-weight models with the exact shapes of
Qwen2.5-0.5B, Qwen3-0.6B, TinyLlama-1.1B and Llama-3.2-1B, built on the
GPU with from_config (nothing downloaded), and the device's copy bandwidth.

    python3 bench/cuda_reference.py [--out results.json] [--shapes a,b]

Measures, per shape, with CUDA events (median of repeats after warm-up):
  - prefill tokens/s of one 512- and one 4096-token prompt (model forward,
    no cache kept);
  - greedy decode tokens/s at batch 1 and batch 32 after a 512-token
    context: a hand-written loop (model(last ids, past_key_values) ->
    argmax), which is faster than generate();
  - the decode bound: weight bytes per token / measured copy bandwidth
    (bytes read + written of a 4 GiB device-to-device copy).
Prints a table last.
"""
import argparse
import json
import time

import torch
import transformers

SHAPES = {
    "qwen2.5-0.5b": ("Qwen2ForCausalLM", dict(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
        max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True)),
    "qwen3-0.6b": ("Qwen3ForCausalLM", dict(
        hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        vocab_size=151936, max_position_embeddings=40960, rope_theta=1000000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True)),
    "tinyllama-1.1b": ("LlamaForCausalLM", dict(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
        num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
        max_position_embeddings=2048, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False)),
    "llama-3.2-1b": ("LlamaForCausalLM", dict(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64,
        vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0,
                          original_max_position_embeddings=8192))),
}


def timed(fn, warmup=2, reps=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) / 1000.0)
    out.sort()
    return out[len(out) // 2]


def copy_bandwidth():
    n = 1 << 31  # 2 Gi bf16 values = 4 GiB
    a = torch.randn(n // 2, device="cuda", dtype=torch.float32).view(torch.bfloat16)
    b = torch.empty_like(a)
    t = timed(lambda: b.copy_(a), warmup=3, reps=10)
    return 2 * a.numel() * a.element_size() / t


def build(name):
    cls_name, kw = SHAPES[name]
    cfg_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = getattr(transformers, cls_name)._from_config(cfg, torch_dtype=torch.bfloat16)
    model.eval()
    return model


def weight_bytes(model):
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total


@torch.inference_mode()
def prefill_tps(model, n, vocab):
    ids = torch.randint(0, vocab, (1, n), device="cuda")
    t = timed(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1))
    return n / t


@torch.inference_mode()
def decode_tps(model, batch, ctx, steps, vocab):
    ids = torch.randint(0, vocab, (batch, ctx), device="cuda")

    def run():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    run()  # warm-up
    ts = sorted(run() for _ in range(3))
    return batch * steps / ts[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    rows = []
    for name in args.shapes.split(","):
        model = build(name)
        vocab = model.config.vocab_size
        wb = weight_bytes(model)
        r = dict(shape=name, weight_bytes=wb, bound_tps=bw / wb)
        r["prefill_512"] = prefill_tps(model, 512, vocab)
        r["prefill_4096"] = prefill_tps(model, 4096, vocab)
        r["decode_b1"] = decode_tps(model, 1, 512, args.steps, vocab)
        r["decode_b32"] = decode_tps(model, 32, 512, args.steps, vocab)
        rows.append(r)
        del model
        torch.cuda.empty_cache()
    res = dict(device=dev, torch=torch.__version__, transformers=transformers.__version__,
               copy_bandwidth=bw, rows=rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    print(f"{dev}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"copy bandwidth {bw / 1e12:.2f} TB/s (read + write)")
    print(f"{'shape':16} {'weights GB':>10} {'bound tok/s':>11} {'prefill512':>10} "
          f"{'prefill4096':>11} {'decode b1':>9} {'decode b32':>10}")
    for r in rows:
        print(f"{r['shape']:16} {r['weight_bytes'] / 1e9:10.2f} {r['bound_tps']:11.0f} "
              f"{r['prefill_512']:10.0f} {r['prefill_4096']:11.0f} {r['decode_b1']:9.1f} "
              f"{r['decode_b32']:10.1f}")


if __name__ == "__main__":
    main()
