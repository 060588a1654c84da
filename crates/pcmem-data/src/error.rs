//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading, verifying or decoding data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but its content is not in the expected format.
    #[error("{path}: {reason}")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A folder that should hold images holds none (or not enough).
    #[error("{path}: {reason}")]
    Missing {
        /// The folder or file looked for.
        path: PathBuf,
        /// What was expected there and how to provide it.
        reason: String,
    },
    /// A dataset name that the registry does not know.
    #[error("unknown dataset `{name}`; known: {known}")]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A downloaded or local file does not have the published checksum.
    #[error("checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}; the file was deleted")]
    Checksum {
        /// The file that was checked.
        path: PathBuf,
        /// `sha256` or `md5`.
        algorithm: &'static str,
        /// Published value.
        expected: String,
        /// Value of the bytes received.
        actual: String,
    },
    /// A download failed.
    #[error("download of {url} failed: {reason}. Download it by hand and place it at {dest}")]
    Download {
        /// Where it was fetched from.
        url: String,
        /// Where it should go.
        dest: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A request that cannot be met (e.g. more images than the dataset has).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Wraps an `std::io::Error` with the path it concerns.
impl DataError {
    /// Whether the user's input is at fault (an unknown dataset name, a missing data folder or
    /// file, a bad argument): command lines exit 2 for these, 1 for failures such as a
    /// download that broke off or a corrupt file.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DataError::UnknownDataset { .. } | DataError::Invalid(_) | DataError::Missing { .. }
        )
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}
