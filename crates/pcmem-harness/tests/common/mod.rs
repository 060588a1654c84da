//! Fixtures shared by the harness tests: a small grid and generated CIFAR-10 records.
#![allow(dead_code)]

use std::path::Path;

use pcmem_data::DataDirs;
use pcmem_harness::run::RunOptions;

pub const GRID: &str = r#"
id = "t"
title = "test grid"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [4, 6]
model = ["modern_hopfield", "pcn"]
hidden = [16]

[recall]
corruption = ["noise:0.05", "top:0.5"]
threshold_noise = 0.005
threshold_mask = 0.001
keep_images = 2

[modern_hopfield]
beta = 50.0

[pcn]
learning = { max_epochs = 3 }
recall = { steps = 5, iterations = 1 }

[profile.quick]
"#;

pub fn fixture_data(dir: &Path) {
    cifar_records(dir, 12);
}

/// `n` generated CIFAR-10 training records (label, then 3072 bytes) in `cifar-10-subset/`.
pub fn cifar_records(dir: &Path, n: u64) {
    let sub = dir.join("cifar-10-subset");
    std::fs::create_dir_all(&sub).unwrap();
    let mut recs = Vec::with_capacity(n as usize * 3073);
    for r in 0..n {
        recs.push((r % 10) as u8);
        recs.extend((0..3072u64).map(|i| ((i * (r + 3) * 7919) % 251) as u8));
    }
    std::fs::write(sub.join(format!("train_0000-{:04}.bin", n - 1)), recs).unwrap();
}

pub fn options(out: &Path, data: &Path) -> RunOptions {
    RunOptions {
        kernel: Default::default(),
        out: out.to_path_buf(),
        shard: None,
        only: Vec::new(),
        force: false,
        data: DataDirs {
            data_dir: Some(data.to_path_buf()),
            cache_dir: data.join("cache"),
            mirror: None,
        },
        progress: false,
        offline: true,
        device: candle_core::Device::Cpu,
        checkpoint_every: None,
        keep_trained: false,
        stop: None,
    }
}
