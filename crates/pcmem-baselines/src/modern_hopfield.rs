//! Modern Hopfield network (Ramsauer et al. 2021, "Hopfield networks is all you need"): the
//! stored patterns `X` (rows) are the memory; a state `xi` is updated by
//! `xi <- X^T softmax(beta X xi)` until it stops moving. Pure retrieval: no learned projections
//! and no normalisation. Known pixels of a partial cue are clamped after every update.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_baselines::{ModernHopfield, ModernHopfieldConfig};
//! use pcmem_model::AssociativeMemory;
//! let x = Tensor::new(&[[1f32, 0., 0., 1.], [0., 1., 1., 0.]], &Device::Cpu)?;
//! let mut mhn = ModernHopfield::new(ModernHopfieldConfig { beta: 20.0, ..Default::default() })?;
//! mhn.fit(&x)?;
//! let cue = Tensor::new(&[[0.9f32, 0.2, 0.1, 0.8]], &Device::Cpu)?;
//! let out = mhn.recall(&cue, None)?;
//! assert!((out.images.get(0)?.get(0)?.to_scalar::<f32>()? - 1.0).abs() < 1e-3);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use candle_core::{DType, Tensor, D};
use pcmem_model::factory::{ModelFactory, Sizes};
use pcmem_model::{AssociativeMemory, FitReport, MemoryError, Recall};
use serde::{Deserialize, Serialize};

use crate::error::{check_rows, iterate_clamped, mask_for, BaselineError, Result};

/// Settings of the modern Hopfield network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModernHopfieldConfig {
    /// Inverse temperature. Default 2 (the value the paper used, Table 1).
    pub beta: f64,
    /// Maximum number of updates. Default 100.
    pub max_iterations: usize,
    /// Stop when no value moves by more than this. Default 1e-6.
    pub tolerance: f64,
}

impl Default for ModernHopfieldConfig {
    fn default() -> Self {
        Self {
            beta: 2.0,
            max_iterations: 100,
            tolerance: 1e-6,
        }
    }
}

impl ModernHopfieldConfig {
    /// Checks every setting; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(BaselineError::InvalidConfig {
                field: "beta",
                value: self.beta.to_string(),
                reason: "must be a finite number > 0",
            });
        }
        if self.max_iterations == 0 {
            return Err(BaselineError::InvalidConfig {
                field: "max_iterations",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(BaselineError::InvalidConfig {
                field: "tolerance",
                value: self.tolerance.to_string(),
                reason: "must be a finite number >= 0",
            });
        }
        Ok(())
    }
}

/// A modern Hopfield network; see the module docs.
#[derive(Debug, Clone)]
pub struct ModernHopfield {
    config: ModernHopfieldConfig,
    patterns: Option<Tensor>,
}

impl ModernHopfield {
    /// Validates the config.
    pub fn new(config: ModernHopfieldConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            patterns: None,
        })
    }

    fn stored(&self) -> Result<&Tensor> {
        self.patterns.as_ref().ok_or(BaselineError::NotFitted {
            model: "modern_hopfield",
        })
    }

    /// One update of every row of `xi`: `softmax(beta xi X^T) X`.
    pub fn update(&self, xi: &Tensor) -> Result<Tensor> {
        let x = self.stored()?;
        let logits = (xi.matmul(&x.t()?)? * self.config.beta)?;
        let max = logits.max_keepdim(D::Minus1)?;
        let e = logits.broadcast_sub(&max)?.exp()?;
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
        Ok(p.matmul(x)?)
    }

    /// Energy of each row: `-1/beta log sum_mu exp(beta x_mu . xi) + 1/2 |xi|^2`.
    pub fn energy(&self, xi: &Tensor) -> Result<Vec<f32>> {
        let x = self.stored()?;
        let b = self.config.beta;
        let logits = (xi.matmul(&x.t()?)? * b)?;
        let max = logits.max_keepdim(D::Minus1)?;
        let lse = (logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + max)?;
        let e = ((lse * (-1.0 / b))? + (xi.sqr()?.sum_keepdim(D::Minus1)? * 0.5)?)?;
        Ok(e.squeeze(1)?.to_vec1::<f32>()?)
    }

    fn recall_impl(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall> {
        let x = self.stored()?;
        let d = x.dims()[1];
        check_rows("cues", cues, Some(d))?;
        let cues = cues.to_dtype(DType::F32)?;
        let rows = cues.dims()[0];
        let mask = known.map(|k| mask_for(k, rows, d)).transpose()?;
        iterate_clamped(
            &cues,
            mask.as_ref(),
            self.config.max_iterations,
            self.config.tolerance,
            |xi| self.update(xi),
        )
    }
}

impl AssociativeMemory for ModernHopfield {
    fn name(&self) -> &'static str {
        "modern_hopfield"
    }

    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError> {
        check_rows("patterns", patterns, None)?;
        self.patterns = Some(patterns.to_dtype(DType::F32)?.contiguous()?);
        Ok(FitReport {
            curve: Vec::new(),
            converged: true,
            stop: "one-shot storage".into(),
            ..Default::default()
        })
    }

    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError> {
        Ok(self.recall_impl(cues, known)?)
    }

    fn parameter_count(&self) -> usize {
        self.patterns.as_ref().map_or(0, |p| p.elem_count())
    }
}

/// The modern Hopfield network's factory: `[modern_hopfield]` holds any subset of
/// [`ModernHopfieldConfig`].
pub struct ModernHopfieldFactory;

impl ModelFactory for ModernHopfieldFactory {
    type Config = ModernHopfieldConfig;
    const NAME: &'static str = "modern_hopfield";
    const ABOUT: &'static str =
        "modern Hopfield network, xi <- X^T softmax(beta X xi) (Ramsauer et al. 2021)";

    fn defaults(_: &Sizes) -> ModernHopfieldConfig {
        ModernHopfieldConfig::default()
    }

    fn validate(config: &ModernHopfieldConfig) -> std::result::Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &ModernHopfieldConfig,
        _: &Sizes,
        _: &candle_core::Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(ModernHopfield::new(config.clone())?))
    }

    /// The stored patterns, the N x N similarities, six copies of the data.
    fn memory_floats(_: &ModernHopfieldConfig, s: &Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        n * d + 2.0 * n * n + 6.0 * n * d
    }

    /// Per update and cue, the similarities to the K stored patterns and their weighted sum:
    /// two K x d products, at most `max_iterations` updates.
    fn recall_gflop(c: &ModernHopfieldConfig, s: &Sizes, _masked: bool) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        c.max_iterations as f64 * n * 4.0 * n * d / 1e9
    }
}
