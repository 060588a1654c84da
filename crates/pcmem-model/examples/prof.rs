use candle_core::{Device, Tensor};
use pcmem_model::PcnConfig;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (d, n, rows, iters) = (args[0], args[1], args[2], args[3]);
    let mut cfg = PcnConfig::new(d, n);
    cfg.learning.alpha = 1e-6;
    let mut pcn = cfg.init(&Device::Cpu).unwrap();
    let data = Tensor::rand(0f32, 1f32, (rows, d), &Device::Cpu).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..iters {
        pcn.train_step(&data).unwrap();
    }
    println!("{:.4} s/iter", t.elapsed().as_secs_f64() / iters as f64);
}
