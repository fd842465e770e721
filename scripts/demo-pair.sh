#!/usr/bin/env bash
# Shows the bundled demo pair working: for the receiver (Qwen3 architecture)
# and the sharer (Llama architecture), the cache structure of a short
# prompt and greedy chat answers that copy facts from the system prompt.
# Usage: scripts/demo-pair.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
kvlab="${1:-build}/kvlab"
[ -x "$kvlab" ] || { echo "demo-pair.sh: $kvlab not found; build first" >&2; exit 1; }
system="You are Lyra. You live in Seattle. You work as a beekeeper."
for m in models/demo-receiver models/demo-sharer; do
  echo "== $m"
  "$kvlab" inspect --model "$m" --prompt "Once upon a time" | sed -n '2,9p'
  for q in "What is your name?" "Where do you live?" "What do you do for work?"; do
    printf '  user: %-26s assistant: ' "$q"
    "$kvlab" generate --model "$m" --system "$system" --chat "$q" -n 24 --temp 0
  done
done
