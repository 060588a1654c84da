//! The hand-written updates of Eq. 3, 4 and 5 against candle's autograd of the energy (Eq. 2).
//!
//! The reference energy here is written from the paper's equations independently of the model
//! code: `E = 1/2 sum_l |x_l - mu_l|^2`, `mu_{l-1} = W_l f(x_l)` (or `f(W_l x_l)`), `mu_L = b`.

use candle_core::{DType, Device, Tensor, Var};
use pcmem_model::{
    Activation, ActivationPlacement, GradientScale, MemoryPrior, Pcn, PcnConfig, ValueNodes,
};

mod common;

fn act(a: Activation, x: &Tensor) -> Tensor {
    match a {
        Activation::Relu => x.relu().unwrap(),
        Activation::Tanh => x.tanh().unwrap(),
        Activation::Identity => x.clone(),
    }
}

/// Energy of Eq. 2 built from candle ops on `Var`s, so autograd can differentiate it.
fn reference_energy(cfg: &PcnConfig, x: &[Var], w: &[Var], b: Option<&Var>) -> Tensor {
    // theta^l is (d_{l-1}, d_l) and rows are data points, so mu_{l-1} = f(x_l) theta^T.
    let mut e = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
    for l in 1..=cfg.layers {
        let mu = match cfg.placement {
            ActivationPlacement::PreSynaptic => act(cfg.activation, &x[l])
                .matmul(&w[l - 1].t().unwrap())
                .unwrap(),
            ActivationPlacement::PostSynaptic => act(
                cfg.activation,
                &x[l].matmul(&w[l - 1].t().unwrap()).unwrap(),
            ),
        };
        let eps = (x[l - 1].as_tensor() - mu).unwrap();
        e = (e + eps.sqr().unwrap().sum_all().unwrap()).unwrap();
    }
    if let Some(b) = b {
        let eps = x[cfg.layers].broadcast_sub(b).unwrap();
        e = (e + eps.sqr().unwrap().sum_all().unwrap()).unwrap();
    }
    (e * 0.5).unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A model with random weights and prior, and a random state (no exact zeros, so ReLU's
/// derivative convention at 0 plays no role), all seeded: the same case on every run.
fn random_case(cfg: &PcnConfig, rows: usize) -> (Pcn, ValueNodes) {
    let dev = Device::Cpu;
    let mut pcn = cfg.init(&dev).unwrap();
    let weights: Vec<Tensor> = pcn.weights().to_vec();
    let prior = pcn.prior().map(|b| common::gaussian(b.dims(), 101));
    pcn.set_parameters(weights, prior).unwrap();
    let x: Vec<Tensor> = (0..=cfg.layers)
        .map(|l| common::gaussian(&[rows, cfg.layer_dim(l)], 200 + l as u64))
        .collect();
    (pcn, ValueNodes(x))
}

fn check_case(cfg: &PcnConfig, rows: usize) {
    let (pcn, x) = random_case(cfg, rows);
    let xv: Vec<Var> = x.0.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let wv: Vec<Var> = pcn
        .weights()
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let bv = pcn.prior().map(|b| Var::from_tensor(b).unwrap());
    let e_ref = reference_energy(cfg, &xv, &wv, bv.as_ref());
    let e_model = pcn.energy(&x).unwrap();
    let e_ref_val = e_ref.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (e_model - e_ref_val).abs() <= 1e-4 * e_ref_val.abs().max(1.0),
        "{cfg:?}: energy {e_model} vs autograd reference {e_ref_val}"
    );
    let auto = e_ref.backward().unwrap();
    let hand = pcn.gradients(&x).unwrap();
    let tag = format!(
        "L={} act={:?} placement={:?} prior={:?} rows={rows}",
        cfg.layers, cfg.activation, cfg.placement, cfg.memory_prior
    );
    for (l, v) in xv.iter().enumerate() {
        let g = auto.get(v).expect("grad of x_l");
        let tol = 1e-4 * max_abs(g).max(1.0);
        let d = common::max_abs_diff(g, &hand.values[l]);
        assert!(d <= tol, "{tag}: dE/dx_{l} differs by {d} (tol {tol})");
    }
    for (l, v) in wv.iter().enumerate() {
        let g = auto.get(v).expect("grad of W");
        let tol = 1e-4 * max_abs(g).max(1.0);
        let d = common::max_abs_diff(g, &hand.weights[l]);
        assert!(
            d <= tol,
            "{tag}: dE/dW_{} differs by {d} (tol {tol})",
            l + 1
        );
    }
    match (&bv, &hand.prior) {
        (Some(v), Some(hb)) => {
            let g = auto.get(v).expect("grad of b");
            let d = common::max_abs_diff(g, hb);
            assert!(
                d <= 1e-4 * max_abs(g).max(1.0),
                "{tag}: dE/db differs by {d}"
            );
        }
        (None, None) => {}
        _ => panic!("{tag}: prior gradient present on one side only"),
    }
}

#[test]
fn hand_gradients_match_autograd_across_depths_activations_batches() {
    let mut n_cases = 0;
    for layers in [1, 2, 3] {
        for activation in [Activation::Relu, Activation::Tanh, Activation::Identity] {
            for placement in [
                ActivationPlacement::PreSynaptic,
                ActivationPlacement::PostSynaptic,
            ] {
                for prior in [MemoryPrior::Learned, MemoryPrior::Free] {
                    for rows in [1, 4] {
                        let mut cfg = PcnConfig::new(7, 5);
                        cfg.layers = layers;
                        cfg.activation = activation;
                        cfg.placement = placement;
                        cfg.memory_prior = prior;
                        cfg.seed = n_cases as u64;
                        check_case(&cfg, rows);
                        n_cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(n_cases, 72);
}

#[test]
fn one_inference_step_is_minus_gamma_times_the_value_gradient() {
    for layers in [1, 2, 4] {
        let mut cfg = PcnConfig::new(9, 6);
        cfg.layers = layers;
        cfg.inference.steps = 1;
        cfg.inference.gamma = 0.05;
        let (pcn, x) = random_case(&cfg, 3);
        let grads = pcn.gradients(&x).unwrap();
        let mut after = x.clone();
        let info = pcn.infer(&mut after).unwrap();
        assert_eq!(info.steps, 1);
        // Sensory layer is clamped during training inference.
        assert_eq!(common::max_abs_diff(&after.0[0], &x.0[0]), 0.0);
        for l in 1..=layers {
            let expect = (&x.0[l] - (&grads.values[l] * 0.05).unwrap()).unwrap();
            let d = common::max_abs_diff(&after.0[l], &expect);
            assert!(d < 1e-5, "L={layers}: x_{l} after one step off by {d}");
        }
    }
}

#[test]
fn one_weight_update_is_minus_alpha_times_the_parameter_gradient() {
    for scale in [GradientScale::Sum, GradientScale::Mean] {
        let mut cfg = PcnConfig::new(9, 6);
        cfg.layers = 3;
        cfg.learning.alpha = 0.01;
        cfg.learning.gradient_scale = scale;
        let rows = 5;
        let (mut pcn, x) = random_case(&cfg, rows);
        let grads = pcn.gradients(&x).unwrap();
        let before_w = pcn.weights().to_vec();
        let before_b = pcn.prior().cloned().unwrap();
        pcn.learn(&x).unwrap();
        let k = match scale {
            GradientScale::Sum => 0.01,
            GradientScale::Mean => 0.01 / rows as f64,
        };
        for (l, w) in pcn.weights().iter().enumerate() {
            // Eq. 4: W += alpha * eps f(x)^T, i.e. W -= alpha * dE/dW.
            let expect = (&before_w[l] - (&grads.weights[l] * k).unwrap()).unwrap();
            let d = common::max_abs_diff(w, &expect);
            assert!(d < 1e-6, "{scale:?}: W_{} off by {d}", l + 1);
        }
        // Eq. 5 with the sign of gradient descent: b += alpha * eps_L.
        let eps_top = x.0[3]
            .broadcast_sub(&before_b)
            .unwrap()
            .sum_keepdim(0)
            .unwrap();
        let expect_b = (&before_b + (eps_top * k).unwrap()).unwrap();
        let d = common::max_abs_diff(pcn.prior().unwrap(), &expect_b);
        assert!(d < 1e-6, "{scale:?}: b off by {d}");
    }
}
