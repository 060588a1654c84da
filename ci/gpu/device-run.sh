#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, with `.devcarry/` made by
# ci/gpu/prepare.sh carried along; writes everything under $OUT (at most 8 files come back):
#   1. nvidia-smi; the CUDA-vs-CPU agreement test (tests/cuda.rs, a GPU that does not open fails);
#   2. benches/gpu_iteration.rs: five sizes in f32 and TF32 beside the same-run 8192^2 matmul;
#   3. PCX 0.6.3 (JAX on the same GPU) at the same sizes and precisions (ci/bench_peers.py --gpu;
#      not at d > PCX_MAX_D, default 20000: PCX did not finish the ImageNet size in 200 s);
#   4. full-profile cells of the grids named in GRIDS (default fig7 fig8 fig3 fig6b fig10b) until
#      BUDGET seconds (default 540) since the start are nearly spent; finished cells' records in
#      $OUT/records.tgz (records resume: unpack them into .devcarry/res and a later session
#      continues where this one stopped). An entry may narrow its grid to some cells with
#      `GRID:KEY=VALUE[,KEY=VALUE]` (pcmem run's --where, e.g. `fig3:dataset=tiny-imagenet`).
#      PARALLEL=1 runs the entries side by side, one process each on the one GPU (two entries of
#      one grid share its cells: a process skips a cell another one holds); the processes' logs
#      end up in $OUT/streams.txt. Measured on the H200 (2026-12-04, six processes): no gain in
#      throughput, each process ran at about a sixth of its speed alone (the GPU time-slices
#      between processes), so more cells were left half-trained at the budget's end than one
#      process would have left. Keep it off unless the GPU runs an MPS daemon.
# RES (default /tmp/res) holds the records and checkpoints on the GPU machine; a second call to the
# same warm machine with the same RES resumes the cells the first one stopped (a git-ignored path
# such as .gpu/res survives between calls).
# Each step runs even if an earlier one failed; log.txt says what each step did.
set -uo pipefail
t0=$(date +%s)
budget=${BUDGET:-540}
grids=${GRIDS:-fig7 fig8 fig3 fig6b fig10b}
res=${RES:-/tmp/res}
carry=.devcarry
out=${OUT:?OUT must name the folder whose files come back}
log=$out/log.txt
left() { echo $((budget - ($(date +%s) - t0))); }
say() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$log"; }
NV=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
# .devcarry/lib: shared libraries of the build machine the GPU image may lack (fontconfig and
# freetype for plotters); appended last, so the image's own come first.
export LD_LIBRARY_PATH="$(ls -d $NV/*/lib 2>/dev/null | paste -sd:):/usr/local/nvidia/lib64:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}:$PWD/$carry/lib"
# .devcarry/fonts (prepare.sh): a font and a fontconfig file for plotters' captions; the GPU
# image has neither, and without them every picture with text fails ("No such font").
if [ -d "$carry/fonts" ]; then
    sed "s|FONTDIR|$PWD/$carry/fonts|" "$carry/fonts/fonts.conf.in" > /tmp/fonts.conf
    export FONTCONFIG_FILE=/tmp/fonts.conf
fi
steps=${STEPS:-1234}
mkdir -p /tmp/bin
for b in pcmem cuda-test gpu-bench; do
    xz -dc "$carry/$b.xz" > /tmp/bin/$b 2>/dev/null ||
        python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$carry/$b.xz" /tmp/bin/$b
    chmod +x /tmp/bin/$b
done
say "unpacked; $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader)"
say "libraries: $(ldconfig -p 2>/dev/null | grep -oE 'lib(cuda|cublas|curand)\.so[.0-9]*' | sort -u | tr '\n' ' ')"
if [[ $steps == *1* ]]; then
say "step 1: CUDA vs CPU agreement (tests/cuda.rs)"
PCMEM_REQUIRE_GPU=1 timeout 120 /tmp/bin/cuda-test --nocapture --test-threads 1 >> "$log" 2>&1
say "step 1 exit $?"
fi
if [[ $steps == *2* ]]; then
say "step 2: GPU bench (benches/gpu_iteration.rs)"
PCMEM_REQUIRE_GPU=1 PCMEM_BENCH_OUT=$out timeout 240 /tmp/bin/gpu-bench --bench >> "$log" 2>&1
say "step 2 exit $?"
fi
if [[ $steps == *3* ]]; then
say "step 3: PCX on the same GPU"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$carry"/pcx-*.whl >> "$log" 2>&1
PYTHONPATH=/tmp/site XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 \
    PCX_MAX_D=${PCX_MAX_D:-20000} timeout $(( $(left) > 350 ? 200 : $(left) > 180 ? $(left) - 150 : 30 )) \
    python3 ci/bench_peers.py --gpu "$out" "$out/gpu-table.md" >> "$log" 2>&1
say "step 3 exit $?"
fi
say "step 4: full-profile cells ($grids), $(left) s left"
mkdir -p "$res"
# The committed records (packed by prepare.sh into .devcarry/records.tgz) and those of an
# earlier device session (unpacked from its records.tgz into .devcarry/res): their cells are
# skipped, the run goes on from the first cell without a record.
[ -f "$carry/records.tgz" ] && tar xzf "$carry/records.tgz" -C "$res"
[ -d "$carry/res" ] && cp -r "$carry/res/." "$res/"
say "carried records: $(find "$res" -name '*.json' | wc -l)"
# run_entry ENTRY LOG CACHE: one grid entry (GRID or GRID:KEY=VALUE,...) until the budget's end. At the
# end timeout sends TERM: the training cell checkpoints at the end of its epoch and pcmem exits 4;
# KILL 30 s later if it has not.
run_entry() {
    local g=${1%%:*} filters=() f
    if [[ $1 == *:* ]]; then
        IFS=, read -ra f <<< "${1#*:}"
        for kv in "${f[@]}"; do filters+=(--where "$kv"); done
    fi
    timeout -k 30 $(( $(left) - 45 )) /tmp/bin/pcmem run "experiments/$g.toml" --profile full \
        --device cuda:0 --data-dir "$carry/data" --cache-dir "$3" --offline --out "$res" \
        --checkpoint-every 2m "${filters[@]}" >> "$2" 2>&1
}
if [ "${PARALLEL:-0}" = 1 ]; then
    i=0
    pids=()
    mkdir -p /tmp/streams
    for g in $grids; do
        i=$((i + 1))
        say "stream $i: $g ($(left) s left)"
        run_entry "$g" "/tmp/streams/$i.txt" "/tmp/cache-$i" &
        pids+=($!)
    done
    i=0
    for p in "${pids[@]}"; do
        i=$((i + 1))
        wait "$p"
        say "stream $i exit $?"
    done
    # One file back for all of them (the device tool returns at most 8).
    for f in /tmp/streams/*.txt; do echo "== stream $(basename "$f" .txt)"; cat "$f"; done > "$out/streams.txt"
else
    for g in $grids; do
        [ "$(left)" -gt 60 ] || break
        say "grid $g ($(left) s left)"
        run_entry "$g" "$log" /tmp/cache
        say "grid $g exit $?"
    done
fi
# Records and pictures come back; checkpoints too when small enough to travel (16 MiB a file).
(cd "$res" && find . -type f ! -name '*.lock' ! -name '*.safetensors' ! -name '*.ckpt.json' |
    tar czf "$out/records.tgz" -T -)
(cd "$res" && find . -name '*.ckpt.*' -size -12M | tar czf "$out/checkpoints.tgz" -T -)
[ "$(stat -c %s "$out/checkpoints.tgz")" -lt 16000000 ] || rm -f "$out/checkpoints.tgz"
say "records: $(tar tzf "$out/records.tgz" | grep -c '\.json$') json files; done"
