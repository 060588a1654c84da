//! Distributed dense associative memory, DrDAM (Hoover et al. 2024, "Dense associative memory
//! through the lens of random features"): the energy of a dense associative memory with the
//! Gaussian kernel,
//!
//! `E(x) = -1/beta log sum_mu exp(-beta/2 |x - xi_mu|^2)`,
//!
//! whose descent step `x <- x - eta grad E(x)` is, at `eta = 1`, the modern Hopfield update with
//! Euclidean similarity, `x <- sum_mu softmax_mu(-beta/2 |x - xi_mu|^2) xi_mu`, approximated
//! with `Y` random Fourier features `phi(x) = Y^(-1/2) [cos(W x); sin(W x)]`, rows of `W`
//! drawn from `N(0, beta I)`, so that `phi(x) . phi(y) ~ exp(-beta/2 |x - y|^2)`. The memories
//! live in one vector `T = sum_mu phi(xi_mu)` of fixed size `2 Y` whatever their number: a
//! memory is added by adding its features to `T` ([`DrDam::add`]), and the energy is
//! `E(x) = -1/beta log(phi(x) . T)`.
//!
//! Recall descends `E` from the cue for `steps` steps (known pixels of a partial cue held
//! fixed). Where the approximation of `sum_mu exp(...)` is not positive (far from every
//! memory, where the kernel values are below the features' noise, about `Y^(-1/2)`), the
//! energy is undefined and the row does not move; such a recall is reported as not converged.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_baselines::drdam::{DrDam, DrDamConfig};
//! use pcmem_model::AssociativeMemory;
//! let x = Tensor::new(&[[1f32, 0., 0., 1.], [0., 1., 1., 0.]], &Device::Cpu)?;
//! let mut dam = DrDam::new(DrDamConfig { features: 8192, beta: 8.0, ..Default::default() })?;
//! dam.fit(&x)?;
//! assert_eq!(dam.parameter_count(), 2 * 8192);
//! let cue = Tensor::new(&[[0.9f32, 0.1, 0.1, 0.9]], &Device::Cpu)?;
//! let out = dam.recall(&cue, None)?.images.to_vec2::<f32>()?;
//! assert!(out[0].iter().zip([1., 0., 0., 1.]).all(|(a, b)| (a - b).abs() < 0.05));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use candle_core::{DType, Device, Tensor, D};
use pcmem_model::factory::{ModelFactory, Sizes};
use pcmem_model::{AssociativeMemory, FitReport, MemoryError, Recall};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::{bad, check_rows, mask_for, BaselineError, Result};

/// Settings of DrDAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrDamConfig {
    /// Random features Y (the memory holds 2 Y numbers). Default 4096.
    pub features: usize,
    /// Inverse temperature of the Gaussian kernel. Default 1.
    pub beta: f64,
    /// Descent step size eta (1: the modern Hopfield update, approximated). Default 1.
    pub step_size: f64,
    /// Maximum descent steps. Default 100.
    pub steps: usize,
    /// Stop once no value moves by more than this. Default 1e-5.
    pub tolerance: f64,
    /// Seed of the random features. Default 0.
    pub seed: u64,
}

impl Default for DrDamConfig {
    fn default() -> Self {
        Self {
            features: 4096,
            beta: 1.0,
            step_size: 1.0,
            steps: 100,
            tolerance: 1e-5,
            seed: 0,
        }
    }
}

impl DrDamConfig {
    /// Checks every setting; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.features == 0 {
            return bad("features", "0".into(), "must be at least 1");
        }
        for (field, v) in [("beta", self.beta), ("step_size", self.step_size)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, v.to_string(), "must be a finite number > 0");
            }
        }
        if self.steps == 0 {
            return bad("steps", "0".into(), "must be at least 1");
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

/// DrDAM; see the module docs.
#[derive(Debug, Clone)]
pub struct DrDam {
    config: DrDamConfig,
    /// `(Y, d)` feature directions, drawn when the first memory arrives.
    directions: Option<Tensor>,
    /// `(1, Y)` sums of `cos(W xi) / sqrt(Y)` and of `sin(W xi) / sqrt(Y)` over the memories.
    cos_sum: Option<Tensor>,
    sin_sum: Option<Tensor>,
    memories: usize,
}

impl DrDam {
    /// Validates the config; the memory is empty.
    pub fn new(config: DrDamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            directions: None,
            cos_sum: None,
            sin_sum: None,
            memories: 0,
        })
    }

    /// Memories added so far.
    pub fn memories(&self) -> usize {
        self.memories
    }

    fn directions_for(&mut self, d: usize) -> Result<Tensor> {
        if let Some(w) = &self.directions {
            if w.dims()[1] != d {
                return Err(BaselineError::Shape {
                    what: "patterns",
                    got: vec![0, d],
                    expected: format!("[rows >= 1, {}] (the stored patterns' size)", w.dims()[1]),
                });
            }
            return Ok(w.clone());
        }
        let y = self.config.features;
        let normal = Normal::new(0.0f32, self.config.beta.sqrt() as f32).expect("beta > 0");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.config.seed);
        let values: Vec<f32> = (0..y * d).map(|_| normal.sample(&mut rng)).collect();
        let w = Tensor::from_vec(values, (y, d), &Device::Cpu)?;
        self.directions = Some(w.clone());
        Ok(w)
    }

    /// Adds memories (`(N, d)`, one per row) by adding their features to the weights; the
    /// number of weights stays `2 Y`.
    pub fn add(&mut self, patterns: &Tensor) -> Result<()> {
        check_rows("patterns", patterns, None)?;
        let p = patterns.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let w = self.directions_for(p.dims()[1])?;
        let a = p.matmul(&w.t()?)?;
        let scale = 1.0 / (self.config.features as f64).sqrt();
        let c = (a.cos()?.sum_keepdim(0)? * scale)?;
        let s = (a.sin()?.sum_keepdim(0)? * scale)?;
        self.cos_sum = Some(match &self.cos_sum {
            Some(old) => (old + c)?,
            None => c,
        });
        self.sin_sum = Some(match &self.sin_sum {
            Some(old) => (old + s)?,
            None => s,
        });
        self.memories += p.dims()[0];
        Ok(())
    }

    fn parts(&self) -> Result<(&Tensor, &Tensor, &Tensor)> {
        match (&self.directions, &self.cos_sum, &self.sin_sum) {
            (Some(w), Some(c), Some(s)) => Ok((w, c, s)),
            _ => Err(BaselineError::NotFitted { model: "drdam" }),
        }
    }

    /// The kernel sum `phi(x) . T` (approximating `sum_mu exp(-beta/2 |x - xi_mu|^2)`) and its
    /// gradient in `x`, for every row of `x`: `((R), (R, d))`.
    pub fn kernel_sum_and_gradient(&self, x: &Tensor) -> Result<(Vec<f32>, Tensor)> {
        let (w, cs, ss) = self.parts()?;
        let scale = 1.0 / (self.config.features as f64).sqrt();
        let a = x.matmul(&w.t()?)?;
        let (cos, sin) = (a.cos()?, a.sin()?);
        let sum = ((cos.broadcast_mul(cs)? + sin.broadcast_mul(ss)?)?.sum(D::Minus1)? * scale)?;
        // d/dx [cos(w.x) C + sin(w.x) S] = (cos(w.x) S - sin(w.x) C) w.
        let g = ((cos.broadcast_mul(ss)? - sin.broadcast_mul(cs)?)? * scale)?;
        Ok((sum.to_vec1::<f32>()?, g.matmul(w)?))
    }

    /// The energy `-1/beta log(phi(x) . T)` of every row (infinite where the sum is not
    /// positive).
    pub fn energy(&self, x: &Tensor) -> Result<Vec<f64>> {
        let (sum, _) = self.kernel_sum_and_gradient(&x.to_dtype(DType::F32)?)?;
        Ok(sum
            .iter()
            .map(|&s| {
                if s > 0.0 {
                    -(s as f64).ln() / self.config.beta
                } else {
                    f64::INFINITY
                }
            })
            .collect())
    }

    /// The energy's gradient of every row (zero where the kernel sum is not positive).
    pub fn gradient(&self, x: &Tensor) -> Result<Tensor> {
        let (sum, g) = self.kernel_sum_and_gradient(x)?;
        let rows = sum.len();
        let factor: Vec<f32> = sum
            .iter()
            .map(|&s| {
                if s > 0.0 {
                    (-1.0 / (self.config.beta * s as f64)) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let f = Tensor::from_vec(factor, (rows, 1), &Device::Cpu)?;
        Ok(g.broadcast_mul(&f)?)
    }

    fn recall_impl(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall> {
        let (w, _, _) = self.parts()?;
        let d = w.dims()[1];
        check_rows("cues", cues, Some(d))?;
        let cues = cues.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let rows = cues.dims()[0];
        let free = match known {
            Some(k) => Some(mask_for(&k.to_device(&Device::Cpu)?, rows, d)?.affine(-1.0, 1.0)?),
            None => None,
        };
        let mut x = cues;
        let (mut steps, mut converged) = (0, false);
        for _ in 0..self.config.steps {
            let (sum, _) = self.kernel_sum_and_gradient(&x)?;
            let mut step = (self.gradient(&x)? * -self.config.step_size)?;
            if let Some(f) = &free {
                step = (step * f)?;
            }
            x = (x + &step)?;
            steps += 1;
            let moved = step.abs()?.max_all()?.to_scalar::<f32>()? as f64;
            if moved <= self.config.tolerance {
                converged = sum.iter().all(|&s| s > 0.0);
                break;
            }
        }
        Ok(Recall {
            images: x,
            steps,
            converged,
        })
    }
}

impl AssociativeMemory for DrDam {
    fn name(&self) -> &'static str {
        "drdam"
    }

    /// Forgets what was stored, then adds `patterns`.
    fn fit(&mut self, patterns: &Tensor) -> std::result::Result<FitReport, MemoryError> {
        self.cos_sum = None;
        self.sin_sum = None;
        self.memories = 0;
        self.add(patterns)?;
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
        Ok(self.recall_impl(cues, known)?)
    }

    /// The `2 Y` weights (the feature directions are drawn from the seed, not learned).
    fn parameter_count(&self) -> usize {
        2 * self.config.features
    }
}

/// DrDAM's factory: `[drdam]` holds any subset of [`DrDamConfig`].
pub struct DrDamFactory;

impl ModelFactory for DrDamFactory {
    type Config = DrDamConfig;
    const NAME: &'static str = "drdam";
    const ABOUT: &'static str =
        "dense associative memory in random features, 2Y weights for any N (Hoover et al. 2024)";

    fn defaults(_: &Sizes) -> DrDamConfig {
        DrDamConfig::default()
    }

    fn validate(config: &DrDamConfig) -> std::result::Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &DrDamConfig,
        _: &Sizes,
        _: &Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(DrDam::new(config.clone())?))
    }

    /// The feature directions Y d, the weights, four N x Y arrays while storing or recalling,
    /// six copies of the data.
    fn memory_floats(c: &DrDamConfig, s: &Sizes) -> f64 {
        let (n, d, y) = (s.n_images as f64, s.input_dim as f64, c.features as f64);
        y * d + 2.0 * y + 4.0 * n * y + 6.0 * n * d
    }

    /// Storing: one N x d x Y product.
    fn work_gflop(c: &DrDamConfig, s: &Sizes) -> f64 {
        2.0 * s.n_images as f64 * s.input_dim as f64 * c.features as f64 / 1e9
    }

    /// Per descent step and cue, the features of the state and their gradient: two d x Y
    /// products.
    fn recall_gflop(c: &DrDamConfig, s: &Sizes, _masked: bool) -> f64 {
        let per_cue = 4.0 * s.input_dim as f64 * c.features as f64;
        c.steps as f64 * s.n_images as f64 * per_cue / 1e9
    }
}
