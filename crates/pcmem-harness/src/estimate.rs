//! What a grid's remaining cells are expected to cost, from the records of the cells it has
//! already finished (`--dry-run`): for each model kind, the measured training rate (GFLOP/s by
//! the work formula of [`crate::models::estimate_gflop`]) and the fraction of the epoch limit
//! at which training stopped (its target reached, or converged). A cell's expectation is its
//! epoch limit times that fraction times its work per epoch, at that rate; its bound is the
//! full epoch limit at that rate (at 100 GFLOP/s where no record of its kind exists yet).
//! Only records made on the same kind of device count (`cpu`, `cuda`): a GPU's rate says
//! nothing about a CPU run; the others are counted in [`Expectation::other_device`]. For
//! another machine, [`Expectation::at_rate`] sets its rate (e.g. a GPU's, measured by its
//! bench) and keeps the epochs measured by the records of any device.
//!
//! ```
//! use pcmem_harness::estimate::Expectation;
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4, 8]\nmodel = [\"pcn\"]\n[recall]\ncorruption = [\"noise:0.2\"]\n\
//!             threshold = 0.005\n[profile.quick]\n";
//! let grid = pcmem_harness::spec::Grid::parse(text, "g.toml", "quick")?;
//! // No finished cell yet: a bound from the work formula, no expectation.
//! let none = Expectation::from_records(&grid, Some("cpu"), []);
//! let (bound, expected) = none.seconds(&grid, &grid.cells()[0]);
//! assert!(bound > 0.0 && expected.is_none());
//! // The same bound on a machine ten times faster.
//! let fast = Expectation::from_records(&grid, None, []).at_rate(1000.0);
//! assert!((fast.seconds(&grid, &grid.cells()[0]).0 - bound / 10.0).abs() < 1e-9 * bound);
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::collections::BTreeMap;

use crate::models::{estimate_gflop, resolve};
use crate::record::RunRecord;
use crate::spec::{Cell, Grid, ModelKind};

/// The rate assumed where no record says better, GFLOP/s.
pub const DEFAULT_RATE: f64 = 100.0;

/// Measured training of one model kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Training work done over training seconds, GFLOP/s: of the epochs each record's run
    /// trained itself (a resumed cell's time covers only the epochs after its checkpoint);
    /// 0 when no record timed an epoch.
    pub rate: f64,
    /// Mean of epochs run / epoch limit.
    pub epoch_fraction: f64,
    /// Records it comes from.
    pub records: usize,
    /// The training work behind [`Measured::rate`], GFLOP, and its seconds.
    pub work_gflop: f64,
    /// Seconds of that work.
    pub train_s: f64,
}

/// Per model kind, what the finished cells of a grid measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectation {
    /// By model kind.
    pub kinds: BTreeMap<ModelKind, Measured>,
    /// Training records of this grid made on another kind of device, not used.
    pub other_device: usize,
    /// The rate set by [`Expectation::at_rate`], GFLOP/s.
    pub assumed_rate: Option<f64>,
}

/// `cpu` of `cpu`, `cuda` of `cuda:0`.
fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

impl Expectation {
    /// From the records of `grid` made on the kind of `device` (e.g. `cpu`, `cuda:0`; `None`:
    /// any); other grids', profiles' and device kinds' records are ignored.
    pub fn from_records<'a>(
        grid: &Grid,
        device: Option<&str>,
        records: impl IntoIterator<Item = &'a RunRecord>,
    ) -> Self {
        // Per kind: work and seconds of the epochs trained in the recorded run, the sum of
        // the fractions of the epoch limit, and the number of records.
        let mut acc: BTreeMap<ModelKind, (f64, f64, f64, usize)> = BTreeMap::new();
        let mut other_device = 0;
        for r in records {
            if r.grid != grid.id || r.profile != grid.applied_profile {
                continue;
            }
            if device.is_some_and(|d| device_kind(&r.device) != device_kind(d)) {
                other_device += 1;
                continue;
            }
            let Ok(res) = resolve(grid, &r.cell) else {
                continue;
            };
            let Some(limit) = res
                .kind
                .factory()
                .epoch_limit(&res.config)
                .filter(|&m| m > 0)
            else {
                continue;
            };
            let epochs = r.fit.curve.len();
            // All epochs over all runs' time; in records without that time, a resumed cell's
            // `fit_s` covers only the epochs after its checkpoint.
            let (timed, secs) = match r.timings.fit_total_s {
                Some(total) => (epochs, total),
                None => (
                    epochs.saturating_sub(r.fit.resumed_at_epoch.unwrap_or(0)),
                    r.timings.fit_s,
                ),
            };
            let per_epoch = estimate_gflop(&res, r.cell.n_images) / limit as f64;
            let e = acc.entry(r.cell.model).or_default();
            if timed > 0 && secs > 0.0 {
                e.0 += timed as f64 * per_epoch;
                e.1 += secs;
            }
            e.2 += epochs as f64 / limit as f64;
            e.3 += 1;
        }
        Self {
            kinds: acc
                .into_iter()
                .map(|(k, (work, secs, frac, n))| {
                    (
                        k,
                        Measured {
                            rate: if secs > 0.0 { work / secs } else { 0.0 },
                            epoch_fraction: frac / n as f64,
                            records: n,
                            work_gflop: work,
                            train_s: secs,
                        },
                    )
                })
                .collect(),
            other_device,
            assumed_rate: None,
        }
    }

    /// Per model kind, the training rate of the records of all `grids` made on the kind of
    /// `device` (GFLOP/s: their work over their seconds, pooled): a device's rate for grids
    /// that have no record of their own on it.
    pub fn pooled_rates<'a>(
        grids: &[Grid],
        device: &str,
        records: impl IntoIterator<Item = &'a RunRecord> + Clone,
    ) -> BTreeMap<ModelKind, f64> {
        let mut acc: BTreeMap<ModelKind, (f64, f64)> = BTreeMap::new();
        for g in grids {
            for (kind, m) in Self::from_records(g, Some(device), records.clone()).kinds {
                let e = acc.entry(kind).or_default();
                e.0 += m.work_gflop;
                e.1 += m.train_s;
            }
        }
        acc.into_iter()
            .filter(|(_, (_, secs))| *secs > 0.0)
            .map(|(kind, (work, secs))| (kind, work / secs))
            .collect()
    }

    /// The same expectation on a machine that trains at `rate` GFLOP/s: every kind's rate and
    /// the bound of kinds without a record; the epochs to the stopping target stay measured.
    pub fn at_rate(mut self, rate: f64) -> Self {
        for m in self.kinds.values_mut() {
            m.rate = rate;
        }
        self.assumed_rate = Some(rate);
        self
    }

    /// `(bound, expected)` training seconds of a cell; `expected` is `None` without a record
    /// of the cell's model kind.
    pub fn seconds(&self, grid: &Grid, cell: &Cell) -> (f64, Option<f64>) {
        let Ok(res) = resolve(grid, cell) else {
            return (0.0, None);
        };
        let bound_gflop = estimate_gflop(&res, cell.n_images);
        match self.kinds.get(&cell.model) {
            Some(m) if m.rate > 0.0 => (
                bound_gflop / m.rate,
                Some(bound_gflop * m.epoch_fraction / m.rate),
            ),
            _ => (
                bound_gflop / self.assumed_rate.unwrap_or(DEFAULT_RATE),
                None,
            ),
        }
    }
}
