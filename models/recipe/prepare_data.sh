#!/bin/sh
# Builds the data folder that models/recipe/train_demo.py reads on the GPU
# machine (issue 4; docs/demo-models.md).  The folder is not committed: add
# it to .git/info/exclude and name it in the device call's `carry`.
#
# usage: models/recipe/prepare_data.sh [BUILD_DIR [OUT_DIR]]
#   BUILD_DIR  holds tools/gen_dialogues (default: build)
#   OUT_DIR    default: .device-demo (in the repository root)
# environment:
#   N_DIALOGUES  training dialogues to generate (default 300000, seed 1)
#   N_EVAL       evaluation items (default 300, seed 1)
#   CORPUS_MB    first MB (10^6 bytes, whole lines) of train-00 to keep;
#                0 = all of it, copied as is (default 0)
#   VAL_MB       first MB of val.txt for validation (default 4)
#
# writes OUT_DIR/
#   train.txt.zst      the prose corpus (../shared/corpus/train-00.txt.zst)
#   dialogues.txt.zst  gen_dialogues train: documents ending "<|endoftext|>\n"
#   eval.jsonl         gen_dialogues eval: held-out recall items
#   val.txt.zst        the start of ../shared/corpus/val.txt.zst
#   lib/libzstd.so.1   a zstd decompressor for Python's ctypes (fallback)
#   MANIFEST           what, from where, sizes and sha256
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
out=${2:-$root/.device-demo}
shared=${KVL_SHARED_DIR:-$root/../shared}
n_dialogues=${N_DIALOGUES:-300000}
n_eval=${N_EVAL:-300}
corpus_mb=${CORPUS_MB:-0}
val_mb=${VAL_MB:-4}
gen=$build/tools/gen_dialogues
for f in "$gen" "$shared/corpus/train-00.txt.zst" "$shared/corpus/val.txt.zst"; do
  [ -e "$f" ] || { echo "prepare_data.sh: missing $f" >&2; exit 1; }
done
command -v zstd >/dev/null || { echo "prepare_data.sh: needs the zstd program" >&2; exit 1; }
mkdir -p "$out/lib"

if [ "$corpus_mb" = 0 ]; then
  cp "$shared/corpus/train-00.txt.zst" "$out/train.txt.zst"
else
  # whole lines only (head -n -1 drops the last, possibly cut, line)
  zstd -dc "$shared/corpus/train-00.txt.zst" | head -c "$((corpus_mb * 1000000))" |
    head -n -1 | zstd -19 -T0 -q -f -o "$out/train.txt.zst"
fi
zstd -dc "$shared/corpus/val.txt.zst" | head -c "$((val_mb * 1000000))" | head -n -1 |
  zstd -19 -T0 -q -f -o "$out/val.txt.zst"
"$gen" train --n "$n_dialogues" --seed 1 | zstd -19 -T0 -q -f -o "$out/dialogues.txt.zst"
"$gen" eval --n "$n_eval" --seed 1 --out "$out/eval.jsonl"
lib=$(ldconfig -p | awk '/libzstd\.so\.1 .*x86-64/ {print $NF; exit}')
[ -n "$lib" ] && cp -L "$lib" "$out/lib/libzstd.so.1"

{
  echo "demo-model data, made by models/recipe/prepare_data.sh"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "train.txt.zst: train-00.txt.zst, CORPUS_MB=$corpus_mb (0 = all)"
  echo "val.txt.zst: first $val_mb MB of val.txt.zst (whole lines)"
  echo "dialogues.txt.zst: gen_dialogues train --n $n_dialogues --seed 1"
  echo "eval.jsonl: gen_dialogues eval --n $n_eval --seed 1"
  echo "lib/libzstd.so.1: $lib"
  (cd "$out" && for f in train.txt.zst val.txt.zst dialogues.txt.zst eval.jsonl; do
     printf '%s %s bytes\n' "$(sha256sum "$f")" "$(wc -c < "$f")"
   done)
} > "$out/MANIFEST"
cat "$out/MANIFEST"
du -sh "$out"
