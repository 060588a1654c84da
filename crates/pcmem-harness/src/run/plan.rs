//! Which cells of a grid a run computes: the `--where` filter, the shard, the order that keeps
//! the cells of one training together, whether a cell's record is finished, and whether the
//! machine can hold the cells left.

use std::path::PathBuf;

use candle_core::Device;

use super::RunOptions;
use crate::error::{HarnessError, Result};
use crate::record::{record_path, RunRecord};
use crate::spec::{Cell, Grid};

/// The cells of this shard, with their record paths and whether they are done, in the grid's
/// order except that the points of a search that share one training (they differ only in
/// recall settings) come one after the other and belong to one shard.
pub fn plan(grid: &Grid, opts: &RunOptions) -> Result<Vec<(Cell, PathBuf, bool)>> {
    if let Some((i, n)) = opts.shard {
        if n == 0 || i == 0 || i > n {
            return Err(HarnessError::Invalid(format!(
                "shard {i}/{n}: need 1 <= i <= n"
            )));
        }
    }
    let cells = only_cells(grid, grid.cells(), &opts.only)?;
    let resolved: Vec<_> = cells
        .iter()
        .map(|c| crate::models::resolve(grid, c).ok())
        .collect();
    // Cells that one training serves (search points that differ only in recall settings):
    // the index of the first such cell.
    let group: Vec<usize> = (0..cells.len())
        .map(|k| {
            (0..k)
                .find(|&j| {
                    cells[j].base() == cells[k].base()
                        && match (&resolved[j], &resolved[k]) {
                            (Some(a), Some(b)) => {
                                let f = cells[k].model.factory();
                                f.training_settings(&a.config) == f.training_settings(&b.config)
                            }
                            _ => false,
                        }
                })
                .unwrap_or(k)
        })
        .collect();
    // Shards of about equal work: the training bound of each cell, counted once for cells
    // that share it, and the recall bound of every cell (GFLOP).
    let shard_of = opts.shard.map(|(_, n)| {
        let (training, recall): (Vec<f64>, Vec<f64>) = cells
            .iter()
            .zip(&resolved)
            .map(|(c, r)| {
                r.as_ref().map_or((0.0, 0.0), |r| {
                    (
                        crate::models::estimate_gflop(r, c.n_images),
                        crate::models::recall_gflop(grid, c, r),
                    )
                })
            })
            .unzip();
        crate::shard::assign_grouped(&training, &recall, &group, n)
    });
    // Cells of one training run one after the other (the trained model stays in memory
    // between them); otherwise the grid's order.
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&k| (group[k], k));
    let mut cells: Vec<Option<Cell>> = cells.into_iter().map(Some).collect();
    let cells: Vec<(usize, Cell)> = order
        .into_iter()
        .map(|k| (k, cells[k].take().expect("each index once")))
        .collect();
    Ok(cells
        .into_iter()
        .filter(|(k, _)| {
            opts.shard
                .zip(shard_of.as_ref())
                .is_none_or(|((i, _), s)| s[*k] == i - 1)
        })
        .map(|(_, c)| {
            let p = record_path(&opts.out, &grid.id, &grid.applied_profile, &c);
            let done = is_finished(&p, grid, &c);
            (c, p, done)
        })
        .collect())
}

/// The fields of a cell that [`RunOptions::only`] can select on.
pub const CELL_KEYS: [&str; 7] = [
    "dataset", "n_images", "model", "hidden", "layers", "seed", "search",
];

/// A cell's field `key` as text, as its record (and the tidy table) writes it.
pub(crate) fn cell_field(cell: &Cell, key: &str) -> Option<String> {
    let v = serde_json::to_value(cell).ok()?;
    Some(match v.get(key)? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The cells whose fields match every pair of `only`; an unknown key, or a filter that leaves
/// no cell, is an error naming the values the grid's cells have.
fn only_cells(grid: &Grid, cells: Vec<Cell>, only: &[(String, String)]) -> Result<Vec<Cell>> {
    if only.is_empty() {
        return Ok(cells);
    }
    for (k, _) in only {
        if !CELL_KEYS.contains(&k.as_str()) {
            return Err(HarnessError::Invalid(format!(
                "--where {k}=...: unknown cell field `{k}`; use one of {}",
                CELL_KEYS.join(", ")
            )));
        }
    }
    let kept: Vec<Cell> = cells
        .iter()
        .filter(|c| {
            only.iter()
                .all(|(k, v)| cell_field(c, k).as_deref() == Some(v.as_str()))
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        let have: Vec<String> = only
            .iter()
            .map(|(k, _)| {
                let mut vals: Vec<String> = cells.iter().filter_map(|c| cell_field(c, k)).collect();
                vals.sort();
                vals.dedup();
                format!("{k} in {{{}}}", vals.join(", "))
            })
            .collect();
        let asked: Vec<String> = only.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(HarnessError::Invalid(format!(
            "--where {}: no cell of grid `{}` (profile {}) matches; its cells have {}",
            asked.join(" "),
            grid.id,
            grid.applied_profile,
            have.join("; ")
        )));
    }
    Ok(kept)
}

/// Whether `path` holds a record of `cell` that parses, has every recall arm and corruption of
/// the grid and the grid's settings as they are now. A file that does not parse (truncated by a
/// kill, a full disk or a bad copy) is not a finished cell; one that lacks a condition added to
/// the grid since, or whose settings changed since ([`crate::stale`]), is computed again.
pub fn is_finished(path: &std::path::Path, grid: &Grid, cell: &Cell) -> bool {
    path.exists()
        && RunRecord::read(path).is_ok_and(|r| {
            r.cell == *cell
                && crate::stale::why_stale(std::slice::from_ref(grid), &r).is_none()
                && grid.arm_names().iter().all(|arm| {
                    grid.corruptions().iter().all(|c| {
                        let c = c.to_string();
                        r.recall.iter().any(|x| &x.arm == arm && x.corruption == c)
                    })
                })
        })
}

/// Refuses, before any work, cells that would need more memory than the machine has (CPU
/// runs; on a GPU the host holds only the data).
pub fn check_memory(grid: &Grid, cells: &[&Cell], device: &Device) -> Result<()> {
    let Some(have) = crate::models::machine_memory() else {
        return Ok(());
    };
    if !device.is_cpu() {
        return Ok(());
    }
    for cell in cells {
        let r = crate::models::resolve(grid, cell).map_err(|e| HarnessError::Spec {
            file: grid.id.clone(),
            message: e,
        })?;
        if r.memory_bytes > have {
            return Err(HarnessError::Memory {
                grid: grid.id.clone(),
                cell: cell.id(),
                need_gib: r.memory_bytes / GIB,
                have_gib: have / GIB,
            });
        }
    }
    Ok(())
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
