//! Model factories: what a grid needs to know about an associative memory to build it from a
//! settings table, size it and estimate its work, without knowing its type.
//!
//! A model implements [`AssociativeMemory`] and one [`ModelFactory`] (its name, its config type
//! with serde defaults, how to build it on a device, its memory and work estimates); wrapped in
//! [`Registered`] it becomes a [`Factory`] trait object, which the harness lists in its registry
//! (one line per model). A grid then names the model and gives a table of its settings.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::factory::{Factory, ModelFactory, Registered, Sizes};
//! use pcmem_model::{AssociativeMemory, FitReport, MemoryError, Recall};
//! use serde::{Deserialize, Serialize};
//!
//! /// Recalls every cue as the stored pattern nearest to it (a toy model).
//! struct Nearest(Option<Tensor>);
//! impl AssociativeMemory for Nearest {
//!     fn name(&self) -> &'static str { "nearest" }
//!     fn fit(&mut self, p: &Tensor) -> Result<FitReport, MemoryError> {
//!         self.0 = Some(p.clone());
//!         Ok(FitReport::default())
//!     }
//!     fn recall(&self, cues: &Tensor, _: Option<&Tensor>) -> Result<Recall, MemoryError> {
//!         let p = self.0.as_ref().ok_or("not fitted")?;
//!         let idx = cues.matmul(&p.t()?)?.argmax(1)?;
//!         Ok(Recall { images: p.index_select(&idx, 0)?, steps: 1, converged: true })
//!     }
//!     fn parameter_count(&self) -> usize { self.0.as_ref().map_or(0, |p| p.elem_count()) }
//! }
//!
//! #[derive(Serialize, Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct NearestConfig { verbose: bool }
//!
//! struct NearestFactory;
//! impl ModelFactory for NearestFactory {
//!     type Config = NearestConfig;
//!     const NAME: &'static str = "nearest";
//!     const ABOUT: &'static str = "the stored pattern of largest dot product";
//!     fn defaults(_: &Sizes) -> NearestConfig { NearestConfig::default() }
//!     fn build(_: &NearestConfig, _: &Sizes, _: &Device) -> Result<Box<dyn AssociativeMemory>, MemoryError> {
//!         Ok(Box::new(Nearest(None)))
//!     }
//!     fn memory_floats(_: &NearestConfig, s: &Sizes) -> f64 { (s.n_images * s.input_dim) as f64 }
//!     fn recall_gflop(_: &NearestConfig, s: &Sizes, _: bool) -> f64 {
//!         2.0 * (s.n_images * s.n_images * s.input_dim) as f64 / 1e9
//!     }
//! }
//!
//! let factory: &dyn Factory = &Registered::<NearestFactory>::NEW;
//! let sizes = Sizes { input_dim: 2, n_images: 2, ..Sizes::default() };
//! let config = factory.resolve(&serde_json::json!({ "verbose": true }), &sizes)?;
//! assert!(factory.resolve(&serde_json::json!({ "verbos": true }), &sizes).is_err());
//! let mut model = factory.build(&config, &sizes, &Device::Cpu)?;
//! model.fit(&Tensor::new(&[[1f32, 0.], [0., 1.]], &Device::Cpu)?)?;
//! let out = model.recall(&Tensor::new(&[[0.2f32, 0.9]], &Device::Cpu)?, None)?;
//! assert_eq!(out.images.to_vec2::<f32>()?, vec![vec![0., 1.]]);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::marker::PhantomData;

use candle_core::Device;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::memory::{AssociativeMemory, MemoryError};

/// The sizes a model is built for; every other setting comes from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Input dimension d (pixels times channels).
    pub input_dim: usize,
    /// Hidden width n (models with hidden layers; 0 otherwise).
    pub hidden: usize,
    /// Hidden layers L (models with hidden layers; 0 otherwise).
    pub layers: usize,
    /// Seed of the model's random initial state.
    pub seed: u64,
    /// Images to store (for the memory and work estimates).
    pub n_images: usize,
}

/// A model's factory, typed: implement this, then register `Registered::<YourFactory>::NEW`.
pub trait ModelFactory: 'static {
    /// The model's settings: serde defaults for every field, unknown fields refused
    /// (`#[serde(default, deny_unknown_fields)]`), so a grid gives any subset of them.
    type Config: Serialize + DeserializeOwned;
    /// Name in grids and records (`pcn`, `modern_hopfield`, ...): lower case and `_`.
    const NAME: &'static str;
    /// One line for listings: what the model is.
    const ABOUT: &'static str;
    /// Whether it stores +-1 patterns (the images are binarised first).
    const BIPOLAR: bool = false;
    /// Whether the grid's hidden widths and layer counts apply (otherwise each cell has
    /// width 0 and depth 0).
    const SIZED: bool = false;
    /// The top-level keys of the settings that only recall reads: cells that differ in
    /// nothing else share one trained model. Default `["recall"]` (a `recall` table).
    const RECALL_KEYS: &'static [&'static str] = &["recall"];
    /// The defaults for these sizes.
    fn defaults(sizes: &Sizes) -> Self::Config;
    /// Settings the sizes fix whatever the table says (e.g. `{"hidden_dim": n}`).
    fn fixed(sizes: &Sizes) -> serde_json::Value {
        let _ = sizes;
        serde_json::json!({})
    }
    /// Checks the settings; the message names the field and the allowed values.
    fn validate(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Builds the model, untrained, on `device` (models that only run on the CPU may ignore it).
    fn build(
        config: &Self::Config,
        sizes: &Sizes,
        device: &Device,
    ) -> Result<Box<dyn AssociativeMemory>, MemoryError>;
    /// Estimated peak memory of storing and recalling, in f32 values.
    fn memory_floats(config: &Self::Config, sizes: &Sizes) -> f64;
    /// An upper bound of the work of storing, in GFLOP (0 for one-shot storage).
    fn work_gflop(config: &Self::Config, sizes: &Sizes) -> f64 {
        let _ = (config, sizes);
        0.0
    }
    /// An upper bound of the work of one recall condition, every stored image recalled once
    /// (`sizes.n_images` cues), in GFLOP: from a partial image when `masked`, else from a
    /// noisy one. Required: a recall that is not priced would read as free in `--dry-run`.
    fn recall_gflop(config: &Self::Config, sizes: &Sizes, masked: bool) -> f64;
    /// The epoch limit of training, which [`ModelFactory::work_gflop`] assumes (`None` for
    /// one-shot storage): with the epochs a finished run took, it turns the bound into an
    /// expectation.
    fn epoch_limit(config: &Self::Config) -> Option<usize> {
        let _ = config;
        None
    }
}

/// A model's factory as a trait object (see [`Registered`]); settings travel as JSON.
pub trait Factory: Send + Sync {
    /// Name in grids and records.
    fn name(&self) -> &'static str;
    /// One line: what the model is.
    fn about(&self) -> &'static str;
    /// Whether it stores +-1 patterns.
    fn bipolar(&self) -> bool;
    /// Whether hidden widths and layer counts apply.
    fn sized(&self) -> bool;
    /// The top-level settings only recall reads ([`ModelFactory::RECALL_KEYS`]).
    fn recall_keys(&self) -> &'static [&'static str];
    /// The settings that decide training: `config` without [`Factory::recall_keys`].
    fn training_settings(&self, config: &serde_json::Value) -> serde_json::Value {
        without_keys(config, self.recall_keys())
    }
    /// The full, checked settings: the defaults for `sizes`, `table` laid over them key by
    /// key, then the settings the sizes fix. The error names the key
    /// (`learning.max_epochs: invalid type ...`).
    fn resolve(
        &self,
        table: &serde_json::Value,
        sizes: &Sizes,
    ) -> Result<serde_json::Value, String>;
    /// Builds the model from resolved settings.
    fn build(
        &self,
        config: &serde_json::Value,
        sizes: &Sizes,
        device: &Device,
    ) -> Result<Box<dyn AssociativeMemory>, MemoryError>;
    /// Estimated peak memory in bytes (f32).
    fn memory_bytes(&self, config: &serde_json::Value, sizes: &Sizes) -> f64;
    /// Upper bound of the storing work in GFLOP.
    fn work_gflop(&self, config: &serde_json::Value, sizes: &Sizes) -> f64;
    /// Upper bound of the work of one recall condition in GFLOP (`masked`: from a partial
    /// image).
    fn recall_gflop(&self, config: &serde_json::Value, sizes: &Sizes, masked: bool) -> f64;
    /// The epoch limit the work bound assumes (`None`: one-shot storage).
    fn epoch_limit(&self, config: &serde_json::Value) -> Option<usize>;
}

/// Turns a [`ModelFactory`] into a [`Factory`] object: `&Registered::<F>::NEW`.
pub struct Registered<F>(PhantomData<fn() -> F>);

impl<F> Registered<F> {
    /// The factory object (a constant, so a registry can be a `static` list).
    pub const NEW: Self = Self(PhantomData);
}

/// `config` without the top-level `keys` (e.g. a model's recall settings, to compare what
/// decides training).
pub fn without_keys(config: &serde_json::Value, keys: &[&str]) -> serde_json::Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    c
}

/// Lays `b` over `a`, object by object.
pub fn merge_json(a: &mut serde_json::Value, b: &serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(x) if x.is_object() && v.is_object() => merge_json(x, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

impl<F: ModelFactory> Registered<F> {
    fn typed(config: &serde_json::Value) -> Result<F::Config, String> {
        serde_path_to_error::deserialize(config.clone()).map_err(|e| {
            let path = e.path().to_string();
            if path == "." || path.is_empty() {
                e.into_inner().to_string()
            } else {
                format!("{path}: {}", e.into_inner())
            }
        })
    }
}

impl<F: ModelFactory> Factory for Registered<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn about(&self) -> &'static str {
        F::ABOUT
    }
    fn bipolar(&self) -> bool {
        F::BIPOLAR
    }
    fn sized(&self) -> bool {
        F::SIZED
    }
    fn recall_keys(&self) -> &'static [&'static str] {
        F::RECALL_KEYS
    }
    fn resolve(
        &self,
        table: &serde_json::Value,
        sizes: &Sizes,
    ) -> Result<serde_json::Value, String> {
        let mut value = serde_json::to_value(F::defaults(sizes)).map_err(|e| e.to_string())?;
        merge_json(&mut value, table);
        merge_json(&mut value, &F::fixed(sizes));
        let config = Self::typed(&value)?;
        F::validate(&config)?;
        serde_json::to_value(&config).map_err(|e| e.to_string())
    }
    fn build(
        &self,
        config: &serde_json::Value,
        sizes: &Sizes,
        device: &Device,
    ) -> Result<Box<dyn AssociativeMemory>, MemoryError> {
        F::build(&Self::typed(config)?, sizes, device)
    }
    fn memory_bytes(&self, config: &serde_json::Value, sizes: &Sizes) -> f64 {
        Self::typed(config).map_or(0.0, |c| 4.0 * F::memory_floats(&c, sizes))
    }
    fn work_gflop(&self, config: &serde_json::Value, sizes: &Sizes) -> f64 {
        Self::typed(config).map_or(0.0, |c| F::work_gflop(&c, sizes))
    }
    fn recall_gflop(&self, config: &serde_json::Value, sizes: &Sizes, masked: bool) -> f64 {
        Self::typed(config).map_or(0.0, |c| F::recall_gflop(&c, sizes, masked))
    }
    fn epoch_limit(&self, config: &serde_json::Value) -> Option<usize> {
        Self::typed(config).ok().and_then(|c| F::epoch_limit(&c))
    }
}
