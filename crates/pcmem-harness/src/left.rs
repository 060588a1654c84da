//! What a profile has left to run, for the report: per grid, the cells without a current
//! record and the time they are expected to take on a CPU and on a GPU, priced from the
//! records that exist by [`crate::estimate`]: training (epochs to the stopping target of the
//! finished cells of each cell's series on any device, grown with N, at the rate records
//! measured on that kind of device) and recall (every condition of every arm at the model's
//! bound of recall work, at the recall rate records measured there). A model kind without a
//! record of its own grid on a device is priced at the rates it reached in the other grids'
//! records on that device (and without any record of its grid, at the epochs its records
//! there stopped at); with no training rate anywhere, that device's column says `-`.
//!
//! ```
//! use pcmem_harness::left::section;
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4, 8]\nmodel = [\"pcn\"]\n[recall]\ncorruption = [\"noise:0.2\"]\n\
//!             threshold = 0.005\n[profile.quick]\n";
//! let grid = pcmem_harness::spec::Grid::parse(text, "g.toml", "quick")?;
//! // No record yet: both cells are left, and the table says so.
//! let md = section(&[grid], &[]).expect("cells are left");
//! assert!(md.contains("| g | 2 | 2 |"));
//! assert!(md.contains("cifar10 pcn-n"));
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::estimate::{Expectation, Pooled};
use crate::record::RunRecord;
use crate::spec::{Cell, Grid};

/// Training and recall seconds of some cells on one kind of device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Priced {
    /// Cells that train (one-shot models do not).
    pub training: usize,
    /// Expected seconds (training and recall) of the `expected_cells` that have an
    /// expectation.
    pub expected_s: f64,
    /// See [`Priced::expected_s`].
    pub expected_cells: usize,
    /// Seconds at most (the epoch limits, and recall) of the `bound_cells` that have a rate.
    pub bound_s: f64,
    /// See [`Priced::bound_s`].
    pub bound_cells: usize,
}

/// What is left of one grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLeft {
    /// The grid's id.
    pub grid: String,
    /// Its cells in this profile.
    pub cells: usize,
    /// Those without a current record.
    pub left: Vec<Cell>,
    /// Their training on a CPU and on a GPU.
    pub cpu: Priced,
    /// See [`GridLeft::cpu`].
    pub gpu: Priced,
    /// The largest memory of a cell left, bytes.
    pub peak_bytes: f64,
}

/// Per grid, what is left (grids with every cell recorded are left out).
pub fn left(grids: &[Grid], records: &[(PathBuf, RunRecord)]) -> Vec<GridLeft> {
    let recs = || records.iter().map(|(_, r)| r);
    let pooled: BTreeMap<&str, Pooled> = ["cpu", "cuda"]
        .into_iter()
        .map(|d| (d, Expectation::pooled(grids, d, recs())))
        .collect();
    let mut out = Vec::new();
    for g in grids {
        let done: BTreeSet<String> = recs()
            .filter(|r| r.grid == g.id && r.profile == g.applied_profile)
            .map(|r| r.cell.id())
            .collect();
        let cells = g.cells();
        let left: Vec<Cell> = cells
            .iter()
            .filter(|c| !done.contains(&c.id()))
            .cloned()
            .collect();
        if left.is_empty() {
            continue;
        }
        let price = |device: &str| {
            let e = Expectation::from_records(g, Some(device), recs())
                .with_pooled(pooled[device].clone());
            let mut p = Priced::default();
            // Points of a search that differ only in recall settings train once, together.
            let mut trainings = BTreeSet::new();
            for c in &left {
                let training = crate::models::resolve(g, c)
                    .map(|r| {
                        (
                            c.base().id(),
                            c.model.factory().training_settings(&r.config),
                        )
                    })
                    .map(|(id, settings)| format!("{id} {settings}"));
                let recall = e.recall_seconds(g, c);
                if let Ok(t) = training {
                    if !trainings.insert(t) {
                        // Trained once with an earlier point; it still recalls.
                        p.bound_s += recall;
                        p.expected_s += recall;
                        continue;
                    }
                }
                let (bound, expected) = e.seconds(g, c);
                // No rate on this device: only whether the cell trains at all is known.
                if bound > 0.0 && e.rate_of(c).is_none() {
                    p.training += 1;
                    continue;
                }
                if bound == 0.0 {
                    continue;
                }
                p.training += 1;
                p.bound_s += bound + recall;
                p.bound_cells += 1;
                if let Some(e) = expected {
                    p.expected_s += e + recall;
                    p.expected_cells += 1;
                }
            }
            p
        };
        let peak_bytes = left
            .iter()
            .filter_map(|c| crate::models::resolve(g, c).ok())
            .map(|r| r.memory_bytes)
            .fold(0.0, f64::max);
        out.push(GridLeft {
            grid: g.id.clone(),
            cells: cells.len(),
            cpu: price("cpu"),
            gpu: price("cuda"),
            left,
            peak_bytes,
        });
    }
    out
}

/// The report's section on the cells not run yet, or `None` when every cell has a record.
pub fn section(grids: &[Grid], records: &[(PathBuf, RunRecord)]) -> Option<String> {
    let rows = left(grids, records);
    if rows.is_empty() {
        return None;
    }
    let total: usize = rows.iter().map(|r| r.left.len()).sum();
    let mut md = format!(
        "### Cells not run yet\n\n{total} cells of this profile have no record; the claims that read them say `not run` or `incomplete`. Time expected for them from the records above, training and recall. Training: the epochs at which the finished cells of the same series (the grid's cells that differ only in N and seed) stopped, grown with N as fitted within series and never beyond the epoch limit (a series without records: the mean fraction of the epoch limit of its model kind's records in the grid; a kind without records in the grid: that mean over its records in the other grids, a guess where they set other targets and depths), at the rate the series' (else the kind's) records made on each kind of device measured (a grid without records of its own on that device: the rate its model kind reached in the other grids'); `-` where no record gives a rate or an epoch count, with the bound (the epoch limits) where one gives a rate. Recall: every condition of every arm at the model's bound of recall work, at the recall rate the kind's records measured on that device (this grid's, else the other grids', else its training rate). `pcmem reproduce --profile <profile> --dry-run [--rate GFLOPS]` prices them per cell for another machine.\n\n| grid | not run | of | cells not run | CPU expected | CPU bound | GPU expected | GPU bound | largest memory |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} GiB |",
            r.grid,
            r.left.len(),
            r.cells,
            describe(&r.left),
            expected(&r.cpu),
            bound(&r.cpu),
            expected(&r.gpu),
            bound(&r.gpu),
            r.peak_bytes / (1u64 << 30) as f64
        );
    }
    Some(md)
}

/// The cells as `dataset model-nH-LL N = a, b` groups, joined by `; `.
fn describe(cells: &[Cell]) -> String {
    let mut groups: BTreeMap<(String, String), BTreeSet<usize>> = BTreeMap::new();
    for c in cells {
        let model = if c.model.sized() {
            format!("{}-n{}-L{}", c.model.name(), c.hidden, c.layers)
        } else {
            c.model.name().to_string()
        };
        groups
            .entry((c.dataset.clone(), model))
            .or_default()
            .insert(c.n_images);
    }
    groups
        .into_iter()
        .map(|((dataset, model), ns)| {
            let ns: Vec<String> = ns.iter().map(|n| n.to_string()).collect();
            format!("{dataset} {model} N = {}", ns.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn expected(p: &Priced) -> String {
    priced(p.expected_s, p.expected_cells, p.training)
}

fn bound(p: &Priced) -> String {
    priced(p.bound_s, p.bound_cells, p.training)
}

/// `seconds` of `cells` of the `training` cells: `-` for none, a note for those missing.
fn priced(seconds: f64, cells: usize, training: usize) -> String {
    match (cells, training) {
        (0, 0) => "none (one-shot)".into(),
        (0, _) => "-".into(),
        (c, t) if c == t => duration(seconds),
        (c, t) => format!("{} + {} unpriced", duration(seconds), count(t - c, "cell")),
    }
}

/// `n` and the noun in the number it takes: `1 cell`, `2 cells`.
pub fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

/// Seconds as `42 s`, `17 min`, `3.5 h` or `2.1 d`.
pub fn duration(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 2.0 * 86400.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} d", seconds / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{count, priced};

    #[test]
    fn counts_take_the_noun_in_their_number() {
        assert_eq!(count(0, "cell"), "0 cells");
        assert_eq!(count(1, "cell"), "1 cell");
        assert_eq!(count(2, "unreadable record"), "2 unreadable records");
    }

    #[test]
    fn priced_counts_the_cells_it_could_not_price() {
        assert_eq!(priced(0.0, 0, 0), "none (one-shot)");
        assert_eq!(priced(0.0, 0, 3), "-");
        assert!(!priced(60.0, 3, 3).contains("unpriced"));
        assert!(priced(60.0, 2, 3).ends_with(" + 1 cell unpriced"));
        assert!(priced(60.0, 1, 3).ends_with(" + 2 cells unpriced"));
    }
}
