//! Test images: real CIFAR-10 records from the data directory when `PCMEM_DATA_DIR` is set,
//! otherwise generated structured images (smooth colour patterns), said so on stderr.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// Where the images came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Records of `cifar-10-subset/train_0000-3999.bin` under `PCMEM_DATA_DIR`.
    Cifar,
    /// Generated smooth patterns.
    Generated,
}

/// `PCMEM_DATA_DIR`, a relative path taken from the workspace root.
fn data_dir_env() -> Option<std::path::PathBuf> {
    pcmem_data::data_dir_env_from(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `n` images of 32x32x3 in [0, 1], flattened channel-major as CIFAR stores them (R, G, B planes).
pub fn images(n: usize) -> (Tensor, Source) {
    if let Some(dir) = data_dir_env() {
        let path = dir.join("cifar-10-subset/train_0000-3999.bin");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "PCMEM_DATA_DIR is set but {} is unreadable: {e}",
                path.display()
            )
        });
        assert!(
            bytes.len() >= n * 3073,
            "{} holds fewer than {n} records",
            path.display()
        );
        let mut data = Vec::with_capacity(n * 3072);
        for r in 0..n {
            let rec = &bytes[r * 3073..(r + 1) * 3073];
            data.extend(rec[1..].iter().map(|&b| b as f32 / 255.0));
        }
        return (
            Tensor::from_vec(data, (n, 3072), &Device::Cpu).unwrap(),
            Source::Cifar,
        );
    }
    eprintln!(
        "PCMEM_DATA_DIR not set: using {n} generated structured 32x32x3 images instead of CIFAR-10"
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut data = Vec::with_capacity(n * 3072);
    for _ in 0..n {
        let waves: Vec<(f32, f32, f32, f32)> = (0..9)
            .map(|_| {
                (
                    rng.gen_range(0.5..4.0),
                    rng.gen_range(0.5..4.0),
                    rng.gen_range(0.0..6.3),
                    rng.gen_range(0.3..1.0),
                )
            })
            .collect();
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let (fx, fy, ph, amp) = waves[c * 3 + (x + y) % 3];
                    let (u, v) = (x as f32 / 32.0, y as f32 / 32.0);
                    let s = amp * (std::f32::consts::TAU * (fx * u + fy * v) + ph).sin();
                    data.push(0.5 + 0.45 * s);
                }
            }
        }
    }
    (
        Tensor::from_vec(data, (n, 3072), &Device::Cpu).unwrap(),
        Source::Generated,
    )
}

/// Known-pixel mask keeping the top `rows_kept` of 32 rows in every channel, as `(1, 3072)`.
pub fn top_rows_mask(rows_kept: usize) -> Tensor {
    let mut m = vec![0f32; 3072];
    for c in 0..3 {
        for y in 0..rows_kept {
            for x in 0..32 {
                m[c * 1024 + y * 32 + x] = 1.0;
            }
        }
    }
    Tensor::from_vec(m, (1, 3072), &Device::Cpu).unwrap()
}

/// A `rows` x `cols` tensor of seeded uniform values in [0, 1): the same on every run (candle's
/// `Tensor::rand` draws from an unseeded generator).
pub fn uniform(rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rand::Rng::gen::<f32>(&mut rng))
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

/// A tensor of the given shape of seeded standard normal values: the same on every run (candle's
/// `Tensor::randn` draws from an unseeded generator).
pub fn gaussian(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

/// Adds seeded Gaussian noise of the given variance.
pub fn noisy(images: &Tensor, variance: f64, seed: u64) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0.0f32, variance.sqrt() as f32).unwrap();
    let noise: Vec<f32> = (0..images.elem_count())
        .map(|_| rand_distr::Distribution::sample(&normal, &mut rng))
        .collect();
    (images + Tensor::from_vec(noise, images.dims(), &Device::Cpu).unwrap()).unwrap()
}

/// Number of rows whose MSE against `truth` is below `threshold`, and the per-row MSEs.
pub fn count_recalled(recalled: &Tensor, truth: &Tensor, threshold: f32) -> (usize, Vec<f32>) {
    let mse = pcmem_model::per_row_mse(recalled, truth).unwrap();
    (mse.iter().filter(|&&m| m < threshold).count(), mse)
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Deterministic scrambled values in [0, 1), `(rows, d)`, varied by `salt`: data for tests
/// whose failures must reproduce.
pub fn scrambled(rows: usize, d: usize, salt: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * d)
        .map(|i| (((i + salt) * 7919) % 997) as f32 / 997.0)
        .collect();
    Tensor::from_vec(v, (rows, d), &Device::Cpu).unwrap()
}

/// The bit patterns of a tensor's values, for exact comparisons.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}
