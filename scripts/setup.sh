#!/usr/bin/env bash
# Quick start: install dependencies, build kvlab, and run its main job on the
# bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/kvlab inspect --prompt "Once upon a time"
