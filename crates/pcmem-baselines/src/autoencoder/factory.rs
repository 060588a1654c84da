//! How a grid builds, sizes and prices the autoencoder.

use candle_core::Device;
use pcmem_model::factory::{ModelFactory, Sizes};
use pcmem_model::{AssociativeMemory, MemoryError};

use super::{Autoencoder, AutoencoderConfig};

/// The settings that decide training: all but [`AutoencoderFactory::RECALL_KEYS`].
pub(super) fn training_settings(
    config: &AutoencoderConfig,
) -> serde_json::Result<serde_json::Value> {
    Ok(pcmem_model::factory::without_keys(
        &serde_json::to_value(config)?,
        AutoencoderFactory::RECALL_KEYS,
    ))
}

/// The autoencoder's factory: `[autoencoder]` holds any subset of [`AutoencoderConfig`]; the
/// cell fixes `hidden_dim`, `hidden_layers` and `seed`.
pub struct AutoencoderFactory;

impl ModelFactory for AutoencoderFactory {
    type Config = AutoencoderConfig;
    const NAME: &'static str = "autoencoder";
    const ABOUT: &'static str =
        "overparameterised autoencoder trained by backprop, recall by iterating the map (Radhakrishnan et al. 2019)";
    const SIZED: bool = true;
    const RECALL_KEYS: &'static [&'static str] = &["recall_iterations", "recall_tolerance"];

    fn defaults(_: &Sizes) -> AutoencoderConfig {
        AutoencoderConfig::default()
    }

    fn fixed(s: &Sizes) -> serde_json::Value {
        serde_json::json!({"hidden_dim": s.hidden, "hidden_layers": s.layers, "seed": s.seed})
    }

    fn validate(config: &AutoencoderConfig) -> std::result::Result<(), String> {
        config.validate().map_err(|e| e.to_string())
    }

    fn build(
        config: &AutoencoderConfig,
        sizes: &Sizes,
        device: &Device,
    ) -> std::result::Result<Box<dyn AssociativeMemory>, MemoryError> {
        Ok(Box::new(
            Autoencoder::new(config.clone(), sizes.input_dim)?.on_device(device)?,
        ))
    }

    /// Weights W = 2 d n + (L-1) n^2: 4 W for Adam, four activation arrays per layer for
    /// backprop, six copies of the data.
    fn memory_floats(c: &AutoencoderConfig, s: &Sizes) -> f64 {
        let (n, d) = (s.n_images as f64, s.input_dim as f64);
        let (h, l) = (c.hidden_dim as f64, c.hidden_layers as f64);
        let w = 2.0 * d * h + (l - 1.0).max(0.0) * h * h + 2.0 * h + d;
        4.0 * w + 4.0 * n * (2.0 * d + l * h) + 6.0 * n * d
    }

    /// Forward and backward (six products per weight) times the epoch limit.
    fn work_gflop(c: &AutoencoderConfig, s: &Sizes) -> f64 {
        let (nimg, d) = (s.n_images as f64, s.input_dim as f64);
        let (n, l) = (c.hidden_dim as f64, c.hidden_layers as f64);
        let weights = 2.0 * d * n + (l - 1.0) * n * n;
        c.max_epochs as f64 * 6.0 * nimg * weights / 1e9
    }

    /// A forward pass (two products per weight) per recall iteration.
    fn recall_gflop(c: &AutoencoderConfig, s: &Sizes, _masked: bool) -> f64 {
        let (nimg, d) = (s.n_images as f64, s.input_dim as f64);
        let (n, l) = (c.hidden_dim as f64, c.hidden_layers as f64);
        let weights = 2.0 * d * n + (l - 1.0) * n * n;
        c.recall_iterations as f64 * 2.0 * nimg * weights / 1e9
    }

    fn epoch_limit(c: &AutoencoderConfig) -> Option<usize> {
        Some(c.max_epochs)
    }
}
