//! Aggregation: every run record into one tidy polars table, one row per (cell, corruption),
//! written as `table.csv` and `table.parquet`.
//!
//! Columns (stable; only ever added to): `grid, profile, dataset, n_images, model, hidden, layers,
//! seed, corruption, threshold, n, recalled, fraction, mean_mse, median_mse, epochs, converged,
//! fit_s, recall_s, parameters, data_sha256, code_version, search, train_loss, selected, arm,
//! diverged`. `fit_s` is the cell's training time over all its runs (a cell resumed from a
//! checkpoint counts the runs before; records of older code say only the last run). `arm` is the
//! recall arm (`paper`, the paper's model; or a name of the grid's `[arms]`, e.g. `pcmem`).
//! `recalled` counts the images whose MSE is below `threshold`; `fraction = recalled / n`;
//! `diverged` counts those whose recall diverged (a non-finite MSE, never recalled; the medians and
//! means then say NaN). `search` is the cell's hyperparameter-search point (empty without a
//! search), `train_loss` the last value of its training curve (the PCN's energy summed over the
//! stored images; NaN for one-shot memories), and `selected` marks the point with the lowest
//! `train_loss` among the points of the same cell (always true without a search): figures, tables
//! and claims use only selected rows.
//!
//! ```
//! // No records, no rows: the tidy table still has its columns.
//! let df = pcmem_harness::aggregate::tidy(&[])?;
//! assert_eq!(df.height(), 0);
//! assert!(df.get_column_names().iter().any(|c| c.as_str() == "fraction"));
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::path::Path;

use polars::prelude::*;

use crate::error::Result;
use crate::record::{RecallResult, RunRecord};

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// The final training loss of a record (NaN when it has no curve or diverged).
pub fn train_loss(r: &RunRecord) -> f64 {
    r.fit.curve.last().copied().unwrap_or(f64::NAN)
}

/// Images a record recalls under its tune rule's corruption and arm (0 without one).
fn tuned_recalled(r: &RunRecord) -> usize {
    let Some(t) = &r.tune else { return 0 };
    let want = crate::spec::Corruption::parse(&t.corruption)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| t.corruption.clone());
    r.recall
        .iter()
        .find(|x| x.arm == t.arm && x.corruption == want)
        .map_or(0, RecallResult::recalled)
}

/// The values of a search point (`a=0.9,b=100`), in key order, for the tie rule of
/// [`selected`]: numbers compare as numbers (10 before 100 before 1000), anything else as text
/// after every number.
fn point_values(search: &str) -> Vec<(f64, String)> {
    search
        .split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let v = kv.split_once('=').map_or(kv, |(_, v)| v);
            match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => (x, String::new()),
                _ => (f64::INFINITY, v.to_string()),
            }
        })
        .collect()
}

/// `a` before `b` under the tie rule: smaller values first, key by key.
fn point_before(a: &[(f64, String)], b: &[(f64, String)]) -> bool {
    for (x, y) in a.iter().zip(b) {
        match x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    a.len() < b.len()
}

/// For each record, whether it is the selected point of its cell: among records of the same
/// grid, profile and cell apart from the search point, the one with the lowest finite final
/// training loss; recall accuracy plays no part. A development grid with a tune rule
/// ([`crate::spec::Tune`]) selects instead the point recalling the most images under the
/// rule's corruption and arm, ties to the lower loss. Remaining ties (equal losses: points that
/// share one training, or all NaN) go to the point with the smaller values, compared key by key
/// and as numbers (fewer steps, iterations or a lower rate), whatever order the records come in.
pub fn selected<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> Vec<bool> {
    // Per cell (grid, profile, cell id): the best record so far and its score; lower is
    // better: (minus images recalled under the tune rule, training loss), then the point's
    // values.
    type Cell = (String, String, String);
    type Score = ((f64, f64), Vec<(f64, String)>);
    let mut best: std::collections::HashMap<Cell, (usize, Score)> =
        std::collections::HashMap::new();
    let mut count = 0;
    for (i, r) in records.into_iter().enumerate() {
        count += 1;
        let key = (r.grid.clone(), r.profile.clone(), r.cell.base().id());
        let loss = train_loss(r);
        let loss = if loss.is_finite() {
            loss
        } else {
            f64::INFINITY
        };
        let score = (
            (-(tuned_recalled(r) as f64), loss),
            point_values(&r.cell.search),
        );
        best.entry(key)
            .and_modify(|b| {
                let (s, p) = (&score, &b.1);
                if s.0 < p.0 || (s.0 == p.0 && point_before(&s.1, &p.1)) {
                    *b = (i, score.clone());
                }
            })
            .or_insert((i, score));
    }
    let mut out = vec![false; count];
    for (i, _) in best.into_values() {
        out[i] = true;
    }
    out
}

/// The cells of `grid` whose `[search]` has points without a record: `(cell id without its
/// point, points with a record, points in the search)`, in cell order. Only `records` of
/// `grid`'s id and of `profile` count. Until this is empty, [`selected`] marks the best of
/// the points run: a provisional choice, which no grid should state yet.
///
/// ```
/// use pcmem_harness::spec::Grid;
/// let toml = r#"
/// id = "dev"
/// title = "t"
/// paper = "none"
/// [train]
/// dataset = ["cifar10"]
/// n_images = [10]
/// model = ["autoencoder"]
/// hidden = [16]
/// layers = [2]
/// seed = [0]
/// [recall]
/// corruption = ["noise:0.2"]
/// threshold = 0.005
/// [search.autoencoder]
/// lr = [1e-4, 1e-3]
/// [profile.quick]
/// "#;
/// let grid = Grid::parse(toml, "dev.toml", "quick")?;
/// let open = pcmem_harness::aggregate::unfinished_searches(&grid, "quick", []);
/// assert_eq!(open, vec![("cifar10-N10-autoencoder-n16-L2-s0".to_string(), 0, 2)]);
/// # Ok::<(), pcmem_harness::HarnessError>(())
/// ```
pub fn unfinished_searches<'a>(
    grid: &crate::spec::Grid,
    profile: &str,
    records: impl IntoIterator<Item = &'a RunRecord>,
) -> Vec<(String, usize, usize)> {
    let run: std::collections::HashSet<String> = records
        .into_iter()
        .filter(|r| r.grid == grid.id && r.profile == profile)
        .map(|r| r.cell.id())
        .collect();
    let mut out: Vec<(String, usize, usize)> = Vec::new();
    for cell in grid.cells().into_iter().filter(|c| !c.search.is_empty()) {
        let base = cell.base().id();
        let done = usize::from(run.contains(&cell.id()));
        match out.iter_mut().find(|(id, _, _)| *id == base) {
            Some(entry) => {
                entry.1 += done;
                entry.2 += 1;
            }
            None => out.push((base, done, 1)),
        }
    }
    out.retain(|(_, done, total)| done < total);
    out
}

/// The tidy table of the given records.
pub fn tidy(records: &[RunRecord]) -> Result<DataFrame> {
    let chosen = selected(records);
    let mut search = Vec::new();
    let mut loss = Vec::new();
    let mut is_selected = Vec::new();
    let mut grid = Vec::new();
    let mut profile = Vec::new();
    let mut dataset = Vec::new();
    let mut n_images = Vec::new();
    let mut model = Vec::new();
    let mut hidden = Vec::new();
    let mut layers = Vec::new();
    let mut seed = Vec::new();
    let mut corruption = Vec::new();
    let mut threshold = Vec::new();
    let mut n = Vec::new();
    let mut recalled = Vec::new();
    let mut fraction = Vec::new();
    let mut mean_mse = Vec::new();
    let mut median_mse = Vec::new();
    let mut epochs = Vec::new();
    let mut converged = Vec::new();
    let mut fit_s = Vec::new();
    let mut recall_s = Vec::new();
    let mut parameters = Vec::new();
    let mut sha = Vec::new();
    let mut version = Vec::new();
    let mut arm = Vec::new();
    let mut diverged = Vec::new();
    for (r, &chosen) in records.iter().zip(&chosen) {
        for rc in &r.recall {
            arm.push(rc.arm.clone());
            search.push(r.cell.search.clone());
            loss.push(train_loss(r));
            is_selected.push(chosen);
            let k = rc.recalled();
            grid.push(r.grid.clone());
            profile.push(r.profile.clone());
            dataset.push(r.cell.dataset.clone());
            n_images.push(r.cell.n_images as u64);
            model.push(r.cell.model.name().to_string());
            hidden.push(r.cell.hidden as u64);
            layers.push(r.cell.layers as u64);
            seed.push(r.cell.seed);
            corruption.push(rc.corruption.clone());
            threshold.push(rc.threshold);
            n.push(rc.mse.len() as u64);
            recalled.push(k as u64);
            diverged.push(rc.diverged() as u64);
            fraction.push(if rc.mse.is_empty() {
                f64::NAN
            } else {
                k as f64 / rc.mse.len() as f64
            });
            mean_mse.push(rc.mse.iter().sum::<f64>() / rc.mse.len().max(1) as f64);
            median_mse.push(median(&rc.mse));
            epochs.push(r.fit.curve.len() as u64);
            converged.push(r.fit.converged);
            // The whole training, over every run of a resumed cell (older records: this run).
            fit_s.push(r.timings.fit_total_s.unwrap_or(r.timings.fit_s));
            recall_s.push(rc.seconds);
            parameters.push(r.parameters as u64);
            sha.push(r.data.sha256.clone());
            version.push(r.code_version.clone());
        }
    }
    Ok(df!(
        "grid" => grid,
        "profile" => profile,
        "dataset" => dataset,
        "n_images" => n_images,
        "model" => model,
        "hidden" => hidden,
        "layers" => layers,
        "seed" => seed,
        "corruption" => corruption,
        "threshold" => threshold,
        "n" => n,
        "recalled" => recalled,
        "fraction" => fraction,
        "mean_mse" => mean_mse,
        "median_mse" => median_mse,
        "epochs" => epochs,
        "converged" => converged,
        "fit_s" => fit_s,
        "recall_s" => recall_s,
        "parameters" => parameters,
        "data_sha256" => sha,
        "code_version" => version,
        "search" => search,
        "train_loss" => loss,
        "selected" => is_selected,
        "arm" => arm,
        "diverged" => diverged,
    )?)
}

/// The columns that name one configuration of a grid (all but the seed): the rows of
/// [`summary`], the series and panels of the figures.
pub const CONFIG_COLUMNS: [&str; 7] = [
    "dataset",
    "model",
    "hidden",
    "layers",
    "n_images",
    "corruption",
    "arm",
];

/// Mean over seeds of `fraction`, `recalled` and `diverged` per configuration of one grid (selected
/// search points only), sorted.
pub fn summary(df: &DataFrame, grid: &str) -> Result<DataFrame> {
    let keys = CONFIG_COLUMNS;
    Ok(df
        .clone()
        .lazy()
        .filter(col("grid").eq(lit(grid)).and(col("selected")))
        .group_by(keys.map(col))
        .agg([
            col("fraction").mean().alias("fraction"),
            col("recalled")
                .cast(DataType::Float64)
                .mean()
                .alias("recalled"),
            col("n").max().alias("n"),
            col("median_mse").mean().alias("median_mse"),
            col("fit_s").mean().alias("fit_s"),
            col("seed").count().alias("seeds"),
            col("diverged")
                .cast(DataType::Float64)
                .mean()
                .alias("diverged"),
        ])
        .sort(keys, SortMultipleOptions::default())
        .collect()?)
}

/// Writes `table.csv` and `table.parquet` into `dir`.
pub fn write(df: &mut DataFrame, dir: &Path) -> Result<()> {
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv).finish(df)?;
    crate::atomic::write_atomic(&dir.join("table.csv"), &csv)?;
    let mut pq = Vec::new();
    ParquetWriter::new(&mut pq).finish(df)?;
    crate::atomic::write_atomic(&dir.join("table.parquet"), &pq)
}

/// A column as strings (numbers formatted), for reports and plots.
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// A numeric column as f64.
pub fn floats(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}
