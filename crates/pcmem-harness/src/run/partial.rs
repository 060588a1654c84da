//! The recall conditions a cell has finished, kept beside its record (`<cell>.ckpt.recall`)
//! until the record is written, so that a cell stopped during recall (a SIGTERM, a SLURM
//! time limit) recalls only the conditions it had not finished when it runs again. A
//! condition is reused only for the same trained model ([`ModelIdentity`]: its training
//! settings, data, code version, kernel, device and training curve's length and last loss)
//! and the same condition (arm, recall settings, corruption, threshold, seed, pictures kept);
//! anything else is recomputed. Recall repeats bit for bit on one machine, so a reused
//! condition is the one the run would compute again (a job resumed on another node may differ
//! from it in the last bits, as any two runs on different CPUs do).
//!
//! ```
//! use pcmem_harness::run::{ModelIdentity, PartialRecall};
//! let dir = tempfile::tempdir()?;
//! let record = dir.path().join("cell.json");
//! let model = ModelIdentity::new(serde_json::json!({"hidden": 8}), "abc", "v1", None, "cpu", &[0.5, 0.25]);
//! let condition = serde_json::json!({"corruption": "noise:0.2"});
//! let mut partial = PartialRecall::open(&record, model.clone());
//! assert!(partial.take(&condition).is_none());
//! let result: pcmem_harness::record::RecallResult = serde_json::from_value(serde_json::json!({
//!     "corruption": "noise:0.2", "threshold": 0.005, "mse": [0.001], "steps": 3,
//!     "converged": true, "seconds": 0.1, "picture": null, "arm": "paper"}))?;
//! partial.push(condition.clone(), result.clone())?;
//! // A later run with the same trained model finds it; one with another model does not.
//! assert_eq!(PartialRecall::open(&record, model).take(&condition), Some(result));
//! let other = ModelIdentity::new(serde_json::json!({"hidden": 8}), "abc", "v1", None, "cpu", &[0.5]);
//! assert!(PartialRecall::open(&record, other).take(&condition).is_none());
//! PartialRecall::remove(&record)?;
//! assert!(!dir.path().join("cell.ckpt.recall").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result};
use crate::record::RecallResult;

/// What makes two trained models the same model for recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    training: serde_json::Value,
    sha256: String,
    code_version: String,
    kernel: Option<String>,
    device: String,
    epochs: usize,
    /// The last training loss's bits (`f64::to_bits`), so that equality is exact.
    last_loss: Option<u64>,
}

impl ModelIdentity {
    /// The identity of a model trained with the settings `training` (the factory's training
    /// settings) on data `sha256` by code `code_version` with `kernel` on `device`, whose
    /// training curve is `curve`.
    pub fn new(
        training: serde_json::Value,
        sha256: &str,
        code_version: &str,
        kernel: Option<String>,
        device: &str,
        curve: &[f64],
    ) -> Self {
        Self {
            training,
            sha256: sha256.to_string(),
            code_version: code_version.to_string(),
            kernel,
            device: device.to_string(),
            epochs: curve.len(),
            last_loss: curve.last().map(|l| l.to_bits()),
        }
    }

    /// The identity of the model a record was made with.
    pub fn of(record: &crate::record::RunRecord) -> Self {
        Self::new(
            record
                .cell
                .model
                .factory()
                .training_settings(&record.model_config),
            &record.data.sha256,
            &record.code_version,
            record.kernel.clone(),
            &record.device,
            &record.fit.curve,
        )
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    model: ModelIdentity,
    done: Vec<Done>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Done {
    condition: serde_json::Value,
    result: RecallResult,
}

/// What a recall condition of `grid` is, for [`PartialRecall`]: its arm, the model's recall
/// settings in that arm (`recall_settings`), the corruption, its threshold, the noise seed and
/// the pictures kept.
pub fn condition(
    grid: &crate::spec::Grid,
    arm: &str,
    recall_settings: &serde_json::Value,
    corruption: &crate::spec::Corruption,
) -> serde_json::Value {
    serde_json::json!({
        "arm": arm,
        "recall": recall_settings,
        "corruption": corruption.to_string(),
        "threshold": grid.threshold(corruption),
        "noise_seed": grid.recall.noise_seed,
        "keep_images": grid.recall.keep_images,
    })
}

/// The finished recall conditions of one cell (see the module docs).
pub struct PartialRecall {
    path: PathBuf,
    model: ModelIdentity,
    done: Vec<Done>,
}

/// What [`PartialRecall::peek`] reads of a cell's file without knowing its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialPeek {
    /// The epochs the recalling model was trained for (its training had ended).
    pub epochs: usize,
    /// The conditions finished, as (arm, corruption).
    pub done: Vec<(String, String)>,
}

/// The file beside `record_file` that holds its cell's finished conditions.
fn path_of(record_file: &Path) -> PathBuf {
    record_file.with_extension("ckpt.recall")
}

impl PartialRecall {
    /// The conditions finished for `record_file`'s cell with `model`; none when there is no
    /// such file, or when it is unreadable or was made with another model (it is replaced at
    /// the next [`push`](Self::push)).
    pub fn open(record_file: &Path, model: ModelIdentity) -> Self {
        let path = path_of(record_file);
        let done = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|s| s.model == model)
            .map(|s| s.done)
            .unwrap_or_default();
        Self { path, model, done }
    }

    /// Writes the file (atomically).
    fn save(&self) -> Result<()> {
        let stored = Stored {
            model: self.model.clone(),
            done: self.done.clone(),
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| crate::error::HarnessError::Invalid(e.to_string()))?;
        crate::atomic::write_atomic(&self.path, &bytes)
    }

    /// The epochs of the model that recalls in `record_file`'s cell and the conditions it
    /// finished, from the file alone (`None` without a readable one, i.e. before its first
    /// condition ended): what `--dry-run` needs to price a cell stopped during recall. The run
    /// checks the model when it resumes.
    pub fn peek(record_file: &Path) -> Option<PartialPeek> {
        let bytes = std::fs::read(path_of(record_file)).ok()?;
        let stored: Stored = serde_json::from_slice(&bytes).ok()?;
        Some(PartialPeek {
            epochs: stored.model.epochs,
            done: stored
                .done
                .into_iter()
                .map(|d| (d.result.arm, d.result.corruption))
                .collect(),
        })
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The result of `condition`, if it was finished.
    pub fn take(&self, condition: &serde_json::Value) -> Option<RecallResult> {
        self.done
            .iter()
            .find(|d| &d.condition == condition)
            .map(|d| d.result.clone())
    }

    /// Adds a finished condition and writes the file (atomically).
    pub fn push(&mut self, condition: serde_json::Value, result: RecallResult) -> Result<()> {
        self.done.push(Done { condition, result });
        self.save()
    }

    /// Removes the file of `record_file`'s cell (once its record is written); none is fine.
    pub fn remove(record_file: &Path) -> Result<()> {
        let path = path_of(record_file);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }
}
