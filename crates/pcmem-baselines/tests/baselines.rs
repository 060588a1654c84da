//! Each baseline recalls what it should and fails where theory says it must, so these tests can
//! fail: modern Hopfield with a large beta recovers well-separated patterns exactly; the classical
//! network stores two orthogonal patterns but breaks beyond its capacity on correlated ones, where
//! a dense associative memory still recalls; the autoencoder overfits a handful of images and
//! recalls them from mild noise.

use candle_core::{Device, Tensor};
use pcmem_baselines::{
    Autoencoder, AutoencoderConfig, BaselineError, ClassicalHopfield, DenseAm, HopfieldConfig,
    Interaction, ModernHopfield, ModernHopfieldConfig, Update,
};
use pcmem_model::AssociativeMemory;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn tensor(rows: &[Vec<f32>]) -> Tensor {
    let d = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), d), &Device::Cpu).unwrap()
}

fn random_bipolar(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            (0..d)
                .map(|_| if r.gen_bool(0.5) { 1.0 } else { -1.0 })
                .collect()
        })
        .collect()
}

fn flip(rows: &[Vec<f32>], k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    rows.iter()
        .map(|p| {
            let mut q = p.clone();
            for _ in 0..k {
                let i = r.gen_range(0..q.len());
                q[i] = -q[i];
            }
            q
        })
        .collect()
}

/// Rows of `out` exactly equal to the stored rows.
fn exact(out: &Tensor, truth: &[Vec<f32>]) -> usize {
    out.to_vec2::<f32>()
        .unwrap()
        .iter()
        .zip(truth)
        .filter(|(a, b)| a == b)
        .count()
}

#[test]
fn modern_hopfield_with_large_beta_recovers_separated_patterns_exactly() {
    // Well separated: random +-1 patterns of equal norm (overlaps about 8 against 64 for itself).
    let mut r = rng(1);
    let stored = random_bipolar(6, 64, 1);
    let mut mhn = ModernHopfield::new(ModernHopfieldConfig {
        beta: 8.0,
        ..Default::default()
    })
    .unwrap();
    mhn.fit(&tensor(&stored)).unwrap();
    let noisy: Vec<Vec<f32>> = stored
        .iter()
        .map(|p| p.iter().map(|v| v + r.gen_range(-0.1..0.1)).collect())
        .collect();
    let out = mhn.recall(&tensor(&noisy), None).unwrap();
    assert!(out.converged);
    let err = (&out.images - tensor(&stored))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(err < 1e-4, "max error {err}");
    // Half of each pattern known, the rest zeroed: recovered with known pixels clamped.
    let mask = Tensor::from_vec(
        (0..64).map(|i| (i < 32) as u8 as f32).collect::<Vec<_>>(),
        (1, 64),
        &Device::Cpu,
    )
    .unwrap();
    let half = tensor(&stored).broadcast_mul(&mask).unwrap();
    let out = mhn.recall(&half, Some(&mask)).unwrap();
    let err = (&out.images - tensor(&stored))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(err < 1e-4, "partial: max error {err}");
    // With a tiny beta the update averages all patterns: no longer exact.
    let mut soft = ModernHopfield::new(ModernHopfieldConfig {
        beta: 0.01,
        ..Default::default()
    })
    .unwrap();
    soft.fit(&tensor(&stored)).unwrap();
    let out = soft.recall(&tensor(&noisy), None).unwrap();
    let err = (&out.images - tensor(&stored))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(err > 0.1, "beta=0.01 should blur, max error {err}");
    let e = mhn.energy(&tensor(&stored)).unwrap();
    assert_eq!(e.len(), 6);
}

#[test]
fn classical_hopfield_stores_two_orthogonal_patterns_and_fails_beyond_capacity() {
    let d = 64;
    let a: Vec<f32> = (0..d)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let b: Vec<f32> = (0..d).map(|i| if i < d / 2 { 1.0 } else { -1.0 }).collect();
    assert_eq!(a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>(), 0.0);
    for update in [Update::Asynchronous { seed: 3 }, Update::Synchronous] {
        let mut hn = ClassicalHopfield::new(HopfieldConfig {
            update,
            max_sweeps: 50,
        })
        .unwrap();
        hn.fit(&tensor(&[a.clone(), b.clone()])).unwrap();
        let out = hn
            .recall(&tensor(&flip(&[a.clone(), b.clone()], 6, 2)), None)
            .unwrap();
        assert_eq!(exact(&out.images, &[a.clone(), b.clone()]), 2, "{update:?}");
        assert!(hn.energy(&a) < hn.energy(&flip(std::slice::from_ref(&a), 6, 2)[0]));
    }
    // 20 correlated patterns (a common base with 10% of bits flipped) in 64 units: far beyond
    // the ~0.14 d capacity; the network cannot recall them all.
    let base = random_bipolar(1, d, 5);
    let many = flip(&vec![base[0].clone(); 20], 6, 6);
    let mut hn = ClassicalHopfield::new(HopfieldConfig::default()).unwrap();
    hn.fit(&tensor(&many)).unwrap();
    let out = hn.recall(&tensor(&many), None).unwrap();
    let k = exact(&out.images, &many);
    assert!(
        k < 20,
        "classical Hopfield recalled {k}/20 correlated patterns"
    );
}

#[test]
fn dense_associative_memory_holds_more_than_the_classical_capacity() {
    let d = 64;
    let stored = random_bipolar(24, d, 8);
    let cues = flip(&stored, 3, 9);
    let mut hn = ClassicalHopfield::new(HopfieldConfig::default()).unwrap();
    hn.fit(&tensor(&stored)).unwrap();
    let classical = exact(&hn.recall(&tensor(&cues), None).unwrap().images, &stored);
    for interaction in [
        Interaction::Polynomial { degree: 4 },
        Interaction::Exponential,
    ] {
        let mut dam = DenseAm::new(HopfieldConfig::default(), interaction).unwrap();
        dam.fit(&tensor(&stored)).unwrap();
        let out = dam.recall(&tensor(&cues), None).unwrap();
        assert!(out.converged);
        assert_eq!(exact(&out.images, &stored), 24, "{interaction:?}");
        let cue0 = &cues[0];
        assert!(
            dam.energy(&stored[0]) < dam.energy(cue0),
            "{interaction:?}: stored pattern not lower in energy"
        );
    }
    assert!(
        classical < 24,
        "classical network recalled {classical}/24 of 24 patterns in 64 units"
    );
}

#[test]
fn autoencoder_overfits_a_handful_and_recalls_from_mild_noise() {
    let mut r = rng(4);
    let d = 48;
    let stored: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..d).map(|_| r.gen_range(0.0..1.0)).collect())
        .collect();
    let cfg = AutoencoderConfig {
        hidden_dim: 128,
        max_epochs: 1500,
        target_mse: 1e-7,
        recall_iterations: 200,
        ..Default::default()
    };
    let untrained = Autoencoder::new(cfg.clone(), d).unwrap();
    let mut ae = Autoencoder::new(cfg, d).unwrap();
    let fit = ae.fit(&tensor(&stored)).unwrap();
    let last = *fit.curve.last().unwrap();
    assert!(last < 1e-5, "training MSE {last}");
    let noisy: Vec<Vec<f32>> = stored
        .iter()
        .map(|p| p.iter().map(|v| v + r.gen_range(-0.05..0.05)).collect())
        .collect();
    for (model, should) in [(&ae, true), (&untrained, false)] {
        let out = model.recall(&tensor(&noisy), None).unwrap();
        let mse = pcmem_model::per_row_mse(&out.images, &tensor(&stored)).unwrap();
        let ok = mse.iter().filter(|&&m| m < 1e-3).count();
        if should {
            assert_eq!(ok, 4, "trained AE recall MSEs {mse:?}");
        } else {
            assert_eq!(ok, 0, "untrained AE recall MSEs {mse:?}");
        }
    }
    assert_eq!(
        ae.parameter_count(),
        48 * 128 + 128 + 128 * 128 + 128 + 128 * 48 + 48
    );
}

#[test]
fn misuse_is_an_error_naming_the_problem() {
    let x = tensor(&[vec![0.5f32; 8]]);
    let mhn = ModernHopfield::new(ModernHopfieldConfig::default()).unwrap();
    let err = mhn.recall(&x, None).unwrap_err();
    assert!(err.to_string().contains("recall before fit"), "{err}");
    let mut hn = ClassicalHopfield::new(HopfieldConfig::default()).unwrap();
    let err = hn.fit(&x).unwrap_err();
    assert!(err.to_string().contains("bipolar"), "{err}");
    assert!(matches!(
        ModernHopfield::new(ModernHopfieldConfig {
            beta: -1.0,
            ..Default::default()
        }),
        Err(BaselineError::InvalidConfig { field: "beta", .. })
    ));
    assert!(DenseAm::new(
        HopfieldConfig::default(),
        Interaction::Polynomial { degree: 1 }
    )
    .is_err());
    let mut mhn = ModernHopfield::new(ModernHopfieldConfig::default()).unwrap();
    mhn.fit(&x).unwrap();
    let bad_mask = Tensor::ones((1, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = mhn.recall(&x, Some(&bad_mask)).unwrap_err();
    assert!(err.to_string().contains("known-pixel mask"), "{err}");
    let wrong = tensor(&[vec![0.5f32; 9]]);
    assert!(mhn
        .recall(&wrong, None)
        .unwrap_err()
        .to_string()
        .contains("[rows >= 1, 8]"));
}
