#!/usr/bin/env bash
# Quick start: install dependencies, build kvlab, and show the bundled demo
# pair (models/demo-receiver, models/demo-sharer) working.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./scripts/demo-pair.sh build
