//! Records that the grids as they are now would not produce: a cell the grid no longer has, or
//! settings that have changed since (e.g. a setting moved into a recall arm). The report uses
//! only current records and lists the others with the reason, so a verdict never rests on
//! settings the grid file no longer states.
//!
//! ```
//! use pcmem_harness::stale::differing_keys;
//! let a = serde_json::json!({"recall": {"steps": 10, "gamma": 0.1}});
//! let b = serde_json::json!({"recall": {"steps": 20, "gamma": 0.1}});
//! assert_eq!(differing_keys(&a, &b, ""), ["recall.steps"]);
//! ```

use std::path::PathBuf;

use crate::record::RunRecord;
use crate::spec::Grid;

/// Splits `records` into those the current `grids` would produce and the others, each with
/// why. Records of grids not among `grids` are kept.
#[allow(clippy::type_complexity)]
pub fn split_current(
    grids: &[Grid],
    records: Vec<(PathBuf, RunRecord)>,
) -> (Vec<(PathBuf, RunRecord)>, Vec<(PathBuf, String)>) {
    let mut keep = Vec::new();
    let mut stale = Vec::new();
    for (path, r) in records {
        match why_stale(grids, &r) {
            Some(reason) => stale.push((path, reason)),
            None => keep.push((path, r)),
        }
    }
    (keep, stale)
}

/// Why the grids as they are now would not produce `r` (None: they would, or `r`'s grid is
/// not among them).
pub fn why_stale(grids: &[Grid], r: &RunRecord) -> Option<String> {
    let grid = grids.iter().find(|g| g.id == r.grid)?;
    if !grid.cells().contains(&r.cell) {
        return Some("the grid has no such cell now".into());
    }
    let now = match crate::models::resolve(grid, &r.cell) {
        Ok(now) => now.config,
        Err(e) => return Some(format!("its settings no longer resolve: {e}")),
    };
    // The record's settings read back through today's config type (fields added since take
    // their defaults), then compared.
    // (JSON to JSON: a record's `null`s, unset options, have no TOML form.) Settings retired
    // from the model since (the PCN's `kernel`, now an execution option) are read and dropped.
    let then = as_today(&r.cell, &r.model_config);
    let keys = differing_keys(&then, &now, "");
    if !keys.is_empty() {
        return Some(format!(
            "its settings differ from the grid's now in {}",
            keys.join(", ")
        ));
    }
    None
}

/// `config`, settings `cell`'s model was given at some time (a record's, a checkpoint's), read
/// through today's config type: settings added since take their defaults, settings retired are
/// dropped; as it was where it no longer reads.
pub(crate) fn as_today(cell: &crate::spec::Cell, config: &serde_json::Value) -> serde_json::Value {
    crate::models::Shape::of(cell)
        .ok()
        .and_then(|shape| cell.model.factory().resolve(config, &shape.sizes()).ok())
        .unwrap_or_else(|| config.clone())
}

pub use pcmem_model::checkpoint::differing_keys;
