//! The claims section of the report: each claim with the paper's statement and number, ours
//! for the paper's model and for each recall arm beside it, and its verdict; then the counts of
//! verdicts per arm.

use std::fmt::Write as _;

use polars::prelude::DataFrame;

use crate::aggregate::strings;
use crate::claims::{coverage, evaluate, in_arm, Claim};
use crate::error::Result;
use crate::spec::Grid;

/// The section "Claims of the paper" for `claims` over the aggregated records `df`.
pub(super) fn claims_section(grids: &[Grid], df: &DataFrame, claims: &[Claim]) -> Result<String> {
    let mut md = String::new();
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
    Ok(md)
}
