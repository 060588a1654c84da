#!/usr/bin/env bash
# Formatting, lints and the README's test command. Used by .ci/run, the justfile and GitHub.
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
# The README's test command:
cargo test --workspace
echo "ci/check.sh: all checks passed in $(( $(date +%s) - start )) s"
