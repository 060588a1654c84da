//! Plateau decays (`learning.plateau_decays`): at a plateau with decays left, training goes on
//! with the learning rate multiplied by `plateau_factor`, from the epoch after the plateau, in
//! both kernels; the plateau after the last decay stops training.

use candle_core::{Device, Tensor};
use pcmem_model::{Kernel, Optimizer, Pcn, PcnConfig, StopReason, TrainReport};

mod common;

/// Plain gradient steps on summed gradients, so that one epoch's weight change is exactly
/// `-rate * gradient`; a relative improvement of 0.5 per epoch counts as progress, so a plateau
/// comes within a few epochs.
fn config() -> PcnConfig {
    let mut cfg = PcnConfig::new(24, 12);
    cfg.layers = 2;
    cfg.learning.optimizer = Optimizer::Sgd;
    cfg.learning.alpha = 2e-3;
    cfg.learning.max_epochs = 40;
    cfg.learning.patience = 2;
    cfg.learning.min_rel_improvement = 0.5;
    cfg.inference.gamma = 0.1;
    cfg.inference.steps = 10;
    cfg
}

fn train(cfg: &PcnConfig, kernel: Kernel, data: &Tensor) -> (TrainReport, Pcn) {
    let mut pcn = cfg.init_with_kernel(&Device::Cpu, kernel).unwrap();
    let rep = pcn.train(data).unwrap();
    (rep, pcn)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_plateau_decay_multiplies_the_rate_from_the_next_epoch_and_training_goes_on() {
    let data = common::scrambled(6, 24, 5);
    for kernel in [Kernel::Candle, Kernel::Fused] {
        // Without decays the first plateau stops training, after epoch p.
        let (stopped, _) = train(&config(), kernel, &data);
        assert_eq!(stopped.stop, StopReason::Plateau, "{kernel:?}");
        assert!(stopped.decay_epochs.is_empty());
        let p = stopped.epochs.len() - 1;
        assert!(p >= 2 && p + 3 < 40, "{kernel:?}: plateau after epoch {p}");

        // With one decay (factor 0.25) training goes on past p and stops at the next plateau.
        let mut decaying = config();
        decaying.learning.plateau_decays = 1;
        decaying.learning.plateau_factor = 0.25;
        let (rep, _) = train(&decaying, kernel, &data);
        assert_eq!(rep.decay_epochs, vec![p], "{kernel:?}");
        assert!(rep.epochs.len() > p + 1, "{kernel:?}: training went on");
        assert_eq!(
            rep.stop,
            StopReason::Plateau,
            "{kernel:?}: the second plateau stops"
        );
        assert_eq!(
            &rep.epochs[..=p],
            &stopped.epochs[..],
            "{kernel:?}: same curve until p"
        );

        // The rate of epoch p + 1 is exactly the factor times alpha: the same gradient (same
        // weights after epoch p, same inference) moves the weights a quarter as far.
        let mut until_p = config();
        until_p.learning.patience = 1000;
        until_p.learning.max_epochs = p + 1;
        let mut full_rate = until_p.clone();
        full_rate.learning.max_epochs = p + 2;
        let mut decayed = decaying.clone();
        decayed.learning.max_epochs = p + 2;
        let (_, w_p) = train(&until_p, kernel, &data);
        let (_, w_full) = train(&full_rate, kernel, &data);
        let (rep_decayed, w_decayed) = train(&decayed, kernel, &data);
        assert_eq!(rep_decayed.decay_epochs, vec![p]);
        for l in 0..2 {
            let base = flat(&w_p.weights()[l]);
            let full = flat(&w_full.weights()[l]);
            let dec = flat(&w_decayed.weights()[l]);
            let mut moved = 0.0f64;
            for i in 0..base.len() {
                let (df, dd) = ((full[i] - base[i]) as f64, (dec[i] - base[i]) as f64);
                moved = moved.max(df.abs());
                assert!(
                    (dd - 0.25 * df).abs() <= 1e-6 + 1e-3 * df.abs(),
                    "{kernel:?} w{}[{i}]: decayed step {dd} vs full step {df}",
                    l + 1
                );
            }
            assert!(moved > 1e-5, "{kernel:?} w{}: the weights moved", l + 1);
        }
    }
}

#[test]
fn both_kernels_decay_at_the_same_epochs() {
    let data = common::scrambled(6, 24, 7);
    let mut cfg = config();
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.plateau_decays = 3;
    let (a, _) = train(&cfg, Kernel::Candle, &data);
    let (b, _) = train(&cfg, Kernel::Fused, &data);
    assert_eq!(a.decay_epochs.len(), 3, "{:?}", a.decay_epochs);
    assert_eq!(a.decay_epochs, b.decay_epochs);
    assert_eq!(a.epochs.len(), b.epochs.len());
}

#[test]
fn a_plateau_factor_outside_zero_one_is_refused_by_name() {
    for f in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let mut cfg = config();
        cfg.learning.plateau_factor = f;
        let e = cfg.init(&Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("learning.plateau_factor"), "{f}: {e}");
    }
}
