//! The autoencoder's settings, with their documented defaults and checks.

use serde::{Deserialize, Serialize};

use crate::error::{bad, Result};

/// Hidden non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AeActivation {
    /// Leaky ReLU with slope 0.01 below zero (default).
    #[default]
    LeakyRelu,
    /// ReLU.
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

/// How the weights start (biases start at zero either way). A solver setting: the loss and its
/// minima are the same, only where training starts differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AeInit {
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (PyTorch's `nn.Linear` weights; default). Each
    /// layer scales the signal's variance by about `1/3` times the activation's mean square,
    /// so in a deep network it fades out with depth: the output of a fresh 10-layer network
    /// hardly depends on its input, and training moves slowly from there.
    #[default]
    UniformFanIn,
    /// Variance-preserving (He et al. 2015): `U(-g sqrt(3/fan_in), g sqrt(3/fan_in))` with the
    /// gain `g` of the layer's activation (`sqrt(2/(1 + 0.01^2))` for leaky ReLU, `sqrt(2)`
    /// for ReLU, `5/3` for tanh; 1 for the linear output layer), so the signal keeps its scale
    /// through any depth.
    Scaled,
}

/// Settings of the autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// Width of every hidden layer. Default 512.
    pub hidden_dim: usize,
    /// Number of hidden layers; weight layers = this + 1. Default 2 (a "3-layer" network).
    pub hidden_layers: usize,
    /// Hidden activation. Default leaky ReLU.
    pub activation: AeActivation,
    /// Initial weights. Default `uniform_fan_in` (PyTorch's).
    pub init: AeInit,
    /// Adam learning rate. Default 1e-3.
    pub lr: f64,
    /// Maximum full-batch epochs. Default 2000.
    pub max_epochs: usize,
    /// Stop once the training MSE falls below this. Default 1e-6.
    pub target_mse: f64,
    /// At the epoch limit, return the weights of the epoch with the lowest training loss
    /// instead of the last ones (the record's `fit.resolved.restored_epoch` says which). A
    /// solver safeguard: the loss and its minima are the same, only which iterate training
    /// returns differs. Adam at a high rate can blow up late in a deep network's training
    /// (a 10-layer network on 500 Tiny ImageNet images went from a loss of 5.4e-3 to 1e8 in
    /// its last 600 epochs) and then returns a network that stores nothing. Costs a copy of
    /// the weights at every epoch that lowers the loss. Default false.
    pub restore_best: bool,
    /// Maximum applications of the map during recall. Default 100.
    pub recall_iterations: usize,
    /// Stop recall once no value moves by more than this. Default 1e-6.
    pub recall_tolerance: f64,
    /// Seed of the initial weights. Default 0.
    pub seed: u64,
}

impl AutoencoderConfig {
    /// Checks every setting; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.hidden_dim == 0 {
            return bad("hidden_dim", "0".into(), "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr.to_string(), "must be a finite number > 0");
        }
        if self.max_epochs == 0 {
            return bad("max_epochs", "0".into(), "must be at least 1");
        }
        if self.recall_iterations == 0 {
            return bad("recall_iterations", "0".into(), "must be at least 1");
        }
        for (field, v) in [
            ("target_mse", self.target_mse),
            ("recall_tolerance", self.recall_tolerance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, v.to_string(), "must be a finite number >= 0");
            }
        }
        Ok(())
    }
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            hidden_dim: 512,
            hidden_layers: 2,
            activation: AeActivation::LeakyRelu,
            init: AeInit::UniformFanIn,
            lr: 1e-3,
            max_epochs: 2000,
            target_mse: 1e-6,
            restore_best: false,
            recall_iterations: 100,
            recall_tolerance: 1e-6,
            seed: 0,
        }
    }
}
