//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, training, recalling with or saving a PCN.
#[derive(Debug, thiserror::Error)]
pub enum PcnError {
    /// A configuration value is out of its allowed range.
    #[error("invalid config value `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// Dotted name of the field, e.g. `inference.gamma`.
        field: &'static str,
        /// The offending value, as text.
        value: String,
        /// What is allowed instead.
        reason: String,
    },
    /// A tensor handed to the model has the wrong shape.
    #[error("{what} has shape {got:?}, expected {expected}")]
    Shape {
        /// Which argument (e.g. `patterns`, `mask`).
        what: &'static str,
        /// The shape that was given.
        got: Vec<usize>,
        /// A description of the expected shape.
        expected: String,
    },
    /// The input data holds NaN or infinite values.
    #[error("{what} contains NaN or infinite values; clean or rescale the data before use")]
    NonFinite {
        /// Which argument.
        what: &'static str,
    },
    /// The energy became NaN or infinite: the dynamics diverged.
    #[error(
        "energy diverged ({energy}) during {phase} at epoch {epoch}, inference step {step}; \
         try a smaller inference rate gamma (now {gamma}) or learning rate alpha (now {alpha})"
    )]
    Diverged {
        /// `training` or `recall`.
        phase: &'static str,
        /// Training epoch (0 during recall).
        epoch: usize,
        /// Inference step within the epoch at which the non-finite energy was seen.
        step: usize,
        /// The energy value that was seen.
        energy: f64,
        /// The inference rate in use.
        gamma: f64,
        /// The learning rate in use.
        alpha: f64,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint exists but cannot be used.
    #[error("bad checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training was asked to stop (a signal) and saved its state first.
    #[error(
        "training interrupted after {epochs} epochs; its state is saved in {path}: run again to resume"
    )]
    Interrupted {
        /// Epochs finished and saved.
        epochs: usize,
        /// The checkpoint's JSON file.
        path: PathBuf,
    },
    /// A device name that cannot be used.
    #[error("device `{name}`: {reason}")]
    Device {
        /// The name as given.
        name: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A setting needs something the model does not have yet.
    #[error("`{field}` cannot be used here: {reason}")]
    Unavailable {
        /// Dotted name of the setting.
        field: &'static str,
        /// What is missing and how to provide it.
        reason: String,
    },
    /// An error from candle (tensor library).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = PcnError> = std::result::Result<T, E>;
