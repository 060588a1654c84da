//! A small PCN trained on a handful of real images recalls every one of them from Gaussian
//! noise (variance 0.2, MSE < 0.005, the paper's Sec. 3 criterion) and from the top half of
//! their rows (MSE < 0.001, Sec. 4); the same network untrained recalls none, so the test can fail.
//! Real CIFAR-10 images are used when `PCMEM_DATA_DIR` is set (CI sets it), generated structured
//! images otherwise.

mod common;

use candle_core::Device;
use pcmem_model::{GradientScale, Optimizer, PcnConfig};

#[test]
fn trained_pcn_recalls_a_handful_of_images_from_noise_and_from_half() {
    let n = 6;
    let (images, source) = common::images(n);
    let mut cfg = PcnConfig::new(3072, 64);
    cfg.seed = 3;
    // Recipe found by watching the training energy (see docs/recipe.md):
    // Adam on batch-mean gradients and an inference rate small enough for stable relaxation.
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.gradient_scale = GradientScale::Mean;
    cfg.learning.alpha = 5e-4;
    cfg.learning.max_epochs = 600;
    cfg.learning.target_mse = Some(3e-5);
    cfg.inference.gamma = 0.03;
    cfg.inference.steps = 60;
    cfg.recall.gamma = 0.03;
    cfg.recall.steps = 1000;
    cfg.recall.iterations = 10;
    let mut pcn = cfg.init(&Device::Cpu).unwrap();
    let untrained = pcn.clone();
    let report = pcn.train(&images).unwrap();
    let first = report.epochs.first().unwrap();
    let last = report.epochs.last().unwrap();
    eprintln!(
        "{source:?}: {} epochs, stop {:?}, energy {:.3} -> {:.3}, sensory mse {:.2e}",
        report.epochs.len(),
        report.stop,
        first.energy,
        last.energy,
        last.sensory_mse
    );
    assert!(
        last.energy < 0.01 * first.energy,
        "training did not lower the energy enough"
    );

    let cue_noise = common::noisy(&images, 0.2, 11);
    let mask = common::top_rows_mask(16);
    let cue_half = images.broadcast_mul(&mask).unwrap();
    for (name, model, expect_all) in [("trained", &pcn, true), ("untrained", &untrained, false)] {
        let (out, info) = model.recall_noisy(&cue_noise).unwrap();
        assert_eq!(info.runs.len(), 10);
        let (k_noise, mse_noise) = common::count_recalled(&out, &images, 0.005);
        let (out, _) = model.recall_partial(&cue_half, &mask).unwrap();
        let (k_half, mse_half) = common::count_recalled(&out, &images, 0.001);
        eprintln!("{name}: noise {k_noise}/{n} {mse_noise:?}; top half {k_half}/{n} {mse_half:?}");
        if expect_all {
            assert_eq!(k_noise, n, "{name}: not every image recalled from noise");
            assert_eq!(
                k_half, n,
                "{name}: not every image recalled from the top half"
            );
        } else {
            assert_eq!(k_noise, 0, "{name} model should recall nothing from noise");
            assert_eq!(k_half, 0, "{name} model should recall nothing from half");
        }
    }
}
