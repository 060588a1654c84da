//! Where a profile's sizes and settings differ from the full profile's (the paper's sizes).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::spec::Grid;

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

/// The value `key` (a dotted path) takes in `grid` for `model` where no table sets it, as
/// "`value` (the default)": the model's own default at the sizes of the grid's first cell of
/// that model (resolved from an empty table, so no per-dataset table or search point enters),
/// so that the report names the default rather than the word; "the default" alone where it
/// cannot be resolved.
fn default_value(grid: &Grid, model: &str, key: &str) -> String {
    use crate::models::{resolve_table, Shape};
    let value = grid
        .cells()
        .into_iter()
        .find(|c| c.model.name() == model)
        .and_then(|c| {
            let shape = Shape::of(&c).ok()?;
            resolve_table(c.model, &toml::Table::new(), shape).ok()
        })
        .and_then(|r| {
            r.config
                .pointer(&format!("/{}", key.replace('.', "/")))
                .cloned()
        });
    match value {
        Some(v) => format!("{v} (the default)"),
        None => "the default".to_string(),
    }
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
                if fb.get(k) != Some(v) {
                    let full = fb
                        .get(k)
                        .map_or_else(|| default_value(r, name, k), |x| x.to_string());
                    changed.push(format!("{name}.{k} = {v} (full: {full})"));
                }
            }
            for (k, v) in &fb {
                if !fa.contains_key(k) {
                    let here = default_value(g, name, k);
                    changed.push(format!("{name}.{k} = {here} (full: {v})"));
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
