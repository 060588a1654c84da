//! # pcmem-model: the generative predictive-coding network of Salvatori et al. (2021)
//!
//! A PCN stores images as attractors of its energy (Eq. 2) and recalls them from noisy copies
//! (Sec. 3, the map F iterated) and from a fraction of their pixels (Alg. 2). Everything is
//! batched (rows are data points) and runs on candle, on CPU or, with the `cuda` feature, on a GPU.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::PcnConfig;
//!
//! let mut cfg = PcnConfig::new(12, 6);
//! cfg.learning.max_epochs = 3;
//! let mut pcn = cfg.init(&Device::Cpu)?;
//! let images = Tensor::rand(0f32, 1f32, (5, 12), &Device::Cpu)?;
//! let report = pcn.train(&images)?;
//! assert_eq!(report.epochs.len(), 3);
//! # Ok::<(), pcmem_model::PcnError>(())
//! ```

pub mod checkpoint;
pub mod config;
pub mod device;
mod engine;
pub mod error;
pub mod factory;
pub mod memory;
pub mod optim;
pub mod pcn;
pub mod products;

pub use checkpoint::{CheckpointPolicy, Resume};
pub use config::{
    Activation, ActivationPlacement, GradientScale, InferenceConfig, Kernel, KnownPrecision,
    LearningConfig, MemoryPrior, NoiseRelaxation, Optimizer, PcnConfig, RecallConfig, ValueInit,
    WeightInit,
};
pub use error::{PcnError, Result};
pub use factory::{Factory, ModelFactory, Registered, Sizes};
pub use memory::{AssociativeMemory, FitProgress, FitReport, MemoryError, PcnFactory, Recall};
pub use pcn::{
    per_row_mse, EpochStats, Gradients, InferenceInfo, Pcn, RecallInfo, StopReason, TrainReport,
    ValueNodes,
};
