//! Momentum in the value-node dynamics and the precision of the known pixels in partial recall:
//! momentum keeps the fixed point of plain steps and gets there sooner; a known-pixel precision
//! P recalls the minimiser of the P-weighted energy (closed form on a linear network); the
//! `estimated` precision is the ratio of the training errors and survives a checkpoint.

mod common;

use candle_core::{Device, Tensor};
use pcmem_model::{
    Activation, KnownPrecision, MemoryPrior, PcnConfig, PcnError, ValueInit, ValueNodes,
};

fn relax(cfg: &PcnConfig, x0: &Tensor, momentum: f64, steps: usize) -> (ValueNodes, f64) {
    let mut c = cfg.clone();
    c.inference.momentum = momentum;
    c.inference.steps = steps;
    let pcn = c.init(&Device::Cpu).unwrap();
    let mut rng = rand::SeedableRng::seed_from_u64(4);
    let mut x = pcn.init_values(x0, &mut rng).unwrap();
    let info = pcn.infer(&mut x).unwrap();
    (x, info.energy)
}

#[test]
fn momentum_reaches_the_fixed_point_of_plain_steps_in_fewer_steps() {
    for activation in [Activation::Tanh, Activation::Identity] {
        let mut cfg = PcnConfig::new(30, 10);
        cfg.layers = 2;
        cfg.activation = activation;
        cfg.value_init = ValueInit::Random { std: 0.3 };
        cfg.inference.gamma = 0.002;
        let x0 = common::scrambled(4, 30, 1);
        let (plain, e_plain) = relax(&cfg, &x0, 0.0, 40_000);
        let (fast, e_fast) = relax(&cfg, &x0, 0.9, 2_000);
        let (short, _) = relax(&cfg, &x0, 0.0, 2_000);
        let gap = |a: &ValueNodes| {
            (1..=2)
                .map(|l| common::max_abs_diff(&a.0[l], &plain.0[l]))
                .fold(0.0f32, f32::max)
        };
        let (d_fast, d_short) = (gap(&fast), gap(&short));
        assert!(d_fast < 1e-3, "{activation:?}: momentum ends {d_fast} away");
        assert!(
            (e_fast - e_plain).abs() <= 1e-4 * e_plain.abs().max(1e-6),
            "{activation:?}: energy {e_fast} vs {e_plain}"
        );
        // Plain steps are still on their way after as many steps as momentum needed.
        assert!(
            d_short > 10.0 * d_fast,
            "{activation:?}: plain steps end {d_short} away, momentum {d_fast}"
        );
    }
}

/// Solves the 3x3 system `a x = b` by Gaussian elimination (a is symmetric positive definite).
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> [f64; 3] {
    for i in 0..3 {
        for r in i + 1..3 {
            let f = a[r][i] / a[i][i];
            for c in i..3 {
                a[r][c] -= f * a[i][c];
            }
            b[r] -= f * b[i];
        }
    }
    let mut x = [0.0; 3];
    for i in (0..3).rev() {
        let s: f64 = (i + 1..3).map(|c| a[i][c] * x[c]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    x
}

/// One linear layer with a learned memory vector b: partial recall minimises
/// `P/2 |c_K - W_K x|^2 + 1/2 |x - b|^2`, so `x = (P W_K^T W_K + I)^-1 (P W_K^T c_K + b)` and
/// the free pixels are `W_F x`. Checked for P = 1 and P = 10 (which differ), on the cut network
/// (one mask) and the full one (a mask per row), with and without momentum.
#[test]
fn known_pixel_precision_recalls_the_minimiser_of_the_weighted_energy() {
    let (d, n, known) = (6, 3, 4);
    let w: Vec<f64> = (0..d * n)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 10.0)
        .collect();
    let b = [0.3, -0.2, 0.5];
    let cue: Vec<f64> = (0..d).map(|i| 0.1 * i as f64 + 0.05).collect();
    let mut answers = Vec::new();
    for p in [1.0, 10.0] {
        let mut a = [[0.0; 3]; 3];
        let mut rhs = b;
        for i in 0..3 {
            a[i][i] = 1.0;
            for j in 0..3 {
                a[i][j] += p * (0..known).map(|k| w[k * n + i] * w[k * n + j]).sum::<f64>();
            }
            rhs[i] += p * (0..known).map(|k| w[k * n + i] * cue[k]).sum::<f64>();
        }
        let x = solve3(a, rhs);
        let want: Vec<f32> = (0..d)
            .map(|k| {
                if k < known {
                    cue[k]
                } else {
                    (0..n).map(|j| w[k * n + j] * x[j]).sum::<f64>()
                }
            } as f32)
            .collect();
        for momentum in [0.0, 0.8] {
            let mut cfg = PcnConfig::new(d, n);
            cfg.layers = 1;
            cfg.activation = Activation::Identity;
            cfg.memory_prior = MemoryPrior::Learned;
            cfg.recall.gamma = 0.1;
            cfg.recall.steps = 6000;
            cfg.recall.momentum = momentum;
            cfg.recall.free_pixel_rate = Some(1.0);
            cfg.recall.known_precision = KnownPrecision::Fixed { value: p };
            let mut pcn = cfg.init(&Device::Cpu).unwrap();
            let wt = Tensor::from_vec(w.iter().map(|&v| v as f32).collect(), (d, n), &Device::Cpu)
                .unwrap();
            let bt = Tensor::from_vec(b.iter().map(|&v| v as f32).collect(), (1, n), &Device::Cpu)
                .unwrap();
            pcn.set_parameters(vec![wt], Some(bt)).unwrap();
            let c = Tensor::from_vec(
                cue.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                (1, d),
                &Device::Cpu,
            )
            .unwrap();
            let mask: Vec<f32> = (0..d).map(|k| (k < known) as u8 as f32).collect();
            let mask = Tensor::from_vec(mask, (1, d), &Device::Cpu).unwrap();
            let c2 = Tensor::cat(&[&c, &c], 0).unwrap();
            let mask2 = Tensor::cat(&[&mask, &mask], 0).unwrap();
            let (one, _) = pcn.recall_partial(&c, &mask).unwrap();
            let (full, _) = pcn.recall_partial(&c2, &mask2).unwrap();
            let want_t = Tensor::from_vec(want.clone(), (1, d), &Device::Cpu).unwrap();
            let tag = format!("P={p} momentum {momentum}");
            assert!(
                common::max_abs_diff(&one, &want_t) < 1e-4,
                "{tag}: cut network {one} vs closed form {want_t}"
            );
            assert!(
                common::max_abs_diff(&full.narrow(0, 1, 1).unwrap(), &want_t) < 1e-4,
                "{tag}: full network {full} vs closed form {want_t}"
            );
        }
        answers.push(want);
    }
    let gap = answers[0]
        .iter()
        .zip(&answers[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap > 1e-2, "P = 1 and P = 10 give the same answer ({gap})");
}

#[test]
fn estimated_known_precision_is_the_ratio_of_training_errors_and_survives_a_checkpoint() {
    let mut cfg = PcnConfig::new(24, 8);
    cfg.learning.max_epochs = 30;
    cfg.inference.gamma = 0.05;
    cfg.recall.known_precision = KnownPrecision::Estimated;
    let untrained = cfg.init(&Device::Cpu).unwrap();
    let err = untrained.known_precision().unwrap_err();
    assert!(
        matches!(err, PcnError::Unavailable { field, .. } if field == "recall.known_precision"),
        "{err}"
    );
    assert!(err.to_string().contains("measure_errors"), "{err}");
    let x = common::scrambled(5, 24, 3);
    let mut pcn = cfg.init(&Device::Cpu).unwrap();
    pcn.train(&x).unwrap();
    let m = pcn
        .error_mse()
        .expect("training measures the errors")
        .to_vec();
    assert_eq!(m.len(), 3, "sensory, hidden and memory layer: {m:?}");
    assert!(m.iter().all(|&v| v > 0.0 && v.is_finite()), "{m:?}");
    let p = pcn.known_precision().unwrap();
    assert!(
        (p - (m[1] + m[2]) / 2.0 / m[0]).abs() <= 1e-9 * p,
        "{p} vs {m:?}"
    );
    // The measurement is the training inference at the final weights, repeatable.
    let again = pcn.clone().measure_errors(&x).unwrap();
    for (a, b) in again.iter().zip(&m) {
        assert!((a - b).abs() <= 1e-9 * b, "{again:?} vs {m:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    pcn.save(dir.path()).unwrap();
    let loaded = pcmem_model::Pcn::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.error_mse(), Some(&m[..]));
    assert_eq!(loaded.known_precision().unwrap(), p);
    let bad = {
        let mut c = cfg.clone();
        c.recall.known_precision = KnownPrecision::Fixed { value: 0.0 };
        c.validate().unwrap_err().to_string()
    };
    assert!(bad.contains("recall.known_precision.value"), "{bad}");
    let bad = {
        let mut c = cfg.clone();
        c.recall.momentum = 1.0;
        c.validate().unwrap_err().to_string()
    };
    assert!(bad.contains("recall.momentum"), "{bad}");
}
