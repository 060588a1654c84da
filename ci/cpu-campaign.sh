#!/usr/bin/env bash
# The full-profile cells a 2-core CPU can finish (hours each), run in the background in the
# order that decides the most claims first, every cell checkpointed so that a killed run (a
# session's end, a reboot) resumes where it stopped: run the same command again.
#
#   bash ci/cpu-campaign.sh OUT DATA_DIR [PCMEM]      e.g. bash ci/cpu-campaign.sh /work/campaign ../shared/data
#
# Trained models stay in their checkpoints (--keep-trained), so a grid whose recall settings
# change (a development grid's choice) recalls its finished cells again without training them.
# OUT: where records and checkpoints go (copy finished records, `<cell>.json` and its
# pictures, not the `<cell>.ckpt.*` files, into results/full/runs and
# regenerate the report with `pcmem aggregate results/full --profile full && pcmem report
# results/full --profile full`); PCMEM: the binary (default target/release/pcmem, built here if
# missing). Runs at nice 19 and logs to OUT/campaign.log. `pcmem reproduce --profile full --out
# OUT --dry-run` says what is left and how long it should take.
set -euo pipefail
out=${1:?usage: ci/cpu-campaign.sh OUT DATA_DIR [PCMEM]}
data=${2:?usage: ci/cpu-campaign.sh OUT DATA_DIR [PCMEM]}
bin=${3:-target/release/pcmem}
cd "$(dirname "$0")/.."
if [ ! -x "$bin" ]; then
    # Records carry the code version the binary was built at; a tree with uncommitted changes
    # makes it `<commit>-dirty`, which says less about what ran: commit first.
    git diff --quiet HEAD || echo "warning: uncommitted changes; the records will say <commit>-dirty" >&2
    cargo build --release -p pcmem-cli
fi
mkdir -p "$out"
# nice 19 orders processes within one scheduler autogroup (a login session, a `setsid`); where
# the kernel groups by session, the campaign's group must be niced too, or it takes half the CPU
# from the builds and tests of the session beside it.
echo 19 > /proc/self/autogroup 2>/dev/null || true
# One line per step: grid file, then --where filters. Cells that decide claims first, and of
# those the shorter ones first (a finished record counts; a half-trained cell waits in its
# checkpoint). A checkpoint lives on the machine that wrote it: where machines are lent for a few
# hours at a time, the cells that fit in one loan (the autoencoders, minutes to an hour each) come
# before the PCN cells of many hours, which resume only where OUT survives.
steps=(
    # fig3's PCN recall from noise (a development grid; one training of about 15 minutes): fig3
    # states its choice, and its PCN cells are run with it
    "dev-pcn-noise"
    # fig3 CIFAR-10, PCN with 512 hidden units and AE with 2048, up to N = 500
    # (fig3-pcn512-250-both, fig3-ae2048-below-pcn512-cifar10)
    "fig3 dataset=cifar10 model=pcn hidden=512 n_images=100"
    "fig3 dataset=cifar10 model=pcn hidden=512 n_images=250"
    "fig3 dataset=cifar10 model=pcn hidden=512 n_images=500"
    "fig3 dataset=cifar10 model=autoencoder hidden=2048 n_images=100"
    "fig3 dataset=cifar10 model=autoencoder hidden=2048 n_images=250"
    "fig3 dataset=cifar10 model=autoencoder hidden=2048 n_images=500"
    # N = 1000 of the two CIFAR-10 series (fig3-ae2048-below-pcn512-cifar10 at every N)
    "fig3 dataset=cifar10 model=pcn hidden=512 n_images=1000"
    "fig3 dataset=cifar10 model=autoencoder hidden=2048 n_images=1000"
    # fig3 Tiny ImageNet: the PCN with 512 at N = 100 (fig3-pcn512-250-both needs N = 250)
    "fig3 dataset=tiny-imagenet model=pcn hidden=512 n_images=100"
    # The autoencoders below 1024 hidden units on Tiny ImageNet (fig3-ae-below-1024-tiny-none),
    # and the CIFAR-10 autoencoders with 512 (no claim reads them alone)
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=512"
    "fig3 dataset=cifar10 model=autoencoder hidden=512"
    # fig8's autoencoder recall (a development grid; about 30 minutes): fig8 states its choice
    "dev-ae-partial"
    # fig3-ae2048-below-pcn512-tiny-imagenet at N = 100 (minutes), then the CIFAR-10 PCN with
    # 2048 at N = 100 and 250 (fig3-pcn2048-all; about 20 and 55 minutes)
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=2048 n_images=100"
    "fig3 dataset=cifar10 model=pcn hidden=2048 n_images=100"
    "fig3 dataset=cifar10 model=pcn hidden=2048 n_images=250"
    # What the issue names as CPU work and is still missing, shortest first: the CIFAR-10
    # autoencoders with 1024 (minutes each), the Tiny ImageNet PCNs with 1024 and 2048 at N = 100
    # (about one and two hours), Fig. 4 (Tiny ImageNet N = 100, n = 1024; a figure, no claim),
    # the CIFAR-10 PCNs with 1024 (minutes to an hour each; no claim reads them alone). The Tiny
    # ImageNet autoencoder with 2048 at N = 250 was training when this order was set, so it
    # finishes first.
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=2048 n_images=250"
    "fig3 dataset=cifar10 model=autoencoder hidden=1024"
    "fig3 dataset=tiny-imagenet model=pcn hidden=1024 n_images=100"
    "fig4"
    "fig3 dataset=cifar10 model=pcn hidden=1024"
    "fig3 dataset=tiny-imagenet model=pcn hidden=2048 n_images=100"
    # What fits in one loan of a machine (a few hours, then a fresh machine without OUT) comes
    # before the cells that need a machine kept for longer, shortest first by `--dry-run`'s
    # expectation: the Tiny ImageNet PCN with 512 at N = 250 (about 35 minutes;
    # fig3-pcn512-250-both), the Tiny ImageNet autoencoders with 1024 at N = 500 and 1000 (under
    # an hour each; no claim reads them, Fig. 3 plots them), the Tiny
    # ImageNet PCN with 512 at N = 500 (about 70 minutes)
    "fig3 dataset=tiny-imagenet model=pcn hidden=512 n_images=250"
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=1024"
    "fig3 dataset=tiny-imagenet model=pcn hidden=512 n_images=500"
    # The CIFAR-10 PCN with 2048 at N = 500 (about 4 hours; fig3-pcn2048-all at N = 500), the
    # last CIFAR-10 cell of fig3 that the issue names as CPU work and that fits in a few hours,
    # before the development grid of fig8 (whose cells run on a GPU) and the Tiny ImageNet cells
    # of N >= 500 (Fig. 3's picture; the report lists them as work for a GPU). It needs more than
    # one loan, so it finishes only where OUT survives from one loan to the next.
    "fig3 dataset=cifar10 model=pcn hidden=2048 n_images=500"
    # fig8's autoencoder training (a development grid, by training loss; four trainings of
    # under an hour each): fig8 states its choice (its cells run on a GPU). If it changes fig8's
    # training, dev-ae-partial's recall choice is made again on the autoencoder so trained.
    # Then the Tiny ImageNet autoencoder with 2048 at N = 500 (about 2 hours;
    # fig3-ae2048-below-pcn512-tiny-imagenet, which also needs the Tiny ImageNet PCN with 512 at
    # N = 1000, a GPU cell). Both fit in one loan, so they come before the cell of many loans
    # below: a machine lost mid-cell once cost that cell about 700 of its epochs.
    "dev-ae-training"
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=2048 n_images=500"
    # The Tiny ImageNet autoencoder with 2048 at N = 1000 (--dry-run expects 2.8 hours; N = 500
    # took 52 minutes against its expected 84), which fits in one loan, before the cell of many
    # loans below
    "fig3 dataset=tiny-imagenet model=autoencoder hidden=2048"
    # The Tiny ImageNet PCN with 512 at N = 1000 (--dry-run expects 2.3 hours; N = 500 took
    # 69 minutes): with the cell above it completes fig3-ae2048-below-pcn512-tiny-imagenet at
    # all four N, and it fits in one loan, so it too comes before the cell of many loans below
    "fig3 dataset=tiny-imagenet model=pcn hidden=512 n_images=1000"
    # fig7 on Tiny ImageNet at N = 250 with 2048 hidden units (3.1 hours here, 2.3 training and
    # 0.8 recall; the grid's other cells ran on a GPU)
    "fig7 dataset=tiny-imagenet hidden=2048 n_images=250"
    # fig8's autoencoders with 10 layers (fig8-ae10-half, fig8-ae10-quarter; --dry-run bounds
    # them at 35 and 93 minutes): fig8's PCN cells are work for a GPU, its autoencoders are not,
    # and these two decide two claims, so they come before the cell of many loans below.
    "fig8 model=autoencoder layers=10"
    # fig8's other autoencoders with 1024 (3, 5 and 7 layers; a 2-layer autoencoder of that
    # width trains fig3's N = 500 in about 25 minutes, so each should fit in one loan): Fig. 8's
    # picture, and with the PCN cells (a GPU's work) fig8-pcn-above-ae-1024. They come before the
    # cell of many loans below, whose checkpoint a new machine loses (epoch 212 of it was lost so
    # between two sessions).
    "fig8 model=autoencoder hidden=1024"
    # The CIFAR-10 PCN with 2048 at N = 1000 (--dry-run expects 10.5 hours, the epoch limit):
    # the last of fig3's 24 CIFAR-10 cells and the last cell the issue names as CPU work; it
    # completes fig3-pcn2048-all's cells (its verdict already fails at N = 100 and 500). It needs
    # a machine kept for several loans.
    "fig3 dataset=cifar10 model=pcn hidden=2048"
    # fig7 on Tiny ImageNet at N = 250 with 4096 (--dry-run expects 5.3 hours, recall included;
    # work the report lists for a GPU, run here because it decides a verdict):
    # fig7-n250-sixteenth-few has only its 512, 1024 and 2048 cells, so it reads "incomplete"
    # until this cell has run. It resumes from its checkpoint after the cell above.
    "fig7 dataset=tiny-imagenet hidden=4096 n_images=250"
    # fig8's other autoencoders with 2048 (3, 5 and 7 layers; --dry-run bounds them at 2 to
    # 2.6 hours each): Fig. 8's picture, and with the PCN cells (a GPU's work)
    # fig8-pcn-above-ae-2048
    "fig8 model=autoencoder"
)
for step in "${steps[@]}"; do
    read -r grid filters <<< "$step"
    args=()
    for f in $filters; do args+=(--where "$f"); done
    echo "== $(date -u +%FT%TZ) $grid ${filters}" >> "$out/campaign.log"
    # In the background so that a signal to this script reaches pcmem, which then checkpoints
    # its cell at the end of the epoch and exits 4.
    nice -n 19 "$bin" run "experiments/$grid.toml" --profile full "${args[@]}" \
        --data-dir "$data" --offline --out "$out" --checkpoint-every 2m --keep-trained >> "$out/campaign.log" 2>&1 &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT
    rc=0
    wait "$child" || rc=$?
    # wait itself returns early (status > 128) when the trap ran: wait for pcmem's own exit.
    while kill -0 "$child" 2>/dev/null; do
        rc=0
        wait "$child" || rc=$?
    done
    trap - TERM INT
    if [ "$rc" -ne 0 ]; then
        echo "== $grid ${filters}: exit $rc (4: stopped by a signal, run again to resume; see the lines above)" >> "$out/campaign.log"
        # Stopped by a signal: stop the campaign too; any other failure: go on to the next step.
        [ "$rc" -eq 4 ] && exit 4
    fi
done
echo "== $(date -u +%FT%TZ) campaign finished" >> "$out/campaign.log"
