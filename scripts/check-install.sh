#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds examples/hello_cache
# against it twice: through pkg-config and through CMake's find_package.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install build --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -n1)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror examples/hello_cache.c $(pkg-config --cflags --libs kvlab) -o "$tmp/hello_pc"
LD_LIBRARY_PATH="$libdir" "$tmp/hello_pc" models/default
cmake -S examples -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/ex" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/ex/hello_cache" models/default
echo "install check: pkg-config and find_package consumers built and ran"
