//! Universal Hopfield networks (Millidge et al. 2022, "Universal Hopfield Networks: a general
//! framework for single-shot associative memory models"): a cue `q` is answered by
//! `z = M^T sep(sim(M, q))`, where the rows of `M` are the stored patterns, `sim` scores each
//! of them against the cue and `sep` turns the scores into weights. The family:
//!
//! - similarity: `dot` (`m . q`), `euclidean` (`-|m - q|_2`), `manhattan` (`-|m - q|_1`);
//! - separation: `softmax` (`softmax(beta s)`), `max` (all weight on the best score, ties to
//!   the first), `polynomial` (`(s_i - min_j s_j)^degree`, normalised to sum 1; shifting by
//!   the worst score makes it, like the softmax, indifferent to adding a constant to every
//!   score, which the distance similarities, all <= 0, need), `identity` (the scores
//!   themselves, the classical network's linear read-out).
//!
//! The paper's networks are single-shot (`iterations = 1`); more iterations apply the map
//! again until no value moves by more than `tolerance`. The modern Hopfield network is the
//! member `dot` + `softmax`, iterated. Known pixels of a partial cue are put back after every
//! application, as for the other baselines.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_baselines::uhn::{Separation, Similarity, Uhn, UhnConfig};
//! use pcmem_model::AssociativeMemory;
//! let x = Tensor::new(&[[1f32, 0., 0., 1.], [0., 1., 1., 0.]], &Device::Cpu)?;
//! let config = UhnConfig { similarity: Similarity::Manhattan, separation: Separation::Max, ..Default::default() };
//! let mut uhn = Uhn::new(config)?;
//! uhn.fit(&x)?;
//! let cue = Tensor::new(&[[0.6f32, 0.3, 0.4, 0.7]], &Device::Cpu)?;
//! let out = uhn.recall(&cue, None)?;
//! assert_eq!(out.images.to_vec2::<f32>()?, vec![vec![1., 0., 0., 1.]]);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use candle_core::{DType, Device, Tensor};
use pcmem_model::factory::{ModelFactory, Sizes};
use pcmem_model::{AssociativeMemory, FitReport, MemoryError, Recall};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{bad, check_rows, iterate_clamped, mask_for, BaselineError, Result};

/// How a stored pattern is scored against the cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// `m . q`.
    Dot,
    /// `-|m - q|_2`.
    Euclidean,
    /// `-|m - q|_1`.
    Manhattan,
}

/// How scores become weights of the stored patterns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Separation {
    /// `softmax(beta s)`.
    Softmax {
        /// Inverse temperature.
        beta: f64,
    },
    /// All weight on the best score (ties: the first pattern).
    Max,
    /// `(s_i - min_j s_j)^degree`, normalised to sum 1 (equal weights when all scores tie).
    Polynomial {
        /// The power, at least 1.
        degree: u32,
    },
    /// The scores themselves (no normalisation).
    Identity,
}

/// Settings of a universal Hopfield network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UhnConfig {
    /// Similarity. Default `manhattan` (the paper's best on images).
    pub similarity: Similarity,
    /// Separation. Default `softmax` with beta = 1000 (the paper's sweeps used large betas).
    pub separation: Separation,
    /// Applications of the map. Default 1 (single shot, as in the paper).
    pub iterations: usize,
    /// Stop iterating once no value moves by more than this. Default 1e-6.
    pub tolerance: f64,
}

impl Default for UhnConfig {
    fn default() -> Self {
        Self {
            similarity: Similarity::Manhattan,
            separation: Separation::Softmax { beta: 1000.0 },
            iterations: 1,
            tolerance: 1e-6,
        }
    }
}

impl UhnConfig {
    /// Checks every setting; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        match self.separation {
            Separation::Softmax { beta } if !(beta.is_finite() && beta > 0.0) => {
                return bad(
                    "separation.beta",
                    beta.to_string(),
                    "must be a finite number > 0",
                )
            }
            Separation::Polynomial { degree: 0 } => {
                return bad("separation.degree", "0".into(), "must be at least 1")
            }
            _ => {}
        }
        if self.iterations == 0 {
            return bad("iterations", "0".into(), "must be at least 1");
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return bad(
                "tolerance",
                self.tolerance.to_string(),
                "must be a finite number >= 0",
            );
        }
        Ok(())
    }
}

/// A universal Hopfield network; see the module docs.
#[derive(Debug, Clone)]
pub struct Uhn {
    config: UhnConfig,
    /// `(N, d)` stored patterns.
    patterns: Option<Tensor>,
}

impl Uhn {
    /// Validates the config.
    pub fn new(config: UhnConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            patterns: None,
        })
    }

    fn stored(&self) -> Result<&Tensor> {
        self.patterns
            .as_ref()
            .ok_or(BaselineError::NotFitted { model: "uhn" })
    }

    /// The scores `sim(M, q)` of every stored pattern (columns) for every cue (rows).
    pub fn similarities(&self, cues: &Tensor) -> Result<Vec<Vec<f32>>> {
        let m = self.stored()?;
        match self.config.similarity {
            Similarity::Dot => Ok(cues.matmul(&m.t()?)?.to_vec2::<f32>()?),
            Similarity::Euclidean => {
                // |m - q|^2 = |m|^2 + |q|^2 - 2 m . q, clamped at 0 against rounding.
                let mq = cues.matmul(&m.t()?)?;
                let mm = m.sqr()?.sum_keepdim(1)?.t()?;
                let qq = cues.sqr()?.sum_keepdim(1)?;
                let d2 = (mq * -2.0)?.broadcast_add(&mm)?.broadcast_add(&qq)?;
                Ok(d2
                    .to_vec2::<f32>()?
                    .into_iter()
                    .map(|row| row.into_iter().map(|v| -v.max(0.0).sqrt()).collect())
                    .collect())
            }
            Similarity::Manhattan => {
                let m = m.to_vec2::<f32>()?;
                let q = cues.to_vec2::<f32>()?;
                Ok(q.par_iter()
                    .map(|q| {
                        m.iter()
                            .map(|m| -m.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f32>())
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The weights `sep(s)` of one cue's scores.
    pub fn separate(&self, s: &[f32]) -> Vec<f32> {
        let (max, min) = s
            .iter()
            .fold((f32::NEG_INFINITY, f32::INFINITY), |(a, b), &v| {
                (a.max(v), b.min(v))
            });
        match self.config.separation {
            Separation::Softmax { beta } => {
                let e: Vec<f64> = s
                    .iter()
                    .map(|&v| (beta * (v as f64 - max as f64)).exp())
                    .collect();
                let z: f64 = e.iter().sum();
                e.iter().map(|v| (v / z) as f32).collect()
            }
            Separation::Max => {
                let best = s.iter().position(|&v| v == max).unwrap_or(0);
                (0..s.len()).map(|i| f32::from(i == best)).collect()
            }
            Separation::Polynomial { degree } => {
                let p: Vec<f64> = s
                    .iter()
                    .map(|&v| (v as f64 - min as f64).powi(degree as i32))
                    .collect();
                let z: f64 = p.iter().sum();
                if z > 0.0 {
                    p.iter().map(|v| (v / z) as f32).collect()
                } else {
                    vec![1.0 / s.len() as f32; s.len()]
                }
            }
            Separation::Identity => s.to_vec(),
        }
    }

    /// One application of the map to every row of `cues`: `sep(sim(M, q)) M`.
    pub fn update(&self, cues: &Tensor) -> Result<Tensor> {
        let m = self.stored()?;
        let weights: Vec<f32> = self
            .similarities(cues)?
            .iter()
            .flat_map(|s| self.separate(s))
            .collect();
        let rows = cues.dims()[0];
        let w = Tensor::from_vec(weights, (rows, m.dims()[0]), m.device())?;
        Ok(w.matmul(m)?)
    }

    fn recall_impl(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall> {
        let m = self.stored()?;
        let d = m.dims()[1];
        check_rows("cues", cues, Some(d))?;
        let cues = cues.to_dtype(DType::F32)?.to_device(m.device())?;
        let rows = cues.dims()[0];
        let mask = known.map(|k| mask_for(k, rows, d)).transpose()?;
        let mut out = iterate_clamped(
            &cues,
            mask.as_ref(),
            self.config.iterations,
            self.config.tolerance,
            |x| self.update(x),
        )?;
        // A single shot is the network's whole answer: it has converged by definition.
        if self.config.iterations == 1 {
            out.converged = true;
        }
        Ok(out)
    }
}

impl AssociativeMemory for Uhn {
    fn name(&self) -> &'static str {
        "uhn"
    }

    fn fit(&mut self, patterns: &Tensor) -> std::result::Result<FitReport, MemoryError> {
        check_rows("patterns", patterns, None)?;
        self.patterns = Some(
            patterns
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .contiguous()?,
        );
        Ok(FitReport {
            curve: Vec::new(),
            converged: true,
            stop: "one-shot storage".into(),
            ..Default::default()
        })
    }

    fn recall(
        &self,
        cues: &Tensor,
        known: Option<&Tensor>,
    ) -> std::result::Result<Recall, MemoryError> {
        let known = known.map(|k| k.to_device(&Device::Cpu)).transpose()?;
        Ok(self.recall_impl(&cues.to_device(&Device::Cpu)?, known.as_ref())?)
    }

    fn parameter_count(&self) -> usize {
        self.patterns.as_ref().map_or(0, |p| p.elem_count())
    }
}

/// The family's factory: `[uhn]` holds any subset of [`UhnConfig`], e.g.
/// `similarity = "euclidean"`, `separation = { kind = "softmax", beta = 500 }`.
pub struct UhnFactory;

impl ModelFactory for UhnFactory {
    type Config = UhnConfig;
    const NAME: &'static str = "uhn";
    const ABOUT: &'static str =
        "universal Hopfield network, M^T sep(sim(M, q)) (Millidge et al. 2022)";

    fn defaults(_: &Sizes) -> UhnConfig {
        UhnConfig::default()
    }

    fn validate(config: &UhnConfig) -> std::result::Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &UhnConfig,
        _: &Sizes,
        _: &Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(Uhn::new(config.clone())?))
    }

    /// The stored patterns, the N x N scores and weights, six copies of the data.
    fn memory_floats(_: &UhnConfig, s: &Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        n * d + 2.0 * n * n + 6.0 * n * d
    }

    /// Per application of the map and cue, the similarities to the K stored patterns and the
    /// projection back: two K x d passes, at most `iterations` applications.
    fn recall_gflop(c: &UhnConfig, s: &Sizes, _masked: bool) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        c.iterations as f64 * n * 4.0 * n * d / 1e9
    }
}
