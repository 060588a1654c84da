//! The section of one grid in the report: its figures, its summary table, the PCN's settings
//! against the paper's, and its hyperparameter search.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use super::figures::figures;
use super::tables::{deviation_table, md_table, search_table};
use crate::aggregate::{summary, unfinished_searches};
use crate::error::Result;
use crate::record::RunRecord;
use crate::spec::Grid;

/// The section of grid `g`; `None` when `df` has no row of it.
pub(super) fn grid_section(
    g: &Grid,
    profile: &str,
    df: &DataFrame,
    records: &[(PathBuf, RunRecord)],
    out: &Path,
) -> Result<Option<String>> {
    let mut md = String::new();
    let s = summary(df, &g.id)?;
    if s.height() == 0 {
        return Ok(None);
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
            None => "per cell the point with the lowest final training loss (`train_loss`, the last value of the training curve: a PCN's energy summed over the stored images, an autoencoder's training loss) is selected and used above and in the claims. Recall columns are shown for transparency; they play no part in the choice".into(),
        };
        let _ = writeln!(
            md,
            "### Hyperparameter search\n\nEvery point of `[search]`; {rule}.\n\n{t}"
        );
        let open = unfinished_searches(g, profile, records.iter().map(|(_, r)| r));
        if !open.is_empty() {
            let cells: Vec<String> = open
                .iter()
                .map(|(id, done, total)| format!("`{id}`: {done} of {total} points run"))
                .collect();
            let _ = writeln!(
                md,
                "**The search is not finished** ({}): the point marked selected is the best of the points run, a provisional choice that no grid states until every point has a record.\n",
                cells.join("; ")
            );
        }
    }
    Ok(Some(md))
}
