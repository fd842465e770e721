#!/usr/bin/env bash
# Builds a portable bundle of the kvlab programs for another x86-64 Linux
# machine with glibc >= this one's (e.g. a GPU machine that has no kvlab
# dependencies installed): a Release build without -march=native, then
#   OUT/bin/      kvlab and every bench_* program
#   OUT/lib/      every shared library they need that is not part of glibc
#                 (jansson, pcre2, utf8proc, zstd, sodium, the OpenMP build
#                 of OpenBLAS, gfortran, gomp, quadmath, gcc_s)
#   OUT/kvlab, OUT/bench_*   wrappers that set LD_LIBRARY_PATH to OUT/lib
#   OUT/run PROGRAM ARGS...  the same for any program in OUT/bin
#   OUT/MANIFEST             commit, build flags and the libraries' origins
# and checks, under `env -i` with only PATH, that every library resolves
# inside the bundle and that kvlab and bench_tokenizer run.
#
# The CUDA libraries (cudart, cuBLAS) are not bundled: they are the GPU
# machine's own (the wrappers add /usr/local/cuda/lib64 to the search path).
#
# usage: scripts/device-bundle.sh [OUT]   (default OUT: .device-bundle)
# environment: KVL_BUNDLE_TESTS (ctest programs to add, e.g.
#              "engine_test_cuda_kernels engine_test_cuda_forward"; run them
#              with KVL_SOURCE_DIR set to a checkout),
#              KVL_BUNDLE_MARCH (default x86-64-v3: AVX2 + FMA, no
#              AVX-512), KVL_BUNDLE_BUILD (build folder, default
#              build-device-bundle), KVL_BUNDLE_MAX_MB (default 55).
# Both default folders are ignored by git (/build*/, and .device-bundle
# should be listed in .git/info/exclude so that tools can carry it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device-bundle}
build=${KVL_BUNDLE_BUILD:-build-device-bundle}
march=${KVL_BUNDLE_MARCH:-x86-64-v3}
max_mb=${KVL_BUNDLE_MAX_MB:-55}
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
omp_blas=/usr/lib/$multiarch/openblas-openmp

echo "== Release build in $build (-march=$march, no -march=native)"
# CMAKE_SKIP_RPATH: no RUNPATH to this machine's OpenBLAS folder; the
# wrappers' LD_LIBRARY_PATH alone decides which libraries load.
tests=${KVL_BUNDLE_TESTS:-}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKVL_NATIVE=OFF \
  -DKVL_BUILD_TESTS=$([[ -n $tests ]] && echo ON || echo OFF) -DKVL_BUILD_BENCH=ON \
  -DCMAKE_SKIP_RPATH=ON -DCMAKE_C_FLAGS="-march=$march" >/dev/null
cmake --build "$build" -j"$(nproc)"

progs=("$build/kvlab")
for p in "$build"/bench_*; do
  [[ -f $p && -x $p ]] && progs+=("$p")
done
for t in $tests; do
  progs+=("$build/tests/$t")
done

echo "== bundle in $out"
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for p in "${progs[@]}"; do
  cp "$p" "$out/bin/"
done

# glibc's own libraries (and the loader) are the target machine's, and so
# are CUDA's.
is_glibc() {
  case "$1" in
    libcuda.so.*|libcudart.so.*|libcublas.so.*|libcublasLt.so.*|libnvrtc*|libnvJitLink*) return 0 ;;
    linux-vdso.so.*|ld-linux*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|\
    libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*|libnsl.so.*|\
    libBrokenLocale.so.*|libthread_db.so.*|libc_malloc_debug.so.*) return 0 ;;
  esac
  return 1
}

# Resolve with the OpenMP OpenBLAS first, as the normal build's RUNPATH does.
ld_path=""
[[ -d $omp_blas ]] && ld_path=$omp_blas
manifest_libs=""
for p in "$out"/bin/*; do
  if LD_LIBRARY_PATH=$ld_path:/usr/local/cuda/lib64 ldd "$p" | grep -q 'not found'; then
    echo "device-bundle: $p has unresolved libraries:" >&2
    LD_LIBRARY_PATH=$ld_path ldd "$p" >&2
    exit 1
  fi
  while read -r name arrow path _; do
    [[ $arrow == "=>" && -n $path ]] || continue
    is_glibc "$name" && continue
    if [[ ! -e $out/lib/$name ]]; then
      cp -L "$path" "$out/lib/$name"
      manifest_libs+="$name <- $(readlink -f "$path")"$'\n'
    fi
  done < <(LD_LIBRARY_PATH=$ld_path:/usr/local/cuda/lib64 ldd "$p")
done

if [[ -e $out/lib/libopenblas.so.0 ]] && ! ldd "$out/lib/libopenblas.so.0" | grep -q libgomp; then
  echo "device-bundle: the bundled libopenblas.so.0 is not the OpenMP build" \
       "(install libopenblas0-openmp)" >&2
  exit 1
fi

for p in "$out"/bin/*; do
  name=$(basename "$p")
  cat >"$out/$name" <<EOF
#!/bin/sh
# Runs the bundled $name with the bundled libraries.
here=\$(cd "\$(dirname "\$0")" && pwd)
LD_LIBRARY_PATH="\$here/lib:/usr/local/cuda/lib64\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/bin/$name" "\$@"
EOF
  chmod +x "$out/$name"
done
cat >"$out/run" <<'EOF'
#!/bin/sh
# usage: run PROGRAM [ARGS...]: runs bin/PROGRAM with the bundled libraries.
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ ! -x "$here/bin/$1" ]; then
  echo "usage: $0 PROGRAM [ARGS...]; programs: $(ls "$here/bin" | tr '\n' ' ')" >&2
  exit 2
fi
prog=$1
shift
LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/bin/$prog" "$@"
EOF
chmod +x "$out/run"

{
  echo "kvlab device bundle"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -m), $(ldd --version | head -n1)"
  echo "flags: Release, -O3 -march=$march (KVL_NATIVE=OFF), $(gcc --version | head -n1)"
  if ! git diff --quiet HEAD 2>/dev/null; then
    echo "uncommitted changes to: $(git diff --name-only HEAD | tr '\n' ' ')"
  fi
  echo "programs: $(ls "$out/bin" | tr '\n' ' ')"
  echo "libraries:"
  printf '%s' "$manifest_libs"
} >"$out/MANIFEST"

echo "== checks under env -i (PATH only)"
clean_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin)
for p in "$out"/bin/*; do
  # Every non-glibc library must come from the bundle.
  stray=$("${clean_env[@]}" LD_LIBRARY_PATH="$PWD/$out/lib:/usr/local/cuda/lib64" ldd "$p" |
          awk '$2 == "=>" {print $1, $3}' |
          while read -r name path; do
            is_glibc "$name" || [[ $path == "$PWD/$out/lib/"* ]] || echo "$name => $path"
          done)
  if [[ -n $stray ]]; then
    echo "device-bundle: $(basename "$p") loads libraries from outside the bundle: $stray" >&2
    exit 1
  fi
done
"${clean_env[@]}" "$out/kvlab" --version
if [[ -f models/stories260K/stories260K.bin ]]; then
  "${clean_env[@]}" OMP_NUM_THREADS=2 "$out/kvlab" generate \
    -m models/stories260K/stories260K.bin --prompt 'Once upon a time' -n 16 --temp 0 >/dev/null
  echo "kvlab generate (stories260K, OpenBLAS + OpenMP) ran"
fi
if [[ -x $out/bin/bench_tokenizer && -f models/stories260K/tok512.bin ]]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  printf 'Once upon a time, there was a little girl.\nShe liked to play.\n' >"$tmp"
  "${clean_env[@]}" "$out/bench_tokenizer" --tokenizer models/stories260K/tok512.bin \
    --text "$tmp" --reps 1 --load-reps 1 >/dev/null
  echo "bench_tokenizer (tok512.bin) ran"
fi

bytes=$(du -sb "$out" | cut -f1)
mb=$(( (bytes + 999999) / 1000000 ))
echo "bundle: $out, $mb MB ($(ls "$out/bin" | wc -l) programs, $(ls "$out/lib" | wc -l) libraries)"
if (( mb > max_mb )); then
  echo "device-bundle: the bundle is $mb MB, over $max_mb MB" >&2
  exit 1
fi
