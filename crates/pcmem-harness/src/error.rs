//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong while reading grids, running cells, aggregating or reporting.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A grid file is malformed; the message names the line and key where known.
    #[error("{file}: {message}")]
    Spec {
        /// The grid file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A run record cannot be read.
    #[error("bad run record {path}: {reason}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A cell failed.
    #[error("cell {cell} of grid {grid} failed: {reason}")]
    Cell {
        /// Grid id.
        grid: String,
        /// Cell id.
        cell: String,
        /// The model's or data's error.
        reason: String,
    },
    /// Loading data failed.
    #[error(transparent)]
    Data(#[from] pcmem_data::DataError),
    /// Aggregation failed.
    #[error("aggregation: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// Drawing a figure failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The figure file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A bad argument (e.g. a shard outside 1..=n).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let path = path.into();
    move |source| HarnessError::Io { path, source }
}
