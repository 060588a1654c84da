#!/usr/bin/env bash
# Prepares, on a machine without a GPU, everything one GPU session needs (issue: the CUDA path on
# a lent GPU): builds the CUDA `pcmem` binary, the CUDA agreement test and the GPU bench
# (ci/cuda-build.sh), strips and xz-compresses them, and copies the PCX wheel, the data the
# full-profile cells read and the records of results/full/runs into `.devcarry/` (git-ignored;
# the device tool carries it, 64 MiB at most). Then run `ci/gpu/device-run.sh` there.
#   usage: bash ci/gpu/prepare.sh DATA_DIR [DATASET_FOLDER...]
#   e.g.   bash ci/gpu/prepare.sh ../shared/data tiny-imagenet-200
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
data=${1:?usage: bash ci/gpu/prepare.sh DATA_DIR [DATASET_FOLDER...]}
shift
carry=$root/.devcarry
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
mkdir -p "$carry/data"
bash ci/cuda-build.sh build -p pcmem-cli
bash ci/cuda-build.sh test -p pcmem-model --test cuda --no-run
bash ci/cuda-build.sh bench -p pcmem-model --bench gpu_iteration --no-run
newest() { ls -t "$@" 2>/dev/null | grep -v '\.d$' | head -n1; }
pack() { # pack SRC NAME: strip, compress
    strip -o "$carry/$2" "$1"
    xz -T2 -6 -f "$carry/$2"
    echo "packed $1 -> .devcarry/$2.xz ($(du -h "$carry/$2.xz" | cut -f1))"
}
pack target-cuda/release/pcmem pcmem
pack "$(newest target-cuda/release/deps/cuda-*)" cuda-test
pack "$(newest target-cuda/release/deps/gpu_iteration-*)" gpu-bench
# Shared libraries the binary links that the GPU image may lack (plotters: fontconfig, freetype).
mkdir -p "$carry/lib"
for l in libfontconfig.so.1 libfreetype.so.6 libexpat.so.1 libpng16.so.16 libbrotlidec.so.1 libbrotlicommon.so.1; do
    p=$(ldconfig -p | awk -v l="$l" '$1 == l { print $NF; exit }')
    [ -n "$p" ] && cp -L "$p" "$carry/lib/"
done
# A font and a fontconfig file pointing at it (the GPU image has no fonts; plotters' captions
# need one); device-run.sh fills in the folder's path there.
mkdir -p "$carry/fonts"
font=$(fc-match -f '%{file}' sans-serif)
cp -L "$font" "$carry/fonts/"
family=$(fc-query -f '%{family[0]}' "$font")
printf '%s\n' '<?xml version="1.0"?>' '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">' \
    '<fontconfig><dir>FONTDIR</dir><cachedir>/tmp/fc-cache</cachedir>' \
    "<alias><family>sans-serif</family><prefer><family>$family</family></prefer></alias></fontconfig>" \
    > "$carry/fonts/fonts.conf.in"
rm -f "$carry"/*.whl
python3 -m pip download -q --no-deps --only-binary=:all: -d "$carry" pcx==0.6.3
for f in "$@"; do
    rm -rf "${carry:?}/data/$f"
    cp -r "$data/$f" "$carry/data/$f"
done
# The full profile's committed records: device-run.sh skips their cells (a cell finished on a
# CPU is not run again), packed because the carry is limited.
(cd results/full && find runs -name '*.json' ! -name '*.ckpt.*' | sort | tar czf "$carry/records.tgz" -T -)
echo "records: $(tar tzf "$carry/records.tgz" | wc -l) from results/full/runs -> .devcarry/records.tgz ($(du -h "$carry/records.tgz" | cut -f1))"
# The device tool sends the working tree and the carry together, 64 MiB at most.
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s }')
carried=$(du -sb "$carry" | cut -f1)
echo "carry .devcarry: $((carried / 1048576)) MiB; tracked files: $((tree / 1048576)) MiB; together $(((carried + tree) / 1048576)) MiB of 64"
if [ $((carried + tree)) -gt $((64 * 1048576)) ]; then
    echo "over the device tool's 64 MiB: carry fewer data folders or binaries, or move results/full," >&2
    echo "results/figures and results/runs out of the checkout for the call (the GPU run needs none" >&2
    echo "of them: the records travel in .devcarry/records.tgz) and put them back after it" >&2
fi
