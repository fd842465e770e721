#!/bin/sh
# Trains the demo models' tokenizers with `kvlab tokenizer train` (issue 4;
# docs/demo-models.md):
#   models/demo-receiver/  8192 ids, Qwen2/3 split regex (single digits)
#   models/demo-sharer/    6144 ids, GPT-2 split regex (digit runs)
# both byte-level BPE with NFC and the ChatML special tokens <|endoftext|>
# (id = vocab-3, EOS/PAD), <|im_start|>, <|im_end|>, on the prose corpus
# ../shared/corpus/train-00.txt.zst plus 40,000 generated training dialogues
# (tools/gen_dialogues, seed 2: training values only), so that the ChatML
# words and the syllables of the procedural names get tokens.
#
# usage: models/recipe/train_tokenizers.sh [BUILD_DIR]   (default: build)
# Needs the programs kvlab and gen_dialogues built in BUILD_DIR.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
shared=${KVL_SHARED_DIR:-$root/../shared}
corpus=$shared/corpus/train-00.txt.zst
for f in "$build/kvlab" "$build/tools/gen_dialogues" "$corpus"; do
  [ -e "$f" ] || { echo "train_tokenizers.sh: missing $f" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tools/gen_dialogues" train --n 40000 --seed 2 --out "$tmp/dialogues.txt"
"$build/kvlab" tokenizer train --vocab 8192 --pretokenizer qwen \
  --out "$root/models/demo-receiver" "$corpus" "$tmp/dialogues.txt"
"$build/kvlab" tokenizer train --vocab 6144 --pretokenizer gpt2 \
  --out "$root/models/demo-sharer" "$corpus" "$tmp/dialogues.txt"
