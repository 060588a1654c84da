#!/usr/bin/env bash
# Tries every bad input of docs/bad-inputs.md on the built `pcmem` and writes that page from
# what the program answered (exit code and first line of its message). Nothing in the page is
# typed by hand: rerun this script after changing an error path.
#   bash ci/bad-inputs.sh            # builds pcmem (dev profile), writes docs/bad-inputs.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p pcmem-cli
bin="$PWD/target/debug/pcmem"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
page="docs/bad-inputs.md"
mkdir -p docs

# Eight generated digits in the official (uncompressed) MNIST test layout.
python3 - "$work/data/mnist" <<'PY'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
n = 8
img = struct.pack(">IIII", 0x803, n, 28, 28) + bytes(
    255 if (i * (k + 2) // 7) % 3 == 0 else 0 for k in range(n) for i in range(784))
open(os.path.join(d, "t10k-images-idx3-ubyte"), "wb").write(img)
open(os.path.join(d, "t10k-labels-idx1-ubyte"), "wb").write(
    struct.pack(">II", 0x801, n) + bytes(k % 10 for k in range(n)))
PY

small_pcn='[pcn]
learning = { max_epochs = 2 }
recall = { steps = 5, iterations = 1 }'
grid() { # grid FILE [model tables, default $small_pcn] ; a small grid on the generated digits
  cat > "$1" <<TOML
id = "bad"
title = "bad inputs"
paper = "none"
[train]
dataset = ["mnist"]
split = "test"
n_images = [8]
model = ["${MODEL:-modern_hopfield}"]
hidden = [${HIDDEN:-16}]
layers = [${LAYERS:-1}]
[recall]
corruption = ["noise:0.05", "${MASK:-top:0.5}"]
threshold = 0.005
${2:-$small_pcn}
[profile.quick]
TOML
}

rows=()
try() { # try "case" "what a user expects" command...
  local case="$1" expect="$2"; shift 2
  local out code
  set +e
  out="$("$@" 2>&1)"
  code=$?
  set -e
  local said
  said="$(printf '%s\n' "$out" | grep -m1 -E 'error|REGRESSION|moved aside|another process|regressions|cells? run' || true)"
  [ -n "$said" ] || said="$(printf '%s\n' "$out" | tail -n 1)"
  said="${said//$work/\$TMP}"
  said="${said//|/\\|}"
  [ "${#said}" -le 320 ] || said="${said:0:317}..."
  rows+=("| $case | $expect | $code | \`$said\` |")
  echo "[$code] $case"
}

D="--data-dir $work/data"
g="$work/g.toml"

# A truncated record.
grid "$g"; "$bin" run "$g" $D --out "$work/o1" >/dev/null 2>&1
rec="$(ls "$work"/o1/runs/bad/quick/*.json | head -1)"
head -c 200 "$rec" > "$rec.cut" && mv "$rec.cut" "$rec"
try "record truncated, then \`aggregate\`" "names the file, exit 1" "$bin" aggregate "$work/o1"
try "record truncated, then \`run\`" "moved aside, cell recomputed, exit 0" "$bin" run "$g" $D --out "$work/o1"

# The regression gate.
"$bin" aggregate "$work/o1" >/dev/null
hdr="grid,dataset,model,hidden,layers,n_images,seed,corruption,search,fraction"
row="bad,mnist,modern_hopfield,0,0,8,0,noise:0.05,,"
printf '%s\n' "$hdr" > "$work/b0.csv"
try "baseline with a header only" "exit 2" "$bin" regress "$work/o1" --baseline "$work/b0.csv"
for v in abc "" NaN '"1.0 "'; do
  printf '%s\n%s%s\n' "$hdr" "$row" "$v" > "$work/b1.csv"
  try "baseline value \`$v\`" "exit 2 naming file, line, column" "$bin" regress "$work/o1" --baseline "$work/b1.csv"
done
printf '%s\n%s%s\n' "$hdr" "$row" 1.0 > "$work/b2.csv"
try "\`--tolerance nan\`" "exit 2" "$bin" regress "$work/o1" --baseline "$work/b2.csv" --tolerance nan

# Grid settings, all checked when the grid is read.
MODEL=pcn grid "$g" "[pcn]
learning = { max_epochs = 2, target_mse = nan }"
try "\`target_mse = nan\`" "exit 2 naming file and key" "$bin" run "$g" $D --out "$work/o2" --dry-run
MODEL=pcn grid "$g" "[pcn]
recall = { free_pixel_rate = nan }"
try "\`free_pixel_rate = nan\`" "exit 2 naming file and key" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn grid "$g" "[pcn]
inference = { tolerance = nan }"
try "\`tolerance = nan\`" "exit 2 naming file and key" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn grid "$g" "[pcn]
inference = { gamm = 0.1 }"
try "unknown key in \`[pcn]\`" "exit 2 naming file, table, key" "$bin" run "$g" $D --out "$work/o2"
MODEL=autoencoder grid "$g" "[autoencoder]
lr = \"fast\""
try "wrong type in \`[autoencoder]\`" "exit 2 naming file, table, key" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn grid "$g" "[pcn]
inference = { gamma = -0.1 }"
try "negative \`gamma\`" "exit 2 naming file, table, key" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn grid "$g" "[pcn]
learning = { max_epochs = 0 }"
try "\`max_epochs = 0\`" "exit 2 naming file, table, key" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn HIDDEN=100000000 grid "$g"
try "\`hidden = [100000000]\`" "refused before any work, exit 2" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn HIDDEN=512 LAYERS=100000 grid "$g"
try "\`layers = [100000]\`" "refused before any work, exit 2" "$bin" run "$g" $D --out "$work/o2"
MODEL=pcn HIDDEN=100000000 grid "$g"
try "\`hidden = [100000000]\`, \`--dry-run\`" "each cell's memory shown" "$bin" run "$g" $D --out "$work/o2" --dry-run
MASK=top:0 grid "$g"
try "\`top:0\`" "exit 2: nothing known" "$bin" run "$g" $D --out "$work/o2"

# Output, concurrency, disk, data.
grid "$g"
touch "$work/a-file"
try "\`--out\` is a file" "exit 2 before the first cell" "$bin" run "$g" $D --out "$work/a-file"
try "\`--rate\` without \`--dry-run\`" "exit 2, says to add --dry-run" "$bin" run "$g" $D --out "$work/o2" --rate 3000
try "\`--rate 0\`" "exit 2" "$bin" run "$g" $D --out "$work/o2" --dry-run --rate 0
try "\`--where widht=3\`" "exit 2 naming the cell fields" "$bin" run "$g" $D --out "$work/o2" --dry-run --where widht=3
try "\`--where n_images=5\` (no such cell)" "exit 2 naming the values the cells have" "$bin" run "$g" $D --out "$work/o2" --dry-run --where n_images=5
try "\`--where hidden\`" "exit 2, says KEY=VALUE" "$bin" run "$g" $D --out "$work/o2" --dry-run --where hidden
try "\`--out\` cannot be created (/proc)" "exit 2 before the first cell" "$bin" run "$g" $D --out /proc/pcmem-out
mkdir -p "$work/o3/runs/bad/quick"
lock="$work/o3/runs/bad/quick/mnist-N8-modern_hopfield-n0-L0-s0.json.lock"
try "second \`run\` while another holds the cell" "skipped and said, exit 0" \
  flock "$lock" "$bin" run "$g" $D --out "$work/o3"
try "disk full (file-size limit)" "exit 1 naming the file, nothing partial left" \
  bash -c "trap '' XFSZ; ulimit -f 1; exec \"\$0\" run \"$g\" $D --out \"$work/o4\"" "$bin"
left="$(find "$work/o4" -type f | wc -l)"
rows+=("| disk full: files left in \`--out\` | none | - | \`$left files\` |")
try "data folder that does not exist" "exit 2" "$bin" run "$g" --data-dir "$work/none" --cache-dir "$work/cache" --out "$work/o5"
mkdir -p "$work/empty"
try "dataset missing, \`--offline\`" "not run, said how to get it, exit 3" "$bin" run "$g" --data-dir "$work/empty" --cache-dir "$work/cache" --out "$work/o5" --offline
# Two PNGs of different sizes (8x8 and 9x8).
python3 - "$work/pics" <<'PY'
import os, struct, sys, zlib
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
def png(w, h, path):
    raw = b"".join(b"\x00" + b"\x80" * 3 * w for _ in range(h))
    chunk = lambda t, data: struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(8, 8, os.path.join(d, "a.png")); png(9, 8, os.path.join(d, "b.png"))
PY
try "\`pcmem store\` on a folder of mixed sizes" "exit 2 naming two files" "$bin" store "$work/pics" --out "$work/mem"
echo "not a png" > "$work/pics/c.png"
try "\`pcmem store\` with an unreadable image" "exit 2 naming the file" "$bin" store "$work/pics" --size 8x8 --out "$work/mem"

{
  echo "# Bad inputs tried"
  echo
  echo "Generated by \`bash ci/bad-inputs.sh\` (code $(git describe --always --dirty 2>/dev/null || echo unknown)):"
  echo "each row ran the built \`pcmem\` on the input named and copied what it answered. Exit codes:"
  echo "0 success, 1 a run that failed, 2 bad usage or bad input, 3 grids not run for want of data."
  echo
  echo "| case | expected | exit | what pcmem said |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$page"
echo "wrote $page"
