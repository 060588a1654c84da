#!/usr/bin/env bash
# Formatting, lints, the README's test command and the quick regression run.
# Used by .ci/run, the justfile and the GitHub workflow.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real images for the data-dependent tests: ../shared/data when present (never committed).
if [ -z "${PCMEM_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  PCMEM_DATA_DIR="$(cd ../shared/data && pwd)"
  export PCMEM_DATA_DIR
fi
echo "PCMEM_DATA_DIR=${PCMEM_DATA_DIR:-<unset: tests use generated images>}"

# A fresh machine of this kind has cargo; make sure the lint components are there.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# API docs build without warnings (broken intra-doc links, bad code blocks).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The README's test command:
cargo test --workspace
echo "ci/check.sh: fmt, clippy and tests passed in $(( $(date +%s) - start )) s"
# The AVX-512 kernels are chosen at run time: the build must run on a CPU without them.
bash ci/check-no-avx512.sh

# The quick regression run: every grid's quick profile, compared with the committed baseline.
# Needs the real images; skipped (and said so) without them.
if [ -n "${PCMEM_DATA_DIR:-}" ]; then
  out=target/ci-quick
  rm -rf "$out"
  cargo run -p pcmem-cli -- reproduce --profile quick --out "$out" --offline
  cargo run -p pcmem-cli -- regress "$out" --baseline results/regression/quick.csv --tolerance 0.1
  echo "ci/check.sh: quick regression passed; total $(( $(date +%s) - start )) s"
  # A grid as a SLURM job array on a one-node cluster, one task pre-empted mid-training.
  bash ci/slurm/test-array.sh
  echo "ci/check.sh: SLURM array test passed; total $(( $(date +%s) - start )) s"
else
  echo "ci/check.sh: PCMEM_DATA_DIR unset, quick regression skipped"
fi
