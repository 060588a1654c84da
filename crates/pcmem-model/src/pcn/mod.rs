//! The generative predictive-coding network: state, energy, inference, learning, recall.
//!
//! Layers `0..=L`: layer 0 is sensory (width `d`), layers `1..=L` have width `n`, and layer `L`
//! is predicted by the learned memory vector `b`. Rows of every tensor are data points.
//!
//! One concern per file: this one holds the network's state and its checks; `reference`, the
//! candle kernel (energy, gradients, relaxation, the parameter update); `fused`, the fused CPU
//! kernel's glue (`crate::engine` holds the kernel); `training`, the epoch loop and stopping
//! rule; `recall`, recall from noisy and from partial cues; `persist`, saving, loading and
//! resuming from checkpoints.
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

mod exec;
mod fused;
mod gram;
mod persist;
mod recall;
mod reference;
mod training;

use exec::Exec;
use training::{EpochLoop, EpochSums};

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
    /// The epochs after which the learning rate was multiplied by `learning.plateau_factor`
    /// (a plateau with decays left; empty without `learning.plateau_decays`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decay_epochs: Vec<usize>,
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
    /// In Gram form ([`gram`]), layer 1's bottom-up term; `eps_0` and `deltas[0]` are then
    /// empty placeholders.
    gram: Option<gram::GramPart>,
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
    /// The implementation that runs the hot loop (an execution choice, not a setting of the
    /// model).
    kernel: Kernel,
    /// Mean squared error per unit of every layer with an error, measured on the stored images
    /// at the end of training (see [`Pcn::measure_errors`]).
    error_mse: Option<Vec<f64>>,
    /// Multiplier of `learning.alpha` that the epoch loop sets (below 1 after plateau decays,
    /// [`crate::config::LearningConfig::plateau_decays`]); 1 outside training.
    rate_scale: f64,
}

impl PcnConfig {
    /// Validates the config and builds a PCN with seeded random weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Pcn> {
        Pcn::new(self.clone(), device)
    }

    /// [`PcnConfig::init`] with the hot loop run by `kernel` (see [`Pcn::set_kernel`]).
    pub fn init_with_kernel(&self, device: &Device, kernel: Kernel) -> Result<Pcn> {
        let mut pcn = Pcn::new(self.clone(), device)?;
        pcn.set_kernel(kernel)?;
        Ok(pcn)
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
    pub fn new(mut config: PcnConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let kernel = config.legacy_kernel.take().unwrap_or_default();
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
            rate_scale: 1.0,
            rng,
            kernel,
            error_mse: None,
        })
    }

    /// The kernel that runs the hot loop (default [`Kernel::Fused`]; on a GPU `fused` runs as
    /// [`Kernel::CandleGram`] and `fused_direct` as [`Kernel::Candle`]).
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Chooses the kernel that runs the hot loop. Every kernel computes the same network; the
    /// optimiser's state is kept per kernel family, so switching between the candle kernel and
    /// a fused one is refused once training has updated the weights (switch before training,
    /// or after it, for recall).
    pub fn set_kernel(&mut self, kernel: Kernel) -> Result<()> {
        let family = |k: Kernel| matches!(k, Kernel::Candle | Kernel::CandleGram);
        if family(kernel) != family(self.kernel) && (self.adam.is_some() || self.adam_cpu.is_some())
        {
            return Err(PcnError::InvalidConfig {
                field: "kernel",
                value: format!("{kernel:?}"),
                reason: format!(
                    "the optimiser's state belongs to the {:?} kernel; choose the kernel before \
                     training",
                    self.kernel
                ),
            });
        }
        self.kernel = kernel;
        Ok(())
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
            rate_scale: 1.0,
            rng: self.rng.clone(),
            kernel: self.kernel,
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
}

fn to_flat(x: &[Tensor]) -> Result<Vec<Vec<f32>>> {
    Ok(x.iter()
        .map(|t| t.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?)
}

fn pixels_of(rows: usize, cfg: &PcnConfig) -> f64 {
    (rows * cfg.input_dim) as f64
}

/// Per-row mean squared error between two `(N, d)` tensors, as a vector of length N.
pub fn per_row_mse(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Ok((a - b)?.sqr()?.mean(D::Minus1)?.to_vec1::<f32>()?)
}
