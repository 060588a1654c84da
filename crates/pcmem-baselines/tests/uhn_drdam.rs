//! The universal Hopfield networks against a brute-force implementation of their definition
//! and against the modern Hopfield network (a member of the family); DrDAM against the exact
//! dense associative memory it approximates (closed-form kernel sums and gradients).

use candle_core::{Device, Tensor};
use pcmem_baselines::{
    DrDam, DrDamConfig, ModernHopfield, ModernHopfieldConfig, Separation, Similarity, Uhn,
    UhnConfig,
};
use pcmem_model::AssociativeMemory;
use rand::{Rng, SeedableRng};

fn random(rows: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..rows)
        .map(|_| (0..d).map(|_| rng.gen_range(0.0..1.0)).collect())
        .collect()
}

fn tensor(rows: &[Vec<f32>]) -> Tensor {
    Tensor::new(rows.to_vec(), &Device::Cpu).unwrap()
}

/// The definition, in f64 loops: z = sum_i sep(sim(M, q))_i m_i.
fn brute_force(m: &[Vec<f32>], q: &[f32], sim: Similarity, sep: Separation) -> Vec<f64> {
    let s: Vec<f64> = m
        .iter()
        .map(|m| match sim {
            Similarity::Dot => m.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum(),
            Similarity::Euclidean => -m
                .iter()
                .zip(q)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
            Similarity::Manhattan => -m
                .iter()
                .zip(q)
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>(),
        })
        .collect();
    let w: Vec<f64> = match sep {
        Separation::Softmax { beta } => {
            let z: f64 = s.iter().map(|v| (beta * v).exp()).sum();
            s.iter().map(|v| (beta * v).exp() / z).collect()
        }
        Separation::Max => {
            let best = (0..s.len())
                .reduce(|a, b| if s[b] > s[a] { b } else { a })
                .unwrap();
            (0..s.len())
                .map(|i| if i == best { 1.0 } else { 0.0 })
                .collect()
        }
        Separation::Polynomial { degree } => {
            let min = s.iter().cloned().fold(f64::INFINITY, f64::min);
            let p: Vec<f64> = s.iter().map(|v| (v - min).powi(degree as i32)).collect();
            let z: f64 = p.iter().sum();
            p.iter().map(|v| v / z).collect()
        }
        Separation::Identity => s.clone(),
    };
    (0..q.len())
        .map(|j| (0..m.len()).map(|i| w[i] * m[i][j] as f64).sum())
        .collect()
}

#[test]
fn every_member_of_the_family_matches_its_definition() {
    let (m, q) = (random(6, 9, 1), random(4, 9, 2));
    for sim in [
        Similarity::Dot,
        Similarity::Euclidean,
        Similarity::Manhattan,
    ] {
        for sep in [
            Separation::Softmax { beta: 3.0 },
            Separation::Max,
            Separation::Polynomial { degree: 3 },
            Separation::Identity,
        ] {
            let mut uhn = Uhn::new(UhnConfig {
                similarity: sim,
                separation: sep,
                ..Default::default()
            })
            .unwrap();
            uhn.fit(&tensor(&m)).unwrap();
            let got = uhn.update(&tensor(&q)).unwrap().to_vec2::<f32>().unwrap();
            for (row, q) in got.iter().zip(&q) {
                let want = brute_force(&m, q, sim, sep);
                for (a, b) in row.iter().zip(&want) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{sim:?} {sep:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_modern_hopfield_network_is_the_dot_softmax_member() {
    let (m, q) = (random(8, 16, 3), random(5, 16, 4));
    let mut mhn = ModernHopfield::new(ModernHopfieldConfig {
        beta: 2.0,
        max_iterations: 50,
        tolerance: 1e-6,
    })
    .unwrap();
    let mut uhn = Uhn::new(UhnConfig {
        similarity: Similarity::Dot,
        separation: Separation::Softmax { beta: 2.0 },
        iterations: 50,
        tolerance: 1e-6,
    })
    .unwrap();
    mhn.fit(&tensor(&m)).unwrap();
    uhn.fit(&tensor(&m)).unwrap();
    let a = mhn.recall(&tensor(&q), None).unwrap();
    let b = uhn.recall(&tensor(&q), None).unwrap();
    assert_eq!(a.steps, b.steps);
    let (a, b) = (
        a.images.to_vec2::<f32>().unwrap(),
        b.images.to_vec2::<f32>().unwrap(),
    );
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn distance_similarities_retrieve_the_nearest_pattern_and_keep_known_pixels() {
    let m = random(10, 32, 5);
    let mut uhn = Uhn::new(UhnConfig {
        similarity: Similarity::Manhattan,
        separation: Separation::Max,
        ..Default::default()
    })
    .unwrap();
    uhn.fit(&tensor(&m)).unwrap();
    // Pattern 7 with its second half replaced by 0.5, the first half known.
    let mut cue = m[7].clone();
    cue[16..].iter_mut().for_each(|v| *v = 0.5);
    let known: Vec<f32> = (0..32).map(|j| if j < 16 { 1.0 } else { 0.0 }).collect();
    let known = tensor(&[known]);
    let out = uhn
        .recall(&tensor(std::slice::from_ref(&cue)), Some(&known))
        .unwrap();
    assert!(out.converged && out.steps == 1);
    assert_eq!(out.images.to_vec2::<f32>().unwrap()[0], m[7]);
    // Ties go to the first stored pattern.
    let mut twin = Uhn::new(UhnConfig {
        similarity: Similarity::Euclidean,
        separation: Separation::Max,
        ..Default::default()
    })
    .unwrap();
    twin.fit(&tensor(&[vec![1.0, 0.0], vec![0.0, 1.0]]))
        .unwrap();
    let out = twin.recall(&tensor(&[vec![0.5, 0.5]]), None).unwrap();
    assert_eq!(out.images.to_vec2::<f32>().unwrap()[0], vec![1.0, 0.0]);
}

#[test]
fn bad_uhn_settings_are_refused_by_name() {
    for (config, field) in [
        (
            UhnConfig {
                separation: Separation::Softmax { beta: 0.0 },
                ..Default::default()
            },
            "beta",
        ),
        (
            UhnConfig {
                separation: Separation::Polynomial { degree: 0 },
                ..Default::default()
            },
            "degree",
        ),
        (
            UhnConfig {
                iterations: 0,
                ..Default::default()
            },
            "iterations",
        ),
    ] {
        let err = Uhn::new(config).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

/// The exact dense associative memory: sum_mu exp(-beta/2 |x - xi|^2) and the gradient of
/// -1/beta log of it, x - sum_mu softmax_mu(-beta/2 |x - xi_mu|^2) xi_mu.
fn exact(m: &[Vec<f32>], x: &[f32], beta: f64) -> (f64, Vec<f64>) {
    let k: Vec<f64> = m
        .iter()
        .map(|m| {
            let d2: f64 = m
                .iter()
                .zip(x)
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum();
            (-beta / 2.0 * d2).exp()
        })
        .collect();
    let z: f64 = k.iter().sum();
    let grad = (0..x.len())
        .map(|j| x[j] as f64 - (0..m.len()).map(|i| k[i] / z * m[i][j] as f64).sum::<f64>())
        .collect();
    (z, grad)
}

fn drdam(features: usize, beta: f64, m: &[Vec<f32>]) -> DrDam {
    let mut dam = DrDam::new(DrDamConfig {
        features,
        beta,
        seed: 11,
        ..Default::default()
    })
    .unwrap();
    dam.fit(&tensor(m)).unwrap();
    dam
}

/// Largest error of the kernel sum and of the gradient at points near the memories.
fn errors(features: usize, m: &[Vec<f32>], x: &[Vec<f32>], beta: f64) -> (f64, f64) {
    let dam = drdam(features, beta, m);
    let (sums, _) = dam.kernel_sum_and_gradient(&tensor(x)).unwrap();
    let grads = dam.gradient(&tensor(x)).unwrap().to_vec2::<f32>().unwrap();
    let (mut e_sum, mut e_grad) = (0f64, 0f64);
    for ((x, s), g) in x.iter().zip(&sums).zip(&grads) {
        let (z, want) = exact(m, x, beta);
        e_sum = e_sum.max((*s as f64 - z).abs());
        for (a, b) in g.iter().zip(&want) {
            e_grad = e_grad.max((*a as f64 - b).abs());
        }
    }
    (e_sum, e_grad)
}

#[test]
fn drdam_approximates_the_exact_memory_and_improves_with_more_features() {
    let beta = 2.0;
    let m = random(4, 6, 7);
    // Points between the memories and near them, where the kernel sum is of order one.
    let x: Vec<Vec<f32>> = (0..4)
        .map(|i| {
            m[i].iter()
                .zip(&m[(i + 1) % 4])
                .map(|(a, b)| 0.8 * a + 0.2 * b)
                .collect()
        })
        .collect();
    let (few_sum, few_grad) = errors(64, &m, &x, beta);
    let (many_sum, many_grad) = errors(1 << 15, &m, &x, beta);
    assert!(
        many_sum < 0.03 && many_grad < 0.05,
        "{many_sum} {many_grad}"
    );
    assert!(
        many_sum < few_sum && many_grad < few_grad,
        "Y = 64: {few_sum} {few_grad}; Y = 32768: {many_sum} {many_grad}"
    );
}

#[test]
fn drdam_adds_memories_to_a_fixed_number_of_weights() {
    let m = random(6, 5, 9);
    let all = drdam(512, 1.0, &m);
    let mut part = drdam(512, 1.0, &m[..2]);
    part.add(&tensor(&m[2..])).unwrap();
    assert_eq!(all.parameter_count(), 1024);
    assert_eq!(part.parameter_count(), 1024);
    assert_eq!((all.memories(), part.memories()), (6, 6));
    let x = random(3, 5, 10);
    let (a, _) = all.kernel_sum_and_gradient(&tensor(&x)).unwrap();
    let (b, _) = part.kernel_sum_and_gradient(&tensor(&x)).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // A different number of values is refused, naming the size.
    let err = part.add(&tensor(&random(1, 4, 1))).unwrap_err().to_string();
    assert!(err.contains('5'), "{err}");
}

#[test]
fn drdam_descends_to_a_stored_pattern_from_a_near_cue() {
    let m = random(5, 8, 12);
    let dam = drdam(1 << 14, 20.0, &m);
    let cue: Vec<f32> = m[3].iter().map(|v| v + 0.05).collect();
    let before = dam.energy(&tensor(std::slice::from_ref(&cue))).unwrap()[0];
    let out = dam
        .recall(&tensor(std::slice::from_ref(&cue)), None)
        .unwrap();
    let got = out.images.to_vec2::<f32>().unwrap();
    let after = dam.energy(&out.images).unwrap()[0];
    assert!(after < before, "energy {before} -> {after}");
    let err = got[0]
        .iter()
        .zip(&m[3])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 0.03, "max error {err}: {:?} vs {:?}", got[0], m[3]);
}
