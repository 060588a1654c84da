//! The runner: expands a grid into cells, skips cells whose record exists (so a killed run
//! resumes where it stopped), trains each remaining cell once and evaluates every recall
//! condition on it, and writes one record per cell atomically.
//!
//! ```
//! use pcmem_harness::run::{plan, RunOptions};
//! use pcmem_harness::spec::Grid;
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4, 8]\nmodel = [\"pcn\", \"modern_hopfield\"]\n[recall]\n\
//!             corruption = [\"noise:0.2\"]\nthreshold = 0.005\n[profile.quick]\n";
//! let grid = Grid::parse(text, "g.toml", "quick")?;
//! let out = tempfile::tempdir()?;
//! let opts = RunOptions {
//!     out: out.path().to_path_buf(),
//!     shard: None,
//!     only: Vec::new(),
//!     force: false,
//!     data: pcmem_data::DataDirs::from_env(None),
//!     progress: false,
//!     offline: true,
//!     device: candle_core::Device::Cpu,
//!     kernel: Default::default(),
//!     checkpoint_every: None,
//!     keep_trained: false,
//!     stop: None,
//! };
//! // Four cells, none finished yet; `run_grid` would train and record them.
//! let cells = plan(&grid, &opts)?;
//! assert_eq!(cells.len(), 4);
//! assert!(cells.iter().all(|(_, _, done)| !done));
//! // `only` keeps the cells whose fields match (here: the PCN's two).
//! let only = vec![("model".to_string(), "pcn".to_string())];
//! assert_eq!(plan(&grid, &RunOptions { only, ..opts })?.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pcmem_data::transforms::binarise;
use pcmem_data::{DataDirs, DatasetId, Selection, Split};
use pcmem_model::Kernel;
use pcmem_model::{CheckpointPolicy, FitProgress, Resume};

use crate::error::{HarnessError, Result};
use crate::record::{record_path, DataInfo, FitInfo, RecallResult, RunRecord, Timings, SCHEMA};
use crate::spec::{Cell, Corruption, Grid};

/// The version of the code that produced a record (git commit when built from a checkout).
pub const CODE_VERSION: &str = env!("PCMEM_CODE_VERSION");

/// How to run a grid.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder (records go under `<out>/runs`).
    pub out: PathBuf,
    /// `(i, n)`: run only the cells of shard `i` of `n` ([`crate::shard::assign`]: shards of
    /// about equal estimated work).
    pub shard: Option<(usize, usize)>,
    /// Run only the cells whose fields equal all of these `(key, value)` pairs; keys are the
    /// cell's fields ([`CELL_KEYS`]), values as a record writes them (`model = "autoencoder"`,
    /// `hidden = "512"`). Empty: every cell. A filter that matches no cell is an error.
    pub only: Vec<(String, String)>,
    /// Recompute cells that already have a record.
    pub force: bool,
    /// Where data is found.
    pub data: DataDirs,
    /// Show progress bars.
    pub progress: bool,
    /// Never download: a grid whose data is not on this machine is not run (and said so).
    pub offline: bool,
    /// Where the PCN and the autoencoder compute (`pcmem_model::device::parse`); Hopfield
    /// networks and the modern Hopfield network stay on the CPU.
    pub device: Device,
    /// How the PCN computes its hot loop (`fused`, `fused_direct`, `candle`, `candle_gram`): an execution
    /// choice, not a setting of the model (every kernel computes the same network); records
    /// say which ran. Other models ignore it. Default [`Kernel::Fused`].
    pub kernel: Kernel,
    /// Save a training cell's state at most this often (`<cell>.ckpt.json` and
    /// `<cell>.ckpt.e<epoch>.safetensors` beside its record), so that a killed run resumes
    /// it; removed once the record is written. `None`: no checkpoints. The CLI's default is
    /// [`DEFAULT_CHECKPOINT_EVERY`].
    pub checkpoint_every: Option<std::time::Duration>,
    /// Keep each training cell's last checkpoint (its trained model) after its record is
    /// written, instead of removing it. A later run whose cell differs only in recall settings
    /// (a record made stale by a recall setting, a new recall arm or condition, a recall-only
    /// search point) then recalls with that model and trains nothing. Needs
    /// `checkpoint_every`. Default false (the CLI's `--keep-trained`).
    pub keep_trained: bool,
    /// Raised (by the CLI's signal handler) to stop: a training cell checkpoints at the end of
    /// its epoch and the run ends with [`HarnessError::Interrupted`]; no new cell starts.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The name of a kernel as grids, the CLI and records write it (`fused`, `fused_direct`,
/// `candle`, `candle_gram`).
pub fn kernel_name(kernel: Kernel) -> String {
    serde_json::to_value(kernel)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// How often `pcmem run` checkpoints a training cell unless told otherwise (5 minutes).
pub const DEFAULT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// The checkpoint of the cell whose record is `record_file`, saved every `every`. Its identity
/// ties it to the grid, the cell and the data's checksum.
pub fn checkpoint_policy(
    record_file: &std::path::Path,
    grid: &Grid,
    cell: &Cell,
    data_sha256: &str,
    every: std::time::Duration,
) -> CheckpointPolicy {
    CheckpointPolicy::new(
        record_file.with_extension("ckpt"),
        every,
        format!(
            "grid {} profile {} cell {} data sha256 {data_sha256}",
            grid.id,
            grid.applied_profile,
            cell.id()
        ),
    )
}

/// What a grid run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Cells computed now.
    pub ran: usize,
    /// Cells skipped because their record existed.
    pub skipped: usize,
    /// Cells skipped because another process was computing them (its lock was held).
    pub held_elsewhere: usize,
    /// Records that did not parse, moved aside and recomputed.
    pub recovered: usize,
    /// Why the grid was not run (its data cannot be had here), if it was not.
    pub not_run: Option<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// The cells of this shard, with their record paths and whether they are done, in the grid's
/// order except that the points of a search that share one training (they differ only in
/// recall settings) come one after the other and belong to one shard.
pub fn plan(grid: &Grid, opts: &RunOptions) -> Result<Vec<(Cell, PathBuf, bool)>> {
    if let Some((i, n)) = opts.shard {
        if n == 0 || i == 0 || i > n {
            return Err(HarnessError::Invalid(format!(
                "shard {i}/{n}: need 1 <= i <= n"
            )));
        }
    }
    let cells = only_cells(grid, grid.cells(), &opts.only)?;
    let resolved: Vec<_> = cells
        .iter()
        .map(|c| crate::models::resolve(grid, c).ok())
        .collect();
    // Cells that one training serves (search points that differ only in recall settings):
    // the index of the first such cell.
    let group: Vec<usize> = (0..cells.len())
        .map(|k| {
            (0..k)
                .find(|&j| {
                    cells[j].base() == cells[k].base()
                        && match (&resolved[j], &resolved[k]) {
                            (Some(a), Some(b)) => {
                                let f = cells[k].model.factory();
                                f.training_settings(&a.config) == f.training_settings(&b.config)
                            }
                            _ => false,
                        }
                })
                .unwrap_or(k)
        })
        .collect();
    // Shards of about equal work (the training bound of each cell, counted once for cells
    // that share it; one-shot cells count as none and are spread by number).
    let shard_of = opts.shard.map(|(_, n)| {
        let work: Vec<f64> = cells
            .iter()
            .zip(&resolved)
            .map(|(c, r)| {
                r.as_ref()
                    .map_or(0.0, |r| crate::models::estimate_gflop(r, c.n_images))
            })
            .collect();
        crate::shard::assign_grouped(&work, &group, n)
    });
    // Cells of one training run one after the other (the trained model stays in memory
    // between them); otherwise the grid's order.
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&k| (group[k], k));
    let mut cells: Vec<Option<Cell>> = cells.into_iter().map(Some).collect();
    let cells: Vec<(usize, Cell)> = order
        .into_iter()
        .map(|k| (k, cells[k].take().expect("each index once")))
        .collect();
    Ok(cells
        .into_iter()
        .filter(|(k, _)| {
            opts.shard
                .zip(shard_of.as_ref())
                .is_none_or(|((i, _), s)| s[*k] == i - 1)
        })
        .map(|(_, c)| {
            let p = record_path(&opts.out, &grid.id, &grid.applied_profile, &c);
            let done = is_finished(&p, grid, &c);
            (c, p, done)
        })
        .collect())
}

/// The fields of a cell that [`RunOptions::only`] can select on.
pub const CELL_KEYS: [&str; 7] = [
    "dataset", "n_images", "model", "hidden", "layers", "seed", "search",
];

/// A cell's field `key` as text, as its record (and the tidy table) writes it.
pub(crate) fn cell_field(cell: &Cell, key: &str) -> Option<String> {
    let v = serde_json::to_value(cell).ok()?;
    Some(match v.get(key)? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The cells whose fields match every pair of `only`; an unknown key, or a filter that leaves
/// no cell, is an error naming the values the grid's cells have.
fn only_cells(grid: &Grid, cells: Vec<Cell>, only: &[(String, String)]) -> Result<Vec<Cell>> {
    if only.is_empty() {
        return Ok(cells);
    }
    for (k, _) in only {
        if !CELL_KEYS.contains(&k.as_str()) {
            return Err(HarnessError::Invalid(format!(
                "--where {k}=...: unknown cell field `{k}`; use one of {}",
                CELL_KEYS.join(", ")
            )));
        }
    }
    let kept: Vec<Cell> = cells
        .iter()
        .filter(|c| {
            only.iter()
                .all(|(k, v)| cell_field(c, k).as_deref() == Some(v.as_str()))
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        let have: Vec<String> = only
            .iter()
            .map(|(k, _)| {
                let mut vals: Vec<String> = cells.iter().filter_map(|c| cell_field(c, k)).collect();
                vals.sort();
                vals.dedup();
                format!("{k} in {{{}}}", vals.join(", "))
            })
            .collect();
        let asked: Vec<String> = only.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(HarnessError::Invalid(format!(
            "--where {}: no cell of grid `{}` (profile {}) matches; its cells have {}",
            asked.join(" "),
            grid.id,
            grid.applied_profile,
            have.join("; ")
        )));
    }
    Ok(kept)
}

/// Whether `path` holds a record of `cell` that parses, has every recall arm and corruption of
/// the grid and the grid's settings as they are now. A file that does not parse (truncated by a
/// kill, a full disk or a bad copy) is not a finished cell; one that lacks a condition added to
/// the grid since, or whose settings changed since ([`crate::stale`]), is computed again.
pub fn is_finished(path: &std::path::Path, grid: &Grid, cell: &Cell) -> bool {
    path.exists()
        && RunRecord::read(path).is_ok_and(|r| {
            r.cell == *cell
                && crate::stale::why_stale(std::slice::from_ref(grid), &r).is_none()
                && grid.arm_names().iter().all(|arm| {
                    grid.corruptions().iter().all(|c| {
                        let c = c.to_string();
                        r.recall.iter().any(|x| &x.arm == arm && x.corruption == c)
                    })
                })
        })
}

/// Refuses, before any work, cells that would need more memory than the machine has (CPU
/// runs; on a GPU the host holds only the data).
pub fn check_memory(grid: &Grid, cells: &[&Cell], device: &Device) -> Result<()> {
    let Some(have) = crate::models::machine_memory() else {
        return Ok(());
    };
    if !device.is_cpu() {
        return Ok(());
    }
    for cell in cells {
        let r = crate::models::resolve(grid, cell).map_err(|e| HarnessError::Spec {
            file: grid.id.clone(),
            message: e,
        })?;
        if r.memory_bytes > have {
            return Err(HarnessError::Memory {
                grid: grid.id.clone(),
                cell: cell.id(),
                need_gib: r.memory_bytes / GIB,
                have_gib: have / GIB,
            });
        }
    }
    Ok(())
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// An exclusive hold on one cell while a process computes it: an advisory lock on
/// `<record>.lock`, released by the operating system when the process ends (even by kill -9),
/// so a second `pcmem run` into the same folder skips the cell instead of training it twice.
struct CellLock {
    file: std::fs::File,
    path: PathBuf,
}

impl CellLock {
    /// `Ok(None)` when another process holds the cell. The holder writes `pid=<pid>
    /// host=<host>` into the lock file.
    fn try_take(record: &std::path::Path) -> Result<Option<Self>> {
        let path = record.with_extension("json.lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(crate::error::io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for people and schedulers looking at the folder.
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default();
                let mut f = &file;
                let _ = f.set_len(0);
                let _ = std::io::Write::write_all(
                    &mut f,
                    format!("pid={} host={host}\n", std::process::id()).as_bytes(),
                );
                Ok(Some(CellLock { file, path }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(crate::error::io_err(&path)(e)),
        }
    }
}

impl Drop for CellLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock; a process that opened it meanwhile
        // takes the lock on the unlinked file and then finds the record written.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Claim grids store no declared development image; development grids store only those.
fn check_development(
    grid: &Grid,
    cell: &Cell,
    id: DatasetId,
    split: Split,
    set: &pcmem_data::ImageSet,
) -> Result<()> {
    let dev = pcmem_data::development::Development::of(id);
    let hits = pcmem_data::development::development_in(id, split, &set.positions, &set.labels);
    let message = if !grid.train.development && !hits.is_empty() {
        format!(
            "cell {} stores {} of the development images of {} ({}: e.g. position {}); \
             grids that judge claims keep them out: choose other images, or mark a grid that \
             chooses settings with `development = true` in [train]",
            cell.id(),
            hits.len(),
            cell.dataset,
            dev.describe(),
            hits[0]
        )
    } else if grid.train.development && hits.len() != set.len() {
        format!(
            "cell {} is a development cell (`development = true`) but {} of its {} images are \
             not development images of {} ({}); select them with subset = \"range:...\" or \
             \"class:...\"",
            cell.id(),
            set.len() - hits.len(),
            set.len(),
            cell.dataset,
            dev.describe()
        )
    } else {
        return Ok(());
    };
    Err(HarnessError::Spec {
        file: grid.id.clone(),
        message,
    })
}

/// Trains one cell and evaluates every recall condition; writes nothing except the pictures.
/// `on_epoch` is called after every training epoch.
/// A model trained by an earlier cell of the same run, kept for the next cells that differ
/// from that cell only in recall settings (the points of a search over `recall.*`): they
/// recall with it instead of training the same model again.
pub struct Trained {
    /// The cell it was trained for.
    cell: Cell,
    /// Its training settings and the data's checksum: what must match.
    key: (serde_json::Value, String),
    model: Box<dyn pcmem_model::AssociativeMemory>,
    fit: pcmem_model::FitReport,
    fit_s: f64,
    fit_total_s: Option<f64>,
    resumed_at_epoch: Option<usize>,
}

/// The settings that decide training (everything the model's factory does not list among
/// its recall settings), and the data's checksum.
fn training_key(
    kind: crate::spec::ModelKind,
    config: &serde_json::Value,
    sha256: &str,
) -> (serde_json::Value, String) {
    (kind.factory().training_settings(config), sha256.to_string())
}

/// The cell whose kept trained model (`--keep-trained`) serves `cell` without training: `cell`
/// itself, or another point of its search that differs from it only in recall settings (a
/// recall-only candidate added to a search later). A cell qualifies when its record (written
/// once training ended) states the training settings `cell` resolves to now, with the data
/// `data_sha256` when given, and its checkpoint is still there: then that checkpoint holds the
/// final state, which resuming reads and never writes. `pcmem run --dry-run` prices such cells
/// at no training. Returns that cell and its record's path (its checkpoint's is beside it).
pub fn kept_training(
    grid: &Grid,
    cell: &Cell,
    record_file: &std::path::Path,
    data_sha256: Option<&str>,
) -> Option<(Cell, PathBuf)> {
    let resolved = crate::models::resolve(grid, cell).ok()?;
    let settings = cell.model.factory().training_settings(&resolved.config);
    let mut candidates = vec![cell.clone()];
    if !cell.search.is_empty() {
        candidates.extend(
            grid.cells()
                .into_iter()
                .filter(|c| c.base() == cell.base() && c.id() != cell.id()),
        );
    }
    candidates.into_iter().find_map(|c| {
        let rec = record_file.with_file_name(format!("{}.json", c.id()));
        let r = RunRecord::read(&rec).ok()?;
        let kept = r.cell.model.factory().training_settings(&r.model_config) == settings
            && data_sha256.is_none_or(|sha| r.data.sha256 == sha)
            && checkpoint_policy(&rec, grid, &c, &r.data.sha256, Default::default())
                .meta_path()
                .exists();
        kept.then_some((c, rec))
    })
}

/// Trains `cell`'s model (or reuses the one in `cache` when the cell differs from the cell it
/// was trained for only in recall settings), recalls every condition of every arm, and
/// returns the record; the model is left in `cache` for the next cell.
pub fn run_cell(
    grid: &Grid,
    cell: &Cell,
    opts: &RunOptions,
    record_file: &std::path::Path,
    on_epoch: &mut dyn FnMut(&FitProgress),
    cache: &mut Option<Trained>,
) -> Result<RunRecord> {
    let t0 = Instant::now();
    let id = DatasetId::from_name(&cell.dataset)?;
    let selection = match (
        grid.train.subset.strip_prefix("class:"),
        crate::spec::parse_range(&grid.train.subset),
    ) {
        (Some(l), _) => Selection::Class {
            label: l.parse().expect("validated"),
            n: cell.n_images,
        },
        (None, Some((from, to))) => Selection::Range {
            from,
            to,
            n: cell.n_images,
        },
        (None, None) => Selection::First(cell.n_images),
    };
    let split = if grid.train.split == "test" {
        Split::Test
    } else {
        Split::Train
    };
    let bipolar = cell.model.bipolar() || grid.train.binarise;
    let set = pcmem_data::load(id, split, &selection, &opts.data)?;
    check_development(grid, cell, id, split, &set)?;
    let d = set.dim();
    let mut pixels = set.pixels.clone();
    if bipolar {
        pixels = binarise(&pixels, 0.5);
    }
    let truth = Tensor::from_vec(pixels.clone(), (set.len(), d), &Device::Cpu)
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
    let load_s = t0.elapsed().as_secs_f64();
    let cell_err = |e: pcmem_model::MemoryError| match e.downcast_ref::<pcmem_model::PcnError>() {
        Some(stop @ pcmem_model::PcnError::Interrupted { .. }) => HarnessError::Interrupted {
            grid: grid.id.clone(),
            at: format!("{}: {stop}", cell.id()),
        },
        _ => HarnessError::Cell {
            grid: grid.id.clone(),
            cell: cell.id(),
            reason: e.to_string(),
        },
    };
    let resolved = crate::models::resolve(grid, cell).map_err(|e| HarnessError::Spec {
        file: grid.id.clone(),
        message: e,
    })?;
    if resolved.input_dim != d {
        return Err(HarnessError::Invalid(format!(
            "{}: images of {d} values, the dataset's declared shape has {}",
            set.source, resolved.input_dim
        )));
    }
    let model_config = resolved.config.clone();
    let key = training_key(cell.model, &resolved.config, &set.sha256);
    let reuse = match cache.take() {
        Some(mut t) if t.key == key && t.cell.base() == cell.base() => {
            match t.model.set_recall_settings(&resolved.config) {
                Ok(()) => Some(t),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let (mut model, fit, (fit_s, fit_total_s), resumed_at_epoch, origin) = match reuse {
        Some(t) => {
            eprintln!(
                "{}: {} recalls with the model trained for {} (only recall settings differ)",
                grid.id,
                cell.id(),
                t.cell.id()
            );
            (
                t.model,
                t.fit,
                (t.fit_s, t.fit_total_s),
                t.resumed_at_epoch,
                t.cell,
            )
        }
        None => {
            let mut model = crate::models::build(&resolved, &opts.device).map_err(cell_err)?;
            model.set_kernel(opts.kernel).map_err(cell_err)?;
            let t1 = Instant::now();
            // Training seconds of the runs before this one (from the checkpoint resumed), and
            // the cell whose training the model is (another search point's, when its kept
            // model serves this one).
            let (fit, resume, earlier_s, origin) = match opts.checkpoint_every {
                Some(every) => {
                    let own = checkpoint_policy(record_file, grid, cell, &set.sha256, every);
                    let kept = match own.meta_path().exists() {
                        true => None,
                        false => kept_training(grid, cell, record_file, Some(&set.sha256)),
                    };
                    let (mut policy, origin) = match kept {
                        Some((c, rec)) => {
                            (checkpoint_policy(&rec, grid, &c, &set.sha256, every), c)
                        }
                        None => (own, cell.clone()),
                    };
                    if let Some(flag) = &opts.stop {
                        policy = policy.with_stop(flag.clone());
                    }
                    let (fit, resume) = model
                        .fit_resumable(&truth, &policy, on_epoch)
                        .map_err(cell_err)?;
                    (fit, resume, policy.earlier_seconds(), origin)
                }
                None => (
                    model.fit_with(&truth, on_epoch).map_err(cell_err)?,
                    Resume::Fresh,
                    0.0,
                    cell.clone(),
                ),
            };
            let resumed_at_epoch = match &resume {
                Resume::From { epoch } if fit.curve.len() == *epoch => {
                    eprintln!(
                        "{}: {} recalls with the trained model the checkpoint of {} kept \
                         ({epoch} epochs; nothing trained now)",
                        grid.id,
                        cell.id(),
                        origin.id()
                    );
                    Some(*epoch)
                }
                Resume::From { epoch } => {
                    eprintln!(
                        "{}: {} resumed from its checkpoint after epoch {epoch}",
                        grid.id,
                        cell.id()
                    );
                    Some(*epoch)
                }
                Resume::Refused { path, reason } => {
                    eprintln!(
                        "{}: {} checkpoint {} not used ({reason}); removed, trained from epoch 0",
                        grid.id,
                        cell.id(),
                        path.display()
                    );
                    None
                }
                Resume::Fresh | Resume::Unsupported => None,
            };
            let fit_s = t1.elapsed().as_secs_f64();
            (
                model,
                fit,
                (fit_s, Some(earlier_s + fit_s)),
                resumed_at_epoch,
                origin,
            )
        }
    };
    let trained_for = (origin != *cell).then(|| origin.id());
    let mut recall: Vec<RecallResult> = Vec::new();
    let mut arms = std::collections::BTreeMap::new();
    let fill = if bipolar { -1.0 } else { 0.0 };
    for arm in grid.arm_names() {
        if arm != "paper" {
            let resolved =
                crate::models::resolve_arm(grid, cell, &arm).map_err(|e| HarnessError::Spec {
                    file: grid.id.clone(),
                    message: format!("[arms.{arm}]: {e}"),
                })?;
            match resolved {
                Some(r) => {
                    model.set_recall_settings(&r.config).map_err(cell_err)?;
                    arms.insert(arm.clone(), r.config["recall"].clone());
                }
                // The arm leaves this model as it is: its recall is the paper arm's.
                None => {
                    let same: Vec<RecallResult> = recall
                        .iter()
                        .filter(|r| r.arm == "paper")
                        .map(|r| RecallResult {
                            arm: arm.clone(),
                            ..r.clone()
                        })
                        .collect();
                    recall.extend(same);
                    continue;
                }
            }
        }
        for corruption in grid.corruptions() {
            // A stop asked for during recall ends the cell here: its trained model stays in
            // its checkpoint (written at the end of training), so the next run recalls again.
            stop_point(opts, grid, || {
                format!("{}: before recall from {corruption} ({arm} arm)", cell.id())
            })?;
            let t2 = Instant::now();
            let mut cue = pixels.clone();
            let known = match corruption {
                Corruption::Noise(noise) => {
                    noise.apply(&mut cue, grid.recall.noise_seed);
                    if bipolar {
                        cue = binarise(&cue, 0.0);
                    }
                    None
                }
                Corruption::Mask(mask) => {
                    let m = mask.build(set.shape, grid.recall.noise_seed);
                    pcmem_data::transforms::apply_mask(&mut cue, &m, fill);
                    Some(
                        Tensor::from_vec(m, (1, d), &Device::Cpu)
                            .map_err(|e| HarnessError::Invalid(e.to_string()))?,
                    )
                }
            };
            let cue_t = Tensor::from_vec(cue.clone(), (set.len(), d), &Device::Cpu)
                .map_err(|e| HarnessError::Invalid(e.to_string()))?;
            let out = model.recall(&cue_t, known.as_ref()).map_err(cell_err)?;
            let recalled: Vec<f32> = out
                .images
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| HarnessError::Invalid(e.to_string()))?;
            let mse: Vec<f64> = recalled
                .chunks(d)
                .zip(pixels.chunks(d))
                .map(|(a, b)| {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| ((x - y) as f64).powi(2))
                        .sum::<f64>()
                        / d as f64
                })
                .collect();
            let seconds = t2.elapsed().as_secs_f64();
            let picture = if grid.recall.keep_images > 0 {
                let k = grid.recall.keep_images.min(set.len());
                let arm_tag = if arm == "paper" {
                    String::new()
                } else {
                    format!("__{arm}")
                };
                let name = format!(
                    "{}__{}{arm_tag}.png",
                    cell.id(),
                    corruption.to_string().replace(':', "_")
                );
                let path = record_file.with_file_name(&name);
                let to01 = |v: &[f32]| -> Vec<f32> {
                    if bipolar {
                        v.iter().map(|x| 0.5 * (x + 1.0)).collect()
                    } else {
                        v.to_vec()
                    }
                };
                let (orig, rec) = (to01(&pixels), to01(&recalled));
                let error: Vec<f32> = orig.iter().zip(&rec).map(|(a, b)| (a - b).abs()).collect();
                crate::plots::picture_rows(
                    &path,
                    set.shape,
                    k,
                    &[
                        ("original", &orig),
                        ("corrupted", &to01(&cue)),
                        ("recalled", &rec),
                        ("|error|", &error),
                    ],
                )?;
                Some(name)
            } else {
                None
            };
            recall.push(RecallResult {
                corruption: corruption.to_string(),
                threshold: grid.threshold(&corruption),
                mse,
                steps: out.steps,
                converged: out.converged,
                seconds,
                picture,
                arm: arm.clone(),
            });
        }
    }
    let record = RunRecord {
        schema: SCHEMA,
        grid: grid.id.clone(),
        profile: grid.applied_profile.clone(),
        cell: cell.clone(),
        model_config,
        parameters: model.parameter_count(),
        data: DataInfo {
            dataset: cell.dataset.clone(),
            split: grid.train.split.clone(),
            selection: format!("{selection:?}"),
            sha256: set.sha256.clone(),
            source: set.source.clone(),
            n: set.len(),
            shape: [set.shape.0, set.shape.1, set.shape.2],
            pixel_range: if bipolar {
                "bipolar".into()
            } else {
                "zero_one".into()
            },
        },
        code_version: CODE_VERSION.to_string(),
        device: pcmem_model::device::name(&opts.device),
        kernel: Some(kernel_name(opts.kernel)),
        finished_unix: unix_now(),
        timings: Timings {
            load_s,
            fit_s,
            fit_total_s,
        },
        fit: FitInfo {
            curve: fit.curve.clone(),
            converged: fit.converged,
            stop: fit.stop.clone(),
            resolved: fit.resolved.clone(),
            resumed_at_epoch,
            trained_for: trained_for.clone(),
        },
        recall,
        arms,
        tune: grid.tune.clone(),
    };
    // Kept for a next cell that differs only in recall settings; a model that reused one is
    // still the model trained for the first.
    *cache = Some(Trained {
        cell: origin,
        key,
        model,
        fit,
        fit_s,
        fit_total_s,
        resumed_at_epoch,
    });
    Ok(record)
}

/// Runs every cell of the grid (this shard) that has no record yet (all with `force`).
pub fn run_grid(grid: &Grid, opts: &RunOptions) -> Result<RunSummary> {
    let start = Instant::now();
    let cells = plan(grid, opts)?;
    let todo: Vec<_> = cells
        .iter()
        .filter(|(_, _, done)| opts.force || !done)
        .collect();
    // Found now, not after hours of training: an output folder that cannot take files, a cell
    // the machine cannot hold.
    crate::atomic::check_writable(
        &opts
            .out
            .join("runs")
            .join(&grid.id)
            .join(&grid.applied_profile),
    )?;
    check_memory(
        grid,
        &todo.iter().map(|(c, _, _)| c).collect::<Vec<_>>(),
        &opts.device,
    )?;
    // Then the data, downloaded only for a grid that can run here.
    let marker = crate::provision::marker(&opts.out, grid);
    if !todo.is_empty() {
        if let Some(reason) = crate::provision::prepare(grid, opts)? {
            crate::atomic::write_atomic(&marker, reason.as_bytes())?;
            eprintln!("{}: not run: {reason}", grid.id);
            return Ok(RunSummary {
                skipped: cells.len() - todo.len(),
                not_run: Some(reason),
                seconds: start.elapsed().as_secs_f64(),
                ..Default::default()
            });
        }
    }
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(crate::error::io_err(&marker))?;
    }
    let mut summary = RunSummary {
        skipped: cells.len() - todo.len(),
        ..Default::default()
    };
    for (cell, path, done) in &todo {
        if !done && path.exists() {
            let reason = match RunRecord::read(path) {
                // A record of this cell from before a recall condition or arm was added to the
                // grid: complete, just short of the new conditions. Recomputed and replaced.
                Ok(r) if r.cell == *cell => {
                    let why = crate::stale::why_stale(std::slice::from_ref(grid), &r)
                        .unwrap_or_else(|| "it lacks recall conditions the grid has now".into());
                    eprintln!(
                        "{}: record {}: {why}; recomputing the cell",
                        grid.id,
                        path.display()
                    );
                    continue;
                }
                Ok(_) => "holds another cell".to_string(),
                Err(e) => e.to_string(),
            };
            let to = crate::record::move_aside(path)?;
            eprintln!(
                "{}: record {} is not a finished cell ({reason}); moved aside to {}, recomputing",
                grid.id,
                path.display(),
                to.display()
            );
            summary.recovered += 1;
        }
    }
    let multi = MultiProgress::new();
    let bar = if opts.progress {
        let b = multi.add(ProgressBar::new(todo.len() as u64));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} cells {elapsed_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(grid.id.clone());
        if summary.skipped > 0 {
            b.println(format!(
                "{}: {} cells already done, skipped",
                grid.id, summary.skipped
            ));
        }
        Some(b)
    } else {
        None
    };
    let total = todo.len();
    let mut trained: Option<Trained> = None;
    for (k, (cell, path, _)) in todo.into_iter().enumerate() {
        stop_point(opts, grid, || format!("before cell {}", cell.id()))?;
        let Some(_lock) = CellLock::try_take(path)? else {
            let holder = std::fs::read_to_string(path.with_extension("json.lock"))
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let msg = format!(
                "{}: {} is being computed by another process ({holder}); skipped",
                grid.id,
                cell.id()
            );
            match &bar {
                Some(b) => b.println(msg),
                None => eprintln!("{msg}"),
            }
            summary.held_elsewhere += 1;
            continue;
        };
        // Another process may have finished the cell between the plan and the lock.
        if !opts.force && is_finished(path, grid, cell) {
            summary.skipped += 1;
            continue;
        }
        if let Some(b) = &bar {
            b.set_message(cell.id());
        }
        let t = Instant::now();
        // Per-cell progress: a bar of epochs on a terminal, a log line every 30 s otherwise.
        let cell_bar = bar.as_ref().map(|_| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] epoch {pos}/{len} {elapsed_precise} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix("training");
            b
        });
        let mut last_log = Instant::now();
        let mut on_epoch = |p: &FitProgress| {
            let Some(b) = &cell_bar else { return };
            b.set_length(p.max_epochs as u64);
            b.set_position(p.epoch as u64);
            b.set_message(format!("loss {:.4e}  MSE {:.2e}", p.loss, p.mse));
            if b.is_hidden() && last_log.elapsed().as_secs() >= 30 {
                last_log = Instant::now();
                eprintln!(
                    "{} [{}/{total}] {}: epoch {}/{} loss {:.4e} MSE {:.2e} ({:.0} s)",
                    grid.id,
                    k + 1,
                    cell.id(),
                    p.epoch,
                    p.max_epochs,
                    p.loss,
                    p.mse,
                    t.elapsed().as_secs_f64()
                );
            }
        };
        let rec = run_cell(grid, cell, opts, path, &mut on_epoch, &mut trained);
        if let Some(b) = cell_bar {
            b.finish_and_clear();
        }
        let rec = rec?;
        rec.write(path)?;
        // The record holds what the checkpoint was for (unless the trained model is kept).
        if opts.checkpoint_every.is_some() && !opts.keep_trained {
            let ckpt = path.with_extension("ckpt");
            pcmem_model::CheckpointPolicy::new(ckpt.clone(), Default::default(), "")
                .remove()
                .map_err(crate::error::io_err(&ckpt))?;
        }
        summary.ran += 1;
        if let Some(b) = &bar {
            b.inc(1);
            // Without a terminal the bar is hidden: log one line per cell instead.
            if b.is_hidden() {
                let recalled: Vec<String> = rec
                    .recall
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}/{}",
                            r.corruption,
                            r.mse.iter().filter(|&&m| m < r.threshold).count(),
                            r.mse.len()
                        )
                    })
                    .collect();
                eprintln!(
                    "{} [{}/{total}] {} {:.1} s: {}",
                    grid.id,
                    k + 1,
                    cell.id(),
                    t.elapsed().as_secs_f64(),
                    recalled.join(", ")
                );
            }
        }
    }
    if let Some(b) = bar {
        b.finish_with_message("done");
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Ends the run here if a stop was asked for (`opts.stop`), saying where (`at`).
fn stop_point(opts: &RunOptions, grid: &Grid, at: impl FnOnce() -> String) -> Result<()> {
    let asked = opts
        .stop
        .as_ref()
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed));
    if asked {
        return Err(HarnessError::Interrupted {
            grid: grid.id.clone(),
            at: at(),
        });
    }
    Ok(())
}
