//! The fused CPU kernel and the candle operations in Gram form against the candle-op reference implementation: same training energies,
//! same weights, same recall, for every activation, placement, prior, optimiser and depth.

use candle_core::{Device, Tensor};
use pcmem_model::{
    Activation, ActivationPlacement, Kernel, KnownPrecision, MemoryPrior, Optimizer, PcnConfig,
    ValueInit,
};

mod common;

fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let num = common::max_abs_diff(a, b);
    let den: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    num / den.max(1e-6)
}

#[test]
fn fused_kernel_matches_candle_reference() {
    let dev = Device::Cpu;
    // Deterministic data so that a failure reproduces.
    let data = common::scrambled(6, 48, 0);
    let mask = Tensor::from_vec(
        (0..48).map(|i| (i < 20) as u8 as f32).collect::<Vec<_>>(),
        (1, 48),
        &dev,
    )
    .unwrap();
    let mut cases = 0;
    for activation in [Activation::Relu, Activation::Tanh, Activation::Identity] {
        for placement in [
            ActivationPlacement::PreSynaptic,
            ActivationPlacement::PostSynaptic,
        ] {
            // Value nodes start random (seeded) or top-down from the learned prior (which the
            // fused kernel must read from where it keeps the parameters while training).
            let random = ValueInit::Random { std: 0.3 };
            for (prior, optimizer, layers, persistent, momentum, init) in [
                (MemoryPrior::Learned, Optimizer::Sgd, 2, false, 0.0, random),
                (MemoryPrior::Free, Optimizer::adam(), 3, true, 0.5, random),
                (
                    MemoryPrior::Learned,
                    Optimizer::adam(),
                    1,
                    false,
                    0.3,
                    random,
                ),
                (
                    MemoryPrior::Learned,
                    Optimizer::adam(),
                    2,
                    false,
                    0.0,
                    ValueInit::Forward,
                ),
                (
                    MemoryPrior::Learned,
                    Optimizer::Sgd,
                    1,
                    false,
                    0.0,
                    ValueInit::Forward,
                ),
            ] {
                let mut cfg = PcnConfig::new(48, 16);
                cfg.layers = layers;
                cfg.activation = activation;
                cfg.placement = placement;
                cfg.memory_prior = prior;
                cfg.learning.optimizer = optimizer;
                cfg.learning.alpha = if optimizer == Optimizer::Sgd {
                    2e-3
                } else {
                    1e-2
                };
                cfg.learning.max_epochs = 15;
                cfg.learning.batch_size = Some(4);
                cfg.learning.persistent_values = persistent;
                cfg.value_init = init;
                cfg.inference.gamma = 0.05;
                cfg.inference.steps = 20;
                cfg.inference.momentum = momentum;
                cfg.recall.steps = 40;
                cfg.recall.iterations = 3;
                cfg.recall.momentum = momentum;
                if persistent {
                    cfg.recall.free_pixel_rate = Some(1.0);
                }
                let tag = format!(
                    "{activation:?} {placement:?} {prior:?} {optimizer:?} L={layers} momentum {momentum} {init:?}"
                );
                let run = |kernel| {
                    let c = cfg.clone();
                    let mut pcn = c.init_with_kernel(&dev, kernel).unwrap();
                    let rep = pcn.train(&data).unwrap();
                    let (noisy, _) = pcn.recall_noisy(&data).unwrap();
                    let (partial, _) = pcn
                        .recall_partial(&data.broadcast_mul(&mask).unwrap(), &mask)
                        .unwrap();
                    (rep, pcn, noisy, partial)
                };
                let (rb, pb, nb, qb) = run(Kernel::Candle);
                for kernel in [Kernel::Fused, Kernel::FusedDirect, Kernel::CandleGram] {
                    let tag = format!("{tag} {kernel:?}");
                    let (ra, pa, na, qa) = run(kernel);
                    assert_eq!(ra.epochs.len(), rb.epochs.len(), "{tag}");
                    for (ea, eb) in ra.epochs.iter().zip(&rb.epochs) {
                        let r = (ea.energy - eb.energy).abs() / eb.energy.abs().max(1e-9);
                        assert!(
                            r < 1e-3,
                            "{tag}: epoch {} energy {} vs {}",
                            ea.epoch,
                            ea.energy,
                            eb.energy
                        );
                        let r = (ea.sensory_mse - eb.sensory_mse).abs() / eb.sensory_mse.max(1e-12);
                        assert!(
                            r < 1e-3,
                            "{tag}: epoch {} sensory mse {} vs {}",
                            ea.epoch,
                            ea.sensory_mse,
                            eb.sensory_mse
                        );
                    }
                    for (wa, wb) in pa.weights().iter().zip(pb.weights()) {
                        assert!(
                            rel_diff(wa, wb) < 1e-3,
                            "{tag}: weights differ by {}",
                            rel_diff(wa, wb)
                        );
                    }
                    if let (Some(a), Some(b)) = (pa.prior(), pb.prior()) {
                        assert!(rel_diff(a, b) < 1e-3, "{tag}: prior");
                    }
                    assert!(
                        rel_diff(&na, &nb) < 1e-3,
                        "{tag}: noisy recall differs by {}",
                        rel_diff(&na, &nb)
                    );
                    assert!(
                        rel_diff(&qa, &qb) < 1e-3,
                        "{tag}: partial recall differs by {}",
                        rel_diff(&qa, &qb)
                    );
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 30);
}

/// With `free_pixel_rate = 1` and one mask for all rows, partial recall runs on the network cut
/// to the known pixels; a per-row mask (the same mask repeated) takes the full-network path.
/// Both must give the same images and energy, for every kernel, placement and depth.
#[test]
fn known_pixel_network_recall_equals_full_network_recall() {
    let dev = Device::Cpu;
    let v: Vec<f32> = (0..5 * 40)
        .map(|i| ((i * 4099) % 787) as f32 / 787.0)
        .collect();
    let data = Tensor::from_vec(v, (5, 40), &dev).unwrap();
    let row: Vec<f32> = (0..40).map(|i| ((i % 3) != 0) as u8 as f32).collect();
    let one = Tensor::from_vec(row.clone(), (1, 40), &dev).unwrap();
    let every = one.broadcast_as((5, 40)).unwrap().contiguous().unwrap();
    for kernel in [
        Kernel::Candle,
        Kernel::Fused,
        Kernel::FusedDirect,
        Kernel::CandleGram,
    ] {
        for placement in [
            ActivationPlacement::PreSynaptic,
            ActivationPlacement::PostSynaptic,
        ] {
            for (layers, prior, precision, momentum) in [
                (1, MemoryPrior::Learned, 1.0, 0.0),
                (2, MemoryPrior::Free, 4.0, 0.5),
                (3, MemoryPrior::Learned, 0.5, 0.0),
            ] {
                let mut cfg = PcnConfig::new(40, 12);
                cfg.placement = placement;
                cfg.layers = layers;
                cfg.memory_prior = prior;
                cfg.learning.max_epochs = 20;
                cfg.inference.gamma = 0.05;
                cfg.recall.gamma = 0.05;
                cfg.recall.steps = 60;
                cfg.recall.free_pixel_rate = Some(1.0);
                cfg.recall.known_precision = KnownPrecision::Fixed { value: precision };
                cfg.recall.momentum = momentum;
                let mut pcn = cfg.init_with_kernel(&dev, kernel).unwrap();
                pcn.train(&data).unwrap();
                let cue = data.broadcast_mul(&one).unwrap();
                let (fast, fi) = pcn.recall_partial(&cue, &one).unwrap();
                let (full, gi) = pcn.recall_partial(&cue, &every).unwrap();
                let tag = format!(
                    "{kernel:?} {placement:?} L={layers} {prior:?} P={precision} momentum {momentum}"
                );
                assert!(
                    rel_diff(&fast, &full) < 1e-4,
                    "{tag}: {}",
                    rel_diff(&fast, &full)
                );
                let (ef, eg) = (fi.runs[0].energy, gi.runs[0].energy);
                assert!(
                    (ef - eg).abs() <= 1e-4 * eg.abs().max(1e-6),
                    "{tag}: energy {ef} vs {eg}"
                );
                assert_eq!(fi.runs[0].steps, gi.runs[0].steps, "{tag}");
                // The known pixels are the cue's; the recall moved the others.
                let known = fast.broadcast_mul(&one).unwrap();
                assert!(common::max_abs_diff(&known, &cue) < 1e-6, "{tag}");
                assert!(
                    common::max_abs_diff(&fast, &cue) > 1e-3,
                    "{tag}: nothing recalled"
                );
            }
        }
    }
}

/// Recall from noise runs, per application of F, the training inference by default and the
/// recall settings with `noise_relaxation = "recall"`, on every kernel.
#[test]
fn each_application_of_f_runs_the_selected_relaxation() {
    use pcmem_model::NoiseRelaxation;
    let dev = Device::Cpu;
    let cues = common::scrambled(5, 40, 11);
    for kernel in [
        Kernel::Fused,
        Kernel::FusedDirect,
        Kernel::Candle,
        Kernel::CandleGram,
    ] {
        let mut cfg = PcnConfig::new(40, 12);
        cfg.inference.gamma = 0.05;
        cfg.inference.steps = 7;
        cfg.recall.gamma = 0.2;
        cfg.recall.steps = 90;
        cfg.recall.iterations = 2;
        assert_eq!(cfg.recall.noise_relaxation, NoiseRelaxation::Training);
        let pcn = cfg.init_with_kernel(&dev, kernel).unwrap();
        let (by_training, info) = pcn.recall_noisy(&cues).unwrap();
        assert!(info.runs.iter().all(|r| r.steps == 7), "{kernel:?}");

        // The same map written with the recall settings equal to the training inference.
        let mut same = pcn.clone();
        let rc = same.recall_config_mut();
        rc.noise_relaxation = NoiseRelaxation::Recall;
        rc.gamma = 0.05;
        rc.steps = 7;
        let (by_recall_settings, _) = same.recall_noisy(&cues).unwrap();
        assert!(
            common::max_abs_diff(&by_training, &by_recall_settings) < 1e-6,
            "{kernel:?}"
        );

        // The long relaxation of the recall settings is a different map.
        let mut long = pcn.clone();
        long.recall_config_mut().noise_relaxation = NoiseRelaxation::Recall;
        let (by_long, info) = long.recall_noisy(&cues).unwrap();
        assert!(info.runs.iter().all(|r| r.steps == 90), "{kernel:?}");
        assert!(
            common::max_abs_diff(&by_training, &by_long) > 1e-3,
            "{kernel:?}: the recall settings were ignored"
        );
    }
}

#[test]
fn the_kernel_is_an_execution_choice_not_a_setting_of_the_model() {
    let dev = Device::Cpu;
    let mut cfg = PcnConfig::new(12, 6);
    cfg.learning.max_epochs = 2;
    cfg.learning.optimizer = Optimizer::adam();
    let json = serde_json::to_value(&cfg).unwrap();
    assert!(json.get("kernel").is_none(), "the kernel is not written");
    assert_eq!(cfg.init(&dev).unwrap().kernel(), Kernel::Fused);
    // A config written when the kernel was a setting still loads, and starts with it.
    let mut old = json.clone();
    old["kernel"] = "candle".into();
    let pcn = serde_json::from_value::<PcnConfig>(old)
        .unwrap()
        .init(&dev)
        .unwrap();
    assert_eq!(pcn.kernel(), Kernel::Candle);
    assert_eq!(serde_json::to_value(pcn.config()).unwrap(), json);
    // After training with Adam, its moments belong to the kernel family that trained.
    let data = Tensor::ones((3, 12), candle_core::DType::F32, &dev).unwrap();
    let mut pcn = cfg.init_with_kernel(&dev, Kernel::Fused).unwrap();
    pcn.train(&data).unwrap();
    assert!(pcn.set_kernel(Kernel::FusedDirect).is_ok());
    let err = pcn.set_kernel(Kernel::Candle).unwrap_err().to_string();
    assert!(err.contains("kernel") && err.contains("before"), "{err}");
}
