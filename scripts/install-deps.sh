#!/usr/bin/env bash
# Installs the Debian 12 packages kvlab needs to build and test.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config clang libomp-dev libclang-rt-dev \
  libjansson-dev libopenblas-openmp-dev libsodium-dev libzstd-dev libpcre2-dev libutf8proc-dev zstd \
  libgsl-dev liblapacke-dev libplplot-dev plplot-driver-cairo fonts-dejavu-core >/dev/null
echo "dependencies installed"
