#!/usr/bin/env bash
# The whole test suite: a gcc release build and a clang ASan+UBSan build,
# both with -Werror, each running every ctest program; an install check
# (pkg-config and find_package consumers); a short libFuzzer run per parser.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== gcc release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
./scripts/check-install.sh

echo "== the README's first command's demo: both bundled models answer from their context"
demo=$(./scripts/demo-pair.sh build)
echo "$demo"
for want in Lyra Seattle beekeeper; do
  n=$(grep -c "assistant: .*\b$want\b" <<<"$demo" || true)
  [ "$n" -eq 2 ] || { echo "demo-pair.sh: '$want' answered by $n of 2 models" >&2; exit 1; }
done

echo "== the main job: kvlab run (whole experiment program on the demo pair)"
rm -rf build/results-default
./build/kvlab run --quiet -o build/results-default
for f in report.md summary.json runs.jsonl plots/transfer-accuracy.png; do
  [ -s "build/results-default/$f" ] || { echo "kvlab run: $f missing" >&2; exit 1; }
done

echo "== libFuzzer smoke run of every parser"
./scripts/fuzz.sh 10

echo "== clang ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
  -DKVL_SANITIZE=ON -DKVL_NATIVE=OFF -DKVL_BUILD_BENCH=OFF -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$PWD/../scripts/lsan.supp" ctest --output-on-failure -j"$jobs")
