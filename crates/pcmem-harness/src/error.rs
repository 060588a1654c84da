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
    /// The run was asked to stop (SIGTERM, SIGINT, SIGUSR1): a training cell saved its
    /// checkpoint first, or the stop came between cells. Running again continues.
    #[error("grid {grid}: stopped by a signal ({at}); run the same command again to continue")]
    Interrupted {
        /// Grid id.
        grid: String,
        /// Where it stopped.
        at: String,
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
    /// The output folder cannot take the run's files (checked before the first cell).
    #[error("output folder {path}: {reason}")]
    Output {
        /// The folder.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A regression baseline (or the table checked against it) is unusable.
    #[error("{path}: {reason}")]
    Baseline {
        /// The CSV file.
        path: PathBuf,
        /// Where and what: row, column, value.
        reason: String,
    },
    /// A cell would need more memory than the machine has; refused before any work.
    #[error(
        "grid {grid}: cell {cell} would need about {need_gib:.1} GiB of memory, the machine has \
         {have_gib:.1} GiB; lower `hidden`, `layers` or `n_images` in the grid"
    )]
    Memory {
        /// Grid id.
        grid: String,
        /// Cell id.
        cell: String,
        /// Estimated need, GiB.
        need_gib: f64,
        /// Physical memory (or the cgroup limit), GiB.
        have_gib: f64,
    },
}

impl HarnessError {
    /// Whether the user's input is at fault (a grid, an argument, a data folder, a baseline,
    /// an output folder, a size the machine cannot hold): the CLI exits 2 for these, 1 for a
    /// run that failed.
    pub fn is_bad_input(&self) -> bool {
        match self {
            HarnessError::Spec { .. }
            | HarnessError::Invalid(_)
            | HarnessError::Output { .. }
            | HarnessError::Baseline { .. }
            | HarnessError::Memory { .. } => true,
            HarnessError::Data(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let path = path.into();
    move |source| HarnessError::Io { path, source }
}
