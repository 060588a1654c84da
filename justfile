# Common commands; each is a plain cargo/bash line, so `just` is optional.

# Formatting, lints and the whole test suite (what CI runs).
check:
    bash ci/check.sh

# The test suite alone.
test:
    cargo test --workspace

# Speed benchmarks (criterion): one PCN training iteration vs the matmul rate.
bench:
    cargo bench -p pcmem-model --bench train_iteration

# The quick reproduction of every grid, then results/REPORT.md (needs PCMEM_DATA_DIR).
reproduce PROFILE="quick":
    cargo run --release -p pcmem-cli -- reproduce --profile {{PROFILE}}

# Baseline benchmarks: recall of every baseline; the autoencoder's training (Adam's CPU
# pass against the candle operations, epochs of fit, the same run's matmul).
bench-baselines:
    cargo bench -p pcmem-baselines --bench recall
    cargo bench -p pcmem-baselines --bench ae_training

# Train a small PCN on real images and report recall (needs PCMEM_DATA_DIR).
demo *ARGS:
    cargo run --release -p pcmem-model --example recall_demo -- {{ARGS}}
