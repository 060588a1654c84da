//! Recall of a whole batch in one call for every baseline at the paper's sizes: CIFAR-10
//! (d = 3072) with N = 100 and 500 stored images for the modern Hopfield network and the
//! autoencoder (10 iterations each, hidden width 2048), binarised MNIST (d = 784, N = 10) for
//! the classical network and the dense associative memory.
//!
//! `cargo bench -p pcmem-baselines --bench recall`
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use pcmem_baselines::{
    Autoencoder, AutoencoderConfig, ClassicalHopfield, DenseAm, HopfieldConfig, Interaction,
    ModernHopfield, ModernHopfieldConfig,
};
use pcmem_model::AssociativeMemory;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [100usize, 500] {
        let x = Tensor::rand(0f32, 1f32, (n, 3072), &dev).unwrap();
        let noisy = (&x + Tensor::randn(0f32, 0.447, (n, 3072), &dev).unwrap()).unwrap();
        let mut mhn = ModernHopfield::new(ModernHopfieldConfig {
            beta: 2.0,
            max_iterations: 10,
            tolerance: 0.0,
        })
        .unwrap();
        mhn.fit(&x).unwrap();
        g.bench_function(format!("modern_hopfield_recall_d3072_N{n}_10it"), |b| {
            b.iter(|| mhn.recall(&noisy, None).unwrap())
        });
        let ae = Autoencoder::new(
            AutoencoderConfig {
                hidden_dim: 2048,
                recall_iterations: 10,
                recall_tolerance: 0.0,
                ..Default::default()
            },
            3072,
        )
        .unwrap();
        g.bench_function(format!("autoencoder_recall_d3072_n2048_N{n}_10it"), |b| {
            b.iter(|| ae.recall(&noisy, None).unwrap())
        });
    }
    let signs = |t: Tensor| {
        t.ge(0.5f64)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .affine(2.0, -1.0)
            .unwrap()
    };
    let p = signs(Tensor::rand(0f32, 1f32, (10, 784), &dev).unwrap());
    let cues = signs(Tensor::rand(0f32, 1f32, (10, 784), &dev).unwrap());
    let mut hn = ClassicalHopfield::new(HopfieldConfig::default()).unwrap();
    hn.fit(&p).unwrap();
    g.bench_function("hopfield_recall_d784_N10", |b| {
        b.iter(|| hn.recall(&cues, None).unwrap())
    });
    let mut dam = DenseAm::new(
        HopfieldConfig::default(),
        Interaction::Polynomial { degree: 3 },
    )
    .unwrap();
    dam.fit(&p).unwrap();
    g.bench_function("dense_am_recall_d784_N10", |b| {
        b.iter(|| dam.recall(&cues, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
