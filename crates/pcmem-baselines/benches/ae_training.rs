//! The autoencoder's training at two of the paper's sizes (CIFAR-10: d = 3072, N = 100,
//! n = 2048; Tiny ImageNet: d = 12288, N = 500, n = 512): one Adam step over all weights by
//! the CPU pass and by the reference candle operations (the same bits), three epochs of `fit`
//! with the gradients of the explicit CPU pass (`ae_cpu`) and of candle's autograd, and, for
//! the rate, the same run's f32 product of the first layer's shape.
//!
//! `cargo bench -p pcmem-baselines --bench ae_training`
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use pcmem_baselines::adam::Adam;
use pcmem_baselines::{Autoencoder, AutoencoderConfig};
use pcmem_model::AssociativeMemory;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    for (n_img, d, n) in [(100usize, 3072usize, 2048usize), (500, 12288, 512)] {
        let tag = format!("d{d}_n{n}_N{n_img}");
        let x = Tensor::rand(0f32, 1f32, (n_img, d), &dev).unwrap();
        // Adam on weights of the autoencoder's shapes, with one fixed set of gradients.
        let shapes = [(d, n), (1, n), (n, n), (1, n), (n, d), (1, d)];
        let vars: Vec<Var> = shapes
            .iter()
            .map(|&s| Var::from_tensor(&Tensor::randn(0f32, 0.02, s, &dev).unwrap()).unwrap())
            .collect();
        let loss = vars
            .iter()
            .map(|v| v.as_tensor().sqr().unwrap().sum_all().unwrap())
            .reduce(|a, b| (a + b).unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut adam = Adam::new(&vars, 1e-3).unwrap();
        g.bench_function(format!("adam_step_cpu_pass_{tag}"), |b| {
            b.iter(|| adam.step(&vars, &grads).unwrap())
        });
        g.bench_function(format!("adam_step_candle_ops_{tag}"), |b| {
            b.iter(|| adam.step_reference(&vars, &grads).unwrap())
        });
        for (how, autograd) in [("cpu_pass", false), ("autograd", true)] {
            g.bench_function(format!("autoencoder_fit_3_epochs_{how}_{tag}"), |b| {
                b.iter(|| {
                    let mut ae = Autoencoder::new(
                        AutoencoderConfig {
                            hidden_dim: n,
                            max_epochs: 3,
                            target_mse: 0.0,
                            ..Default::default()
                        },
                        d,
                    )
                    .unwrap()
                    .use_autograd(autograd);
                    ae.fit(&x).unwrap()
                })
            });
        }
        let w = Tensor::rand(0f32, 1f32, (d, n), &dev).unwrap();
        g.bench_function(format!("matmul_f32_{n_img}x{d}x{n}"), |b| {
            b.iter(|| x.matmul(&w).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
