//! The one trait every associative memory implements, so that the harness treats the PCN and
//! every baseline alike: store a set of patterns, recall from cues.
//!
//! A cue comes with an optional known-pixel mask: `None` means every pixel is given but may be
//! corrupted (recall from noise); `Some(mask)` (`(1, d)` or `(N, d)`, 1 = known) means the
//! pixels where the mask is 1 are correct and the others are unknown (recall from a partial
//! image). Patterns and cues are `(N, d)` f32 tensors, one flattened image per row.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::{AssociativeMemory, PcnConfig};
//! let mut cfg = PcnConfig::new(8, 4);
//! cfg.learning.max_epochs = 2;
//! cfg.recall.iterations = 1;
//! cfg.recall.steps = 5;
//! let mut memory: Box<dyn AssociativeMemory> = Box::new(cfg.init(&Device::Cpu)?);
//! let patterns = Tensor::rand(0f32, 1f32, (3, 8), &Device::Cpu)?;
//! let fit = memory.fit(&patterns)?;
//! assert_eq!(fit.curve.len(), 2);
//! let out = memory.recall(&patterns, None)?;
//! assert_eq!(out.images.dims(), &[3, 8]);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::collections::BTreeMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointPolicy, Resume};
use crate::config::PcnConfig;
use crate::pcn::{Pcn, StopReason, TrainReport};

/// Errors of any memory, boxed so that every crate keeps its own error enum.
pub type MemoryError = Box<dyn std::error::Error + Send + Sync>;

/// What storing the patterns did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FitReport {
    /// Training loss (or energy) per epoch; empty for one-shot memories.
    pub curve: Vec<f64>,
    /// Whether training stopped because it met its target or converged.
    pub converged: bool,
    /// Free text on why it stopped.
    pub stop: String,
    /// Quantities measured while fitting, by name (the PCN: its resolved
    /// `recall.known_precision`, which recall uses, the training errors `error_mse.<layer>`
    /// and, with plateau decays, the epoch count after which decay `k` was taken,
    /// `learning.plateau_decay.<k>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolved: BTreeMap<String, f64>,
}

/// Where a training run is, reported after every epoch by [`AssociativeMemory::fit_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitProgress {
    /// Epochs finished so far.
    pub epoch: usize,
    /// The epoch limit.
    pub max_epochs: usize,
    /// Loss (or energy) of the last epoch.
    pub loss: f64,
    /// Mean squared reconstruction error per pixel of the last epoch.
    pub mse: f64,
}

/// The result of a recall.
#[derive(Debug, Clone)]
pub struct Recall {
    /// `(N, d)` recalled patterns.
    pub images: Tensor,
    /// Update steps taken (per inference run or iteration, summed).
    pub steps: usize,
    /// Whether the dynamics reached a fixed point / tolerance.
    pub converged: bool,
}

/// An associative memory: fit on patterns, recall from cues with an optional known-pixel mask.
pub trait AssociativeMemory {
    /// Short name written into run records (e.g. `pcn`, `ae`, `hopfield`, `modern_hopfield`).
    fn name(&self) -> &'static str;
    /// Stores the patterns (`(N, d)`, one per row).
    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError>;
    /// Like [`AssociativeMemory::fit`], calling `on_epoch` after every epoch (for progress
    /// bars). One-shot memories keep the default, which never calls it.
    fn fit_with(
        &mut self,
        patterns: &Tensor,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<FitReport, MemoryError> {
        let _ = on_epoch;
        self.fit(patterns)
    }
    /// Like [`AssociativeMemory::fit_with`], saving the training state to `checkpoint` as it
    /// goes and resuming from it when one is there ([`crate::checkpoint`]). Memories that cannot
    /// resume keep the default, which fits from the start and says [`Resume::Unsupported`].
    fn fit_resumable(
        &mut self,
        patterns: &Tensor,
        checkpoint: &CheckpointPolicy,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<(FitReport, Resume), MemoryError> {
        let _ = checkpoint;
        Ok((self.fit_with(patterns, on_epoch)?, Resume::Unsupported))
    }
    /// Switches to other recall settings without retraining (a recall arm of a grid):
    /// `config` is this memory's full config (as serialised) in which only recall settings
    /// differ. Memories without recall settings keep the default, which refuses.
    fn set_recall_settings(&mut self, config: &serde_json::Value) -> Result<(), MemoryError> {
        let _ = config;
        Err(format!("{} has no recall settings to change", self.name()).into())
    }
    /// Chooses how the memory is computed where it has a choice (the PCN's kernels, see
    /// [`crate::Pcn::set_kernel`]); an execution option, never a setting of the model. Memories
    /// with one way of computing keep the default, which accepts any kernel and changes
    /// nothing.
    fn set_kernel(&mut self, kernel: crate::config::Kernel) -> Result<(), MemoryError> {
        let _ = kernel;
        Ok(())
    }
    /// Recalls from `cues` (`(N, d)`); see the module docs for `known`.
    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError>;
    /// Number of learned or stored parameters.
    fn parameter_count(&self) -> usize;
}

/// A PCN epoch as the trait's progress report.
fn progress(e: &crate::pcn::EpochStats, max_epochs: usize) -> FitProgress {
    FitProgress {
        epoch: e.epoch + 1,
        max_epochs,
        loss: e.energy,
        mse: e.sensory_mse,
    }
}

impl Pcn {
    fn fit_report(&self, report: &TrainReport) -> FitReport {
        let mut resolved = BTreeMap::new();
        for (l, m) in self.error_mse().unwrap_or_default().iter().enumerate() {
            resolved.insert(format!("error_mse.{l}"), *m);
        }
        if let Ok(p) = self.known_precision() {
            resolved.insert("recall.known_precision".into(), p);
        }
        for (k, e) in report.decay_epochs.iter().enumerate() {
            // 1-based, as progress counts epochs.
            resolved.insert(format!("learning.plateau_decay.{}", k + 1), (*e + 1) as f64);
        }
        FitReport {
            curve: report.epochs.iter().map(|e| e.energy).collect(),
            converged: report.stop != StopReason::EpochLimit,
            stop: format!("{:?}", report.stop),
            resolved,
        }
    }
}

impl AssociativeMemory for Pcn {
    fn name(&self) -> &'static str {
        "pcn"
    }

    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError> {
        self.fit_with(patterns, &mut |_| {})
    }

    fn fit_with(
        &mut self,
        patterns: &Tensor,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<FitReport, MemoryError> {
        let max_epochs = self.config().learning.max_epochs;
        let report = self.train_with(patterns, |e| on_epoch(&progress(e, max_epochs)))?;
        Ok(self.fit_report(&report))
    }

    fn fit_resumable(
        &mut self,
        patterns: &Tensor,
        checkpoint: &CheckpointPolicy,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<(FitReport, Resume), MemoryError> {
        let max_epochs = self.config().learning.max_epochs;
        let (report, resume) =
            self.train_resumable(patterns, checkpoint, |e| on_epoch(&progress(e, max_epochs)))?;
        Ok((self.fit_report(&report), resume))
    }

    fn set_recall_settings(&mut self, config: &serde_json::Value) -> Result<(), MemoryError> {
        let new: PcnConfig = serde_json::from_value(config.clone())?;
        new.validate()?;
        let mut same = new.clone();
        same.recall = self.config().recall.clone();
        if &same != self.config() {
            return Err(
                "recall settings only may change without retraining; the other \
                        settings differ from the trained model's"
                    .into(),
            );
        }
        *self.recall_config_mut() = new.recall;
        Ok(())
    }

    fn set_kernel(&mut self, kernel: crate::config::Kernel) -> Result<(), MemoryError> {
        Ok(Pcn::set_kernel(self, kernel)?)
    }

    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError> {
        let (images, info) = match known {
            None => self.recall_noisy(cues)?,
            Some(mask) => self.recall_partial(cues, mask)?,
        };
        Ok(Recall {
            images,
            steps: info.runs.iter().map(|r| r.steps).sum(),
            converged: info.runs.iter().all(|r| r.converged),
        })
    }

    fn parameter_count(&self) -> usize {
        self.config().parameter_count()
    }
}

/// The PCN's factory: `[pcn]` in a grid holds any subset of [`PcnConfig`]; the cell fixes
/// `input_dim`, `hidden_dim`, `layers` and `seed`.
pub struct PcnFactory;

impl crate::factory::ModelFactory for PcnFactory {
    type Config = PcnConfig;
    const NAME: &'static str = "pcn";
    const ABOUT: &'static str =
        "generative predictive-coding network (Salvatori et al. 2021), trained by inference learning";
    const SIZED: bool = true;

    fn defaults(sizes: &crate::factory::Sizes) -> PcnConfig {
        PcnConfig::new(sizes.input_dim, sizes.hidden)
    }

    fn fixed(s: &crate::factory::Sizes) -> serde_json::Value {
        serde_json::json!({"input_dim": s.input_dim, "hidden_dim": s.hidden, "layers": s.layers, "seed": s.seed})
    }

    fn validate(config: &PcnConfig) -> Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &PcnConfig,
        _: &crate::factory::Sizes,
        device: &candle_core::Device,
    ) -> Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(config.init(device)?))
    }

    /// Weights W = d n + (L-1) n^2 + n: weights, gradients and two Adam moments (4 W), five
    /// value-node arrays per layer (values, errors, inputs, back-propagated errors,
    /// velocities), the Gram matrix n^2, and six copies of the data (images, cues, recalls,
    /// pictures).
    fn memory_floats(c: &PcnConfig, s: &crate::factory::Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        let (h, l) = (c.hidden_dim as f64, c.layers as f64);
        let w = d * h + (l - 1.0) * h * h + h;
        4.0 * w + 5.0 * n * (d + l * h) + h * h + 6.0 * n * d
    }

    /// `(T + 1)` inference steps of four products per weight and two for the update, times
    /// the epoch limit.
    fn work_gflop(c: &PcnConfig, s: &crate::factory::Sizes) -> f64 {
        let (nimg, d) = (s.n_images as f64, s.input_dim as f64);
        let (n, l) = (c.hidden_dim as f64, c.layers as f64);
        let epochs = c.learning.max_epochs as f64;
        let steps = c.inference.steps as f64;
        let pair = nimg * (d * n + (l - 1.0) * n * n);
        epochs * ((steps + 1.0) * 4.0 * pair + 2.0 * pair) / 1e9
    }

    /// Four products per weight per inference step: `recall.steps` steps from a partial
    /// image; from a noisy one `recall.iterations` applications of F, each a relaxation of the
    /// noise settings' steps plus one.
    fn recall_gflop(c: &PcnConfig, s: &crate::factory::Sizes, masked: bool) -> f64 {
        let (nimg, d) = (s.n_images as f64, s.input_dim as f64);
        let (n, l) = (c.hidden_dim as f64, c.layers as f64);
        let pair = nimg * (d * n + (l - 1.0) * n * n);
        let steps = if masked {
            c.recall.steps as f64
        } else {
            c.recall.iterations as f64 * (c.noise_relaxation().steps as f64 + 1.0)
        };
        steps * 4.0 * pair / 1e9
    }

    fn epoch_limit(c: &PcnConfig) -> Option<usize> {
        Some(c.learning.max_epochs)
    }
}
