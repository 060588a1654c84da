//! Run records: one JSON file per finished training cell, written atomically, holding the fully
//! resolved configuration, seed, data checksum, code version, device, timings, the training
//! curve and the raw per-image recall errors of every corruption. Metrics (how many images count
//! as retrieved) are computed from these in aggregation.
//!
//! Schema version 1 (stable; fields are only ever added):
//! `schema, grid, profile, cell{dataset,n_images,model,hidden,layers,seed}, model_config,
//! parameters, data{dataset,split,selection,sha256,source,n,shape,pixel_range}, code_version,
//! device, finished_unix, timings{load_s,fit_s}, fit{curve,converged,stop,resolved},
//! recall[{corruption,threshold,mse[],steps,converged,seconds,picture}]`.
//!
//! ```
//! use pcmem_harness::spec::Grid;
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4]\nmodel = [\"pcn\"]\n[recall]\ncorruption = [\"noise:0.2\"]\n\
//!             threshold = 0.005\n[profile.quick]\n";
//! let grid = Grid::parse(text, "g.toml", "quick")?;
//! let path = pcmem_harness::record::record_path("out".as_ref(), "g", "quick", &grid.cells()[0]);
//! assert_eq!(path, std::path::Path::new("out/runs/g/quick/cifar10-N4-pcn-n512-L2-s0.json"));
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, HarnessError, Result};

/// Marks a record that did not parse and was moved aside: `<cell>.json.corrupt-<unix time>`.
pub const CORRUPT_MARK: &str = ".corrupt-";
use crate::spec::Cell;

/// Version of the record layout.
pub const SCHEMA: u32 = 1;

/// The data a cell stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Dataset name.
    pub dataset: String,
    /// Split.
    pub split: String,
    /// How the images were chosen.
    pub selection: String,
    /// SHA-256 of exactly the source bytes of the stored images.
    pub sha256: String,
    /// Files or folders read.
    pub source: String,
    /// Number of images.
    pub n: usize,
    /// Channels, height, width.
    pub shape: [usize; 3],
    /// Pixel range given to the model.
    pub pixel_range: String,
}

/// Training outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitInfo {
    /// Loss or energy per epoch.
    pub curve: Vec<f64>,
    /// Whether it converged or met its target.
    pub converged: bool,
    /// Why it stopped.
    pub stop: String,
    /// Values the fit measured that recall used (e.g. the PCN's estimated known-pixel
    /// precision, `recall.known_precision`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resolved: std::collections::BTreeMap<String, f64>,
    /// Epochs that an earlier, interrupted process had trained when this one resumed from its
    /// checkpoint (absent: trained in one go). `timings.fit_s` then counts this process only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at_epoch: Option<usize>,
    /// The cell whose training this record's model is: a search point that differs from it
    /// only in recall settings recalls with the model trained once for it (absent: trained
    /// for this cell). `timings.fit_s` is then that training's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_for: Option<String>,
}

/// One recall condition's raw outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallResult {
    /// The corruption, in grid notation.
    pub corruption: String,
    /// Retrieval threshold on the per-image MSE.
    pub threshold: f64,
    /// Per-image MSE over all pixels between the recalled and the original image. A recall
    /// that diverged (an autoencoder iterated 100 times can) has a non-finite MSE: JSON writes
    /// it as `null`, read back as NaN, never counted as recalled.
    #[serde(deserialize_with = "nan_for_null")]
    pub mse: Vec<f64>,
    /// Update steps of the recall.
    pub steps: usize,
    /// Whether the recall dynamics converged.
    pub converged: bool,
    /// Seconds spent recalling.
    pub seconds: f64,
    /// Picture of originals / corrupted / recalled (path relative to the record), if kept.
    pub picture: Option<String>,
    /// The recall arm (`paper`: the grid's model tables; else a name of its `[arms]`).
    #[serde(default = "paper_arm")]
    pub arm: String,
}

impl RecallResult {
    /// How many images it recalled: those whose MSE is below the threshold (a non-finite
    /// MSE never is).
    pub fn recalled(&self) -> usize {
        self.mse.iter().filter(|&&m| m < self.threshold).count()
    }

    /// How many images' recall diverged (a non-finite MSE).
    pub fn diverged(&self) -> usize {
        self.mse.iter().filter(|m| !m.is_finite()).count()
    }
}

fn paper_arm() -> String {
    "paper".into()
}

/// Wall-clock seconds of the phases of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Loading the data.
    pub load_s: f64,
    /// Training, in this run (a resumed cell: the epochs after its checkpoint).
    pub fit_s: f64,
    /// Training over all runs of the cell: the earlier runs' time up to the checkpoint this
    /// run resumed from, plus `fit_s` (absent in records of older code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_total_s: Option<f64>,
}

/// The record of one finished cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Grid id.
    pub grid: String,
    /// Profile applied.
    pub profile: String,
    /// The training cell.
    pub cell: Cell,
    /// Fully resolved model configuration.
    pub model_config: serde_json::Value,
    /// Learned or stored parameters.
    pub parameters: usize,
    /// Stored data.
    pub data: DataInfo,
    /// `git describe`-like version of the code that ran.
    pub code_version: String,
    /// Device (`cpu`).
    pub device: String,
    /// The PCN's kernel option the run used (`fused`, `fused_direct`, `candle`, `candle_gram`; other models
    /// have one way of computing). Absent in records written before it was an option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Unix time at which the cell finished.
    pub finished_unix: u64,
    /// Timings.
    pub timings: Timings,
    /// Training outcome.
    pub fit: FitInfo,
    /// Every recall condition.
    pub recall: Vec<RecallResult>,
    /// Resolved recall settings of each arm other than `paper` that changed this model's
    /// (`paper`'s are in `model_config`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub arms: std::collections::BTreeMap<String, serde_json::Value>,
    /// The grid's rule choosing among search points by recall on development images, if any
    /// ([`crate::spec::Tune`]); aggregation selects by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<crate::spec::Tune>,
}

/// Where the record of a cell lives: `<out>/runs/<grid>/<profile>/<cell id>.json`.
pub fn record_path(out: &Path, grid: &str, profile: &str, cell: &Cell) -> PathBuf {
    out.join("runs")
        .join(grid)
        .join(profile)
        .join(format!("{}.json", cell.id()))
}

impl RunRecord {
    /// Writes the record atomically ([`crate::atomic::write_atomic`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("records serialise");
        crate::atomic::write_atomic(path, text.as_bytes())
    }

    /// Reads a record; an unreadable or foreign file is an error naming it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let rec: RunRecord = serde_json::from_str(&text).map_err(|e| HarnessError::Record {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if rec.schema != SCHEMA {
            return Err(HarnessError::Record {
                path: path.to_path_buf(),
                reason: format!("schema {} is not the supported {SCHEMA}", rec.schema),
            });
        }
        Ok(rec)
    }
}

/// Moves a record that does not parse aside (`<file>.corrupt-<unix time>`, kept for
/// inspection and never read again) and returns where it went.
pub fn move_aside(path: &Path) -> Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let to = path.with_file_name(format!("{name}{CORRUPT_MARK}{now}"));
    std::fs::rename(path, &to).map_err(io_err(path))?;
    Ok(to)
}

/// Whether `path` names a run record: a `.json` file that is not a cell's checkpoint
/// (`<cell>.ckpt.json`, kept with `--keep-trained` or left by a run that stopped).
fn is_record_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "json") && !path.to_string_lossy().ends_with(".ckpt.json")
}

/// Every record under `<out>/runs` (recursively), sorted by path. A record that does not parse
/// is an error naming it and saying how to recompute it.
pub fn read_all(out: &Path) -> Result<Vec<(PathBuf, RunRecord)>> {
    let mut files = Vec::new();
    let root = out.join("runs");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        if !dir.exists() {
            continue;
        }
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let p = e.map_err(io_err(&dir))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_record_file(&p) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            RunRecord::read(&p)
                .map(|r| (p.clone(), r))
                .map_err(|e| match e {
                    HarnessError::Record { path, reason } => HarnessError::Record {
                        path,
                        reason: format!(
                            "{reason}; `pcmem run` on its grid moves it aside and recomputes the cell"
                        ),
                    },
                    e => e,
                })
        })
        .collect()
}

/// The records of one grid and profile that parse (those that do not are skipped here; the
/// runner moves them aside), for estimates.
pub fn readable(out: &Path, grid: &str, profile: &str) -> Vec<RunRecord> {
    let dir = out.join("runs").join(grid).join(profile);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_record_file(p))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| RunRecord::read(p).ok())
        .collect()
}

/// Reads a list of numbers in which `null` stands for a non-finite value (how serde_json
/// writes NaN and infinities) as NaN.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let v: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}
