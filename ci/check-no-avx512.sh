#!/usr/bin/env bash
# The default build carries gemm's AVX-512 kernels (its `x86-v4` feature) and must still run
# on x86-64 CPUs without AVX-512: gemm and pulp pick their kernels at run time. This builds the
# kernel-agreement test, checks that it does contain AVX-512 (zmm) instructions, and runs it
# under user-mode QEMU emulating a Haswell CPU (AVX2 and FMA, no AVX-512).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-x86_64 >/dev/null; then
  apt-get install -y -q qemu-user >/dev/null
fi
bin="$(cargo test -q -p pcmem-model --test kernels --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kernels":
        print(m["executable"])' | tail -n 1)"
zmm="$(objdump -d --no-show-raw-insn "$bin" | grep -c zmm || true)"
echo "ci/check-no-avx512.sh: $bin holds $zmm AVX-512 (zmm) instructions"
[ "$zmm" -gt 0 ] || { echo "expected AVX-512 kernels in the build"; exit 1; }
qemu-x86_64 -cpu Haswell "$bin" fused_kernel_matches_candle_reference 2>&1 \
  | grep -v "TCG doesn't support" | tail -n 3
echo "ci/check-no-avx512.sh: the kernels run on a CPU without AVX-512"
