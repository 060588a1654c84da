//! The figures of a grid: the capacity curves (retrieved percentage and median recall error per
//! line) and the links to the picture grids the runner drew.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use crate::aggregate::{floats, selected, strings, summary, CONFIG_COLUMNS};
use crate::error::Result;
use crate::plots::{capacity, lines as lines_plot, Series, YAxis};
use crate::record::RunRecord;
use crate::spec::Grid;

/// Points of each labelled line of one figure panel.
type Lines = BTreeMap<String, Vec<(f64, f64)>>;

/// Draws the figure(s) of a grid into `<out>/figures`; returns their paths relative to `out`.
pub fn figures(
    grid: &Grid,
    df: &DataFrame,
    records: &[(PathBuf, RunRecord)],
    out: &Path,
) -> Result<Vec<String>> {
    let mut made = Vec::new();
    let s = summary(df, &grid.id)?;
    if s.height() == 0 {
        return Ok(made);
    }
    match grid.plot.kind.as_str() {
        "capacity" => {
            let x = grid.plot.x.as_str();
            let cols: BTreeMap<&str, Vec<String>> = CONFIG_COLUMNS
                .into_iter()
                .map(|c| Ok((c, strings(&s, c)?)))
                .collect::<Result<_>>()?;
            let xs = floats(&s, x)?;
            let frac = floats(&s, "fraction")?;
            let median = floats(&s, "median_mse")?;
            // Per panel: the retrieved percentage and the median recall error of each line.
            let mut panels: BTreeMap<(String, String), Lines> = BTreeMap::new();
            let mut errors: BTreeMap<(String, String), Lines> = BTreeMap::new();
            for i in 0..s.height() {
                // An arm that leaves a model as it is repeats the paper arm's rows: drawn once.
                let arm = &cols["arm"][i];
                if arm != "paper"
                    && !grid
                        .arms
                        .get(arm)
                        .is_some_and(|m| m.contains_key(&cols["model"][i]))
                {
                    continue;
                }
                let label = ["model", "hidden", "layers", "n_images", "arm"]
                    .into_iter()
                    .filter(|c| *c != x)
                    .filter(|c| {
                        // Width and depth label only the models they apply to.
                        (*c != "hidden" && *c != "layers")
                            || crate::spec::ModelKind::from_name(&cols["model"][i])
                                .is_ok_and(|k| k.sized())
                    })
                    .filter(|c| *c != "arm" || cols["arm"][i] != "paper")
                    .map(|c| {
                        if c == "model" {
                            cols[c][i].clone()
                        } else if c == "arm" {
                            format!("[{}]", cols[c][i])
                        } else {
                            format!("{c}={}", cols[c][i])
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let panel = (cols["dataset"][i].clone(), cols["corruption"][i].clone());
                for (to, y) in [(&mut panels, 100.0 * frac[i]), (&mut errors, median[i])] {
                    let line = to.entry(panel.clone()).or_default();
                    line.entry(label.clone()).or_default().push((xs[i], y));
                }
            }
            let series = |lines: Lines| -> Vec<Series> {
                lines
                    .into_iter()
                    .map(|(label, mut points)| {
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        Series { label, points }
                    })
                    .collect()
            };
            for ((dataset, corruption), lines) in panels {
                let stem = format!(
                    "figures/{}-{}-{}",
                    grid.id,
                    dataset,
                    corruption.replace(':', "_")
                );
                let title = format!("{}: {dataset}, {corruption}", grid.id);
                capacity(&out.join(&stem), &title, x, &series(lines))?;
                made.push(format!("{stem}.png"));
                // Beside it, how far the recalled images are from counting: the median
                // error of each line against the threshold.
                if let (Some(lines), Ok(c)) = (
                    errors.remove(&(dataset.clone(), corruption.clone())),
                    crate::spec::Corruption::parse(&corruption),
                ) {
                    let y = YAxis::MedianMse {
                        threshold: grid.threshold(&c),
                    };
                    lines_plot(
                        &out.join(format!("{stem}-mse")),
                        &title,
                        x,
                        &series(lines),
                        y,
                    )?;
                    made.push(format!("{stem}-mse.png"));
                }
            }
        }
        _ => made.extend(pictures(grid, records, out, |_| true)),
    }
    if grid.plot.kind == "capacity" && grid.plot.pictures {
        let grid_records = records.iter().filter(|(_, r)| r.grid == grid.id);
        let largest = grid_records.map(|(_, r)| r.cell.n_images).max();
        made.extend(pictures(grid, records, out, |r| {
            Some(r.cell.n_images) == largest
        }));
    }
    Ok(made)
}

/// Links (relative to `out`) the picture grids the runner drew next to the records of `grid`
/// that `keep` selects, from at most six records.
fn pictures(
    grid: &Grid,
    records: &[(PathBuf, RunRecord)],
    out: &Path,
    keep: impl Fn(&RunRecord) -> bool,
) -> Vec<String> {
    let mut made = Vec::new();
    let chosen = selected(records.iter().map(|(_, r)| r));
    for ((path, rec), _) in records
        .iter()
        .zip(chosen)
        .filter(|((_, r), chosen)| *chosen && r.grid == grid.id && keep(r))
        .take(6)
    {
        for rc in &rec.recall {
            if let Some(p) = &rc.picture {
                let abs = path.with_file_name(p);
                // An arm that leaves a model as it is shares the paper arm's picture.
                if let Ok(rel) = abs.strip_prefix(out) {
                    let rel = rel.display().to_string();
                    if !made.contains(&rel) {
                        made.push(rel);
                    }
                }
            }
        }
    }
    made
}
