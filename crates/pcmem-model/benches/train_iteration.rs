//! One PCN training iteration (T = 50 inference steps + one weight update, full batch, f32, CPU)
//! at the two CIFAR-10 sizes of the peers' measurements, for each kernel, against a 2048^2 f32 matmul measured in
//! the same run.
//!
//! `cargo bench -p pcmem-model --bench train_iteration` prints, after criterion's own output, a
//! table of seconds per iteration, GFLOP/s by the formula
//! (flops = (T+1) * sum_l 4 N d_l d_{l+1} + sum_l 2 N d_l d_{l+1}), the ratio of that rate to
//! the matmul rate, and writes the same numbers to `target/bench-peers/train_iteration.json`,
//! which `ci/bench-peers.sh` sets beside PCX's times measured in the same run (no peer time is
//! a constant here). With `PCMEM_BENCH_DEEP=1` it also times the deep shape (d = 12288,
//! n = 2048, L = 10, N = 500) outside criterion: one warm-up and two iterations per kernel.
//! The `fused` kernel uses the Gram identity and executes fewer flops than the formula
//! counts, so its rate is an effective one; `fused_direct` executes exactly the formula's
//! products. The row `products_only` times those products alone, as bare `gemm` calls in the
//! direct kernel's layouts, in the same run; the last column divides its time by each
//! kernel's (1.0 = the kernel costs nothing beyond its products).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion};
use pcmem_model::products::{sgemm, sgemm_strided};
use pcmem_model::{Kernel, Pcn, PcnConfig};

/// (d, n, L, N) timed by criterion: the two CIFAR-10 sizes.
const SIZES: [(usize, usize, usize, usize); 2] = [(3072, 512, 2, 100), (3072, 256, 2, 20)];
/// The deep shape, timed only with `PCMEM_BENCH_DEEP=1`.
const DEEP: (usize, usize, usize, usize) = (12288, 2048, 10, 500);
const T: usize = 50;
/// The direct kernel's matrix products alone, as bare `gemm` calls.
const PRODUCTS: &str = "products_only";
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

/// Flops of one iteration by the formula `(T+1) * sum_l 4 N d_l d_{l+1} + sum_l 2 N d_l d_{l+1}`.
fn flops(d: usize, n: usize, layers: usize, rows: usize) -> f64 {
    let pair: f64 = (1..=layers)
        .map(|l| (rows * if l == 1 { d } else { n } * n) as f64)
        .sum();
    (T as f64 + 1.0) * 4.0 * pair + 2.0 * pair
}

fn pcn_for(kernel: Kernel, d: usize, n: usize, layers: usize) -> Pcn {
    let mut cfg = PcnConfig::new(d, n);
    cfg.layers = layers;
    cfg.inference.steps = T;
    cfg.learning.alpha = 1e-6;
    cfg.init_with_kernel(&Device::Cpu, kernel).unwrap()
}

/// Operands of the bare matrix products of one direct-kernel iteration.
struct Products {
    dims: Vec<usize>,
    rows: usize,
    /// `W_l` (`d_{l-1} x d_l`) and its transposed copy, per layer.
    w: Vec<(Vec<f32>, Vec<f32>)>,
    /// One `rows x d_l` operand and one result buffer per layer.
    x: Vec<Vec<f32>>,
    out: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
}

impl Products {
    fn new(d: usize, n: usize, layers: usize, rows: usize) -> Self {
        let mut dims = vec![d];
        dims.extend(std::iter::repeat_n(n, layers));
        let fill = |len: usize, m: usize| (0..len).map(|i| (i % m) as f32 / m as f32).collect();
        let w = (1..=layers)
            .map(|l| {
                (
                    fill(dims[l - 1] * dims[l], 89),
                    fill(dims[l - 1] * dims[l], 83),
                )
            })
            .collect();
        Self {
            x: dims.iter().map(|&dl| fill(rows * dl, 97)).collect(),
            out: dims.iter().map(|&dl| vec![0.0; rows * dl]).collect(),
            dw: (1..=layers)
                .map(|l| vec![0.0; dims[l - 1] * dims[l]])
                .collect(),
            dims,
            rows,
            w,
        }
    }

    /// The products the direct kernel makes in one iteration, in its layouts: per step and
    /// layer the prediction from the transposed weights and the bottom-up product, T + 1
    /// times, then one weight gradient per layer.
    fn iteration(&mut self) {
        let rows = self.rows;
        for _ in 0..=T {
            for l in 1..self.dims.len() {
                let (dl, db) = (self.dims[l], self.dims[l - 1]);
                let (w, wt) = &self.w[l - 1];
                sgemm(&mut self.out[l - 1], &self.x[l], wt, (rows, dl, db));
                sgemm(&mut self.out[l], &self.x[l - 1], w, (rows, db, dl));
            }
        }
        for l in 1..self.dims.len() {
            let (dl, db) = (self.dims[l], self.dims[l - 1]);
            sgemm_strided(
                &mut self.dw[l - 1],
                (db, rows, dl),
                (&self.x[l - 1], 1, db),
                (&self.x[l], dl, 1),
            );
        }
    }
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
    for (d, n, layers, rows) in SIZES {
        let data = Tensor::rand(0f32, 1f32, (rows, d), &dev).unwrap();
        let mut products = Products::new(d, n, layers, rows);
        let pname = name(PRODUCTS, d, n, layers, rows);
        g.bench_function(&pname, |bch| {
            bch.iter_custom(|iters| timed(&pname, iters, || products.iteration()))
        });
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

/// The deep shape: one warm-up and two timed iterations per direct-product kernel.
fn deep() {
    let (d, n, layers, rows) = DEEP;
    let data = Tensor::rand(0f32, 1f32, (rows, d), &Device::Cpu).unwrap();
    let mut products = Products::new(d, n, layers, rows);
    products.iteration();
    timed(&name(PRODUCTS, d, n, layers, rows), 2, || {
        products.iteration()
    });
    for (kernel, kname) in KERNELS.into_iter().filter(|k| k.0 != Kernel::Candle) {
        let mut pcn = pcn_for(kernel, d, n, layers);
        drop(pcn.train_step(&data).unwrap());
        timed(&name(kname, d, n, layers, rows), 2, || {
            drop(pcn.train_step(&data).unwrap())
        });
    }
}

fn summary() {
    let times = TIMES.lock().unwrap();
    let get = |n: &str| times.iter().find(|(k, _)| k == n).map(|(_, t)| *t);
    let Some(mm) = get("matmul_2048") else { return };
    let peak = 2.0 * 2048f64.powi(3) / mm / 1e9;
    println!("\nreference: 2048x2048 f32 matmul {mm:.4} s = {peak:.1} GFLOP/s (same run)");
    println!(
        "| d, n, L, N | kernel | s/iter | GFLOP/s (formula) | ratio to matmul | \
         ratio to its products |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows_json = Vec::new();
    for (d, n, layers, rows) in SIZES.into_iter().chain([DEEP]) {
        let bare = get(&name(PRODUCTS, d, n, layers, rows));
        let kernels = [PRODUCTS].into_iter().chain(KERNELS.map(|k| k.1));
        for kname in kernels {
            if let Some(t) = get(&name(kname, d, n, layers, rows)) {
                let gf = flops(d, n, layers, rows) / t / 1e9;
                // Bare products' time over the kernel's: 1 = no cost beyond the products.
                let of_products = bare.map(|b| b / t);
                let shown = of_products.map_or("-".into(), |r| format!("{r:.2}"));
                println!(
                    "| {d}, {n}, {layers}, {rows} | {kname} | {t:.4} | {gf:.1} | {:.2} | {shown} |",
                    gf / peak
                );
                rows_json.push(serde_json::json!({
                    "d": d, "n": n, "layers": layers, "rows": rows, "kernel": kname,
                    "seconds": t, "gflops_formula": gf, "ratio_to_matmul": gf / peak,
                    "ratio_to_products": of_products,
                }));
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-peers");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("train_iteration.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "matmul_2048_seconds": mm, "matmul_gflops": peak, "rows": rows_json,
        }))
        .unwrap(),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::var("PCMEM_BENCH_DEEP").is_ok_and(|v| v == "1") {
        deep();
    }
    summary();
}
