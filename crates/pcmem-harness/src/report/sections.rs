//! The lists of the report between its claims and its grids: the settings of each recall arm,
//! the records not used, and the grids not run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::spec::Grid;

/// "Recall arms": the recall settings each arm lays over a grid's model tables; `None` when
/// no grid has an arm.
pub(super) fn arms_section(grids: &[Grid]) -> Option<String> {
    let mut md = String::new();
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
    (!md.is_empty()).then_some(md)
}

/// "Records not used": the records the grids as they are now would not produce, with why;
/// `None` when there are none.
pub(super) fn stale_section(out: &Path, stale: &[(PathBuf, String)]) -> Option<String> {
    let mut md = String::new();
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
    (!md.is_empty()).then_some(md)
}

/// "Grids not run": the grids whose data could not be had on the machine that ran `profile`;
/// `None` when every grid could run.
pub(super) fn not_run_section(out: &Path, profile: &str) -> Option<String> {
    let mut md = String::new();
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
    (!md.is_empty()).then_some(md)
}
