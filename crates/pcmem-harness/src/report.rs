//! The report: for every grid, its figure and table, and for every claim of the paper
//! (evaluated by [`crate::claims`]) the paper's value, ours, and pass / fail / incomplete / not run, as
//! `REPORT.md` with the figures embedded.
//!
//! ```
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4, 8]\nmodel = [\"pcn\"]\n[recall]\ncorruption = [\"noise:0.2\"]\n\
//!             threshold = 0.005\n[profile.quick]\n";
//! let grid = pcmem_harness::spec::Grid::parse(text, "g.toml", "quick")?;
//! // A profile at the paper's sizes differs from itself in nothing.
//! let same = pcmem_harness::report::size_differences(&[grid.clone()], &[grid]);
//! assert!(same.is_none());
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use crate::aggregate::{floats, selected, strings, summary, CONFIG_COLUMNS};
use crate::error::Result;
use crate::plots::{capacity, lines as lines_plot, Series, YAxis};
use crate::record::RunRecord;
use crate::spec::Grid;

pub use crate::claims::*;

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

/// Per recall arm and dataset, the PCN records' deviations from the paper's model; `None`
/// when the grid has no PCN record.
fn deviation_table(grid: &Grid, records: &[(PathBuf, RunRecord)]) -> Option<String> {
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

fn md_table(s: &DataFrame) -> Result<String> {
    let cols: Vec<&str> = CONFIG_COLUMNS
        .into_iter()
        .chain(["recalled", "n", "fraction", "median_mse", "fit_s", "seeds"])
        .collect();
    let data: Vec<Vec<String>> = cols.iter().map(|c| strings(s, c)).collect::<Result<_>>()?;
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
                "median_mse" => format!("{:.2e}", data[j][i].parse::<f64>().unwrap_or(f64::NAN)),
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

/// Every search point of a grid, one row per cell and corruption; `None` without a search.
fn search_table(df: &DataFrame, grid: &str) -> Result<Option<String>> {
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

/// Leaves of a settings table as dotted paths.
fn flatten(t: &toml::Table) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    for (k, v) in t {
        match v {
            toml::Value::Table(inner) => {
                for (k2, v2) in flatten(inner) {
                    out.insert(format!("{k}.{k2}"), v2);
                }
            }
            v => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// The sizes (training axes) in which each grid of this profile differs from the same grid at
/// the paper's sizes (`reference`, the `full` profile), as a Markdown table; `None` if none do.
pub fn size_differences(grids: &[Grid], reference: &[Grid]) -> Option<String> {
    let mut rows = String::new();
    for g in grids {
        let Some(r) = reference.iter().find(|r| r.id == g.id) else {
            continue;
        };
        let list = |v: &[String]| v.join(", ");
        let nums = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let models = |gr: &Grid| {
            gr.train
                .model
                .iter()
                .map(|m| m.name().to_string())
                .collect::<Vec<_>>()
        };
        let pairs = [
            ("dataset", list(&g.train.dataset), list(&r.train.dataset)),
            (
                "n_images",
                list(&nums(&g.train.n_images)),
                list(&nums(&r.train.n_images)),
            ),
            ("model", list(&models(g)), list(&models(r))),
            (
                "hidden",
                list(&nums(&g.train.hidden)),
                list(&nums(&r.train.hidden)),
            ),
            (
                "layers",
                list(&nums(&g.train.layers)),
                list(&nums(&r.train.layers)),
            ),
            (
                "corruption",
                list(&g.recall.corruption),
                list(&r.recall.corruption),
            ),
        ];
        let differ: Vec<String> = pairs
            .iter()
            .filter(|(_, a, b)| a != b)
            .map(|(k, a, b)| format!("{k}: {a} (full: {b})"))
            .collect();
        let mut changed = Vec::new();
        let empty = toml::Table::new();
        let names: std::collections::BTreeSet<&String> =
            g.models.keys().chain(r.models.keys()).collect();
        for name in names {
            let a = g.models.get(name).unwrap_or(&empty);
            let b = r.models.get(name).unwrap_or(&empty);
            let (fa, fb) = (flatten(a), flatten(b));
            for (k, v) in &fa {
                let full = fb.get(k).map_or("default".to_string(), |x| x.to_string());
                if fb.get(k) != Some(v) {
                    changed.push(format!("{name}.{k} = {v} (full: {full})"));
                }
            }
            for (k, v) in &fb {
                if !fa.contains_key(k) {
                    changed.push(format!("{name}.{k} = default (full: {v})"));
                }
            }
        }
        let settings = changed.join("; ");
        if differ.is_empty() && settings.is_empty() {
            continue;
        }
        let _ = writeln!(rows, "| {} | {} | {settings} |", g.id, differ.join("; "));
    }
    (!rows.is_empty()).then(|| {
        format!("| grid | sizes here (the full profile's, the paper's sizes, in brackets) | settings here (the full profile's in brackets) |\n|---|---|---|\n{rows}")
    })
}

/// The records a report rests on, and those it does not use ([`crate::stale`]) with why.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    /// Records the grids as they are now would produce.
    pub current: &'a [(PathBuf, RunRecord)],
    /// The others, each with the reason.
    pub stale: &'a [(PathBuf, String)],
}

/// Writes `<out>/REPORT.md` for the given grids (those with records), with claims.
/// `reference` holds the same grids at the paper's sizes (the `full` profile); when this
/// profile is smaller the report lists the differences, the reason claims are not run or may
/// fall short here.
pub fn write_report(
    out: &Path,
    grids: &[Grid],
    reference: &[Grid],
    df: &DataFrame,
    records: Records<'_>,
    claims: &[Claim],
    profile: &str,
) -> Result<PathBuf> {
    let (records, stale) = (records.current, records.stale);
    let mut md = String::new();
    let _ = writeln!(md, "# pcmem: reproduction report\n");
    let _ = writeln!(
        md,
        "Profile `{profile}`, {} cells, {}. Generated by `pcmem report`; every number below is computed from the run records under `runs/` (tidy table: `table.csv`, `table.parquet`).\n",
        records.len(),
        code_versions(records.iter().map(|(_, r)| r.code_version.as_str()))
    );
    let _ = writeln!(md, "## Claims of the paper\n");
    // Recall arms: `paper` (the paper's model) and those of the grids' [arms].
    let mut other_arms: Vec<String> = strings(df, "arm")?
        .into_iter()
        .filter(|a| a != "paper")
        .collect();
    other_arms.sort();
    other_arms.dedup();
    let _ = writeln!(
        md,
        "Each claim is judged for the paper's model (`paper`: the energy of Eq. 1-2 with unit \
         precisions, the grid's model tables){}. Where a grid declares no such arm, this project recalls as the paper there, and the column says so.\n",
        if other_arms.is_empty() {
            String::new()
        } else {
            format!(
                " and for each recall arm of this project beside it ({}: the same trained model, \
                 other recall settings, listed per grid under \"Recall arms\")",
                other_arms
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let mut head = "| claim | source | paper | ours, paper's model | status |".to_string();
    let mut rule = "|---|---|---|---|---|".to_string();
    for a in &other_arms {
        head.push_str(&format!(" ours, {a} | status |"));
        rule.push_str("---|---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let arms: Vec<String> = std::iter::once("paper".to_string())
        .chain(other_arms.iter().cloned())
        .collect();
    let mut counts = vec![(0, 0, 0, 0); arms.len()];
    let grid_arms: Vec<(String, String)> = strings(df, "grid")?
        .into_iter()
        .zip(strings(df, "arm")?)
        .collect();
    for c in claims {
        let mut line = format!("| {} ({}) | {} | {} |", c.text, c.id, c.source, c.paper);
        for (k, arm) in arms.iter().enumerate() {
            let has = grid_arms.iter().any(|(g, a)| g == &c.grid && a == arm);
            if arm != "paper" && !has {
                let declared = grids
                    .iter()
                    .any(|g| g.id == c.grid && g.arms.contains_key(arm));
                line.push_str(match declared {
                    true => " - | - |",
                    false => " same as `paper` (the grid has no arm of its own) | - |",
                });
                continue;
            }
            let claim = in_arm(c, arm);
            let v = evaluate(&claim, df)?;
            // A verdict on some of the claim's cells: a FAIL stands, a PASS is incomplete.
            let (run, all) = match grids.iter().find(|g| g.id == c.grid) {
                Some(g) if v.pass.is_some() => coverage(&claim, df, g)?,
                _ => (0, 0),
            };
            let partial = run < all;
            let status = match v.pass {
                Some(true) if partial => {
                    counts[k].3 += 1;
                    "incomplete"
                }
                Some(true) => {
                    counts[k].0 += 1;
                    "PASS"
                }
                Some(false) => {
                    counts[k].1 += 1;
                    "FAIL"
                }
                None => {
                    counts[k].2 += 1;
                    "not run"
                }
            };
            let cover = if partial {
                format!(" ({run} of its {all} cells run)")
            } else {
                String::new()
            };
            line.push_str(&format!(" {}{cover} | {status} |", v.ours));
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md);
    for (arm, (pass, fail, not_run, incomplete)) in arms.iter().zip(&counts) {
        let _ = writeln!(
            md,
            "`{arm}`: {pass} pass, {fail} fail, {incomplete} incomplete (holds on the cells run, \
             others of its cells not run), {not_run} not run in this profile.  "
        );
    }
    let _ = writeln!(md);
    let with_arms: Vec<&Grid> = grids.iter().filter(|g| !g.arms.is_empty()).collect();
    if !with_arms.is_empty() {
        let _ = writeln!(
            md,
            "### Recall arms\n\nSettings each arm lays over the grid's model tables (recall only; \
             the model is trained once per cell).\n\n| grid | arm | model | recall settings |\n|---|---|---|---|"
        );
        for g in with_arms {
            for (arm, models) in &g.arms {
                for (model, table) in models {
                    let text = table
                        .get("recall")
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                        .replace('|', "\\|")
                        .replace('\n', " ");
                    let _ = writeln!(md, "| {} | {arm} | {model} | `{text}` |", g.id);
                }
            }
        }
        let _ = writeln!(md);
    }
    if !stale.is_empty() {
        let _ = writeln!(
            md,
            "### Records not used\n\nThe grids as they are now would not produce these records (their settings changed since, or the cell is gone); nothing above rests on them. Running the grid again recomputes them.\n\n| record | why |\n|---|---|"
        );
        for (p, why) in stale {
            let shown = p.strip_prefix(out).unwrap_or(p);
            let _ = writeln!(
                md,
                "| `{}` | {} |",
                shown.display(),
                why.replace('|', "\\|")
            );
        }
        let _ = writeln!(md);
    }
    let skipped = crate::provision::not_run(out, profile);
    if !skipped.is_empty() {
        let _ = writeln!(
            md,
            "### Grids not run

Their data could not be had on the machine that ran this profile; their claims are `not run`.

| grid | not run because |\n|---|---|"
        );
        for (grid, reason) in &skipped {
            let _ = writeln!(md, "| {grid} | {} |", reason.replace('|', "\\|"));
        }
        let _ = writeln!(md);
    }
    if let Some(t) = crate::left::section(grids, records) {
        let _ = writeln!(md, "{t}");
    }
    if let Some(t) = size_differences(grids, reference) {
        let _ = writeln!(
            md,
            "### Where profile `{profile}` differs from the paper\n\nClaims are stated at the paper's sizes; a claim whose cells this profile does not train is not run, and a claim checked here at smaller sizes (fewer images, narrower networks, shorter training) may pass or fail for reasons of size alone. A comparison reported as `a vs b` with equal values is a tie, which fails a strict `>`.\n\n{t}"
        );
    }
    for g in grids {
        let s = summary(df, &g.id)?;
        if s.height() == 0 {
            continue;
        }
        let _ = writeln!(md, "## {}: {} ({})\n", g.id, g.title, g.paper);
        for f in figures(g, df, records, out)? {
            let _ = writeln!(md, "![{}]({f})\n", g.id);
            if f.ends_with("-mse.png") {
                let _ = writeln!(md, "*The median per-image recall MSE of each line above; an image counts as recalled below the black line.*\n");
            }
        }
        let _ = writeln!(md, "{}", md_table(&s)?);
        if let Some(t) = deviation_table(g, records) {
            let _ = writeln!(
                md,
                "### The PCN's settings against the paper's\n\nGenerated from the records' resolved configs against the paper's reading of the model (docs/model.md): `model` changes the energy or its fixed points, `solver` only how they are reached.\n\n{t}"
            );
        }
        if let Some(t) = search_table(df, &g.id)? {
            let rule = match &g.tune {
                Some(tune) => format!(
                    "per cell the point recalling the most of these development images under `{}` (arm `{}`) is selected, ties to the lower training loss, then to the smaller values: a choice by recall, made on images no claim cell stores, which claim grids then state",
                    tune.corruption, tune.arm
                ),
                None => "per cell the point with the lowest final training loss (`train_loss`, the PCN's energy summed over the stored images) is selected and used above and in the claims. Recall columns are shown for transparency; they play no part in the choice".into(),
            };
            let _ = writeln!(
                md,
                "### Hyperparameter search\n\nEvery point of `[search]`; {rule}.\n\n{t}"
            );
        }
    }
    let path = out.join("REPORT.md");
    crate::atomic::write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

/// The code versions the records were made by, most records first: `code `abc`` for one,
/// `code versions `abc` (12 records), `def-dirty` (1)` for several; `-dirty` (a binary built
/// with uncommitted changes) is explained where it occurs.
fn code_versions<'a>(versions: impl Iterator<Item = &'a str>) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for v in versions {
        *count.entry(v).or_default() += 1;
    }
    let mut by_count: Vec<(&str, usize)> = count.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let dirty = if by_count.iter().any(|(v, _)| v.ends_with("-dirty")) {
        " (`-dirty`: built from that commit with uncommitted changes to its code)"
    } else {
        ""
    };
    match by_count.as_slice() {
        [] => "no records".to_string(),
        [(v, _)] => format!("code `{v}`{dirty}"),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|(v, n)| format!("`{v}` ({n} record{})", if *n == 1 { "" } else { "s" }))
                .collect();
            format!("code versions {}{dirty}", list.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::code_versions;

    #[test]
    fn every_code_version_is_named_with_its_count() {
        assert_eq!(code_versions(["a"].into_iter()), "code `a`");
        let s = code_versions(["a", "b-dirty", "a", "c"].into_iter());
        assert!(
            s.starts_with("code versions `a` (2 records), `b-dirty` (1 record), `c` (1 record)"),
            "{s}"
        );
        assert!(s.contains("uncommitted changes"), "{s}");
        assert_eq!(code_versions(std::iter::empty()), "no records");
    }
}
