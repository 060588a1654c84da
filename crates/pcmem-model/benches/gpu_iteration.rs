//! One PCN training iteration (T = 50 inference steps + one weight update, full batch) on one
//! GPU at five sizes, in f32 and with TF32 matmuls allowed, with the default kernel (`fused`,
//! which on a GPU is `candle_gram`: layer 1 in Gram form where that saves work) and the direct
//! candle operations (`candle`), each beside the f32 / TF32 rate of an 8192^2 matmul measured in
//! the same run. GFLOP/s count the direct form's products (the formula below) for both kernels,
//! so the Gram form's figure is an effective rate, not the hardware's. Writes the numbers to
//! `$PCMEM_BENCH_OUT/gpu_iteration.json` (default `target/bench-peers/`), which
//! `ci/bench_peers.py --gpu` sets beside PCX timed on the same GPU in the same run (no peer time
//! is typed into this file).
//!
//! ```text
//! bash ci/cuda-build.sh bench -p pcmem-model --bench gpu_iteration
//! ```
//! Without the `cuda` feature or a GPU it prints that it was skipped and measures nothing;
//! with `PCMEM_REQUIRE_GPU=1` a GPU that does not open is an error instead.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use criterion::{criterion_group, Criterion};
use pcmem_model::{GradientScale, Kernel, Optimizer, PcnConfig};

/// (d, n, L, N): CIFAR-10, Tiny ImageNet (shallow and deep) and ImageNet shapes.
const SIZES: [(usize, usize, usize, usize); 5] = [
    (3072, 512, 2, 100),
    (3072, 2048, 2, 1000),
    (12288, 2048, 2, 500),
    (12288, 2048, 10, 500),
    (150528, 8192, 2, 25),
];
const T: usize = 50;
const MM: usize = 8192;
/// The kernels timed, with their names in the table and the JSON.
const KERNELS: [(Kernel, &str); 2] = [(Kernel::Fused, "fused"), (Kernel::Candle, "candle")];

static TIMES: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn record(name: &str, secs: f64) {
    let mut t = TIMES.lock().unwrap();
    t.retain(|(n, _)| n != name);
    t.push((name.to_string(), secs));
}

/// Runs `f` `iters` times between two device synchronisations; records seconds per call.
fn timed_synced(dev: &Device, name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    dev.synchronize().unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    dev.synchronize().unwrap();
    let el = t.elapsed();
    record(name, el.as_secs_f64() / iters as f64);
    el
}

fn flops((d, n, layers, rows): (usize, usize, usize, usize)) -> f64 {
    let pair: f64 = (1..=layers)
        .map(|l| (rows * if l == 1 { d } else { n } * n) as f64)
        .sum();
    (T as f64 + 1.0) * 4.0 * pair + 2.0 * pair
}

fn key(size: (usize, usize, usize, usize), tf32: bool, kernel: &str) -> String {
    let (d, n, l, r) = size;
    format!(
        "gpu_train_iter_d{d}_n{n}_L{l}_N{r}_{}_{kernel}",
        if tf32 { "tf32" } else { "f32" }
    )
}

fn bench(c: &mut Criterion) {
    let dev = match pcmem_model::device::parse("cuda:0") {
        Ok(d) => d,
        Err(e) => {
            assert!(
                std::env::var_os("PCMEM_REQUIRE_GPU").is_none(),
                "PCMEM_REQUIRE_GPU is set but no GPU opened: {e}"
            );
            println!("gpu_iteration SKIPPED: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("gpu");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for tf32 in [false, true] {
        candle_core::cuda::set_gemm_reduced_precision_f32(tf32);
        let a = Tensor::randn(0f32, 1f32, (MM, MM), &dev).unwrap();
        let b = Tensor::randn(0f32, 1f32, (MM, MM), &dev).unwrap();
        let name = format!("matmul_{MM}_{}", if tf32 { "tf32" } else { "f32" });
        g.bench_function(&name, |bch| {
            bch.iter_custom(|iters| {
                timed_synced(&dev, &name, iters, || drop(a.matmul(&b).unwrap()))
            })
        });
        for size in SIZES {
            let (d, n, layers, rows) = size;
            let mut cfg = PcnConfig::new(d, n);
            cfg.layers = layers;
            cfg.inference.steps = T;
            cfg.learning.optimizer = Optimizer::adam();
            cfg.learning.gradient_scale = GradientScale::Mean;
            cfg.learning.alpha = 1e-6;
            let data = Tensor::rand(0f32, 1f32, (rows, d), &dev).unwrap();
            for (kernel, kname) in KERNELS {
                let mut pcn = cfg.init_with_kernel(&dev, kernel).unwrap();
                let name = key(size, tf32, kname);
                g.bench_function(&name, |bch| {
                    bch.iter_custom(|iters| {
                        timed_synced(&dev, &name, iters, || drop(pcn.train_step(&data).unwrap()))
                    })
                });
            }
        }
    }
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    g.finish();
}

fn summary() {
    let times = TIMES.lock().unwrap();
    let get = |n: &str| times.iter().find(|(k, _)| k == n).map(|(_, t)| *t);
    let rate = |n: &str| get(n).map(|t| 2.0 * (MM as f64).powi(3) / t / 1e9);
    let (Some(r32), Some(rtf)) = (
        rate(&format!("matmul_{MM}_f32")),
        rate(&format!("matmul_{MM}_tf32")),
    ) else {
        return;
    };
    println!("\nreference, same run: {MM}^2 matmul f32 {r32:.0} GFLOP/s, TF32 {rtf:.0} GFLOP/s");
    println!(
        "| d, n, L, N | precision | kernel | s/iter | GFLOP/s (formula) | ratio to same-precision matmul |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for size in SIZES {
        for (tf32, (_, kname)) in [false, true]
            .into_iter()
            .flat_map(|p| KERNELS.map(|k| (p, k)))
        {
            let Some(t) = get(&key(size, tf32, kname)) else {
                continue;
            };
            let gf = flops(size) / t / 1e9;
            let reference = if tf32 { rtf } else { r32 };
            let (d, n, l, r) = size;
            let precision = if tf32 { "tf32" } else { "f32" };
            println!(
                "| {d}, {n}, {l}, {r} | {precision} | {kname} | {t:.4} | {gf:.0} | {:.2} |",
                gf / reference
            );
            rows.push(serde_json::json!({
                "d": d, "n": n, "layers": l, "rows": r, "precision": precision, "kernel": kname,
                "seconds": t, "gflops_formula": gf, "ratio_to_matmul": gf / reference,
            }));
        }
    }
    let dir = std::env::var_os("PCMEM_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-peers")
        });
    let json = serde_json::json!({
        "device": "cuda:0", "steps": T, "matmul_size": MM,
        "matmul_f32_gflops": r32, "matmul_tf32_gflops": rtf, "rows": rows,
    });
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("gpu_iteration.json"),
            serde_json::to_string_pretty(&json).unwrap(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", dir.join("gpu_iteration.json").display()),
        Err(e) => eprintln!("could not write {}: {e}", dir.display()),
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
