//! Classical Hopfield network (Hopfield 1982) and dense associative memory (Krotov and Hopfield
//! 2016) on bipolar (+1/-1) patterns, with asynchronous (seeded order) or synchronous updates
//! until a fixed point or a sweep limit. Known pixels of a partial cue are never updated.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_baselines::{ClassicalHopfield, HopfieldConfig};
//! use pcmem_model::AssociativeMemory;
//! let p = Tensor::new(&[[1f32, 1., 1., 1., -1., -1., -1., -1.]], &Device::Cpu)?;
//! let mut hn = ClassicalHopfield::new(HopfieldConfig::default())?;
//! hn.fit(&p)?;
//! let cue = Tensor::new(&[[1f32, -1., 1., 1., -1., -1., -1., -1.]], &Device::Cpu)?;
//! let out = hn.recall(&cue, None)?;
//! assert_eq!(out.images.to_vec2::<f32>()?, p.to_vec2::<f32>()?);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use candle_core::{DType, Device, Tensor};
use pcmem_model::factory::{ModelFactory, Sizes};
use pcmem_model::{AssociativeMemory, FitReport, MemoryError, Recall};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{check_rows, mask_for, BaselineError, Result};

/// Update order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Update {
    /// One unit at a time, in a seeded random order per sweep (guaranteed to converge for the
    /// classical network).
    Asynchronous {
        /// Seed of the order.
        seed: u64,
    },
    /// All units at once (may end in a 2-cycle; stops at the sweep limit then).
    Synchronous,
}

/// Settings shared by the classical network and the dense associative memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HopfieldConfig {
    /// Update order. Default asynchronous with seed 0.
    pub update: Update,
    /// Maximum sweeps over all units. Default 100.
    pub max_sweeps: usize,
}

impl Default for HopfieldConfig {
    fn default() -> Self {
        Self {
            update: Update::Asynchronous { seed: 0 },
            max_sweeps: 100,
        }
    }
}

impl HopfieldConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.max_sweeps == 0 {
            return Err(BaselineError::InvalidConfig {
                field: "max_sweeps",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// Interaction function `F` of a dense associative memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Interaction {
    /// Rectified polynomial `F(x) = max(x, 0)^degree` (degree 2 behaves like the classical net).
    Polynomial {
        /// The power.
        degree: u32,
    },
    /// `F(x) = exp(x)` (Demircigil et al. 2017), compared through log-sum-exp.
    Exponential,
}

fn bipolar_rows(model: &'static str, t: &Tensor) -> Result<(Vec<Vec<f32>>, usize)> {
    let rows = t.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if rows.iter().flatten().any(|&v| v != 1.0 && v != -1.0) {
        return Err(BaselineError::NotBipolar { model });
    }
    let d = rows[0].len();
    Ok((rows, d))
}

fn sign_of(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else {
        -1.0
    }
}

/// Runs the update rule `field(i, state, cache) -> Option<new sign>` over every free unit until
/// nothing changes; `on_flip(i, old, new, cache)` keeps any running sums up to date.
fn relax<C>(
    cfg: &HopfieldConfig,
    state: &mut [f32],
    free: &[bool],
    cache: &mut C,
    field: impl Fn(usize, &[f32], &C) -> f64,
    on_flip: impl Fn(usize, f32, f32, &mut C),
    rebuild: impl Fn(&[f32], &mut C),
) -> (usize, bool) {
    let d = state.len();
    let units: Vec<usize> = (0..d).filter(|&i| free[i]).collect();
    for sweep in 0..cfg.max_sweeps {
        let mut changed = false;
        match cfg.update {
            Update::Asynchronous { seed } => {
                let mut order = units.clone();
                order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
                    seed ^ sweep as u64,
                ));
                for i in order {
                    let h = field(i, state, cache);
                    let new = if h > 0.0 {
                        1.0
                    } else if h < 0.0 {
                        -1.0
                    } else {
                        state[i]
                    };
                    if new != state[i] {
                        on_flip(i, state[i], new, cache);
                        state[i] = new;
                        changed = true;
                    }
                }
            }
            Update::Synchronous => {
                let fields: Vec<f64> = units.iter().map(|&i| field(i, state, cache)).collect();
                for (&i, &h) in units.iter().zip(&fields) {
                    let new = if h > 0.0 {
                        1.0
                    } else if h < 0.0 {
                        -1.0
                    } else {
                        state[i]
                    };
                    if new != state[i] {
                        state[i] = new;
                        changed = true;
                    }
                }
                rebuild(state, cache);
            }
        }
        if !changed {
            return (sweep + 1, true);
        }
    }
    (cfg.max_sweeps, false)
}

fn recall_rows(
    d: usize,
    cues: &Tensor,
    known: Option<&Tensor>,
    mut one: impl FnMut(&mut [f32], &[bool]) -> (usize, bool),
) -> Result<Recall> {
    check_rows("cues", cues, Some(d))?;
    let rows = cues.dims()[0];
    let mut state: Vec<Vec<f32>> = cues
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?
        .into_iter()
        .map(|r| r.into_iter().map(sign_of).collect())
        .collect();
    let free: Vec<Vec<bool>> = match known {
        Some(k) => mask_for(k, rows, d)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|r| r.into_iter().map(|m| m == 0.0).collect())
            .collect(),
        None => vec![vec![true; d]; rows],
    };
    let (mut steps, mut converged) = (0, true);
    for (s, f) in state.iter_mut().zip(&free) {
        let (n, c) = one(s, f);
        steps += n;
        converged &= c;
    }
    let flat: Vec<f32> = state.into_iter().flatten().collect();
    Ok(Recall {
        images: Tensor::from_vec(flat, (rows, d), &Device::Cpu)?,
        steps,
        converged,
    })
}

/// Classical Hopfield network: Hebbian weights `W = (1/d) sum_mu xi_mu xi_mu^T`, zero diagonal.
#[derive(Debug, Clone)]
pub struct ClassicalHopfield {
    config: HopfieldConfig,
    /// `d x d`, row-major.
    weights: Vec<f32>,
    d: usize,
}

impl ClassicalHopfield {
    /// A network with no patterns stored yet.
    pub fn new(config: HopfieldConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            weights: Vec::new(),
            d: 0,
        })
    }

    /// Energy `-1/2 s^T W s` of a bipolar state.
    pub fn energy(&self, s: &[f32]) -> f64 {
        let d = self.d;
        -0.5 * (0..d)
            .map(|i| {
                s[i] as f64
                    * (0..d)
                        .map(|j| self.weights[i * d + j] as f64 * s[j] as f64)
                        .sum::<f64>()
            })
            .sum::<f64>()
    }
}

impl AssociativeMemory for ClassicalHopfield {
    fn name(&self) -> &'static str {
        "hopfield"
    }

    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError> {
        check_rows("patterns", patterns, None)?;
        let (rows, d) = bipolar_rows("hopfield", patterns)?;
        let mut w = vec![0f32; d * d];
        for p in &rows {
            for i in 0..d {
                for j in 0..d {
                    if i != j {
                        w[i * d + j] += p[i] * p[j] / d as f32;
                    }
                }
            }
        }
        self.weights = w;
        self.d = d;
        Ok(FitReport {
            curve: Vec::new(),
            converged: true,
            stop: "Hebbian one-shot storage".into(),
            ..Default::default()
        })
    }

    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError> {
        if self.d == 0 {
            return Err(BaselineError::NotFitted { model: "hopfield" }.into());
        }
        let (d, w) = (self.d, &self.weights);
        let field = |i: usize, s: &[f32], _: &()| -> f64 {
            w[i * d..(i + 1) * d]
                .iter()
                .zip(s)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum()
        };
        Ok(recall_rows(d, cues, known, |s, f| {
            relax(
                &self.config,
                s,
                f,
                &mut (),
                field,
                |_, _, _, _| {},
                |_, _| {},
            )
        })?)
    }

    fn parameter_count(&self) -> usize {
        self.weights.len()
    }
}

/// Dense associative memory (Krotov and Hopfield 2016): unit `i` takes the sign of
/// `sum_mu F(xi_mu,i + h_mu,i) - F(-xi_mu,i + h_mu,i)` with `h_mu,i = sum_{j != i} xi_mu,j s_j`.
#[derive(Debug, Clone)]
pub struct DenseAm {
    config: HopfieldConfig,
    interaction: Interaction,
    patterns: Vec<Vec<f32>>,
}

impl DenseAm {
    /// A memory with no patterns stored yet.
    pub fn new(config: HopfieldConfig, interaction: Interaction) -> Result<Self> {
        if let Interaction::Polynomial { degree } = interaction {
            if degree < 2 {
                return Err(BaselineError::InvalidConfig {
                    field: "interaction.degree",
                    value: degree.to_string(),
                    reason: "must be at least 2",
                });
            }
        }
        config.validate()?;
        Ok(Self {
            config,
            interaction,
            patterns: Vec::new(),
        })
    }
}

impl DenseAm {
    /// Energy `-sum_mu F(xi_mu . s)` of a bipolar state (for the exponential interaction,
    /// `-log sum_mu exp(xi_mu . s)`, the same ordering of states without overflow).
    pub fn energy(&self, s: &[f32]) -> f64 {
        let overlaps: Vec<f64> = self
            .patterns
            .iter()
            .map(|x| x.iter().zip(s).map(|(&a, &b)| a as f64 * b as f64).sum())
            .collect();
        match self.interaction {
            Interaction::Polynomial { degree } => -overlaps
                .iter()
                .map(|m| m.max(0.0).powi(degree as i32))
                .sum::<f64>(),
            Interaction::Exponential => {
                let mx = overlaps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                -(mx + overlaps.iter().map(|m| (m - mx).exp()).sum::<f64>().ln())
            }
        }
    }
}

impl AssociativeMemory for DenseAm {
    fn name(&self) -> &'static str {
        "dense_am"
    }

    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError> {
        check_rows("patterns", patterns, None)?;
        self.patterns = bipolar_rows("dense_am", patterns)?.0;
        Ok(FitReport {
            curve: Vec::new(),
            converged: true,
            stop: "one-shot storage".into(),
            ..Default::default()
        })
    }

    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError> {
        let Some(first) = self.patterns.first() else {
            return Err(BaselineError::NotFitted { model: "dense_am" }.into());
        };
        let d = first.len();
        let xs = &self.patterns;
        let overlaps = |s: &[f32], m: &mut Vec<f64>| {
            *m = xs
                .iter()
                .map(|x| x.iter().zip(s).map(|(&a, &b)| a as f64 * b as f64).sum())
                .collect();
        };
        let interaction = self.interaction;
        // m_mu = sum_j xi_mu,j s_j is kept up to date; h = m_mu - xi_mu,i s_i.
        let field = move |i: usize, s: &[f32], m: &Vec<f64>| -> f64 {
            let plus_minus = xs.iter().zip(m).map(|(x, &mu)| {
                let h = mu - x[i] as f64 * s[i] as f64;
                (x[i] as f64 + h, -(x[i] as f64) + h)
            });
            match interaction {
                Interaction::Polynomial { degree } => plus_minus
                    .map(|(a, b)| a.max(0.0).powi(degree as i32) - b.max(0.0).powi(degree as i32))
                    .sum(),
                Interaction::Exponential => {
                    let (a, b): (Vec<f64>, Vec<f64>) = plus_minus.unzip();
                    let lse = |v: &[f64]| {
                        let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        mx + v.iter().map(|x| (x - mx).exp()).sum::<f64>().ln()
                    };
                    lse(&a) - lse(&b)
                }
            }
        };
        let on_flip = move |i: usize, old: f32, new: f32, m: &mut Vec<f64>| {
            for (mu, x) in m.iter_mut().zip(xs) {
                *mu += x[i] as f64 * (new - old) as f64;
            }
        };
        Ok(recall_rows(d, cues, known, |s, f| {
            let mut m = Vec::new();
            overlaps(s, &mut m);
            relax(&self.config, s, f, &mut m, field, on_flip, overlaps)
        })?)
    }

    fn parameter_count(&self) -> usize {
        self.patterns.iter().map(Vec::len).sum()
    }
}

/// The classical network's factory: `[hopfield]` holds any subset of [`HopfieldConfig`].
pub struct HopfieldFactory;

impl ModelFactory for HopfieldFactory {
    type Config = HopfieldConfig;
    const NAME: &'static str = "hopfield";
    const ABOUT: &'static str =
        "classical Hopfield network, Hebbian weights and sign updates (Hopfield 1982)";
    const BIPOLAR: bool = true;

    fn defaults(_: &Sizes) -> HopfieldConfig {
        HopfieldConfig::default()
    }

    fn validate(config: &HopfieldConfig) -> std::result::Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &HopfieldConfig,
        _: &Sizes,
        _: &Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(ClassicalHopfield::new(config.clone())?))
    }

    /// The d x d weights and six copies of the data.
    fn memory_floats(_: &HopfieldConfig, s: &Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        d * d + 6.0 * n * d
    }

    /// Per sweep and cue, every unit's field: a row of the d x d weights (two operations per
    /// weight), at most `max_sweeps` sweeps.
    fn recall_gflop(c: &HopfieldConfig, s: &Sizes, _masked: bool) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        c.max_sweeps as f64 * n * 2.0 * d * d / 1e9
    }
}

/// Settings of the dense associative memory: the classical network's plus the interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenseAmConfig {
    /// Update order. Default asynchronous with seed 0.
    pub update: Update,
    /// Maximum sweeps over all units. Default 100.
    pub max_sweeps: usize,
    /// Interaction function. Default the polynomial of degree 3.
    pub interaction: Interaction,
}

impl Default for DenseAmConfig {
    fn default() -> Self {
        let h = HopfieldConfig::default();
        Self {
            update: h.update,
            max_sweeps: h.max_sweeps,
            interaction: Interaction::Polynomial { degree: 3 },
        }
    }
}

impl DenseAmConfig {
    /// The update settings alone.
    pub fn hopfield(&self) -> HopfieldConfig {
        HopfieldConfig {
            update: self.update,
            max_sweeps: self.max_sweeps,
        }
    }
}

/// The dense associative memory's factory: `[dense_am]` holds any subset of
/// [`DenseAmConfig`].
pub struct DenseAmFactory;

impl ModelFactory for DenseAmFactory {
    type Config = DenseAmConfig;
    const NAME: &'static str = "dense_am";
    const ABOUT: &'static str =
        "dense associative memory, polynomial or exponential interaction (Krotov and Hopfield 2016)";
    const BIPOLAR: bool = true;

    fn defaults(_: &Sizes) -> DenseAmConfig {
        DenseAmConfig::default()
    }

    fn validate(config: &DenseAmConfig) -> std::result::Result<(), String> {
        DenseAm::new(config.hopfield(), config.interaction)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn build(
        config: &DenseAmConfig,
        _: &Sizes,
        _: &Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(DenseAm::new(
            config.hopfield(),
            config.interaction,
        )?))
    }

    /// The stored patterns and six copies of the data.
    fn memory_floats(_: &DenseAmConfig, s: &Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        n * d + 6.0 * n * d
    }

    /// Per sweep and cue, every unit's energy difference over the K stored patterns (about
    /// eight operations per pattern, the overlaps' update included), at most `max_sweeps`.
    fn recall_gflop(c: &DenseAmConfig, s: &Sizes, _masked: bool) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        c.max_sweeps as f64 * n * 8.0 * d * n / 1e9
    }
}
