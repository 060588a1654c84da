#!/usr/bin/env bash
# Builds the `pcmem` binary and the GPU test/bench executables with the CUDA backend, on a machine
# with no GPU and no system CUDA (docs/cuda.md). Link strategy: runtime loading. candle-core
# 0.11.1 asks cudarc for `dynamic-linking` (the binary would need libcuda, cuBLAS and cuRAND at
# link time and at start-up); this script builds against a copy of that same candle-core whose
# cudarc feature is `dynamic-loading` instead, passed to cargo as a command-line patch, so the
# repository and the default (CPU) build are untouched. The binary then links with no CUDA
# library, starts on any machine, and loads the CUDA libraries only when `--device cuda:N` opens
# a GPU.
#   usage: bash ci/cuda-build.sh [build|test|bench] [cargo args...]   (default: build -p pcmem-cli)
#   e.g.   bash ci/cuda-build.sh test -p pcmem-model --test cuda -- --nocapture
# Output: $CARGO_TARGET_DIR (default target-cuda/) /release/pcmem.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# nvcc 13.0 and headers from Python wheels (compiles candle's kernels; needs no GPU).
source <(bash "$root/../shared/cuda/setup-toolchain.sh")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-cuda}
cargo fetch --quiet
version=$(cargo metadata --format-version 1 --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "candle-core"))')
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/candle-core-"$version" | head -n1)
patched=$CARGO_TARGET_DIR/patched/candle-core-$version
if [ ! -f "$patched/.pcmem-patched" ]; then
    rm -rf "$patched"
    mkdir -p "$(dirname "$patched")"
    cp -r "$src" "$patched"
    # The one change: cudarc's linking feature.
    grep -q '"dynamic-linking"' "$patched/Cargo.toml" || {
        echo "cuda-build: candle-core $version no longer names cudarc's dynamic-linking; revisit this script" >&2
        exit 1
    }
    sed -i 's/"dynamic-linking"/"dynamic-loading"/' "$patched/Cargo.toml"
    touch "$patched/.pcmem-patched"
fi
# The patch makes cargo rewrite Cargo.lock (candle-core from a path): keep the committed lock.
cp Cargo.lock "$CARGO_TARGET_DIR/Cargo.lock.committed"
trap 'cp "$CARGO_TARGET_DIR/Cargo.lock.committed" Cargo.lock' EXIT
cmd=build
case "${1:-}" in build | test | bench) cmd=$1; shift ;; esac
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p pcmem-cli)
release=--release
[ "$cmd" = bench ] && release=   # cargo bench builds with the bench profile
cargo "$cmd" $release --features cuda \
    --config "patch.crates-io.candle-core.path=\"$patched\"" "${args[@]}"
