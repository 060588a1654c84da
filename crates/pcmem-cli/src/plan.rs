//! `--dry-run`: what a grid has left to run and what it should cost, per cell (`pcmem run
//! GRID --dry-run`) or per grid with a total (`pcmem reproduce --dry-run`): each cell's
//! bound (its epoch limit at the measured or assumed rate, plus its recall: every condition of
//! every arm at the model's own bound of recall work), its expectation (training from the
//! records of the grid's finished cells, see [`pcmem_harness::estimate`], plus the same
//! recall) and its memory.
//!
//! ```text
//! $ pcmem reproduce --profile full --out results/full --dry-run --rate 30000
//! grid              cells   to run        bound     expected   no record    largest
//! fig7                 16        6       85 min       22 min           0   0.74 GiB
//! ...
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use pcmem_harness::estimate::{Expectation, Pooled, DEFAULT_RATE};
use pcmem_harness::left::count;
use pcmem_harness::models;
use pcmem_harness::run::{plan, PartialPeek, PartialRecall, RunOptions, SavedTraining};
use pcmem_harness::spec::{Cell, Grid, ModelKind};

use crate::harness::{duration, gib};

/// What is left of one grid.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Cells of the grid (this shard, these `--where` filters).
    pub cells: usize,
    /// Cells without a record (or all of them with `--force`).
    pub to_run: usize,
    /// Training and recall seconds at most, summed over the cells to run.
    pub bound_s: f64,
    /// Training and recall seconds expected, summed over the cells to run that have an
    /// expectation.
    pub expected_s: f64,
    /// Recall seconds at most, summed over the cells to run (part of `bound_s`).
    pub recall_s: f64,
    /// Cells to run of a model kind without a finished record in this grid: no expectation.
    pub unknown: usize,
    /// The largest memory of a cell to run, bytes.
    pub peak_bytes: f64,
}

impl Totals {
    /// Adds another grid's totals (the largest memory is the larger of the two).
    fn add(&mut self, t: &Totals) {
        self.cells += t.cells;
        self.to_run += t.to_run;
        self.bound_s += t.bound_s;
        self.expected_s += t.expected_s;
        self.recall_s += t.recall_s;
        self.unknown += t.unknown;
        self.peak_bytes = self.peak_bytes.max(t.peak_bytes);
    }
}

/// Per model kind, what the records of all `grids` under `opts.out` measured
/// ([`Expectation::pooled`]): the training and recall rates on `opts.device`'s kind of device
/// (GFLOP/s) and the epochs, for a kind without records of its own grid (on that device).
pub fn pooled(grids: &[Grid], opts: &RunOptions) -> Pooled {
    let records: Vec<_> = grids
        .iter()
        .flat_map(|g| pcmem_harness::record::readable(&opts.out, &g.id, &g.applied_profile))
        .collect();
    let device = pcmem_model::device::name(&opts.device);
    Expectation::pooled(grids, &device, &records)
}

/// The estimate of `g` from the records under `opts.out` (epochs from records of any device;
/// a model kind without records here at `pooled`'s, see [`pooled`]): at the rate those
/// records measured on `opts.device`'s kind of device (else `pooled`'s), or at `rate` GFLOP/s.
fn expectation(g: &Grid, rate: Option<f64>, pooled: &Pooled, opts: &RunOptions) -> Expectation {
    let records = pcmem_harness::record::readable(&opts.out, &g.id, &g.applied_profile);
    let device = rate
        .is_none()
        .then(|| pcmem_model::device::name(&opts.device));
    let e = Expectation::from_records(g, device.as_deref(), &records).with_pooled(pooled.clone());
    match rate {
        Some(r) => e.at_rate(r),
        None => e,
    }
}

/// Where a cell stands before a run, as `--dry-run` lists and prices it.
enum Standing {
    /// Its record is there and current (priced as if it ran, for information).
    Done,
    /// It recalls with the model trained for the previous point of its search: no training.
    Shares,
    /// A model kept by `--keep-trained` (its own, or a recall-only sibling's) serves it: no
    /// training.
    Kept,
    /// Stopped during recall: trained (the model is in its checkpoint; a one-shot memory
    /// stores again in no time), with these conditions finished.
    Recalls(PartialPeek),
    /// Half-trained: its checkpoint holds this many epochs.
    Resumes(usize),
    /// Its checkpoint (this many epochs) is of other training settings (these keys): it
    /// trains from epoch 0.
    Refused(usize, Vec<String>),
    /// Nothing of it yet, or a stale or corrupt record: it trains from epoch 0.
    Fresh,
}

impl Standing {
    /// Where `c` (record `path`) stands; `runs`: it has no current record (or `--force`);
    /// `shares`: the previous cell trains its model; `limit`: its epoch limit.
    fn of(g: &Grid, c: &Cell, path: &Path, runs: bool, shares: bool, limit: Option<usize>) -> Self {
        if !runs {
            return Self::Done;
        }
        if shares {
            return Self::Shares;
        }
        if pcmem_harness::run::kept_training(g, c, path, None).is_some() {
            return Self::Kept;
        }
        let saved = pcmem_harness::run::saved_training(path, g, c);
        let epochs = match &saved {
            Some(SavedTraining::Resumes(e)) => Some(*e),
            _ => None,
        };
        match (PartialRecall::peek(path), saved) {
            (Some(p), _) if limit.is_none() || epochs == Some(p.epochs) => Self::Recalls(p),
            (_, Some(SavedTraining::Resumes(e))) => Self::Resumes(e),
            (_, Some(SavedTraining::Other { epochs, keys })) => Self::Refused(epochs, keys),
            (_, None) => Self::Fresh,
        }
    }

    /// `(bound, expected, recall)` seconds: training left and every recall condition left
    /// (the recall is part of the other two).
    fn price(&self, expect: &Expectation, g: &Grid, c: &Cell) -> (f64, Option<f64>, f64) {
        let (bound, expected) = match self {
            Self::Done | Self::Fresh | Self::Refused(..) => expect.seconds(g, c),
            Self::Shares | Self::Kept | Self::Recalls(_) => (0.0, Some(0.0)),
            Self::Resumes(epochs) => expect.seconds_after(g, c, *epochs),
        };
        let recall = match self {
            Self::Recalls(p) => expect.recall_seconds_left(g, c, &p.done),
            _ => expect.recall_seconds(g, c),
        };
        (bound + recall, expected.map(|e| e + recall), recall)
    }

    /// The status word of the listing; `done`: the cell has a current record (a cell run
    /// again by `--force` reads `to run`).
    fn status(&self, path: &Path, done: bool) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Shares => "shares",
            Self::Kept => "kept",
            Self::Recalls(_) => "recalls",
            Self::Resumes(_) => "resumes",
            Self::Refused(..) => "to run",
            // A record is there but will be recomputed: unreadable, or from settings the grid
            // no longer states (the run says which when it gets there).
            Self::Fresh if !done && path.exists() => {
                match pcmem_harness::record::RunRecord::read(path) {
                    Ok(_) => "stale",
                    Err(_) => "corrupt",
                }
            }
            Self::Fresh => "to run",
        }
    }

    /// What follows the listing's columns: the checkpoint's epochs, or the recall done.
    fn note(&self, g: &Grid, c: &Cell, r: &models::Resolved, limit: Option<usize>) -> String {
        match self {
            Self::Recalls(p) => {
                let arms = g
                    .arm_names()
                    .iter()
                    .filter(|a| models::arm_config(g, c, r, a).is_some())
                    .count();
                format!(
                    "  trained ({} epochs); {} of {} recall conditions done",
                    p.epochs,
                    p.done.len(),
                    arms * g.recall.corruption.len()
                )
            }
            Self::Resumes(e) => match limit {
                Some(l) => format!("  from its checkpoint: {e} of {l} epochs done"),
                None => format!("  from its checkpoint: {e} epochs done"),
            },
            Self::Refused(e, keys) => format!(
                "  from epoch 0: its checkpoint ({e} epochs) is of other training settings ({})",
                keys.join(", ")
            ),
            _ => String::new(),
        }
    }
}

/// Totals of `g` and, with `per_cell`, a line per cell and the rates behind the estimate.
/// `file` names the grid in errors; `pooled`: see [`pooled`].
pub fn grid(
    g: &Grid,
    file: &str,
    rate: Option<f64>,
    pooled: &Pooled,
    opts: &RunOptions,
    per_cell: bool,
) -> anyhow::Result<Totals> {
    let cells = plan(g, opts)?;
    let have = models::machine_memory();
    let expect = expectation(g, rate, pooled, opts);
    let force = opts.force;
    let mut t = Totals {
        cells: cells.len(),
        ..Totals::default()
    };
    let mut last_trained = None;
    if per_cell {
        println!(
            "{:<48} {:>8} {:>12} {:>12} {:>12} {:>10}",
            "cell", "status", "bound", "expected", "of it recall", "memory"
        );
    }
    for (c, path, done) in &cells {
        let r = models::resolve(g, c).map_err(|e| pcmem_harness::HarnessError::Spec {
            file: file.to_string(),
            message: e,
        })?;
        let runs = !done || force;
        // A point of a search over recall settings recalls with the model trained for the
        // previous point of its cell (see `pcmem_harness::run::run_cell`): no training.
        let key = (c.base(), r.kind.factory().training_settings(&r.config));
        let shares = runs && last_trained.as_ref() == Some(&key);
        if runs {
            last_trained = Some(key);
        }
        let limit = r.kind.factory().epoch_limit(&r.config);
        let standing = Standing::of(g, c, path, runs, shares, limit);
        let (bound, expected, recall) = standing.price(&expect, g, c);
        if runs {
            t.recall_s += recall;
            t.to_run += 1;
            t.bound_s += bound;
            match expected {
                Some(e) => t.expected_s += e,
                None if bound > 0.0 => t.unknown += 1,
                None => {}
            }
            t.peak_bytes = t.peak_bytes.max(r.memory_bytes);
        }
        if !per_cell {
            continue;
        }
        let too_big = have.is_some_and(|h| r.memory_bytes > h);
        println!(
            "{:<48} {:>8} {:>12} {:>12} {:>12} {:>10}{}{}",
            c.id(),
            standing.status(path, *done),
            duration(bound),
            expected.map_or_else(|| "-".to_string(), duration),
            duration(recall),
            gib(r.memory_bytes),
            standing.note(g, c, &r, limit),
            if too_big { "  > machine: refused" } else { "" }
        );
    }
    if per_cell {
        println!(
            "{} ({} to run), {} each; training and recall at most {} (recall {}), \
             expected {}{}; largest cell about {} of memory (this machine: {})",
            count(t.cells, "cell"),
            t.to_run,
            count(g.recall.corruption.len(), "recall condition"),
            duration(t.bound_s),
            duration(t.recall_s),
            duration(t.expected_s),
            unknown_note(t.unknown),
            gib(t.peak_bytes),
            have.map_or_else(|| "unknown".to_string(), gib),
        );
        rates(g, &expect, rate, opts);
    }
    Ok(t)
}

/// The expected time, or `-` where no cell to run has an expectation.
fn expected_or_dash(t: &Totals) -> String {
    if t.to_run > 0 && t.unknown == t.to_run {
        "-".to_string()
    } else {
        duration(t.expected_s)
    }
}

fn unknown_note(unknown: usize) -> String {
    if unknown > 0 {
        format!(" plus {unknown} cells without a rate on this device or a record of their kind")
    } else {
        String::new()
    }
}

/// The rates and epoch fractions an estimate stands on, for each model kind of `g` that
/// trains and that some record measured (in this grid or, pooled, in others).
fn rates(g: &Grid, expect: &Expectation, rate: Option<f64>, opts: &RunOptions) {
    let known: BTreeSet<ModelKind> = g
        .cells()
        .iter()
        .map(|c| c.model)
        .filter(|k| {
            expect.kinds.contains_key(k)
                || expect.fallback_rates.contains_key(k)
                || expect.fallback_epochs.contains_key(k)
        })
        .collect();
    for kind in &known {
        let m = expect.kinds.get(kind);
        let own = m.map(|m| m.rate).filter(|r| *r > 0.0);
        let how = match (rate, own, expect.fallback_rates.get(kind)) {
            (Some(r), ..) => format!("{r:.0} GFLOP/s assumed (--rate)"),
            (None, Some(r), _) => {
                format!("{r:.0} GFLOP/s measured (a series with records: its own rate)")
            }
            (None, None, Some(f)) => format!(
                "{f:.0} GFLOP/s, its rate in the other grids' records on this kind of device \
                 (none of this grid's timed an epoch here)"
            ),
            (None, None, None) => format!(
                "no rate measured on this kind of device: bounds at {DEFAULT_RATE} GFLOP/s, \
                 no expectation"
            ),
        };
        let epochs = match (m, expect.fallback_epochs.get(kind)) {
            (Some(m), _) => {
                let growth = match m.growth {
                    Some(g) => format!(
                        "epochs to the stop grow as N^{g:.2} within a series (fitted on {} series)",
                        m.growth_series
                    ),
                    None => {
                        "no series has two N that stopped early: no growth with N assumed".into()
                    }
                };
                format!(
                    "training stopped at {:.0}% of the epoch limit on average ({}); {growth}",
                    100.0 * m.epoch_fraction,
                    count(m.records, "record")
                )
            }
            (None, Some(f)) => format!(
                "no record of this grid: expected to stop at {:.0}% of the epoch limit, the mean \
                 of its records in the other grids (which may set other targets and depths)",
                100.0 * f
            ),
            (None, None) => "no record of its kind: no expected epochs".into(),
        };
        let timed = expect.recall_timed.get(kind).filter(|(_, s)| *s > 0.0);
        let recall = match (rate, timed, expect.fallback_recall_rates.get(kind)) {
            (Some(_), ..) => "recall at the same rate".to_string(),
            (None, Some((work, secs)), _) => format!(
                "recall {:.0} GFLOP/s measured in this grid's records",
                work / secs
            ),
            (None, None, Some(f)) => {
                format!("recall {f:.0} GFLOP/s, its recall rate in the other grids' records")
            }
            (None, None, None) => "recall at its training rate (no recall timed here)".into(),
        };
        println!("  {}: {how}; {epochs}; {recall}", kind.name());
    }
    if expect.other_device > 0 {
        println!(
            "  {} training records of this grid from another kind of device than {}: \
             their epochs count, their rate does not",
            expect.other_device,
            pcmem_model::device::name(&opts.device)
        );
    }
    if known.is_empty() {
        println!(
            "  no finished cell of this grid's model kinds under {} yet: bounds at {} GFLOP/s, no expectation",
            opts.out.display(),
            rate.unwrap_or(DEFAULT_RATE)
        );
    }
}

/// Every grid of `grids`: a line each and the total (`pcmem reproduce --dry-run`).
pub fn all(
    grids: &[Grid],
    experiments: &Path,
    rate: Option<f64>,
    opts: &RunOptions,
) -> anyhow::Result<()> {
    println!(
        "{:<16} {:>6} {:>8} {:>12} {:>12} {:>11} {:>10}",
        "grid", "cells", "to run", "bound", "expected", "no record", "largest"
    );
    let mut sum = Totals::default();
    let pooled = pooled(grids, opts);
    for g in grids {
        let file = format!("grid {} in {}", g.id, experiments.display());
        let t = grid(g, &file, rate, &pooled, opts, false)?;
        println!(
            "{:<16} {:>6} {:>8} {:>12} {:>12} {:>11} {:>10}",
            g.id,
            t.cells,
            t.to_run,
            duration(t.bound_s),
            expected_or_dash(&t),
            t.unknown,
            gib(t.peak_bytes)
        );
        sum.add(&t);
    }
    println!(
        "{}, {} ({} to run) under {}: training and recall at most {} (recall {}), expected {}{}; \
         largest cell about {} of memory",
        count(grids.len(), "grid"),
        count(sum.cells, "cell"),
        sum.to_run,
        opts.out.display(),
        duration(sum.bound_s),
        duration(sum.recall_s),
        duration(sum.expected_s),
        unknown_note(sum.unknown),
        gib(sum.peak_bytes)
    );
    println!(
        "  {}; expectations come from each grid's finished cells (epochs to the stopping target{}); \
         `pcmem run experiments/ID.toml --dry-run` lists a grid's cells",
        match rate {
            Some(r) => format!("at an assumed {r} GFLOP/s (--rate)"),
            None => format!(
                "at the rates measured by each grid's records on {}",
                pcmem_model::device::name(&opts.device)
            ),
        },
        if rate.is_some() {
            ", from records of any device"
        } else {
            ", from records of any device, and rate; a kind without a rate of its own grid \
             here at its rate in the other grids"
        }
    );
    Ok(())
}
