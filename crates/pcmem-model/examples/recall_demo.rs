//! Trains a generative PCN on the first N CIFAR-10 training images of the data directory and
//! reports how many it recalls from Gaussian noise (variance 0.2, MSE < 0.005) and from the top
//! half of their rows (MSE < 0.001), next to the same network untrained.
//!
//! ```text
//! cargo run --release -p pcmem-model --example recall_demo -- --data-dir ../shared/data --n 10
//! ```
//! The data directory is `--data-dir`, else `PCMEM_DATA_DIR`; it must hold
//! `cifar-10-subset/train_0000-3999.bin` or the official `cifar-10-batches-bin/data_batch_1.bin`.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Parser;
use pcmem_model::{per_row_mse, GradientScale, Optimizer, Pcn, PcnConfig};

/// Train a PCN on CIFAR-10 images and test recall.
#[derive(Parser, Debug)]
struct Args {
    /// Data directory (default: $PCMEM_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of images to store.
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Maximum training epochs.
    #[arg(long, default_value_t = 800)]
    epochs: usize,
    /// Learning rate (Adam, batch-mean gradients).
    #[arg(long, default_value_t = 5e-4)]
    alpha: f64,
    /// Inference rate, in training and recall.
    #[arg(long, default_value_t = 0.03)]
    gamma: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn load_cifar(dir: &std::path::Path, n: usize) -> Result<Tensor, String> {
    let candidates = [
        dir.join("cifar-10-subset/train_0000-3999.bin"),
        dir.join("cifar-10-batches-bin/data_batch_1.bin"),
    ];
    let path = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
        format!(
            "no CIFAR-10 records under {}: expected one of {candidates:?}",
            dir.display()
        )
    })?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < n * 3073 {
        return Err(format!(
            "{} holds {} records, fewer than --n {n}",
            path.display(),
            bytes.len() / 3073
        ));
    }
    let data: Vec<f32> = (0..n)
        .flat_map(|r| {
            bytes[r * 3073 + 1..(r + 1) * 3073]
                .iter()
                .map(|&b| b as f32 / 255.0)
        })
        .collect();
    Tensor::from_vec(data, (n, 3072), &Device::Cpu).map_err(|e| e.to_string())
}

fn report(name: &str, pcn: &Pcn, images: &Tensor) -> Result<(), Box<dyn std::error::Error>> {
    let n = images.dims()[0];
    let noise = Tensor::randn(0f32, 0.2f32.sqrt(), images.dims(), &Device::Cpu)?;
    let t = Instant::now();
    let (out, _) = pcn.recall_noisy(&(images + noise)?)?;
    let mse = per_row_mse(&out, images)?;
    let k_noise = mse.iter().filter(|&&m| m < 0.005).count();
    let mut mask = vec![0f32; 3072];
    for c in 0..3 {
        mask[c * 1024..c * 1024 + 512].fill(1.0);
    }
    let mask = Tensor::from_vec(mask, (1, 3072), &Device::Cpu)?;
    let (out, _) = pcn.recall_partial(&images.broadcast_mul(&mask)?, &mask)?;
    let mse_half = per_row_mse(&out, images)?;
    let k_half = mse_half.iter().filter(|&&m| m < 0.001).count();
    println!(
        "{name:>9}: noise var 0.2 -> {k_noise}/{n} recalled (median MSE {:.2e}); top half -> {k_half}/{n} (median MSE {:.2e}) [{:.1} s]",
        median(&mse),
        median(&mse_half),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn median(v: &[f32]) -> f32 {
    let mut v = v.to_vec();
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("PCMEM_DATA_DIR").map(PathBuf::from))
        .ok_or(
            "no data directory: pass --data-dir DIR or set PCMEM_DATA_DIR (e.g. ../shared/data)",
        )?;
    let images = load_cifar(&dir, args.n)?;
    let mut cfg = PcnConfig::new(3072, args.hidden);
    cfg.seed = args.seed;
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.gradient_scale = GradientScale::Mean;
    cfg.learning.alpha = args.alpha;
    cfg.learning.max_epochs = args.epochs;
    cfg.learning.target_mse = Some(1e-4);
    cfg.inference.gamma = args.gamma;
    cfg.inference.steps = 60;
    cfg.recall.gamma = args.gamma;
    cfg.recall.steps = 1000;
    cfg.recall.iterations = 10;
    println!("config: {}", serde_json::to_string(&cfg)?);
    let mut pcn = cfg.init(&Device::Cpu)?;
    let untrained = pcn.clone();
    let t = Instant::now();
    let rep = pcn.train_with(&images, |e| {
        if e.epoch % 50 == 0 {
            println!(
                "epoch {:>5}  energy {:>12.4}  sensory MSE {:.3e}",
                e.epoch, e.energy, e.sensory_mse
            );
        }
    })?;
    let last = rep.epochs.last().expect("at least one epoch");
    println!(
        "trained {} epochs in {:.1} s, stop: {:?}, final sensory MSE {:.3e}",
        rep.epochs.len(),
        t.elapsed().as_secs_f64(),
        rep.stop,
        last.sensory_mse
    );
    report("trained", &pcn, &images)?;
    report("untrained", &untrained, &images)?;
    Ok(())
}
