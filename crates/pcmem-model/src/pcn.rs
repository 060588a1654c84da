//! The generative predictive-coding network: state, energy, inference, learning, recall.
//!
//! Layers `0..=L`: layer 0 is sensory (width `d`), layers `1..=L` have width `n`, and layer `L`
//! is predicted by the learned memory vector `b`. Rows of every tensor are data points.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::{Pcn, PcnConfig, Optimizer};
//!
//! let dev = Device::Cpu;
//! let mut cfg = PcnConfig::new(16, 8);
//! cfg.learning.optimizer = Optimizer::adam();
//! cfg.learning.alpha = 1e-2;
//! cfg.learning.max_epochs = 50;
//! let mut pcn = cfg.init(&dev).unwrap();
//! let data = Tensor::rand(0f32, 1f32, (4, 16), &dev).unwrap();
//! let report = pcn.train(&data).unwrap();
//! assert!(report.epochs.last().unwrap().energy < report.epochs[0].energy);
//! let (recalled, _info) = pcn.recall_noisy(&data).unwrap();
//! assert_eq!(recalled.dims(), &[4, 16]);
//! ```

use std::collections::HashMap;
use std::path::Path;

use std::borrow::Cow;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor, D};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointPolicy, Resume};
use crate::config::{
    Activation, ActivationPlacement, GradientScale, InferenceConfig, Kernel, KnownPrecision,
    MemoryPrior, Optimizer, PcnConfig, ValueInit, WeightInit,
};
use crate::engine::{AdamCpu, Engine, FreeRule, Workspace};
use crate::error::{PcnError, Result};

/// Value nodes of every layer; `0` is the sensory layer. Each tensor is `(rows, width)`.
#[derive(Debug, Clone)]
pub struct ValueNodes(pub Vec<Tensor>);

/// Gradients of the energy (Eq. 2) with respect to value nodes and parameters.
#[derive(Debug, Clone)]
pub struct Gradients {
    /// `dE/dx_l` for every layer `l = 0..=L` (entry 0 is the sensory layer's, `eps_0`).
    pub values: Vec<Tensor>,
    /// `dE/dW_l` for `l = 1..=L`, in the storage layout of [`Pcn::weights`].
    pub weights: Vec<Tensor>,
    /// `dE/db` as `(1, n)`, when the memory prior is learned.
    pub prior: Option<Tensor>,
}

/// What one inference run did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceInfo {
    /// Steps taken.
    pub steps: usize,
    /// Energy (Eq. 2, summed over rows) at the final state.
    pub energy: f64,
    /// Whether the tolerance was met before the step limit (always false without a tolerance).
    pub converged: bool,
}

/// One epoch of training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Total energy at the end of inference, summed over all images (before the weight update).
    pub energy: f64,
    /// Mean squared sensory error per pixel at the end of inference.
    pub sensory_mse: f64,
    /// Mean inference steps per batch.
    pub inference_steps: f64,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The sensory MSE reached `learning.target_mse`.
    TargetReached,
    /// The energy stopped falling for `learning.patience` epochs.
    Plateau,
    /// `learning.max_epochs` were run.
    EpochLimit,
}

/// The result of [`Pcn::train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Per-epoch statistics, in order.
    pub epochs: Vec<EpochStats>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// What a recall did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallInfo {
    /// One entry per inference run (per application of F for noisy cues; one for partial cues).
    pub runs: Vec<InferenceInfo>,
}

#[derive(Debug, Clone)]
struct AdamState {
    step: i32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

/// Errors and matmul operands at one state (the "forward" half of a step).
struct Forward {
    /// `eps_l` for `l = 0..L`, and `eps_L` when the prior is learned.
    eps: Vec<Tensor>,
    /// Left operand of the prediction of layer `l-1`: `f(x_l)` (pre) or `x_l` (post); index `l-1`.
    inputs: Vec<Tensor>,
    /// Error signal sent up through `W_l`: `eps_{l-1}` (pre) or `eps_{l-1} * f'(W x_l)` (post).
    deltas: Vec<Tensor>,
}

/// A generative PCN. Build it with [`PcnConfig::init`].
#[derive(Debug, Clone)]
pub struct Pcn {
    config: PcnConfig,
    device: Device,
    /// `weights[l-1]` is the paper's `theta^l`, shape `(d_{l-1}, d_l)`: `mu_{l-1} = f(x_l) W^T`
    /// for row-major batches.
    weights: Vec<Tensor>,
    prior: Option<Tensor>,
    /// Adam moments of the candle kernel.
    adam: Option<AdamState>,
    /// Adam moments (and gradient scratch) of the fused CPU kernel.
    adam_cpu: Option<AdamCpu>,
    rng: ChaCha8Rng,
    /// Mean squared error per unit of every layer with an error, measured on the stored images
    /// at the end of training (see [`Pcn::measure_errors`]).
    error_mse: Option<Vec<f64>>,
}

impl PcnConfig {
    /// Validates the config and builds a PCN with seeded random weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Pcn> {
        Pcn::new(self.clone(), device)
    }
}

fn randn(rng: &mut ChaCha8Rng, rows: usize, cols: usize, std: f64, dev: &Device) -> Result<Tensor> {
    let normal = Normal::new(0.0f32, std as f32).map_err(|e| PcnError::InvalidConfig {
        field: "std",
        value: std.to_string(),
        reason: e.to_string(),
    })?;
    let data: Vec<f32> = (0..rows * cols).map(|_| normal.sample(rng)).collect();
    Ok(Tensor::from_vec(data, (rows, cols), dev)?)
}

fn check_finite(what: &'static str, t: &Tensor) -> Result<()> {
    let s = t
        .abs()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    if s.is_finite() {
        Ok(())
    } else {
        Err(PcnError::NonFinite { what })
    }
}

fn sum_sq(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

impl Pcn {
    /// Builds a PCN from `config` on `device` (same as [`PcnConfig::init`]).
    pub fn new(config: PcnConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut weights = Vec::with_capacity(config.layers);
        for l in 1..=config.layers {
            let (fan_in, fan_out) = (config.layer_dim(l), config.layer_dim(l - 1));
            let std = match config.weight_init {
                WeightInit::XavierNormal => (2.0 / (fan_in + fan_out) as f64).sqrt(),
                WeightInit::Normal { std } => std,
            };
            weights.push(randn(&mut rng, fan_out, fan_in, std, device)?);
        }
        let prior = match config.memory_prior {
            MemoryPrior::Learned => {
                Some(Tensor::zeros((1, config.hidden_dim), DType::F32, device)?)
            }
            MemoryPrior::Free => None,
        };
        Ok(Self {
            config,
            device: device.clone(),
            weights,
            prior,
            adam: None,
            adam_cpu: None,
            rng,
            error_mse: None,
        })
    }

    /// The configuration this model was built with.
    pub fn config(&self) -> &PcnConfig {
        &self.config
    }

    /// Mutable access to the recall settings (they do not change what is stored).
    pub fn recall_config_mut(&mut self) -> &mut crate::config::RecallConfig {
        &mut self.config.recall
    }

    /// The device holding the parameters.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Weight matrices; entry `l-1` is `theta^l` of the paper, shape `(d_{l-1}, d_l)`, and
    /// predicts layer `l-1` from layer `l`.
    pub fn weights(&self) -> &[Tensor] {
        &self.weights
    }

    /// The memory vector `b` as `(1, n)`, when the prior is learned.
    pub fn prior(&self) -> Option<&Tensor> {
        self.prior.as_ref()
    }

    /// Replaces the parameters (shapes must match); used by tests and checkpoint loading.
    pub fn set_parameters(&mut self, weights: Vec<Tensor>, prior: Option<Tensor>) -> Result<()> {
        if weights.len() != self.config.layers {
            return Err(PcnError::Shape {
                what: "weights",
                got: vec![weights.len()],
                expected: format!("{} matrices", self.config.layers),
            });
        }
        for (i, w) in weights.iter().enumerate() {
            let want = [self.config.layer_dim(i), self.config.layer_dim(i + 1)];
            if w.dims() != want {
                return Err(PcnError::Shape {
                    what: "weights",
                    got: w.dims().to_vec(),
                    expected: format!("{want:?} for layer {}", i + 1),
                });
            }
        }
        match (&prior, self.config.memory_prior) {
            (Some(b), MemoryPrior::Learned) if b.dims() == [1, self.config.hidden_dim] => {}
            (None, MemoryPrior::Free) => {}
            (p, _) => {
                return Err(PcnError::Shape {
                    what: "prior",
                    got: p.as_ref().map(|b| b.dims().to_vec()).unwrap_or_default(),
                    expected: match self.config.memory_prior {
                        MemoryPrior::Learned => format!("[1, {}]", self.config.hidden_dim),
                        MemoryPrior::Free => "no prior (memory_prior = free)".into(),
                    },
                })
            }
        }
        self.weights = weights
            .into_iter()
            .map(|w| {
                w.to_device(&self.device)?
                    .to_dtype(DType::F32)?
                    .contiguous()
            })
            .collect::<candle_core::Result<_>>()?;
        self.prior = prior
            .map(|b| {
                b.to_device(&self.device)?
                    .to_dtype(DType::F32)?
                    .contiguous()
            })
            .transpose()?;
        self.adam = None;
        self.adam_cpu = None;
        self.error_mse = None;
        Ok(())
    }

    /// Mean squared error per unit of each layer that has an error (`eps_0` per pixel first),
    /// measured on the stored images at the end of training; `None` before training or after
    /// [`Pcn::set_parameters`].
    pub fn error_mse(&self) -> Option<&[f64]> {
        self.error_mse.as_deref()
    }

    /// Runs training-time inference on `patterns` and records each layer's mean squared error
    /// per unit as [`Pcn::error_mse`] (training does this on the stored images when it ends;
    /// call it for a checkpoint saved without them).
    pub fn measure_errors(&mut self, patterns: &Tensor) -> Result<Vec<f64>> {
        let data = self.check_patterns("patterns", patterns)?;
        let mut rng = self.recall_rng(3);
        let mut x = self.init_values(&data, &mut rng)?;
        self.infer(&mut x)?;
        let fw = self.forward(&x.0)?;
        let mse = fw
            .eps
            .iter()
            .map(|e| Ok(sum_sq(e)? / e.elem_count() as f64))
            .collect::<Result<Vec<f64>>>()?;
        self.error_mse = Some(mse.clone());
        Ok(mse)
    }

    /// The precision of the known pixels in partial recall, `recall.known_precision` resolved
    /// (for `estimated`: mean hidden error over mean sensory error from [`Pcn::error_mse`]).
    pub fn known_precision(&self) -> Result<f64> {
        match self.config.recall.known_precision {
            KnownPrecision::Fixed { value } => Ok(value),
            KnownPrecision::Estimated => {
                let unavailable = |reason: &str| PcnError::Unavailable {
                    field: "recall.known_precision",
                    reason: reason.into(),
                };
                let m = self.error_mse.as_deref().ok_or_else(|| {
                    unavailable(
                        "`estimated` needs the errors measured at the end of training: train \
                         the model first, or call Pcn::measure_errors with the stored images \
                         (checkpoints saved before this setting existed lack them)",
                    )
                })?;
                let hidden = &m[1..];
                if hidden.is_empty() || m[0].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
                {
                    return Err(unavailable(
                        "`estimated` needs a hidden layer with an error and a non-zero sensory \
                         error; give a fixed value instead",
                    ));
                }
                Ok(hidden.iter().sum::<f64>() / hidden.len() as f64 / m[0])
            }
        }
    }

    /// A plain copy of this model (no optimiser state) with other weights and config.
    fn variant(&self, config: PcnConfig, weights: Vec<Tensor>) -> Pcn {
        Pcn {
            config,
            device: self.device.clone(),
            weights,
            prior: self.prior.clone(),
            adam: None,
            adam_cpu: None,
            rng: self.rng.clone(),
            error_mse: None,
        }
    }

    /// Checks that `t` is a finite `(rows, d)` matrix; returns it as f32 on this device.
    fn check_patterns(&self, what: &'static str, t: &Tensor) -> Result<Tensor> {
        let d = self.config.input_dim;
        if t.rank() != 2 || t.dims()[1] != d || t.dims()[0] == 0 {
            return Err(PcnError::Shape {
                what,
                got: t.dims().to_vec(),
                expected: format!("[rows >= 1, {d}] (one flattened image per row)"),
            });
        }
        let t = t.to_device(&self.device)?.to_dtype(DType::F32)?;
        check_finite(what, &t)?;
        Ok(t)
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.config.activation {
            Activation::Relu => x.relu()?,
            Activation::Tanh => x.tanh()?,
            Activation::Identity => x.clone(),
        })
    }

    fn act_grad(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.config.activation {
            Activation::Relu => x.ge(0f64)?.to_dtype(DType::F32)?,
            Activation::Tanh => x.tanh()?.sqr()?.affine(-1.0, 1.0)?,
            Activation::Identity => x.ones_like()?,
        })
    }

    /// Starting value nodes for the rows of `x0` (sensory layer set to `x0`).
    pub fn init_values(&self, x0: &Tensor, rng: &mut ChaCha8Rng) -> Result<ValueNodes> {
        let rows = x0.dims()[0];
        let n = self.config.hidden_dim;
        let layers = self.config.layers;
        let mut x = vec![x0.clone(); layers + 1];
        match self.config.value_init {
            ValueInit::Zero => {
                for v in x.iter_mut().skip(1) {
                    *v = Tensor::zeros((rows, n), DType::F32, &self.device)?;
                }
            }
            ValueInit::Random { std } => {
                for v in x.iter_mut().skip(1) {
                    *v = randn(rng, rows, n, std, &self.device)?;
                }
            }
            ValueInit::Forward => {
                x[layers] = match &self.prior {
                    Some(b) => b.broadcast_as((rows, n))?.contiguous()?,
                    None => Tensor::zeros((rows, n), DType::F32, &self.device)?,
                };
                for l in (1..layers).rev() {
                    x[l] = self.predict(l + 1, &x[l + 1])?;
                }
            }
        }
        Ok(ValueNodes(x))
    }

    /// Prediction `mu_{l-1}` of layer `l-1` from the value nodes of layer `l`.
    fn predict(&self, l: usize, xl: &Tensor) -> Result<Tensor> {
        let w = &self.weights[l - 1];
        Ok(match self.config.placement {
            ActivationPlacement::PreSynaptic => self.act(xl)?.matmul(&w.t()?)?,
            ActivationPlacement::PostSynaptic => self.act(&xl.matmul(&w.t()?)?)?,
        })
    }

    fn forward(&self, x: &[Tensor]) -> Result<Forward> {
        let layers = self.config.layers;
        let mut eps = Vec::with_capacity(layers + 1);
        let mut inputs = Vec::with_capacity(layers);
        let mut deltas = Vec::with_capacity(layers);
        for l in 1..=layers {
            let w = &self.weights[l - 1];
            match self.config.placement {
                ActivationPlacement::PreSynaptic => {
                    let fx = self.act(&x[l])?;
                    let e = (&x[l - 1] - fx.matmul(&w.t()?)?)?;
                    inputs.push(fx);
                    deltas.push(e.clone());
                    eps.push(e);
                }
                ActivationPlacement::PostSynaptic => {
                    let a = x[l].matmul(&w.t()?)?;
                    let e = (&x[l - 1] - self.act(&a)?)?;
                    deltas.push((&e * self.act_grad(&a)?)?);
                    inputs.push(x[l].clone());
                    eps.push(e);
                }
            }
        }
        if let Some(b) = &self.prior {
            eps.push(x[layers].broadcast_sub(b)?);
        }
        Ok(Forward {
            eps,
            inputs,
            deltas,
        })
    }

    fn energy_of(fw: &Forward) -> Result<f64> {
        let mut e = 0.0;
        for t in &fw.eps {
            e += sum_sq(t)?;
        }
        Ok(0.5 * e)
    }

    /// `dE/dx_l` for `l = 1..=L` (index `l-1`).
    fn hidden_grads(&self, x: &[Tensor], fw: &Forward) -> Result<Vec<Tensor>> {
        let layers = self.config.layers;
        let mut out = Vec::with_capacity(layers);
        for l in 1..=layers {
            let back = fw.deltas[l - 1].matmul(&self.weights[l - 1])?;
            let back = match self.config.placement {
                ActivationPlacement::PreSynaptic => (back * self.act_grad(&x[l])?)?,
                ActivationPlacement::PostSynaptic => back,
            };
            let g = match fw.eps.get(l) {
                Some(e) => (e - back)?,
                None => back.neg()?,
            };
            out.push(g);
        }
        Ok(out)
    }

    /// Energy of Eq. 2 at the state `x`, summed over rows.
    pub fn energy(&self, x: &ValueNodes) -> Result<f64> {
        Self::energy_of(&self.forward(&x.0)?)
    }

    /// Hand-derived gradients of the energy at state `x` (Eq. 3-5 are minus these, scaled).
    pub fn gradients(&self, x: &ValueNodes) -> Result<Gradients> {
        let fw = self.forward(&x.0)?;
        let mut values = vec![fw.eps[0].clone()];
        values.extend(self.hidden_grads(&x.0, &fw)?);
        let (weights, prior) = self.param_grads(&fw)?;
        Ok(Gradients {
            values,
            weights,
            prior,
        })
    }

    fn param_grads(&self, fw: &Forward) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let layers = self.config.layers;
        let mut gw = Vec::with_capacity(layers);
        for l in 1..=layers {
            gw.push(fw.deltas[l - 1].t()?.matmul(&fw.inputs[l - 1])?.neg()?);
        }
        let gb = match &self.prior {
            Some(_) => Some(fw.eps[layers].sum_keepdim(0)?.neg()?),
            None => None,
        };
        Ok((gw, gb))
    }

    /// One synchronous inference step (Eq. 3) from `fw`, the forward pass at `x`.
    /// With momentum, `vel` holds each hidden layer's previous change and is updated.
    fn apply_step(
        &self,
        x: &mut [Tensor],
        vel: &mut [Tensor],
        fw: &Forward,
        free0: Option<(&Tensor, FreeRule)>,
        dynamics: &InferenceConfig,
    ) -> Result<()> {
        let grads = self.hidden_grads(x, fw)?;
        let (gamma, beta) = (dynamics.gamma, dynamics.momentum);
        for (l, g) in grads.iter().enumerate() {
            if beta > 0.0 {
                vel[l] = (vel[l].affine(beta, 0.0)? - g.affine(gamma, 0.0)?)?;
                x[l + 1] = (&x[l + 1] + &vel[l])?;
            } else {
                x[l + 1] = (&x[l + 1] - g.affine(gamma, 0.0)?)?;
            }
        }
        if let Some((free, FreeRule::Step(rate))) = free0 {
            x[0] = (&x[0] - (&fw.eps[0] * free)?.affine(rate as f64, 0.0)?)?;
        }
        Ok(())
    }

    /// Runs inference on `x` (Eq. 3) with the sensory layer clamped, or with the pixels where
    /// `free0.0 == 1` left free (step size `free0.1`). Returns the info and the forward pass at
    /// the final state.
    #[allow(clippy::too_many_arguments)]
    fn relax(
        &self,
        x: &mut [Tensor],
        free0: Option<(&Tensor, FreeRule)>,
        dynamics: &InferenceConfig,
        phase: &'static str,
        epoch: usize,
    ) -> Result<(InferenceInfo, Forward)> {
        let (gamma, steps, tolerance) = (dynamics.gamma, dynamics.steps, dynamics.tolerance);
        let diverged = |step: usize, energy: f64| PcnError::Diverged {
            phase,
            epoch,
            step,
            energy,
            gamma,
            alpha: self.config.learning.alpha,
        };
        let mut prev: Option<f64> = None;
        let mut taken = 0;
        let mut converged = false;
        let pull = |x: &mut [Tensor], fw: &mut Forward| -> Result<()> {
            if let Some((free, FreeRule::Pull(r))) = free0 {
                let moved = free.affine(r as f64, 0.0)?;
                x[0] = (&x[0] - (&fw.eps[0] * &moved)?)?;
                let keep = moved.affine(-1.0, 1.0)?;
                fw.eps[0] = (&fw.eps[0] * &keep)?;
                fw.deltas[0] = (&fw.deltas[0] * &keep)?;
            }
            Ok(())
        };
        // Velocities only with momentum: plain steps (the default) allocate nothing for them.
        let mut vel = if dynamics.momentum > 0.0 {
            x[1..]
                .iter()
                .map(Tensor::zeros_like)
                .collect::<candle_core::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let mut fw = self.forward(x)?;
        pull(x, &mut fw)?;
        for t in 0..steps {
            if let Some(tol) = tolerance {
                let e = Self::energy_of(&fw)?;
                if !e.is_finite() {
                    return Err(diverged(t, e));
                }
                if let Some(p) = prev {
                    if (p - e).abs() <= tol * p.abs().max(f64::MIN_POSITIVE) {
                        converged = true;
                        break;
                    }
                }
                prev = Some(e);
            }
            self.apply_step(x, &mut vel, &fw, free0, dynamics)?;
            taken = t + 1;
            fw = self.forward(x)?;
            pull(x, &mut fw)?;
        }
        let energy = Self::energy_of(&fw)?;
        if !energy.is_finite() {
            return Err(diverged(taken, energy));
        }
        Ok((
            InferenceInfo {
                steps: taken,
                energy,
                converged,
            },
            fw,
        ))
    }

    /// Runs training-time inference (sensory layer clamped) on `x` in place.
    pub fn infer(&self, x: &mut ValueNodes) -> Result<InferenceInfo> {
        let c = &self.config.inference;
        if self.fused() {
            return self.with_engine(|mut eng| {
                let mut ws = eng.workspace(to_flat(&x.0)?);
                let info = self.relax_fused(&mut eng, &mut ws, None, c, "inference", 0)?;
                *x = self.to_nodes(ws)?;
                Ok(info)
            });
        }
        Ok(self.relax(&mut x.0, None, c, "inference", 0)?.0)
    }

    fn update_parameters(
        &mut self,
        gw: Vec<Tensor>,
        gb: Option<Tensor>,
        rows: usize,
    ) -> Result<()> {
        let lc = &self.config.learning;
        let scale = match lc.gradient_scale {
            GradientScale::Sum => 1.0,
            GradientScale::Mean => 1.0 / rows as f64,
        };
        let mut grads = gw;
        grads.extend(gb);
        match lc.optimizer {
            Optimizer::Sgd => {
                let step = lc.alpha * scale;
                for (p, g) in self.params_mut().into_iter().zip(&grads) {
                    *p = (&*p - g.affine(step, 0.0)?)?;
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                let alpha = lc.alpha;
                let mut st = match self.adam.take() {
                    Some(s) => s,
                    None => AdamState {
                        step: 0,
                        m: grads
                            .iter()
                            .map(|g| g.zeros_like())
                            .collect::<candle_core::Result<_>>()?,
                        v: grads
                            .iter()
                            .map(|g| g.zeros_like())
                            .collect::<candle_core::Result<_>>()?,
                    },
                };
                st.step += 1;
                let bc1 = 1.0 - beta1.powi(st.step);
                let bc2 = 1.0 - beta2.powi(st.step);
                for (i, (p, g)) in self.params_mut().into_iter().zip(&grads).enumerate() {
                    let g = g.affine(scale, 0.0)?;
                    st.m[i] = (st.m[i].affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?;
                    st.v[i] = (st.v[i].affine(beta2, 0.0)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?;
                    let denom = st.v[i].affine(1.0 / bc2, 0.0)?.sqrt()?.affine(1.0, eps)?;
                    let upd = st.m[i].affine(alpha / bc1, 0.0)?.div(&denom)?;
                    *p = (&*p - upd)?;
                }
                self.adam = Some(st);
            }
        }
        Ok(())
    }

    fn params_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v: Vec<&mut Tensor> = self.weights.iter_mut().collect();
        if let Some(b) = self.prior.as_mut() {
            v.push(b);
        }
        v
    }

    /// One weight update (Eq. 4-5, or Adam) at the state `x`, whose sensory layer holds the data.
    pub fn learn(&mut self, x: &ValueNodes) -> Result<()> {
        if self.fused() {
            let mut eng = self.take_engine()?;
            let mut adam = self.adam_cpu()?;
            let mut ws = eng.workspace(to_flat(&x.0)?);
            eng.forward(&mut ws);
            self.learn_fused(&mut eng, &mut adam, &ws);
            return self.store_engine(eng, adam);
        }
        let fw = self.forward(&x.0)?;
        let (gw, gb) = self.param_grads(&fw)?;
        self.update_parameters(gw, gb, x.0[0].dims()[0])
    }

    /// One training iteration on a batch (Alg. 1): inference for `inference.steps` steps from the
    /// configured start, then one weight update. Returns the inference info (energy before the
    /// update) and the final value nodes.
    pub fn train_step(&mut self, batch: &Tensor) -> Result<(InferenceInfo, ValueNodes)> {
        let batch = self.check_patterns("batch", batch)?;
        let mut rng = self.rng.clone();
        let x = self.init_values(&batch, &mut rng)?;
        self.rng = rng;
        if self.fused() {
            let mut eng = self.take_engine()?;
            let mut adam = self.adam_cpu()?;
            let mut ws = eng.workspace(to_flat(&x.0)?);
            let res = self.train_fused(&mut eng, &mut adam, &mut ws, 0);
            self.store_engine(eng, adam)?;
            let (info, _) = res?;
            return Ok((info, self.to_nodes(ws)?));
        }
        let (info, x, _) = self.train_from(x, 0)?;
        Ok((info, x))
    }

    fn train_from(
        &mut self,
        mut x: ValueNodes,
        epoch: usize,
    ) -> Result<(InferenceInfo, ValueNodes, f64)> {
        let c = self.config.inference.clone();
        let (info, fw) = self.relax(&mut x.0, None, &c, "training", epoch)?;
        let sensory_sq = sum_sq(&fw.eps[0])?;
        let (gw, gb) = self.param_grads(&fw)?;
        let rows = x.0[0].dims()[0];
        self.update_parameters(gw, gb, rows)?;
        let alpha = self.config.learning.alpha;
        for p in self.weights.iter().chain(self.prior.iter()) {
            check_finite("model parameters", p).map_err(|_| PcnError::Diverged {
                phase: "training",
                epoch,
                step: info.steps,
                energy: f64::NAN,
                gamma: c.gamma,
                alpha,
            })?;
        }
        Ok((info, x, sensory_sq))
    }

    /// Trains on `patterns` (`(N, d)`, one image per row) until the energy stops falling, the
    /// target MSE is reached, or the epoch limit (Alg. 1 repeated); see [`LearningConfig`].
    ///
    /// [`LearningConfig`]: crate::config::LearningConfig
    pub fn train(&mut self, patterns: &Tensor) -> Result<TrainReport> {
        self.train_with(patterns, |_| {})
    }

    /// Like [`Pcn::train`], calling `on_epoch` after every epoch (for progress bars).
    pub fn train_with(
        &mut self,
        patterns: &Tensor,
        on_epoch: impl FnMut(&EpochStats),
    ) -> Result<TrainReport> {
        let data = self.check_patterns("patterns", patterns)?;
        let (report, _) = self.train_epochs(&data, on_epoch, None)?;
        self.measure_errors(&data)?;
        Ok(report)
    }

    /// Like [`Pcn::train_with`], saving the training state to `policy`'s checkpoint at most once
    /// per `policy.every` (and when training stops), and resuming from that checkpoint when one
    /// is there: a run killed at any moment ends with the same bits as one never interrupted.
    /// A checkpoint that cannot be used (another config or identity, unreadable) is removed and
    /// training starts from epoch 0; [`Resume`] says which happened. The caller removes the
    /// checkpoint ([`CheckpointPolicy::remove`]) once it has kept what it needs.
    pub fn train_resumable(
        &mut self,
        patterns: &Tensor,
        policy: &CheckpointPolicy,
        on_epoch: impl FnMut(&EpochStats),
    ) -> Result<(TrainReport, Resume)> {
        let data = self.check_patterns("patterns", patterns)?;
        let out = self.train_epochs(&data, on_epoch, Some(policy))?;
        self.measure_errors(&data)?;
        Ok(out)
    }

    fn train_epochs(
        &mut self,
        data: &Tensor,
        mut on_epoch: impl FnMut(&EpochStats),
        policy: Option<&CheckpointPolicy>,
    ) -> Result<(TrainReport, Resume)> {
        let rows = data.dims()[0];
        let lc = self.config.learning.clone();
        let bs = lc.batch_size.unwrap_or(rows).min(rows);
        let batches: Vec<Tensor> = (0..rows)
            .step_by(bs)
            .map(|s| data.narrow(0, s, bs.min(rows - s)))
            .collect::<candle_core::Result<_>>()?;
        let pixels = pixels_of(rows, &self.config);
        let (resume, prefix, kept) = self.open_checkpoint(policy, batches.len())?;
        let mut lp = EpochLoop::new(&lc, pixels, prefix, policy);
        if self.fused() {
            let mut eng = self.take_engine()?;
            let mut adam = self.adam_cpu()?;
            let res = self.train_epochs_fused(
                &mut eng,
                &mut adam,
                &batches,
                kept,
                &mut lp,
                &mut on_epoch,
            );
            self.store_engine(eng, adam)?;
            res?;
            return Ok((lp.report(), resume));
        }
        let mut kept: Vec<Option<ValueNodes>> =
            kept.into_iter().map(|k| k.map(ValueNodes)).collect();
        while let Some(epoch) = lp.next_epoch() {
            let mut acc = EpochSums::default();
            for (i, batch) in batches.iter().enumerate() {
                let start = match kept[i].take() {
                    Some(x) if lc.persistent_values => x,
                    _ => {
                        let mut rng = self.rng.clone();
                        let x = self.init_values(batch, &mut rng)?;
                        self.rng = rng;
                        x
                    }
                };
                let (info, x, sensory_sq) = self.train_from(start, epoch)?;
                if lc.persistent_values {
                    kept[i] = Some(x);
                }
                acc.add(&info, sensory_sq);
            }
            if lp.finish(epoch, acc, batches.len(), &mut on_epoch) {
                let mut tensors = self.parameter_tensors()?;
                if let Some(st) = &self.adam {
                    for (i, (m, v)) in st.m.iter().zip(&st.v).enumerate() {
                        tensors.insert(format!("adam.m{i}"), m.clone());
                        tensors.insert(format!("adam.v{i}"), v.clone());
                    }
                }
                for (i, k) in kept.iter().enumerate() {
                    for (l, t) in k.iter().flat_map(|x| x.0.iter().enumerate()) {
                        tensors.insert(format!("kept{i}.x{l}"), t.clone());
                    }
                }
                let step = self.adam.as_ref().map(|a| a.step);
                lp.save(&self.config, step, &self.rng, &tensors)?;
            }
        }
        Ok((lp.report(), resume))
    }

    /// The weights (`w1`..) and the memory vector (`b`) by name, as a checkpoint holds them.
    fn parameter_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::new();
        for (i, w) in self.weights.iter().enumerate() {
            map.insert(format!("w{}", i + 1), w.clone());
        }
        if let Some(b) = &self.prior {
            map.insert("b".into(), b.clone());
        }
        Ok(map)
    }

    /// Restores the training state from `policy`'s checkpoint, if there is one and it fits this
    /// model; returns how training starts, the finished epochs and each batch's kept value nodes
    /// (persistent values only). An unusable checkpoint is removed and training starts afresh.
    #[allow(clippy::type_complexity)]
    fn open_checkpoint(
        &mut self,
        policy: Option<&CheckpointPolicy>,
        n_batches: usize,
    ) -> Result<(Resume, Vec<EpochStats>, Vec<Option<Vec<Tensor>>>)> {
        let fresh = || vec![None; n_batches];
        let Some(policy) = policy else {
            return Ok((Resume::Fresh, Vec::new(), fresh()));
        };
        let refused =
            |reason: String| -> Result<(Resume, Vec<EpochStats>, Vec<Option<Vec<Tensor>>>)> {
                policy.remove().map_err(|source| PcnError::Io {
                    path: policy.meta_path(),
                    source,
                })?;
                Ok((
                    Resume::Refused {
                        path: policy.meta_path(),
                        reason,
                    },
                    Vec::new(),
                    fresh(),
                ))
            };
        let mut st = match checkpoint::read(policy, &self.config, &self.device) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok((Resume::Fresh, Vec::new(), fresh())),
            Err(PcnError::Checkpoint { reason, .. }) => return refused(reason),
            Err(e) => return Err(e),
        };
        let path = policy.meta_path();
        let before = (self.weights.clone(), self.prior.clone());
        let restored = (|| -> Result<Vec<Option<Vec<Tensor>>>> {
            let weights = (1..=self.config.layers)
                .map(|i| st.take(&format!("w{i}"), &path))
                .collect::<Result<Vec<_>>>()?;
            let prior = match self.config.memory_prior {
                MemoryPrior::Learned => Some(st.take("b", &path)?),
                MemoryPrior::Free => None,
            };
            self.set_parameters(weights, prior)?;
            if let Some(step) = st.meta.adam_step {
                let n = self.param_shapes().len();
                let (mut m, mut v) = (Vec::new(), Vec::new());
                for i in 0..n {
                    m.push(st.take(&format!("adam.m{i}"), &path)?);
                    v.push(st.take(&format!("adam.v{i}"), &path)?);
                }
                if self.fused() {
                    let flat = |t: Vec<Tensor>| -> Result<Vec<Vec<f32>>> { to_flat(&t) };
                    let mut a = AdamCpu::zeros(
                        &self
                            .param_shapes()
                            .iter()
                            .map(|(r, c)| r * c)
                            .collect::<Vec<_>>(),
                    );
                    a.step = step;
                    a.m = flat(m)?;
                    a.v = flat(v)?;
                    self.adam_cpu = Some(a);
                } else {
                    self.adam = Some(AdamState { step, m, v });
                }
            }
            let mut kept = fresh();
            if self.config.learning.persistent_values {
                for (i, k) in kept.iter_mut().enumerate() {
                    if st.tensors.contains_key(&format!("kept{i}.x0")) {
                        *k = Some(
                            (0..=self.config.layers)
                                .map(|l| st.take(&format!("kept{i}.x{l}"), &path))
                                .collect::<Result<Vec<_>>>()?,
                        );
                    }
                }
            }
            Ok(kept)
        })();
        match restored {
            Ok(kept) => {
                self.rng = st.rng;
                let epoch = st.meta.epochs.len();
                Ok((Resume::From { epoch }, st.meta.epochs, kept))
            }
            Err(
                PcnError::Checkpoint { reason, .. }
                | PcnError::Shape {
                    expected: reason, ..
                },
            ) => {
                self.set_parameters(before.0, before.1)?;
                refused(reason)
            }
            Err(e) => Err(e),
        }
    }

    fn recall_rng(&self, salt: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x9e37_79b9_7f4a_7c15 ^ salt)
    }

    /// Recall from corrupted images (Sec. 3): clamp the sensory layer to the cue, run inference,
    /// take the sensory prediction `mu_0`; apply this map F `recall.iterations` times.
    pub fn recall_noisy(&self, cues: &Tensor) -> Result<(Tensor, RecallInfo)> {
        let rc = self.config.recall.clone();
        let relaxation = self.config.noise_relaxation();
        let mut c = self.check_patterns("cues", cues)?;
        let mut rng = self.recall_rng(1);
        let mut runs = Vec::with_capacity(rc.iterations);
        if self.fused() {
            return self.with_engine(|mut eng| {
                let mut ws: Option<Workspace> = None;
                for _ in 0..rc.iterations {
                    let x = self.init_values(&c, &mut rng)?;
                    let mut w = match ws.take() {
                        None => eng.workspace(to_flat(&x.0)?),
                        Some(mut w) => {
                            for (dst, t) in w.x.iter_mut().zip(&x.0) {
                                dst.copy_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
                            }
                            w
                        }
                    };
                    runs.push(self.relax_fused(
                        &mut eng,
                        &mut w,
                        None,
                        &relaxation,
                        "recall",
                        0,
                    )?);
                    // mu_0 = x_0 - eps_0 becomes the next cue.
                    let mu: Vec<f32> = w.x[0].iter().zip(&w.eps[0]).map(|(x, e)| x - e).collect();
                    c = Tensor::from_vec(mu, c.dims(), &self.device)?;
                    ws = Some(w);
                }
                Ok((c, RecallInfo { runs }))
            });
        }
        for _ in 0..rc.iterations {
            let mut x = self.init_values(&c, &mut rng)?;
            let (info, fw) = self.relax(&mut x.0, None, &relaxation, "recall", 0)?;
            c = (&x.0[0] - &fw.eps[0])?;
            runs.push(info);
        }
        Ok((c, RecallInfo { runs }))
    }

    /// Recall from partial images (Alg. 2): the sensory pixels where `known` is 1 are clamped to
    /// the cue, the others start at the cue's values and evolve with the hidden layers (step size
    /// `recall.free_pixel_rate`, by default `recall.gamma`); returns the sensory value nodes after
    /// `recall.steps` steps. `known` is `(N, d)` or `(1, d)` of 0/1.
    /// With a known-pixel precision P != 1 (`recall.known_precision`) this runs on the model
    /// with `W_1` and the cue scaled by `sqrt(P)` (the same energy) at rate `gamma / max(P, 1)`,
    /// and scales the result back; the energies reported are the precision-weighted ones.
    pub fn recall_partial(&self, cues: &Tensor, known: &Tensor) -> Result<(Tensor, RecallInfo)> {
        let rc = self.config.recall.clone();
        let c = self.check_patterns("cues", cues)?;
        let p = self.known_precision()?;
        if p != 1.0 {
            let s = p.sqrt();
            let mut cfg = self.config.clone();
            cfg.recall.known_precision = KnownPrecision::default();
            cfg.recall.gamma = rc.gamma / p.max(1.0);
            let mut weights = self.weights.clone();
            weights[0] = weights[0].affine(s, 0.0)?;
            let (out, info) = self
                .variant(cfg, weights)
                .recall_partial(&c.affine(s, 0.0)?, known)?;
            return Ok((out.affine(1.0 / s, 0.0)?, info));
        }
        let rows = c.dims()[0];
        let d = self.config.input_dim;
        if known.rank() != 2
            || known.dims()[1] != d
            || (known.dims()[0] != rows && known.dims()[0] != 1)
        {
            return Err(PcnError::Shape {
                what: "known-pixel mask",
                got: known.dims().to_vec(),
                expected: format!("[{rows}, {d}] or [1, {d}] of 0/1"),
            });
        }
        let known = known.to_device(&self.device)?.to_dtype(DType::F32)?;
        check_finite("known-pixel mask", &known)?;
        let free = known
            .affine(-1.0, 1.0)?
            .broadcast_as((rows, d))?
            .contiguous()?;
        if rc.free_pixel_rate == Some(1.0) && known.dims()[0] == 1 {
            if let Some(out) = self.recall_known_only(&c, &known)? {
                return Ok(out);
            }
        }
        let rule = match rc.free_pixel_rate {
            None => FreeRule::Step(rc.gamma as f32),
            Some(r) => FreeRule::Pull(r as f32),
        };
        let mut rng = self.recall_rng(2);
        let mut x = self.init_values(&c, &mut rng)?;
        if self.fused() {
            return self.with_engine(|mut eng| {
                let free = free.flatten_all()?.to_vec1::<f32>()?;
                let mut ws = eng.workspace(to_flat(&x.0)?);
                let info = self.relax_fused(
                    &mut eng,
                    &mut ws,
                    Some((&free, rule)),
                    &rc.relaxation(),
                    "recall",
                    0,
                )?;
                let out = Tensor::from_vec(ws.x.swap_remove(0), (rows, d), &self.device)?;
                Ok((out, RecallInfo { runs: vec![info] }))
            });
        }
        let (info, _) = self.relax(&mut x.0, Some((&free, rule)), &rc.relaxation(), "recall", 0)?;
        let out = x.0.swap_remove(0);
        Ok((out, RecallInfo { runs: vec![info] }))
    }

    /// Partial recall with `free_pixel_rate = 1` and one mask for every row, on the network
    /// restricted to the known pixels. With rate 1 the free pixels sit on their prediction
    /// after every step, so their errors are zero and the latents feel only the known pixels:
    /// inference with the known pixels clamped and the first weight matrix cut to their rows
    /// runs the very same dynamics (same steps, same energy), at the cost of the known pixels
    /// only and with the Gram identity; the free pixels are then read off as `mu_0`.
    /// `None` when no pixel is known (nothing to restrict to) or the mask is not 0/1.
    fn recall_known_only(
        &self,
        c: &Tensor,
        known: &Tensor,
    ) -> Result<Option<(Tensor, RecallInfo)>> {
        let rc = &self.config.recall;
        let mask = known.flatten_all()?.to_vec1::<f32>()?;
        if mask.iter().any(|&m| m != 0.0 && m != 1.0) {
            return Ok(None);
        }
        let idx: Vec<u32> = (0..mask.len() as u32)
            .filter(|&i| mask[i as usize] == 1.0)
            .collect();
        if idx.is_empty() {
            return Ok(None);
        }
        let idx = Tensor::from_vec(idx.clone(), idx.len(), &self.device)?;
        let mut cfg = self.config.clone();
        cfg.input_dim = idx.dims()[0];
        cfg.inference = rc.relaxation();
        cfg.validate()?;
        let mut weights = self.weights.clone();
        weights[0] = weights[0].index_select(&idx, 0)?.contiguous()?;
        let sub = self.variant(cfg, weights);
        let mut rng = self.recall_rng(2);
        let mut x = sub.init_values(&c.index_select(&idx, 1)?.contiguous()?, &mut rng)?;
        let info = sub.infer(&mut x)?;
        let mu0 = self.predict(1, &x.0[1])?;
        let keep = known.broadcast_as(c.dims())?;
        let out = ((c * &keep)? + (mu0 * keep.affine(-1.0, 1.0)?)?)?;
        Ok(Some((out, RecallInfo { runs: vec![info] })))
    }

    /// Saves the model into folder `dir`: `config.json` and `weights.safetensors` (weights,
    /// memory vector and, once measured, [`Pcn::error_mse`] as `error_mse`). Files are
    /// written under temporary names and renamed, so a killed save never leaves a half file.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PcnError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cfg_path = dir.join("config.json");
        let w_path = dir.join("weights.safetensors");
        let text = serde_json::to_string_pretty(&self.config).expect("config serialises");
        let tmp = dir.join(".config.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &cfg_path).map_err(io(&cfg_path))?;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (i, w) in self.weights.iter().enumerate() {
            map.insert(format!("w{}", i + 1), w.clone());
        }
        if let Some(b) = &self.prior {
            map.insert("b".into(), b.clone());
        }
        if let Some(m) = &self.error_mse {
            map.insert(
                "error_mse".into(),
                Tensor::from_vec(m.clone(), m.len(), &Device::Cpu)?,
            );
        }
        let tmp = dir.join(".weights.safetensors.tmp");
        candle_core::safetensors::save(&map, &tmp).map_err(|e| PcnError::Checkpoint {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&tmp, &w_path).map_err(io(&w_path))?;
        Ok(())
    }

    /// Loads a model saved by [`Pcn::save`] onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| PcnError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: PcnConfig = serde_json::from_str(&text).map_err(|e| PcnError::Checkpoint {
            path: cfg_path.clone(),
            reason: format!("config does not parse: {e}"),
        })?;
        let mut pcn = Pcn::new(config, device)?;
        let w_path = dir.join("weights.safetensors");
        if !w_path.exists() {
            return Err(PcnError::Checkpoint {
                path: w_path,
                reason: "missing; was the model saved with Pcn::save?".into(),
            });
        }
        let mut map =
            candle_core::safetensors::load(&w_path, device).map_err(|e| PcnError::Checkpoint {
                path: w_path.clone(),
                reason: e.to_string(),
            })?;
        let mut weights = Vec::new();
        for i in 1..=pcn.config.layers {
            let w = map
                .remove(&format!("w{i}"))
                .ok_or_else(|| PcnError::Checkpoint {
                    path: w_path.clone(),
                    reason: format!("tensor w{i} missing"),
                })?;
            weights.push(w);
        }
        let prior = map.remove("b");
        pcn.set_parameters(weights, prior)
            .map_err(|e| PcnError::Checkpoint {
                path: w_path.clone(),
                reason: e.to_string(),
            })?;
        if let Some(m) = map.remove("error_mse") {
            pcn.error_mse = Some(m.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(pcn)
    }
}

fn to_flat(x: &[Tensor]) -> Result<Vec<Vec<f32>>> {
    Ok(x.iter()
        .map(|t| t.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?)
}

fn pixels_of(rows: usize, cfg: &PcnConfig) -> f64 {
    (rows * cfg.input_dim) as f64
}

/// The fused CPU kernel (see [`crate::engine`]): conversions and the training/recall loops.
impl Pcn {
    fn fused(&self) -> bool {
        self.config.kernel != Kernel::Candle && self.device.is_cpu()
    }

    fn engine_dims(&self) -> Vec<usize> {
        let mut dims = vec![self.config.input_dim];
        dims.extend(std::iter::repeat_n(
            self.config.hidden_dim,
            self.config.layers,
        ));
        dims
    }

    /// Shapes of the parameters: weights in order, then the prior.
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = (1..=self.config.layers)
            .map(|l| (self.config.layer_dim(l - 1), self.config.layer_dim(l)))
            .collect();
        if self.config.memory_prior == MemoryPrior::Learned {
            v.push((1, self.config.hidden_dim));
        }
        v
    }

    /// Moves the parameters into a fused-kernel engine, one tensor at a time so that at most one
    /// matrix exists twice; [`Pcn::store_engine`] moves them back.
    fn take_engine(&mut self) -> Result<Engine<'static>> {
        let mut w = Vec::with_capacity(self.weights.len());
        for t in self.weights.iter_mut() {
            let taken = std::mem::replace(t, Tensor::zeros(0, DType::F32, &self.device)?);
            w.push(Cow::Owned(taken.flatten_all()?.to_vec1::<f32>()?));
        }
        let b = match self.prior.take() {
            Some(t) => Some(Cow::Owned(t.flatten_all()?.to_vec1::<f32>()?)),
            None => None,
        };
        Ok(Engine {
            dims: self.engine_dims(),
            activation: self.config.activation,
            placement: self.config.placement,
            w,
            b,
            allow_gram: self.config.kernel == Kernel::Fused,
            gram: None,
        })
    }

    /// Runs `f` on an engine that borrows the parameters straight from the tensors' storage.
    fn with_engine<R>(&self, f: impl FnOnce(Engine<'_>) -> Result<R>) -> Result<R> {
        let params: Vec<&Tensor> = self.weights.iter().chain(self.prior.iter()).collect();
        let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(params.len());
        for ((storage, layout), t) in guards.iter().zip(&params) {
            match &**storage {
                Storage::Cpu(CpuStorage::F32(v)) if layout.is_contiguous() => {
                    let start = layout.start_offset();
                    slices.push(Cow::Borrowed(&v[start..start + t.elem_count()]));
                }
                _ => {
                    return Err(PcnError::Shape {
                        what: "model parameters",
                        got: t.dims().to_vec(),
                        expected: "contiguous f32 tensors on the CPU for the fused kernel".into(),
                    })
                }
            }
        }
        let b = if self.prior.is_some() {
            slices.pop()
        } else {
            None
        };
        f(Engine {
            dims: self.engine_dims(),
            activation: self.config.activation,
            placement: self.config.placement,
            w: slices,
            b,
            allow_gram: self.config.kernel == Kernel::Fused,
            gram: None,
        })
    }

    /// Takes the fused kernel's Adam state (zeros at the first update); `store_engine` puts it
    /// back.
    fn adam_cpu(&mut self) -> Result<Option<AdamCpu>> {
        if !matches!(self.config.learning.optimizer, Optimizer::Adam { .. }) {
            return Ok(None);
        }
        Ok(Some(self.adam_cpu.take().unwrap_or_else(|| {
            let sizes: Vec<usize> = self.param_shapes().iter().map(|(r, c)| r * c).collect();
            AdamCpu::zeros(&sizes)
        })))
    }

    fn store_engine(&mut self, eng: Engine<'static>, adam: Option<AdamCpu>) -> Result<()> {
        let shapes = self.param_shapes();
        let nw = self.weights.len();
        for (i, w) in eng.w.into_iter().enumerate() {
            self.weights[i] = Tensor::from_vec(w.into_owned(), shapes[i], &self.device)?;
        }
        if let Some(b) = eng.b {
            self.prior = Some(Tensor::from_vec(b.into_owned(), shapes[nw], &self.device)?);
        }
        self.adam_cpu = adam;
        Ok(())
    }

    fn to_nodes(&self, ws: Workspace) -> Result<ValueNodes> {
        let rows = ws.rows;
        let nodes =
            ws.x.into_iter()
                .enumerate()
                .map(|(l, v)| Tensor::from_vec(v, (rows, self.config.layer_dim(l)), &self.device))
                .collect::<candle_core::Result<_>>()?;
        Ok(ValueNodes(nodes))
    }

    /// [`Pcn::relax`] on the fused kernel; leaves the errors of the final state in `ws`.
    #[allow(clippy::too_many_arguments)]
    fn relax_fused(
        &self,
        eng: &mut Engine,
        ws: &mut Workspace,
        free0: Option<(&[f32], FreeRule)>,
        dynamics: &InferenceConfig,
        phase: &'static str,
        epoch: usize,
    ) -> Result<InferenceInfo> {
        let gamma = dynamics.gamma;
        match eng.relax(ws, free0, dynamics) {
            Ok((steps, energy, converged)) => Ok(InferenceInfo {
                steps,
                energy,
                converged,
            }),
            Err((step, energy)) => Err(PcnError::Diverged {
                phase,
                epoch,
                step,
                energy,
                gamma,
                alpha: self.config.learning.alpha,
            }),
        }
    }

    fn learn_fused(&self, eng: &mut Engine, adam: &mut Option<AdamCpu>, ws: &Workspace) {
        let lc = &self.config.learning;
        let scale = match lc.gradient_scale {
            GradientScale::Sum => 1.0,
            GradientScale::Mean => 1.0 / ws.rows as f32,
        };
        match (lc.optimizer, adam.as_mut()) {
            (Optimizer::Adam { beta1, beta2, eps }, Some(st)) => {
                st.update(eng, ws, scale, (lc.alpha, beta1, beta2, eps))
            }
            _ => eng.sgd(ws, lc.alpha as f32 * scale),
        }
    }

    /// Inference then one weight update; returns the info and the sensory squared error.
    fn train_fused(
        &self,
        eng: &mut Engine,
        adam: &mut Option<AdamCpu>,
        ws: &mut Workspace,
        epoch: usize,
    ) -> Result<(InferenceInfo, f64)> {
        let c = &self.config.inference;
        let info = self.relax_fused(eng, ws, None, c, "training", epoch)?;
        let sensory_sq = 2.0 * Engine::energy_of_layer(ws, 0);
        self.learn_fused(eng, adam, ws);
        Ok((info, sensory_sq))
    }

    fn train_epochs_fused(
        &mut self,
        eng: &mut Engine,
        adam: &mut Option<AdamCpu>,
        batches: &[Tensor],
        kept: Vec<Option<Vec<Tensor>>>,
        lp: &mut EpochLoop,
        on_epoch: &mut impl FnMut(&EpochStats),
    ) -> Result<()> {
        let lc = self.config.learning.clone();
        let mut spaces: Vec<Option<Workspace>> = Vec::with_capacity(batches.len());
        for k in kept {
            spaces.push(match k {
                Some(x) => Some(eng.workspace(to_flat(&x)?)),
                None => None,
            });
        }
        while let Some(epoch) = lp.next_epoch() {
            let mut acc = EpochSums::default();
            for (i, batch) in batches.iter().enumerate() {
                if !(lc.persistent_values && spaces[i].is_some()) {
                    let mut rng = self.rng.clone();
                    let x = self.init_values(batch, &mut rng)?;
                    self.rng = rng;
                    match spaces[i].as_mut() {
                        Some(ws) => {
                            for (dst, t) in ws.x.iter_mut().zip(&x.0) {
                                dst.copy_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
                            }
                        }
                        None => spaces[i] = Some(eng.workspace(to_flat(&x.0)?)),
                    }
                }
                let ws = spaces[i].as_mut().expect("workspace set above");
                let (info, sensory_sq) = self.train_fused(eng, adam, ws, epoch)?;
                acc.add(&info, sensory_sq);
            }
            if lp.finish(epoch, acc, batches.len(), on_epoch) {
                let shapes = self.param_shapes();
                let nw = self.weights.len();
                let mut tensors = HashMap::new();
                for (i, w) in eng.w.iter().enumerate() {
                    tensors.insert(
                        format!("w{}", i + 1),
                        Tensor::from_slice(w, shapes[i], &Device::Cpu)?,
                    );
                }
                if let Some(b) = &eng.b {
                    tensors.insert("b".into(), Tensor::from_slice(b, shapes[nw], &Device::Cpu)?);
                }
                if let Some(a) = adam.as_ref().filter(|a| a.step > 0) {
                    for (i, (m, v)) in a.m.iter().zip(&a.v).enumerate() {
                        tensors.insert(
                            format!("adam.m{i}"),
                            Tensor::from_slice(m, shapes[i], &Device::Cpu)?,
                        );
                        tensors.insert(
                            format!("adam.v{i}"),
                            Tensor::from_slice(v, shapes[i], &Device::Cpu)?,
                        );
                    }
                }
                if lc.persistent_values {
                    let dims = self.engine_dims();
                    for (i, ws) in spaces.iter().enumerate() {
                        for (l, x) in ws.iter().flat_map(|w| w.x.iter().enumerate()) {
                            tensors.insert(
                                format!("kept{i}.x{l}"),
                                Tensor::from_slice(x, (x.len() / dims[l], dims[l]), &Device::Cpu)?,
                            );
                        }
                    }
                }
                let step = adam.as_ref().map(|a| a.step).filter(|&s| s > 0);
                lp.save(&self.config, step, &self.rng, &tensors)?;
            }
        }
        Ok(())
    }
}

/// Sums of one epoch's batches (in batch order, so every kernel adds them the same way).
#[derive(Default)]
struct EpochSums {
    energy: f64,
    sensory_sq: f64,
    steps: f64,
}

impl EpochSums {
    fn add(&mut self, info: &InferenceInfo, sensory_sq: f64) {
        self.energy += info.energy;
        self.sensory_sq += sensory_sq;
        self.steps += info.steps as f64;
    }
}

/// The epoch loop shared by the kernels: which epoch comes next, the curve so far, the stopping
/// rule of [`LearningConfig`] (replayed over the epochs of a checkpoint when resuming) and when
/// a checkpoint is due.
///
/// [`LearningConfig`]: crate::config::LearningConfig
struct EpochLoop<'a> {
    max_epochs: usize,
    pixels: f64,
    tracker: StopTracker,
    epochs: Vec<EpochStats>,
    stop: Option<StopReason>,
    policy: Option<&'a CheckpointPolicy>,
    last_save: std::time::Instant,
}

impl<'a> EpochLoop<'a> {
    fn new(
        lc: &crate::config::LearningConfig,
        pixels: f64,
        prefix: Vec<EpochStats>,
        policy: Option<&'a CheckpointPolicy>,
    ) -> Self {
        let mut tracker = StopTracker::new(lc);
        let mut stop = None;
        for s in &prefix {
            if stop.is_none() {
                stop = tracker.update(s);
            }
        }
        Self {
            max_epochs: lc.max_epochs,
            pixels,
            tracker,
            epochs: prefix,
            stop,
            policy,
            last_save: std::time::Instant::now(),
        }
    }

    /// The next epoch to train, or None when training is over.
    fn next_epoch(&self) -> Option<usize> {
        let e = self.epochs.len();
        (self.stop.is_none() && e < self.max_epochs).then_some(e)
    }

    /// Records epoch `epoch`, reports it and applies the stopping rule; true when a checkpoint
    /// is due now (time is up, or training just ended).
    fn finish(
        &mut self,
        epoch: usize,
        sums: EpochSums,
        n_batches: usize,
        on_epoch: &mut impl FnMut(&EpochStats),
    ) -> bool {
        let stats = EpochStats {
            epoch,
            energy: sums.energy,
            sensory_mse: sums.sensory_sq / self.pixels,
            inference_steps: sums.steps / n_batches as f64,
        };
        on_epoch(&stats);
        self.epochs.push(stats);
        self.stop = self.tracker.update(&stats);
        self.policy.is_some_and(|p| {
            self.next_epoch().is_none() || p.stop_asked() || self.last_save.elapsed() >= p.every
        })
    }

    fn save(
        &mut self,
        config: &PcnConfig,
        adam_step: Option<i32>,
        rng: &ChaCha8Rng,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        if let Some(p) = self.policy {
            checkpoint::write(p, config, &self.epochs, adam_step, rng, tensors)?;
            self.last_save = std::time::Instant::now();
            if p.stop_asked() && self.next_epoch().is_some() {
                return Err(PcnError::Interrupted {
                    epochs: self.epochs.len(),
                    path: p.meta_path(),
                });
            }
        }
        Ok(())
    }

    fn report(&self) -> TrainReport {
        TrainReport {
            epochs: self.epochs.clone(),
            stop: self.stop.unwrap_or(StopReason::EpochLimit),
        }
    }
}

/// Decides when training stops (target MSE, plateau of the energy).
struct StopTracker {
    target: Option<f64>,
    min_rel: f64,
    patience: usize,
    best: f64,
    since_best: usize,
}

impl StopTracker {
    fn new(lc: &crate::config::LearningConfig) -> Self {
        Self {
            target: lc.target_mse,
            min_rel: lc.min_rel_improvement,
            patience: lc.patience,
            best: f64::INFINITY,
            since_best: 0,
        }
    }

    fn update(&mut self, s: &EpochStats) -> Option<StopReason> {
        if self.target.is_some_and(|t| s.sensory_mse < t) {
            return Some(StopReason::TargetReached);
        }
        if s.energy < self.best * (1.0 - self.min_rel) {
            self.best = s.energy;
            self.since_best = 0;
        } else {
            self.since_best += 1;
            if self.since_best >= self.patience {
                return Some(StopReason::Plateau);
            }
        }
        None
    }
}

/// Per-row mean squared error between two `(N, d)` tensors, as a vector of length N.
pub fn per_row_mse(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Ok((a - b)?.sqr()?.mean(D::Minus1)?.to_vec1::<f32>()?)
}
