#!/usr/bin/env bash
# Writes the kvlab program's outputs for every fixture model into DIR, for
# tests/reference/check_cli_outputs.py to check against transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: make-cli-samples.sh DIR}
mkdir -p "$out"
tokens=5,17,3,99,42,8,1,64,23
echo "$tokens" > "$out/tokens.txt"
for d in tests/fixtures/*/; do
  name=$(basename "$d")
  ./build/kvlab forward --model "$d" --tokens "$tokens" --dump "$out/$name.dump.safetensors"
  ./build/kvlab cache save --model "$d" --tokens "$tokens" --dtype F32 -o "$out/$name.f32.kvc"
  ./build/kvlab cache save --model "$d" --tokens "$tokens" --dtype BF16 -o "$out/$name.bf16.kvc"
done
mkdir -p "$out/samples"
KVT_CACHE_SAMPLES="$out/samples" ./build/tests/cache_test_cache_file >/dev/null
echo "samples written to $out"
