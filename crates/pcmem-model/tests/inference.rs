//! Inference lowers the energy (for a small gamma), the tolerance stops it early, and partial
//! recall leaves the known pixels untouched.

mod common;

use candle_core::{DType, Device, Tensor};
use pcmem_model::{Activation, Kernel, PcnConfig, ValueInit, ValueNodes};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn energy_does_not_increase_during_inference_for_small_gamma() {
    for activation in [Activation::Relu, Activation::Tanh, Activation::Identity] {
        for layers in [1, 2, 4] {
            let mut cfg = PcnConfig::new(40, 16);
            cfg.layers = layers;
            cfg.activation = activation;
            cfg.value_init = ValueInit::Random { std: 0.5 };
            cfg.inference.gamma = 0.01;
            cfg.inference.steps = 1;
            let pcn = cfg.init(&Device::Cpu).unwrap();
            let v: Vec<f32> = (0..8 * 40)
                .map(|i| ((i * 7919) % 997) as f32 / 997.0)
                .collect();
            let data = Tensor::from_vec(v, (8, 40), &Device::Cpu).unwrap();
            let mut rng = rand::SeedableRng::seed_from_u64(1);
            let mut x = pcn.init_values(&data, &mut rng).unwrap();
            let mut prev = pcn.energy(&x).unwrap();
            let start = prev;
            for step in 0..200 {
                let info = pcn.infer(&mut x).unwrap();
                assert!(
                    info.energy <= prev * (1.0 + 1e-6),
                    "{activation:?} L={layers}: energy rose at step {step}: {prev} -> {}",
                    info.energy
                );
                prev = info.energy;
            }
            assert!(
                prev < start,
                "{activation:?} L={layers}: inference did not lower the energy"
            );
        }
    }
}

#[test]
fn tolerance_stops_inference_once_converged() {
    let mut cfg = PcnConfig::new(30, 10);
    cfg.inference.gamma = 0.05;
    cfg.inference.steps = 100_000;
    // A relative change of 1e-6 per step: well above the rounding of an f32 energy, so that
    // the stop does not hang on the order of a sum. (At 1e-7 and unseeded data a relaxation
    // could wander at that level for all 100,000 steps.)
    cfg.inference.tolerance = Some(1e-6);
    let pcn = cfg.init(&Device::Cpu).unwrap();
    let data = common::uniform(4, 30, 0);
    let mut rng = rand::SeedableRng::seed_from_u64(1);
    let mut x = pcn.init_values(&data, &mut rng).unwrap();
    let info = pcn.infer(&mut x).unwrap();
    assert!(info.converged, "did not converge: {info:?}");
    assert!(info.steps > 10 && info.steps < 100_000, "{info:?}");
}

#[test]
fn partial_recall_keeps_known_pixels_and_fills_the_rest() {
    let (images, _) = common::images(2);
    let pcn = PcnConfig::new(3072, 32).init(&Device::Cpu).unwrap();
    let mask = common::top_rows_mask(8);
    let cue = images.broadcast_mul(&mask).unwrap();
    let (out, info) = pcn.recall_partial(&cue, &mask).unwrap();
    assert_eq!(info.runs.len(), 1);
    let known_before = cue.broadcast_mul(&mask).unwrap();
    let known_after = out.broadcast_mul(&mask).unwrap();
    let diff = common::max_abs_diff(&known_after, &known_before);
    assert_eq!(diff, 0.0, "known pixels changed during partial recall");
    let free = mask.affine(-1.0, 1.0).unwrap();
    let moved: f32 = out
        .broadcast_mul(&free)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(moved > 0.0, "unknown pixels never moved");
}

#[test]
fn free_pixel_rate_one_sets_unknown_pixels_to_their_prediction() {
    let (images, _) = common::images(3);
    let mask = common::top_rows_mask(16);
    let cue = images.broadcast_mul(&mask).unwrap();
    for kernel in [Kernel::Candle, Kernel::Fused] {
        let mut cfg = PcnConfig::new(3072, 24);
        // Start at the top-down prediction so that mu_0 is not zero.
        cfg.value_init = ValueInit::Forward;
        // Latents that barely move: the free pixels must sit exactly on the initial prediction.
        cfg.recall.steps = 1;
        cfg.recall.gamma = 1e-9;
        cfg.recall.free_pixel_rate = Some(1.0);
        let mut pcn = cfg.init_with_kernel(&Device::Cpu, kernel).unwrap();
        // A non-zero memory vector, so that the top-down prediction is not zero.
        let b = Tensor::ones((1, 24), DType::F32, &Device::Cpu).unwrap();
        pcn.set_parameters(pcn.weights().to_vec(), Some(b)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let x = pcn.init_values(&cue, &mut rng).unwrap();
        let eps0 = pcn.gradients(&x).unwrap().values.swap_remove(0);
        let mu0 = (&cue - &eps0).unwrap();
        let (out, _) = pcn.recall_partial(&cue, &mask).unwrap();
        let free = mask.affine(-1.0, 1.0).unwrap();
        let expected =
            (cue.broadcast_mul(&mask).unwrap() + mu0.broadcast_mul(&free).unwrap()).unwrap();
        let err = common::max_abs_diff(&out, &expected);
        let scale: f32 = mu0.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(
            scale > 1e-3,
            "{kernel:?}: prediction is zero, test is vacuous"
        );
        assert!(err < 1e-5 * scale.max(1.0), "{kernel:?}: max error {err}");

        // With the free pixels on their prediction, inference is gradient descent on the energy
        // minimised over them: it falls step after step for a small gamma.
        let mut energies = Vec::new();
        for steps in [1, 10, 100] {
            pcn.recall_config_mut().gamma = 0.01;
            pcn.recall_config_mut().steps = steps;
            let (_, info) = pcn.recall_partial(&cue, &mask).unwrap();
            energies.push(info.runs[0].energy);
        }
        assert!(
            energies.windows(2).all(|w| w[1] < w[0]),
            "{kernel:?}: energy did not fall: {energies:?}"
        );
    }
}

#[test]
fn forward_value_init_starts_at_the_top_down_prediction() {
    let mut cfg = PcnConfig::new(12, 6);
    cfg.layers = 3;
    cfg.value_init = ValueInit::Forward;
    let pcn = cfg.init(&Device::Cpu).unwrap();
    let data = common::uniform(3, 12, 0);
    let mut rng = rand::SeedableRng::seed_from_u64(1);
    let ValueNodes(x) = pcn.init_values(&data, &mut rng).unwrap();
    // With x_L = b = 0 and ReLU, every hidden prediction is exactly zero: all hidden errors vanish.
    for l in 1..=3 {
        let s: f32 = x[l].abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(s, 0.0, "layer {l}");
    }
    let g = pcn.gradients(&ValueNodes(x)).unwrap();
    let top: f32 = g.values[3]
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(top, 0.0);
}
