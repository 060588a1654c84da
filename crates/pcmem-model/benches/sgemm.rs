//! f32 matrix products at the shapes the PCN multiplies, through the fused kernel's own
//! product ([`pcmem_model::products::sgemm`]), and candle's `matmul` at 2048^3.
//!
//! `cargo bench -p pcmem-model --bench sgemm` prints a table of seconds and GFLOP/s per shape
//! and writes it as JSON to `target/bench-peers/sgemm.json`, which `ci/bench-peers.sh` sets
//! beside numpy's times for the same shapes measured in the same run.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion};
use pcmem_model::products::sgemm;

/// (label, m, k, n): `C (m x n) = A (m x k) B (k x n)`. N images, d pixels, n hidden units.
pub const SHAPES: [(&str, usize, usize, usize); 8] = [
    ("square 2048", 2048, 2048, 2048),
    ("N x d -> n (N=100, d=3072, n=512)", 100, 3072, 512),
    ("N x n -> d (N=100, n=512, d=3072)", 100, 512, 3072),
    ("dW: d x N -> n (d=3072, N=100, n=512)", 3072, 100, 512),
    ("Gram: n x d -> n (n=512, d=3072)", 512, 3072, 512),
    ("N x n -> n (N=100, n=512)", 100, 512, 512),
    ("deep N x d -> n (N=500, d=12288, n=2048)", 500, 12288, 2048),
    ("deep N x n -> n (N=500, n=2048)", 500, 2048, 2048),
];

static TIMES: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn record(name: &str, iters: u64, el: Duration) -> Duration {
    let mut t = TIMES.lock().unwrap();
    t.retain(|(n, _)| n != name);
    t.push((name.to_string(), el.as_secs_f64() / iters as f64));
    el
}

fn bench(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for (label, m, k, n) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32) / 97.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 89) as f32) / 89.0).collect();
        let mut c = vec![0f32; m * n];
        g.bench_function(format!("sgemm_{m}x{k}x{n}"), |bch| {
            bch.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    sgemm(&mut c, &a, &b, (m, k, n));
                }
                record(label, iters, t.elapsed())
            })
        });
    }
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1f32, (2048, 2048), &dev).unwrap();
    let b = Tensor::randn(0f32, 1f32, (2048, 2048), &dev).unwrap();
    g.bench_function("candle_matmul_2048", |bch| {
        bch.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                drop(a.matmul(&b).unwrap());
            }
            record("candle matmul 2048", iters, t.elapsed())
        })
    });
    g.finish();
}

fn summary() {
    let times = TIMES.lock().unwrap();
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    println!(
        "\nsgemm (gemm crate, {} threads; CPU has AVX-512: {avx512})",
        rayon::current_num_threads()
    );
    println!("| shape (m x k x n) | s | GFLOP/s |\n|---|---|---|");
    let mut json = Vec::new();
    for (label, s) in times.iter() {
        let (m, k, n) = SHAPES
            .iter()
            .find(|x| x.0 == label)
            .map_or((2048, 2048, 2048), |x| (x.1, x.2, x.3));
        let gf = 2.0 * (m * k * n) as f64 / s / 1e9;
        println!("| {label}: {m} x {k} x {n} | {s:.5} | {gf:.1} |");
        json.push(
            serde_json::json!({"label": label, "m": m, "k": k, "n": n, "seconds": s, "gflops": gf}),
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-peers");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("sgemm.json"),
        serde_json::to_string_pretty(&serde_json::json!({"avx512": avx512, "shapes": json}))
            .unwrap(),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
