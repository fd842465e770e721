#!/usr/bin/env bash
# Quick start: install dependencies, build kvlab, show the bundled demo pair
# (models/demo-receiver, models/demo-sharer) answering from its context, and
# run the main job on it: the whole experiment program (kvlab run), about
# 3 minutes on 2 cores, ending with the report's path.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./scripts/demo-pair.sh build
./build/kvlab run
