//! What a grid's remaining cells are expected to cost, from the records of the cells it has
//! already finished (`--dry-run`). A cell's *series* is its grid's cells that differ from it
//! only in N and seed (same dataset, model, width, depth, search point); its bound is its epoch
//! limit at the training rate (GFLOP/s by the work formula of [`crate::models::estimate_gflop`])
//! its series measured, or its model kind's where the series has no record (100 GFLOP/s where
//! the kind has none). Its expectation is the epochs it should need at that rate:
//!
//! - a record of the series with no more images that ran out of epochs: the whole epoch limit
//!   (the epochs to the target grow with N);
//! - otherwise, from the series' records that stopped before their limit (target reached or
//!   converged; all of them if none did): their fraction of the epoch limit, scaled by
//!   `(N / N_record)^g` and capped at the limit, geometric mean over those records. The growth
//!   `g` is the slope of ln(fraction) on ln N by least squares over those records where they
//!   are at two or more N; else the same slope pooled over the kind's series that are (each
//!   centred on its own means); else 0 (no growth);
//! - no record in its series: the mean fraction of the epoch limit at which its kind's
//!   records stopped;
//! - no record of its kind in its grid: that mean over the kind's records in the other grids
//!   ([`Expectation::with_pooled`]; a guess, as those grids may set other targets and depths).
//!
//! The epochs come from the records of any device (a cell trains the same epochs on a CPU and
//! on a GPU); the rate only from records made on the same kind of device (`cpu`, `cuda`): a
//! GPU's rate says nothing about a CPU run (the others are counted in
//! [`Expectation::other_device`]). A kind without a timed record of its own on the device is
//! priced at the rate set by [`Expectation::with_rates`] (the kind's rate over all grids on
//! that device, [`Expectation::pooled`]). For another machine, [`Expectation::at_rate`]
//! sets its rate (e.g. a GPU's, measured by its bench).
//!
//! Recall is priced apart ([`Expectation::recall_seconds`]): every condition of every arm
//! that recalls anew at the model's own bound of recall work
//! ([`crate::models::recall_gflop`]), at the recall rate the kind's records of this grid
//! measured on the device (their recall work over their recall seconds), else the kind's over
//! all grids ([`Expectation::pooled`], [`Expectation::with_pooled`]), else its training rate.
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
    /// Training work done over training seconds, GFLOP/s, of the records made on the
    /// estimate's kind of device: of the epochs each record's run trained itself (a resumed
    /// cell's time covers only the epochs after its checkpoint); 0 when none timed an epoch.
    pub rate: f64,
    /// Mean of epochs run / epoch limit (records of any device).
    pub epoch_fraction: f64,
    /// Records it comes from.
    pub records: usize,
    /// The training work behind [`Measured::rate`], GFLOP, and its seconds.
    pub work_gflop: f64,
    /// Seconds of that work.
    pub train_s: f64,
    /// The exponent `g` of the epochs' growth with N within a series, pooled over the kind's
    /// series (see the module docs); `None` where no series has records that stopped before
    /// their limit at two N.
    pub growth: Option<f64>,
    /// The series the growth was fitted on.
    pub growth_series: usize,
}

/// A grid's cells that differ only in N and seed: dataset, model, width, depth, search point.
pub type SeriesKey = (String, ModelKind, usize, usize, String);

/// The series of `cell`.
pub fn series_of(cell: &Cell) -> SeriesKey {
    (
        cell.dataset.clone(),
        cell.model,
        cell.hidden,
        cell.layers,
        cell.search.clone(),
    )
}

/// The finished cells of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Per record (of any device): N, epochs run and the epoch limit.
    pub runs: Vec<(usize, usize, usize)>,
    /// Training work timed in those of these records made on the estimate's kind of device,
    /// GFLOP.
    pub work_gflop: f64,
    /// Seconds of that work.
    pub train_s: f64,
}

impl Series {
    /// The measured rate, GFLOP/s (`None` when no record timed an epoch).
    fn rate(&self) -> Option<f64> {
        (self.train_s > 0.0).then(|| self.work_gflop / self.train_s)
    }

    /// The records (`early`: those that stopped before their epoch limit), as (ln N, ln
    /// fraction of the limit).
    fn points(&self, early: bool) -> Vec<(f64, f64)> {
        self.runs
            .iter()
            .filter(|(_, e, l)| *e > 0 && (!early || e < l))
            .map(|&(n, e, l)| ((n as f64).ln(), (e as f64 / l as f64).ln()))
            .collect()
    }
}

/// Per model kind, what the finished cells of a grid measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectation {
    /// By model kind.
    pub kinds: BTreeMap<ModelKind, Measured>,
    /// By series.
    pub series: BTreeMap<SeriesKey, Series>,
    /// Training records of this grid made on another kind of device: their epochs count,
    /// their rate does not.
    pub other_device: usize,
    /// The rate set by [`Expectation::at_rate`], GFLOP/s.
    pub assumed_rate: Option<f64>,
    /// Per model kind, the rate set by [`Expectation::with_rates`] for a kind whose records
    /// timed no epoch on this device, GFLOP/s.
    pub fallback_rates: BTreeMap<ModelKind, f64>,
    /// Per model kind, the recall work of this grid's records made on the estimate's kind of
    /// device (GFLOP, by [`crate::models::condition_gflop`]) and its seconds.
    pub recall_timed: BTreeMap<ModelKind, (f64, f64)>,
    /// Per model kind, the recall rate set by [`Expectation::with_recall_rates`] for a kind
    /// whose records timed no recall on this device, GFLOP/s.
    pub fallback_recall_rates: BTreeMap<ModelKind, f64>,
    /// Per model kind, the fraction of the epoch limit set by [`Expectation::with_pooled`]
    /// for a kind without a record in this grid.
    pub fallback_epochs: BTreeMap<ModelKind, f64>,
}

/// The recall work of a record's conditions (GFLOP) and their seconds; conditions of an arm
/// that copies the paper arm's results, or that no longer resolve, are left out.
fn recall_timed(grid: &Grid, r: &RunRecord, res: &crate::models::Resolved) -> (f64, f64) {
    let mut arms = BTreeMap::new();
    r.recall
        .iter()
        .filter_map(|rc| {
            let config = arms
                .entry(rc.arm.clone())
                .or_insert_with(|| crate::models::arm_config(grid, &r.cell, res, &rc.arm))
                .clone()?;
            let k = crate::spec::Corruption::parse(&rc.corruption).ok()?;
            Some((
                crate::models::condition_gflop(&r.cell, res, &config, &k),
                rc.seconds,
            ))
        })
        .fold((0.0, 0.0), |a, (w, s)| (a.0 + w, a.1 + s))
}

/// Per model kind, what several grids' records measured ([`Expectation::pooled`]): the
/// training and recall rates on one kind of device, GFLOP/s, and the epochs of any device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pooled {
    /// Training rates.
    pub training: BTreeMap<ModelKind, f64>,
    /// Recall rates.
    pub recall: BTreeMap<ModelKind, f64>,
    /// The mean fraction of the epoch limit at which the kind's records stopped (each record
    /// counts once, whatever its grid).
    pub epochs: BTreeMap<ModelKind, f64>,
}

/// Per model kind, the pooled ratio of the `(numerator, denominator)` of each of `parts` (sum
/// over sum: work over seconds is a rate in GFLOP/s); kinds without a denominator are left out.
fn pool(parts: impl Iterator<Item = BTreeMap<ModelKind, (f64, f64)>>) -> BTreeMap<ModelKind, f64> {
    let mut acc: BTreeMap<ModelKind, (f64, f64)> = BTreeMap::new();
    for part in parts {
        for (kind, (work, secs)) in part {
            let e = acc.entry(kind).or_default();
            e.0 += work;
            e.1 += secs;
        }
    }
    acc.into_iter()
        .filter(|(_, (_, secs))| *secs > 0.0)
        .map(|(kind, (work, secs))| (kind, work / secs))
        .collect()
}

/// `cpu` of `cpu`, `cuda` of `cuda:0`.
fn device_kind(device: &str) -> &str {
    device.split(':').next().unwrap_or(device)
}

/// The slope of ln(fraction) on ln N pooled within `series` (each centred on its own means):
/// `None` unless some series has points at two N.
fn growth<'a>(series: impl IntoIterator<Item = &'a Series>) -> (Option<f64>, usize) {
    let (mut sxy, mut sxx, mut used) = (0.0, 0.0, 0);
    for s in series {
        let pts = s.points(true);
        if pts.is_empty() {
            continue;
        }
        let k = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / k;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / k;
        let xx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        if xx <= 1e-12 {
            continue;
        }
        sxx += xx;
        sxy += pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>();
        used += 1;
    }
    ((sxx > 0.0).then(|| sxy / sxx), used)
}

impl Expectation {
    /// From the records of `grid`: epochs from those of any device, rates from those made on
    /// the kind of `device` (e.g. `cpu`, `cuda:0`; `None`: any); other grids' and profiles'
    /// records are ignored.
    pub fn from_records<'a>(
        grid: &Grid,
        device: Option<&str>,
        records: impl IntoIterator<Item = &'a RunRecord>,
    ) -> Self {
        let mut series: BTreeMap<SeriesKey, Series> = BTreeMap::new();
        let mut recall: BTreeMap<ModelKind, (f64, f64)> = BTreeMap::new();
        let mut other_device = 0;
        for r in records {
            if r.grid != grid.id || r.profile != grid.applied_profile {
                continue;
            }
            let same_device = device.is_none_or(|d| device_kind(&r.device) == device_kind(d));
            if !same_device {
                other_device += 1;
            }
            let Ok(res) = resolve(grid, &r.cell) else {
                continue;
            };
            if same_device {
                let (work, secs) = recall_timed(grid, r, &res);
                let e = recall.entry(r.cell.model).or_insert((0.0, 0.0));
                e.0 += work;
                e.1 += secs;
            }
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
            let s = series.entry(series_of(&r.cell)).or_default();
            if same_device && timed > 0 && secs > 0.0 {
                s.work_gflop += timed as f64 * per_epoch;
                s.train_s += secs;
            }
            s.runs.push((r.cell.n_images, epochs, limit));
        }
        let mut kinds: BTreeMap<ModelKind, Measured> = BTreeMap::new();
        for kind in series
            .keys()
            .map(|k| k.1)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let of_kind = || {
                series
                    .iter()
                    .filter(move |(k, _)| k.1 == kind)
                    .map(|(_, s)| s)
            };
            let (work, secs) =
                of_kind().fold((0.0, 0.0), |a, s| (a.0 + s.work_gflop, a.1 + s.train_s));
            let runs = || of_kind().flat_map(|s| s.runs.iter());
            let records = runs().count();
            let frac = runs().map(|&(_, e, l)| e as f64 / l as f64).sum::<f64>();
            let (growth, growth_series) = growth(of_kind());
            kinds.insert(
                kind,
                Measured {
                    rate: if secs > 0.0 { work / secs } else { 0.0 },
                    epoch_fraction: frac / records as f64,
                    records,
                    work_gflop: work,
                    train_s: secs,
                    growth,
                    growth_series,
                },
            );
        }
        Self {
            kinds,
            series,
            other_device,
            assumed_rate: None,
            fallback_rates: BTreeMap::new(),
            recall_timed: recall,
            fallback_recall_rates: BTreeMap::new(),
            fallback_epochs: BTreeMap::new(),
        }
    }

    /// The recall rate of each kind in `rates` (GFLOP/s) for the kinds whose records timed no
    /// recall on this device: e.g. [`Pooled::recall`].
    pub fn with_recall_rates(mut self, rates: BTreeMap<ModelKind, f64>) -> Self {
        self.fallback_recall_rates = rates;
        self
    }

    /// [`Expectation::with_rates`] and [`Expectation::with_recall_rates`] of `pooled`, and
    /// its epochs for the kinds without a record in this grid.
    pub fn with_pooled(mut self, pooled: Pooled) -> Self {
        self.fallback_epochs = pooled.epochs;
        self.with_rates(pooled.training)
            .with_recall_rates(pooled.recall)
    }

    /// Per model kind, the training and recall rates of the records of all `grids` made on
    /// the kind of `device` (GFLOP/s: their work over their seconds, pooled), and the mean
    /// fraction of the epoch limit at which its records of any device stopped: what a grid
    /// without records of its own on that device (or at all) is priced at.
    pub fn pooled<'a>(
        grids: &[Grid],
        device: &str,
        records: impl IntoIterator<Item = &'a RunRecord> + Clone,
    ) -> Pooled {
        let each: Vec<Self> = grids
            .iter()
            .map(|g| Self::from_records(g, Some(device), records.clone()))
            .collect();
        // The mean over records is a pooled rate of epochs per record.
        let epochs = pool(each.iter().map(|e| {
            e.kinds
                .iter()
                .map(|(kind, m)| {
                    (
                        *kind,
                        (m.epoch_fraction * m.records as f64, m.records as f64),
                    )
                })
                .collect()
        }));
        Pooled {
            training: pool(each.iter().map(|e| {
                e.kinds
                    .iter()
                    .map(|(kind, m)| (*kind, (m.work_gflop, m.train_s)))
                    .collect()
            })),
            recall: pool(each.iter().map(|e| e.recall_timed.clone())),
            epochs,
        }
    }

    /// The rate of each kind in `rates` (GFLOP/s) for the kinds whose records timed no epoch on
    /// this device (or that have no record in this grid): e.g. [`Pooled::training`].
    pub fn with_rates(mut self, rates: BTreeMap<ModelKind, f64>) -> Self {
        self.fallback_rates = rates;
        self
    }

    /// The same expectation on a machine that trains at `rate` GFLOP/s: every kind's and
    /// series' rate and the bound of kinds without a record; the epochs to the stopping
    /// target stay measured.
    pub fn at_rate(mut self, rate: f64) -> Self {
        for m in self.kinds.values_mut() {
            m.rate = rate;
        }
        self.assumed_rate = Some(rate);
        self
    }

    /// The fraction of its epoch limit that `cell` is expected to train for (see the module
    /// docs); `None` without a record of the cell's model kind, in this grid or (given by
    /// [`Expectation::with_pooled`]) in others.
    pub fn expected_fraction(&self, cell: &Cell) -> Option<f64> {
        let Some(m) = self.kinds.get(&cell.model) else {
            return self.fallback_epochs.get(&cell.model).copied();
        };
        let Some(s) = self.series.get(&series_of(cell)) else {
            return Some(m.epoch_fraction);
        };
        if s.runs.iter().any(|&(n, e, l)| n <= cell.n_images && e >= l) {
            return Some(1.0);
        }
        let early = s.points(true);
        let pts = if early.is_empty() {
            s.points(false)
        } else {
            early
        };
        if pts.is_empty() {
            return Some(m.epoch_fraction);
        }
        let g = growth([s]).0.or(m.growth).unwrap_or(0.0);
        let ln_n = (cell.n_images.max(1) as f64).ln();
        let ln = pts.iter().map(|(x, y)| y + g * (ln_n - x)).sum::<f64>() / pts.len() as f64;
        Some(ln.exp().min(1.0))
    }

    /// The training rate `cell` is priced at, GFLOP/s: the assumed one, else its series',
    /// else its kind's, else the one set by [`Expectation::with_rates`] (`None`: no record
    /// timed an epoch on this device).
    pub fn rate_of(&self, cell: &Cell) -> Option<f64> {
        let positive = |r: &f64| *r > 0.0;
        self.assumed_rate
            .or_else(|| self.series.get(&series_of(cell)).and_then(Series::rate))
            .or_else(|| self.kinds.get(&cell.model).map(|m| m.rate).filter(positive))
            .or_else(|| self.fallback_rates.get(&cell.model).copied())
            .filter(positive)
    }

    /// The recall rate `cell` is priced at, GFLOP/s: the assumed one, else its kind's recall
    /// rate in this grid's records on this device, else the one set by
    /// [`Expectation::with_recall_rates`], else its training rate ([`Expectation::rate_of`]),
    /// else the default rate.
    pub fn recall_rate_of(&self, cell: &Cell) -> f64 {
        let positive = |r: &f64| *r > 0.0;
        self.assumed_rate
            .or_else(|| {
                self.recall_timed
                    .get(&cell.model)
                    .filter(|(_, secs)| *secs > 0.0)
                    .map(|(work, secs)| work / secs)
            })
            .or_else(|| self.fallback_recall_rates.get(&cell.model).copied())
            .filter(positive)
            .or_else(|| self.rate_of(cell))
            .unwrap_or(DEFAULT_RATE)
    }

    /// An upper bound of the seconds `cell` spends recalling, every condition of every arm
    /// ([`crate::models::recall_gflop`]), at its recall rate ([`Expectation::recall_rate_of`]).
    /// Where a recall's steps are fixed (the PCN's from a partial image) it is also the
    /// expectation.
    pub fn recall_seconds(&self, grid: &Grid, cell: &Cell) -> f64 {
        self.recall_seconds_left(grid, cell, &[])
    }

    /// [`Expectation::recall_seconds`] of the conditions not in `done` (arm, corruption): a
    /// cell stopped during recall ([`crate::run::PartialRecall::peek`]).
    pub fn recall_seconds_left(&self, grid: &Grid, cell: &Cell, done: &[(String, String)]) -> f64 {
        let Ok(res) = resolve(grid, cell) else {
            return 0.0;
        };
        crate::models::recall_gflop_left(grid, cell, &res, done) / self.recall_rate_of(cell)
    }

    /// `(bound, expected)` training seconds of a cell: at its rate ([`Expectation::rate_of`],
    /// else the default rate); `expected` is `None` without a rate or a record of the cell's
    /// model kind.
    pub fn seconds(&self, grid: &Grid, cell: &Cell) -> (f64, Option<f64>) {
        self.seconds_after(grid, cell, 0)
    }

    /// [`Expectation::seconds`] of the training left after `done` epochs (a checkpoint's):
    /// the bound of the epochs left to the limit; the expectation of those left to the
    /// expected stop, or the bound where the cell has trained past that stop already.
    pub fn seconds_after(&self, grid: &Grid, cell: &Cell, done: usize) -> (f64, Option<f64>) {
        let Ok(res) = resolve(grid, cell) else {
            return (0.0, None);
        };
        let bound_gflop = estimate_gflop(&res, cell.n_images);
        let done = match res.kind.factory().epoch_limit(&res.config) {
            Some(limit) if limit > 0 => (done as f64 / limit as f64).min(1.0),
            _ => 0.0,
        };
        let left = bound_gflop * (1.0 - done);
        match self.rate_of(cell) {
            Some(rate) => (
                left / rate,
                self.expected_fraction(cell)
                    .map(|f| if f > done { bound_gflop * (f - done) } else { left } / rate),
            ),
            None => (left / DEFAULT_RATE, None),
        }
    }
}
