//! One PCN training iteration (T = 50 inference steps + one weight update, full batch, f32, CPU)
//! at the sizes of DESIGN.md section 6, for each kernel, against a 2048^2 f32 matmul measured in
//! the same run.
//!
//! `cargo bench -p pcmem-model --bench train_iteration` prints, after criterion's own output, a
//! table of seconds per iteration, GFLOP/s by the formula of DESIGN.md section 6
//! (flops = (T+1) * sum_l 4 N d_l d_{l+1} + sum_l 2 N d_l d_{l+1}), the ratio of that rate to
//! the matmul rate, and the speed-up over the peers' times. The `fused` kernel uses the Gram
//! identity and executes fewer flops than the formula counts, so its rate is an effective one;
//! `fused_direct` executes exactly the formula's products.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion};
use pcmem_model::{Kernel, Pcn, PcnConfig};

/// (d, n, L, N) and the peer timings from DESIGN.md section 6 (numpy, PCX), seconds/iteration.
const SIZES: [(usize, usize, usize, usize, f64, f64); 2] = [
    (3072, 512, 2, 100, 0.307, 0.245),
    (3072, 256, 2, 20, 0.043, 0.037),
];
const T: usize = 50;
const KERNELS: [(Kernel, &str); 3] = [
    (Kernel::Fused, "fused"),
    (Kernel::FusedDirect, "fused_direct"),
    (Kernel::Candle, "candle"),
];

/// Mean seconds per iteration of the latest criterion sample of each benchmark.
static TIMES: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn timed(name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let el = start.elapsed();
    let mut t = TIMES.lock().unwrap();
    t.retain(|(n, _)| n != name);
    t.push((name.to_string(), el.as_secs_f64() / iters as f64));
    el
}

fn name(kernel: &str, d: usize, n: usize, layers: usize, rows: usize) -> String {
    format!("train_iter_{kernel}_d{d}_n{n}_L{layers}_N{rows}")
}

/// Flops of one iteration by the formula of DESIGN.md section 6.
fn flops(d: usize, n: usize, layers: usize, rows: usize) -> f64 {
    let pair: f64 = (1..=layers)
        .map(|l| (rows * if l == 1 { d } else { n } * n) as f64)
        .sum();
    (T as f64 + 1.0) * 4.0 * pair + 2.0 * pair
}

fn pcn_for(kernel: Kernel, d: usize, n: usize, layers: usize) -> Pcn {
    let mut cfg = PcnConfig::new(d, n);
    cfg.kernel = kernel;
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
        let data = Tensor::rand(0f32, 1f32, (rows, d), &dev).unwrap();
        for (kernel, kname) in KERNELS {
            let name = name(kname, d, n, layers, rows);
            let mut pcn = pcn_for(kernel, d, n, layers);
            g.bench_function(&name, |bch| {
                bch.iter_custom(|iters| {
                    timed(&name, iters, || drop(pcn.train_step(&data).unwrap()))
                })
            });
        }
    }
    g.finish();
}

fn summary() {
    let times = TIMES.lock().unwrap();
    let get = |n: &str| times.iter().find(|(k, _)| k == n).map(|(_, t)| *t);
    let Some(mm) = get("matmul_2048") else { return };
    let peak = 2.0 * 2048f64.powi(3) / mm / 1e9;
    println!("\nreference: 2048x2048 f32 matmul {mm:.4} s = {peak:.1} GFLOP/s (same run)");
    println!("| d, n, L, N | kernel | s/iter | GFLOP/s (formula) | ratio to matmul | speed-up vs numpy | speed-up vs PCX |");
    println!("|---|---|---|---|---|---|---|");
    for (d, n, layers, rows, np, pcx) in SIZES {
        for (_, kname) in KERNELS {
            if let Some(t) = get(&name(kname, d, n, layers, rows)) {
                let gf = flops(d, n, layers, rows) / t / 1e9;
                println!(
                    "| {d}, {n}, {layers}, {rows} | {kname} | {t:.4} | {gf:.1} | {:.2} | {:.2} ({np} s) | {:.2} ({pcx} s) |",
                    gf / peak,
                    np / t,
                    pcx / t
                );
            }
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
