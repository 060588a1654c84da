//! Configuration of a generative PCN: architecture, inference, learning, recall.
//!
//! Every convention that the paper leaves open is a field here with
//! the paper's reading as its default; the whole struct serialises with serde and is written into
//! checkpoints and run records.
//!
//! ```
//! use pcmem_model::{PcnConfig, Activation};
//! let mut cfg = PcnConfig::new(3072, 512);
//! cfg.activation = Activation::Tanh;
//! cfg.validate().unwrap();
//! assert_eq!(cfg.layers, 2);
//! let text = serde_json::to_string(&cfg).unwrap();
//! let back: PcnConfig = serde_json::from_str(&text).unwrap();
//! assert_eq!(back, cfg);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{PcnError, Result};

/// Non-linearity `f` applied in predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`, derivative 1 for `x >= 0` (the convention of candle's autograd), 0 below.
    #[default]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// No non-linearity (a linear generative model).
    Identity,
}

/// Where the non-linearity sits in the prediction of layer `l` from layer `l+1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ActivationPlacement {
    /// `mu_l = W_{l+1} f(x_{l+1})` (the paper, Eq. 1).
    #[default]
    PreSynaptic,
    /// `mu_l = f(W_{l+1} x_{l+1})` (used by some reimplementations).
    PostSynaptic,
}

/// What predicts the top (memory) layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MemoryPrior {
    /// A learned memory vector `b` predicts layer `L` (the paper, Eq. 1).
    #[default]
    Learned,
    /// Layer `L` is a free latent with no energy term of its own.
    Free,
}

/// How hidden value nodes start before inference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ValueInit {
    /// All hidden value nodes start at zero (the paper's reading).
    #[default]
    Zero,
    /// Top-down pass: `x_L = b`, then `x_l = mu_l` down to layer 1.
    Forward,
    /// Independent Gaussian values of the given standard deviation (seeded).
    Random {
        /// Standard deviation of the starting values.
        std: f64,
    },
}

/// Precision (inverse variance) of the known pixels' errors in recall from a partial image,
/// relative to the hidden layers' unit precision: the energy becomes
/// `P/2 |eps_0 on known pixels|^2 + 1/2 sum_l |eps_l|^2`. A known pixel is an exact
/// observation, while the paper's energy weighs its error like any hidden error; a larger `P`
/// holds the completion to the known pixels against the cost of the latent code.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KnownPrecision {
    /// A fixed precision (`1`: the paper's energy).
    Fixed {
        /// The precision P, > 0.
        value: f64,
    },
    /// The maximum-likelihood ratio from training: mean squared hidden error per unit over
    /// mean squared sensory error per pixel, measured on the stored images at the end of
    /// training ([`crate::Pcn::error_mse`]). No recall result enters it.
    Estimated,
}

impl Default for KnownPrecision {
    fn default() -> Self {
        KnownPrecision::Fixed { value: 1.0 }
    }
}

/// Which relaxation each application of the map F runs in recall from a corrupted image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoiseRelaxation {
    /// The training inference (`inference`: its gamma, T steps, tolerance and momentum, value
    /// nodes started as in training): F is the inference phase that training made the stored
    /// images fixed points of (up to their sensory error at the end of training). The paper,
    /// Sec. 3: what recall does "is simply the inference phase of PCNs".
    #[default]
    Training,
    /// The recall settings (`recall.gamma`, `.steps`, `.tolerance`, `.momentum`): one long
    /// relaxation per application, towards the minimum of the energy with the cue clamped.
    Recall,
}

/// How the weights are updated from their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Optimizer {
    /// Plain gradient steps of size `alpha` (the paper, Eq. 4-5).
    #[default]
    Sgd,
    /// Adam (Kingma and Ba) with learning rate `alpha`.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the root of the second moment.
        eps: f64,
    },
}

impl Optimizer {
    /// Adam with the usual constants (0.9, 0.999, 1e-8).
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// How the per-image weight gradients of a batch are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GradientScale {
    /// Sum over the images of the batch: the gradient of the total energy (Eq. 2, 4, 5).
    #[default]
    Sum,
    /// Mean over the images of the batch.
    Mean,
}

/// Starting weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WeightInit {
    /// Gaussian with std `sqrt(2 / (fan_in + fan_out))`.
    #[default]
    XavierNormal,
    /// Gaussian with the given std.
    Normal {
        /// Standard deviation.
        std: f64,
    },
}

/// Which implementation runs the hot loop: an execution choice ([`crate::Pcn::set_kernel`]);
/// every kernel computes the same network (the tests hold them to each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// On CPU, a fused kernel on preallocated buffers (same equations, far fewer passes over
    /// memory). While the sensory layer is clamped (training, recall from noise) and the
    /// non-linearity is pre-synaptic, it computes the bottom-up term of layer 1 through the
    /// identity `eps_0 W_1 = x_0 W_1 - f(x_1) (W_1^T W_1)`, which replaces two `N x d x n`
    /// products per step by one `N x n x n` product. On other devices: `candle_gram`.
    #[default]
    Fused,
    /// The fused CPU kernel without the Gram identity (two `N x d x n` products per step). On
    /// other devices: `candle`.
    FusedDirect,
    /// One candle operation per term of the equations (the reference implementation).
    Candle,
    /// The candle operations of `candle` with the Gram identity of `fused` (where it applies):
    /// what `fused` runs on a GPU; on a CPU it serves to test that path.
    CandleGram,
}

/// Value-node dynamics (Eq. 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Integration step gamma. Default 0.1.
    pub gamma: f64,
    /// Number of inference steps T (the maximum when `tolerance` is set). Default 50.
    pub steps: usize,
    /// Stop early once the relative energy change of one step falls below this. Default none
    /// (always run `steps`). Checking costs one reduction per step.
    pub tolerance: Option<f64>,
    /// Heavy-ball momentum beta of the value nodes, in [0, 1): each step adds beta times the
    /// previous step's change, `v = beta v - gamma dE/dx; x += v`. Same fixed points as plain
    /// steps (beta = 0, the paper's Eq. 3); on the ill-conditioned energies of wide layers it
    /// needs about the square root of the steps. Default 0.
    pub momentum: f64,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            gamma: 0.1,
            steps: 50,
            tolerance: None,
            momentum: 0.0,
        }
    }
}

/// Weight learning (Eq. 4-5) and the training loop (Alg. 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Learning rate alpha. Default 1e-4 (the paper's search space was {1e-4, 5e-5}).
    pub alpha: f64,
    /// Update rule. Default plain gradient steps.
    pub optimizer: Optimizer,
    /// Sum or mean over the batch. Default sum.
    pub gradient_scale: GradientScale,
    /// Images per weight update; `None` means the whole set (full batch). Default none.
    pub batch_size: Option<usize>,
    /// Maximum number of epochs (one epoch = one pass over all images). Default 1000.
    pub max_epochs: usize,
    /// Stop once the epoch energy has not fallen by more than `min_rel_improvement` of the best
    /// energy for this many epochs. Default 100.
    pub patience: usize,
    /// Relative improvement counted as progress. Default 1e-4.
    pub min_rel_improvement: f64,
    /// How many plateaus training goes on through: at each of the first `plateau_decays`
    /// plateaus (as `patience` defines them) the learning rate is multiplied by
    /// `plateau_factor` and the patience count starts again; the plateau after the last one
    /// stops training. A solver setting: the energy and its minima are unchanged; a smaller
    /// step lets Adam settle below the noise floor its fixed step leaves. Default 0 (the first
    /// plateau stops training).
    pub plateau_decays: usize,
    /// Factor in (0, 1) applied to `alpha` at each plateau decay. Default 0.1.
    pub plateau_factor: f64,
    /// Stop as soon as the mean sensory squared error per pixel falls below this. Default none.
    pub target_mse: Option<f64>,
    /// Keep each stored image's hidden value nodes from one epoch to the next instead of
    /// re-initialising them (each image keeps its own latent state). Default false.
    pub persistent_values: bool,
}

impl Default for LearningConfig {
    fn default() -> Self {
        Self {
            alpha: 1e-4,
            optimizer: Optimizer::Sgd,
            gradient_scale: GradientScale::Sum,
            batch_size: None,
            max_epochs: 1000,
            patience: 100,
            min_rel_improvement: 1e-4,
            plateau_decays: 0,
            plateau_factor: 0.1,
            target_mse: None,
            persistent_values: false,
        }
    }
}

/// Retrieval (Sec. 3 and Alg. 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecallConfig {
    /// Inference rate during recall. Default 0.1.
    pub gamma: f64,
    /// Inference steps of recall from a partial image (and of each application of F when
    /// `noise_relaxation = "recall"`). Default 250.
    pub steps: usize,
    /// How many times F is applied when recalling from a corrupted image. Default 30.
    pub iterations: usize,
    /// Which relaxation one application of F runs. Default `training` (the training
    /// inference); `recall` uses `gamma`, `steps`, `tolerance` and `momentum` of this table.
    pub noise_relaxation: NoiseRelaxation,
    /// Early stop on relative energy change, as in [`InferenceConfig::tolerance`]. Default none.
    pub tolerance: Option<f64>,
    /// Heavy-ball momentum of the value nodes during recall, as in
    /// [`InferenceConfig::momentum`]. Default 0.
    pub momentum: f64,
    /// How the free (unknown) sensory pixels move in recall from a partial image. Default none:
    /// a gradient step of size `gamma` with the latents, Alg. 2 as written. `Some(r)`, r in
    /// (0, 1]: before every latent step they move the fraction `r` of the way to their current
    /// prediction `mu_0`; with `1.0` they sit on it, so the latents feel only the known pixels
    /// (gradient descent on the energy minimised over the free pixels). The fixed points are
    /// the same; the slow joint drift of free pixels and latents along the valley, whose
    /// curvature shrinks by `1 + |W_1 v|^2`, is gone, so recall converges in far fewer steps.
    pub free_pixel_rate: Option<f64>,
    /// Precision P of the known pixels' errors in recall from a partial image. With P > 1 the
    /// recall step is `gamma / P` (the stiffest term keeps the stability margin of `gamma`),
    /// so it needs more steps or `momentum`. Default fixed 1 (the paper's energy).
    pub known_precision: KnownPrecision,
}

impl RecallConfig {
    /// The value-node dynamics of a recall run (rate, steps, tolerance, momentum).
    pub fn relaxation(&self) -> InferenceConfig {
        InferenceConfig {
            gamma: self.gamma,
            steps: self.steps,
            tolerance: self.tolerance,
            momentum: self.momentum,
        }
    }
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            gamma: 0.1,
            steps: 250,
            iterations: 30,
            noise_relaxation: NoiseRelaxation::default(),
            tolerance: None,
            momentum: 0.0,
            free_pixel_rate: None,
            known_precision: KnownPrecision::default(),
        }
    }
}

/// Full description of a generative PCN. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PcnConfig {
    /// Sensory dimension d (pixels times channels). Default 3072 (CIFAR-10).
    pub input_dim: usize,
    /// Width n of every hidden layer. Default 512.
    pub hidden_dim: usize,
    /// Number of hidden layers L (layer L is the memory layer). Default 2.
    pub layers: usize,
    /// Non-linearity. Default ReLU.
    pub activation: Activation,
    /// Pre- or post-synaptic non-linearity. Default pre-synaptic.
    pub placement: ActivationPlacement,
    /// Learned memory vector or free top layer. Default learned.
    pub memory_prior: MemoryPrior,
    /// Hidden value-node start. Default zero.
    pub value_init: ValueInit,
    /// Weight start. Default Xavier normal.
    pub weight_init: WeightInit,
    /// Seed of every random choice (weights, random value init). Default 0.
    pub seed: u64,
    /// Retired from the model's settings: the kernel is how the network is computed, not what
    /// it is; choose it with [`crate::Pcn::set_kernel`] (the harness: `--kernel`). A config
    /// written when it was a setting still loads and starts the network with that kernel; it
    /// is never written back.
    #[serde(default, skip_serializing, rename = "kernel")]
    pub(crate) legacy_kernel: Option<Kernel>,
    /// Inference during training.
    pub inference: InferenceConfig,
    /// Weight learning.
    pub learning: LearningConfig,
    /// Retrieval.
    pub recall: RecallConfig,
}

impl Default for PcnConfig {
    fn default() -> Self {
        Self {
            input_dim: 3072,
            hidden_dim: 512,
            layers: 2,
            activation: Activation::default(),
            placement: ActivationPlacement::default(),
            memory_prior: MemoryPrior::default(),
            value_init: ValueInit::default(),
            weight_init: WeightInit::default(),
            seed: 0,
            legacy_kernel: None,
            inference: InferenceConfig::default(),
            learning: LearningConfig::default(),
            recall: RecallConfig::default(),
        }
    }
}

fn bad(field: &'static str, value: impl std::fmt::Display, reason: &str) -> PcnError {
    PcnError::InvalidConfig {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn positive_rate(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(bad(field, v, "must be a finite number > 0"))
    }
}

fn momentum(field: &'static str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(
            field,
            v,
            "must be in [0, 1); 0 is the paper's plain step",
        ))
    }
}

fn positive_count(field: &'static str, v: usize) -> Result<()> {
    if v > 0 {
        Ok(())
    } else {
        Err(bad(field, v, "must be at least 1"))
    }
}

impl PcnConfig {
    /// Defaults with the given sensory dimension `d` and hidden width `n`.
    pub fn new(input_dim: usize, hidden_dim: usize) -> Self {
        Self {
            input_dim,
            hidden_dim,
            ..Self::default()
        }
    }

    /// The value-node dynamics of one application of F in recall from a corrupted image
    /// (`recall.noise_relaxation`: the training inference or the recall settings).
    pub fn noise_relaxation(&self) -> InferenceConfig {
        match self.recall.noise_relaxation {
            NoiseRelaxation::Training => self.inference.clone(),
            NoiseRelaxation::Recall => self.recall.relaxation(),
        }
    }

    /// Width of layer `l` (0 is sensory).
    pub fn layer_dim(&self, l: usize) -> usize {
        if l == 0 {
            self.input_dim
        } else {
            self.hidden_dim
        }
    }

    /// Number of learned parameters (weights and memory vector).
    pub fn parameter_count(&self) -> usize {
        let weights: usize = (1..=self.layers)
            .map(|l| self.layer_dim(l) * self.layer_dim(l - 1))
            .sum();
        let prior = match self.memory_prior {
            MemoryPrior::Learned => self.hidden_dim,
            MemoryPrior::Free => 0,
        };
        weights + prior
    }

    /// Checks every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        positive_count("input_dim", self.input_dim)?;
        positive_count("hidden_dim", self.hidden_dim)?;
        positive_count("layers", self.layers)?;
        positive_rate("inference.gamma", self.inference.gamma)?;
        positive_count("inference.steps", self.inference.steps)?;
        if let Some(t) = self.inference.tolerance {
            positive_rate("inference.tolerance", t)?;
        }
        momentum("inference.momentum", self.inference.momentum)?;
        positive_rate("learning.alpha", self.learning.alpha)?;
        if let Some(b) = self.learning.batch_size {
            positive_count("learning.batch_size", b)?;
        }
        positive_count("learning.max_epochs", self.learning.max_epochs)?;
        if !(self.learning.min_rel_improvement >= 0.0 && self.learning.min_rel_improvement < 1.0) {
            return Err(bad(
                "learning.min_rel_improvement",
                self.learning.min_rel_improvement,
                "must be in [0, 1)",
            ));
        }
        if let Some(t) = self.learning.target_mse {
            positive_rate("learning.target_mse", t)?;
        }
        let f = self.learning.plateau_factor;
        if !(f > 0.0 && f < 1.0) {
            return Err(bad(
                "learning.plateau_factor",
                f,
                "must be in (0, 1) (e.g. 0.1: each plateau decay divides the rate by 10)",
            ));
        }
        if let Optimizer::Adam { beta1, beta2, eps } = self.learning.optimizer {
            for (name, b) in [
                ("learning.optimizer.beta1", beta1),
                ("learning.optimizer.beta2", beta2),
            ] {
                if !(0.0..1.0).contains(&b) {
                    return Err(bad(name, b, "must be in [0, 1)"));
                }
            }
            positive_rate("learning.optimizer.eps", eps)?;
        }
        positive_rate("recall.gamma", self.recall.gamma)?;
        positive_count("recall.steps", self.recall.steps)?;
        positive_count("recall.iterations", self.recall.iterations)?;
        momentum("recall.momentum", self.recall.momentum)?;
        if let Some(r) = self.recall.free_pixel_rate {
            if !(r > 0.0 && r <= 1.0) {
                return Err(bad(
                    "recall.free_pixel_rate",
                    r,
                    "must be in (0, 1]; 1 sets the free pixels to their prediction",
                ));
            }
        }
        if let KnownPrecision::Fixed { value } = self.recall.known_precision {
            positive_rate("recall.known_precision.value", value)?;
        }
        if let Some(t) = self.recall.tolerance {
            positive_rate("recall.tolerance", t)?;
        }
        if let ValueInit::Random { std } = self.value_init {
            positive_rate("value_init.std", std)?;
        }
        if let WeightInit::Normal { std } = self.weight_init {
            positive_rate("weight_init.std", std)?;
        }
        Ok(())
    }
}
