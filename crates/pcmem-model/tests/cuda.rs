//! The same numerical checks on a GPU as on the CPU: training energies, weights, recall from
//! noise and from a partial image agree to a relative 1e-3 (f32 on both; TF32 off), for both
//! activation placements and with momentum and the estimated known-pixel precision, for the
//! GPU's two kernels (`candle`, and `fused`, which there runs `candle_gram`: layer 1 in Gram
//! form), each against the CPU's candle reference. Runs when
//! the build has the `cuda` feature and a GPU opens; otherwise it says it was skipped, unless
//! `PCMEM_REQUIRE_GPU=1` is set (as on the GPU machine), where a GPU that does not open fails.

use candle_core::{Device, Tensor};
use pcmem_model::{
    ActivationPlacement, GradientScale, Kernel, KnownPrecision, Optimizer, Pcn, PcnConfig,
};

mod common;

fn gpu() -> Option<Device> {
    match pcmem_model::device::parse("cuda:0") {
        Ok(d) => {
            candle_core::cuda::set_gemm_reduced_precision_f32(false);
            Some(d)
        }
        Err(e) => {
            assert!(
                std::env::var_os("PCMEM_REQUIRE_GPU").is_none(),
                "PCMEM_REQUIRE_GPU is set but no GPU opened: {e}"
            );
            eprintln!("SKIPPED (no GPU): {e}");
            None
        }
    }
}

fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.to_device(&Device::Cpu).unwrap();
    let b = b.to_device(&Device::Cpu).unwrap();
    let den: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    common::max_abs_diff(&a, &b) / den.max(1e-6)
}

#[test]
fn cuda_training_and_recall_agree_with_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let (images, _) = common::images(12);
    let d = images.dims()[1];
    let mask: Vec<f32> = (0..d).map(|i| (i < d / 2) as u8 as f32).collect();
    let mask = Tensor::from_vec(mask, (1, d), &Device::Cpu).unwrap();
    for placement in [
        ActivationPlacement::PreSynaptic,
        ActivationPlacement::PostSynaptic,
    ] {
        let mut cfg = PcnConfig::new(d, 64);
        cfg.placement = placement;
        // Plain gradient steps: with Adam the comparison is ill-conditioned. On the CPU alone,
        // these settings with Adam (alpha 5e-4, 30 epochs) end with the candle and the fused
        // kernel's weights 0.77% apart post-synaptic (0.09% pre-synaptic), as the H200 did
        // against the CPU (0.77%): a ReLU unit near zero switches in one summation order and
        // not the other and Adam's normalised steps carry it on. With SGD the two CPU kernels
        // agree to 2e-7, so 1e-3 here separates a wrong CUDA path from rounding.
        cfg.learning.optimizer = Optimizer::Sgd;
        cfg.learning.gradient_scale = GradientScale::Mean;
        cfg.learning.alpha = 2e-3;
        cfg.learning.max_epochs = 30;
        cfg.inference.gamma = 0.03;
        cfg.inference.steps = 30;
        cfg.recall.gamma = 0.03;
        cfg.recall.steps = 200;
        cfg.recall.iterations = 3;
        cfg.recall.momentum = 0.5;
        cfg.recall.free_pixel_rate = Some(1.0);
        cfg.recall.known_precision = KnownPrecision::Estimated;
        let run = |dev: &Device, kernel: Kernel| -> (Vec<f64>, Pcn, Tensor, Tensor) {
            let mut pcn = cfg.init_with_kernel(dev, kernel).unwrap();
            let rep = pcn.train(&images).unwrap();
            let (noisy, _) = pcn.recall_noisy(&images).unwrap();
            let cue = images.broadcast_mul(&mask).unwrap();
            let (partial, _) = pcn.recall_partial(&cue, &mask).unwrap();
            (
                rep.epochs.iter().map(|e| e.energy).collect(),
                pcn,
                noisy,
                partial,
            )
        };
        let (ec, pc, nc, qc) = run(&Device::Cpu, Kernel::Candle);
        for kernel in [Kernel::Candle, Kernel::Fused] {
            let (eg, pg, ng, qg) = run(&gpu, kernel);
            let tag = format!("{placement:?} {kernel:?}");
            assert!(pg.device().is_cuda(), "{tag}: model not on the GPU");
            for (i, (a, b)) in eg.iter().zip(&ec).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-3 * b.abs(),
                    "{tag}: epoch {i} energy {a} (GPU) vs {b} (CPU)"
                );
            }
            for (wa, wb) in pg.weights().iter().zip(pc.weights()) {
                assert!(
                    rel(wa, wb) < 1e-3,
                    "{tag}: weights differ by {}",
                    rel(wa, wb)
                );
            }
            let (p_gpu, p_cpu) = (pg.known_precision().unwrap(), pc.known_precision().unwrap());
            assert!(
                (p_gpu - p_cpu).abs() <= 1e-3 * p_cpu,
                "{tag}: {p_gpu} vs {p_cpu}"
            );
            assert!(
                rel(&ng, &nc) < 1e-3,
                "{tag}: noisy recall {}",
                rel(&ng, &nc)
            );
            assert!(
                rel(&qg, &qc) < 1e-3,
                "{tag}: partial recall {}",
                rel(&qg, &qc)
            );
        }
    }
}
