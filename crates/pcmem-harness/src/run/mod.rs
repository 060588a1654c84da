//! The runner: expands a grid into cells, skips cells whose record exists (so a killed run
//! resumes where it stopped), trains each remaining cell once and evaluates every recall
//! condition on it, and writes one record per cell atomically. Which cells a run computes
//! (filter, shard, order, finished or not) is `plan`'s concern, one cell's work `cell`'s, and
//! the lock that keeps two processes off one cell `lock`'s, the pace its log lines report
//! `pace`'s, the recall conditions a stopped cell had finished `partial`'s; this module runs
//! a grid's cells.
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

use candle_core::Device;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pcmem_data::DataDirs;
use pcmem_model::Kernel;

use crate::error::{HarnessError, Result};
use crate::record::RunRecord;
use crate::spec::Grid;

mod cell;
mod lock;
mod pace;
mod partial;
mod plan;

pub use cell::{
    checkpoint_policy, kept_training, run_cell, saved_training, Progress, SavedTraining, Trained,
};
use lock::CellLock;
pub use partial::{condition, ModelIdentity, PartialPeek, PartialRecall};
pub(crate) use plan::cell_field;
pub use plan::{check_memory, is_finished, plan, CELL_KEYS};

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
                "{}: {} already done, skipped",
                grid.id,
                crate::left::count(summary.skipped, "cell")
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
        let mut pace = pace::Pace::default();
        let mut on_progress = |progress: Progress<'_>| {
            let Some(b) = &cell_bar else { return };
            match progress {
                Progress::Epoch(p) => {
                    b.set_length(p.max_epochs as u64);
                    b.set_position(p.epoch as u64);
                    b.set_message(format!("loss {:.4e}  MSE {:.2e}", p.loss, p.mse));
                    let seconds = t.elapsed().as_secs_f64();
                    let pace = pace.observe(p.epoch, p.max_epochs, seconds);
                    if b.is_hidden() && last_log.elapsed().as_secs() >= 30 {
                        last_log = Instant::now();
                        eprintln!(
                            "{} [{}/{total}] {}: epoch {}/{} loss {:.4e} MSE {:.2e} ({seconds:.0} s{})",
                            grid.id,
                            k + 1,
                            cell.id(),
                            p.epoch,
                            p.max_epochs,
                            p.loss,
                            p.mse,
                            pace.map(|s| format!("; {s}")).unwrap_or_default()
                        );
                    }
                }
                Progress::Recalled { result, reused } => {
                    let line = format!(
                        "recalled from {} ({} arm): {} in {:.1} s{}",
                        result.corruption,
                        result.arm,
                        recalled_count(result),
                        result.seconds,
                        if reused {
                            ", kept from before a stop"
                        } else {
                            ""
                        }
                    );
                    if b.is_hidden() {
                        eprintln!("{} [{}/{total}] {}: {line}", grid.id, k + 1, cell.id());
                    } else {
                        b.set_prefix("recall");
                        b.set_message(line);
                    }
                }
            }
        };
        let rec = run_cell(grid, cell, opts, path, &mut on_progress, &mut trained);
        if let Some(b) = cell_bar {
            b.finish_and_clear();
        }
        let rec = rec?;
        rec.write(path)?;
        PartialRecall::remove(path)?;
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
                    .map(|r| match r.arm.as_str() {
                        "paper" => format!("{} {}", r.corruption, recalled_count(r)),
                        arm => format!("{} ({arm}) {}", r.corruption, recalled_count(r)),
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

/// `recalled/stored` of one recall condition.
fn recalled_count(r: &crate::record::RecallResult) -> String {
    match r.diverged() {
        0 => format!("{}/{}", r.recalled(), r.mse.len()),
        d => format!("{}/{} ({d} diverged)", r.recalled(), r.mse.len()),
    }
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
