#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for
# SECONDS seconds (default 15) from seeds taken from the repository's own
# files.  Any crash, leak or sanitizer report fails the script and leaves the
# crashing input in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
  -DKVL_FUZZ=ON -DKVL_NATIVE=OFF -DKVL_BUILD_TESTS=OFF -DKVL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null

seeds=build-fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{safetensors,hf_config,cache_file,llama2c,sp_model,hf_tokenizer,experiment}
fx=tests/fixtures
cp "$fx"/llama_gqa_f32/model.safetensors "$seeds"/safetensors/ 2>/dev/null || true
cp "$fx"/qwen3_qknorm_f32_sharded/model-00001-of-*.safetensors "$seeds"/safetensors/ 2>/dev/null || true
for d in "$fx"/*/; do
  if [ -f "$d"config.json ]; then cp "$d"config.json "$seeds/hf_config/$(basename "$d").json"; fi
done
cp models/stories260K/tok512.bin "$seeds"/llama2c/
head -c 4096 models/stories260K/stories260K.bin > "$seeds"/llama2c/stories-head.bin
# SentencePiece: a hand-written 2-piece BPE model (<unk>, "a" score -1;
# model_type BPE; add_dummy_prefix, no whitespace removal) and, when the
# shared folder is there, stories260K's 512-piece tok512.model.
printf '\x0a\x09\x0a\x05<unk>\x18\x02\x0a\x08\x0a\x01a\x15\x00\x00\x80\xbf\x12\x02\x18\x02\x1a\x04\x18\x01\x20\x00' \
  > "$seeds"/sp_model/tiny.model
cp ../shared/models/stories260K/tok512.model "$seeds"/sp_model/ 2>/dev/null || true
# tokenizer.json: the trained byte-level BPE fixture (54 kB).
cp tests/fixtures/tokenizers/trained/tokenizer.json "$seeds"/hf_tokenizer/trained.json
./build/kvlab cache save --model tests/fixtures/llama_gqa_f32 --tokens 1,2,3 \
  -o "$seeds"/cache_file/tiny.kvc >/dev/null 2>&1 || true

# experiment files: the shipped config, battery, personas and prompt sets.
cp experiments/default.json "$seeds"/experiment/config.json
cp experiments/batteries/default.json "$seeds"/experiment/battery.json
cp experiments/personas/default.json "$seeds"/experiment/personas.json
cp experiments/prompts/identity-a.json "$seeds"/experiment/prompts.json

for t in safetensors hf_config cache_file llama2c sp_model hf_tokenizer experiment; do
  echo "== fuzz_$t for ${secs}s"
  (cd build-fuzz && ./fuzz/fuzz_$t "../$seeds/$t" -max_total_time="$secs" \
     -max_len=65536 -print_final_stats=0 2>&1 | tail -n 3)
done
echo "fuzzing: no crash"
