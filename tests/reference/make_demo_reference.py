#!/usr/bin/env python3
"""Reference outputs of transformers (fp32, eager, CPU) for the shipped demo
models, checked by tests/engine/test_demo_models.c:

    python3 tests/reference/make_demo_reference.py --out tests/fixtures/demo \\
        models/demo-receiver [models/demo-sharer]

For each model folder it encodes a fixed ChatML prompt with the model's own
tokenizer.json (the `tokenizers` library), keeps its first PROMPT_LEN ids,
and writes <out>/<folder name>.reference.safetensors in the format of
make_fixtures.py: input_ids, logits [T, vocab], layers.{i}.k / .v
[n_kv_heads, T, head_dim], greedy_ids and greedy_logits (16 greedy steps),
with the reference's own self-checks (cached vs uncached decode, split
prompt) from make_fixtures.reference().
"""
import argparse
import json
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

PROMPT = ("<|im_start|>system\nYou are Lyra. You live in Seattle.<|im_end|>\n"
          "<|im_start|>user\nWhere do you live?<|im_end|>\n<|im_start|>assistant\n")
ARCH_KEYS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
             "Qwen3ForCausalLM": "qwen3"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for folder in args.models:
        name = os.path.basename(os.path.normpath(folder))
        cfg = json.load(open(os.path.join(folder, "config.json")))
        arch = ARCH_KEYS[cfg["architectures"][0]]
        tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        ids = tok.encode(PROMPT, add_special_tokens=False).ids
        assert len(ids) >= mf.PROMPT_LEN, len(ids)
        prompt = torch.tensor(ids[:mf.PROMPT_LEN], dtype=torch.long)
        m = mf.load_fp32(arch, folder)
        ref = mf.reference(m, prompt, cfg["num_hidden_layers"])
        md = {"transformers_version": transformers.__version__,
              "torch_version": torch.__version__, "model": name,
              "arch": cfg["architectures"][0],
              "greedy_min_margin": repr(min(ref["margins"]))}
        path = os.path.join(args.out, name + ".reference.safetensors")
        mf.write_reference(path, prompt, ref, mf.rope_inv_freq(m), md)
        print(f"{name}: prompt {prompt.tolist()}, greedy {ref['greedy']}, "
              f"min top-2 margin {min(ref['margins']):.4f} -> {path}")


if __name__ == "__main__":
    main()
