#![allow(missing_docs)] // criterion_group! generates undocumented items
//! One PCN training iteration (T = 50 inference steps + one weight update, full batch, f32) at
//! the sizes of DESIGN.md section 6, against a 2048^2 f32 matmul measured in the same run.
//!
//! `cargo bench -p pcmem-model --bench train_iteration` prints, after criterion's own output, a
//! table of seconds per iteration, GFLOP/s (flops = (T+1) * sum_l 4 N d_l d_{l+1} +
//! sum_l 2 N d_l d_{l+1}) and the ratio to the matmul rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion};
use pcmem_model::{Pcn, PcnConfig};

/// (d, n, L, N) and the peer timings from DESIGN.md section 6 (numpy, PCX), seconds/iteration.
const SIZES: [(usize, usize, usize, usize, f64, f64); 2] = [
    (3072, 512, 2, 100, 0.307, 0.245),
    (3072, 256, 2, 20, 0.043, 0.037),
];
const T: usize = 50;

static TIMES: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn record(name: &str, per_iter: f64) {
    let mut t = TIMES.lock().unwrap();
    t.retain(|(n, _)| n != name);
    t.push((name.to_string(), per_iter));
}

fn timed(name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let el = start.elapsed();
    // Keep the latest sample's mean; criterion's samples after warm-up are stable.
    record(name, el.as_secs_f64() / iters as f64);
    el
}

fn flops(d: usize, n: usize, layers: usize, rows: usize) -> f64 {
    let pair: f64 = (1..=layers)
        .map(|l| {
            let below = if l == 1 { d } else { n };
            (rows * below * n) as f64
        })
        .sum();
    (T as f64 + 1.0) * 4.0 * pair + 2.0 * pair
}

fn pcn_for(d: usize, n: usize, layers: usize) -> Pcn {
    let mut cfg = PcnConfig::new(d, n);
    cfg.layers = layers;
    cfg.inference.steps = T;
    cfg.learning.alpha = 1e-6;
    cfg.init(&Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let a = Tensor::randn(0f32, 1f32, (2048, 2048), &dev).unwrap();
    let b = Tensor::randn(0f32, 1f32, (2048, 2048), &dev).unwrap();
    g.bench_function("matmul_2048", |bch| {
        bch.iter_custom(|iters| timed("matmul_2048", iters, || drop(a.matmul(&b).unwrap())))
    });
    for (d, n, layers, rows, _, _) in SIZES {
        let name = format!("train_iter_d{d}_n{n}_L{layers}_N{rows}");
        let mut pcn = pcn_for(d, n, layers);
        let data = Tensor::rand(0f32, 1f32, (rows, d), &dev).unwrap();
        g.bench_function(&name, |bch| {
            bch.iter_custom(|iters| timed(&name, iters, || drop(pcn.train_step(&data).unwrap())))
        });
    }
    g.finish();
}

fn summary() {
    let times = TIMES.lock().unwrap();
    let get = |n: &str| times.iter().find(|(k, _)| k == n).map(|(_, t)| *t);
    let Some(mm) = get("matmul_2048") else { return };
    let peak = 2.0 * 2048f64.powi(3) / mm / 1e9;
    println!(
        "\nreference: 2048x2048 f32 matmul {:.4} s = {peak:.1} GFLOP/s (same run)",
        mm
    );
    println!("| d, n, L, N | s/iter | GFLOP/s | ratio to matmul | numpy s | PCX s |");
    println!("|---|---|---|---|---|---|");
    for (d, n, layers, rows, np, pcx) in SIZES {
        let name = format!("train_iter_d{d}_n{n}_L{layers}_N{rows}");
        if let Some(t) = get(&name) {
            let gf = flops(d, n, layers, rows) / t / 1e9;
            println!(
                "| {d}, {n}, {layers}, {rows} | {t:.4} | {gf:.1} | {:.2} | {np} | {pcx} |",
                gf / peak
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
