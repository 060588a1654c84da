//! The tables under each grid of the report: its summary, the PCN's settings against the
//! paper's, and every point of its hyperparameter search.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use polars::prelude::DataFrame;

use crate::aggregate::{strings, CONFIG_COLUMNS};
use crate::error::Result;
use crate::record::RunRecord;
use crate::spec::Grid;

/// Per recall arm and dataset, the PCN records' deviations from the paper's model; `None`
/// when the grid has no PCN record.
pub(super) fn deviation_table(grid: &Grid, records: &[(PathBuf, RunRecord)]) -> Option<String> {
    let mut rows: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for (_, r) in records
        .iter()
        .filter(|(_, r)| r.grid == grid.id && r.cell.model.name() == "pcn")
    {
        for arm in grid.arm_names() {
            let mut cfg = r.model_config.clone();
            if let Some(recall) = r.arms.get(&arm) {
                cfg["recall"] = recall.clone();
            }
            let Ok(d) = crate::deviations::pcn(&cfg) else {
                continue;
            };
            let join = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join("; ")
                }
            };
            let e = rows
                .entry((arm, join(&d.model), join(&d.solver)))
                .or_default();
            if !e.contains(&r.cell.dataset) {
                e.push(r.cell.dataset.clone());
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mut t = "| arm | datasets | model | solver |\n|---|---|---|---|\n".to_string();
    for ((arm, model, solver), datasets) in rows {
        let _ = writeln!(
            t,
            "| {arm} | {} | {} | {} |",
            datasets.join(", "),
            model.replace('|', "\\|"),
            solver.replace('|', "\\|")
        );
    }
    Some(t)
}

/// The grid's summary (one row per cell and corruption) as a Markdown table.
pub(super) fn md_table(s: &DataFrame) -> Result<String> {
    let cols: Vec<&str> = CONFIG_COLUMNS
        .into_iter()
        .chain(["recalled", "n", "fraction", "median_mse", "fit_s", "seeds"])
        .collect();
    let data: Vec<Vec<String>> = cols.iter().map(|c| strings(s, c)).collect::<Result<_>>()?;
    let diverged = strings(s, "diverged")?;
    let mut t = format!(
        "| {} |\n|{}|\n",
        cols.join(" | "),
        cols.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for i in 0..s.height() {
        let row: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(j, c)| match *c {
                "fraction" => format!(
                    "{:.0}%",
                    100.0 * data[j][i].parse::<f64>().unwrap_or(f64::NAN)
                ),
                "median_mse" => median_cell(&data[j][i], &diverged[i]),
                "fit_s" | "recalled" => {
                    format!("{:.1}", data[j][i].parse::<f64>().unwrap_or(f64::NAN))
                }
                _ => data[j][i].clone(),
            })
            .collect();
        let _ = writeln!(t, "| {} |", row.join(" | "));
    }
    Ok(t)
}

/// A median MSE, with how many images diverged when any did (their NaN would otherwise stand
/// unexplained).
fn median_cell(median: &str, diverged: &str) -> String {
    let m = format!("{:.2e}", median.parse::<f64>().unwrap_or(f64::NAN));
    match diverged.parse::<f64>() {
        Ok(d) if d > 0.0 => format!("{m} ({d:.0} diverged)"),
        _ => m,
    }
}

/// Every search point of a grid, one row per cell and corruption; `None` without a search.
pub(super) fn search_table(df: &DataFrame, grid: &str) -> Result<Option<String>> {
    let g = strings(df, "grid")?;
    let search = strings(df, "search")?;
    let rows: Vec<usize> = (0..df.height())
        .filter(|&i| g[i] == grid && !search[i].is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let cols = [
        "search",
        "dataset",
        "model",
        "hidden",
        "layers",
        "n_images",
        "seed",
        "epochs",
        "train_loss",
        "selected",
        "corruption",
        "recalled",
        "n",
        "median_mse",
    ];
    let data: Vec<Vec<String>> = cols.iter().map(|c| strings(df, c)).collect::<Result<_>>()?;
    let mut t = format!(
        "| {} |\n|{}|\n",
        cols.join(" | "),
        cols.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    let mut order = rows;
    order.sort_by(|&a, &b| {
        let key = |i: usize| (data[1][i].clone(), data[5][i].clone(), data[10][i].clone());
        key(a).cmp(&key(b)).then(data[0][a].cmp(&data[0][b]))
    });
    for i in order {
        let row: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(j, c)| match *c {
                "train_loss" | "median_mse" => {
                    format!("{:.3e}", data[j][i].parse::<f64>().unwrap_or(f64::NAN))
                }
                "selected" if data[j][i] == "true" => "**yes**".into(),
                "selected" => "no".into(),
                _ => data[j][i].clone(),
            })
            .collect();
        let _ = writeln!(t, "| {} |", row.join(" | "));
    }
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::median_cell;

    #[test]
    fn a_median_says_how_many_images_diverged() {
        assert_eq!(median_cell("0.00123", "0"), "1.23e-3");
        assert_eq!(median_cell("NaN", "491"), "NaN (491 diverged)");
        assert_eq!(median_cell("0.5", "1.5"), "5.00e-1 (2 diverged)");
    }
}
