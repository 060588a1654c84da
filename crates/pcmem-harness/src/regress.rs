//! The regression gate: every row of a committed baseline table (written by `pcmem
//! aggregate`) must be present in a new run's table with a retrieved fraction no more than a
//! tolerance below the baseline's.
//!
//! A gate that checks nothing must not pass: a baseline without rows, a value that is not a
//! number in [0, 1] (`abc`, empty, `NaN`, `1.0 ` with a space), a missing column or a
//! tolerance that is not a finite number in [0, 1] is an error naming the file, the line and
//! the column ([`HarnessError::Baseline`], exit 2 in the CLI).
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let header = "grid,dataset,model,hidden,layers,n_images,seed,corruption,search,fraction\n";
//! let row = |f: &str| format!("fig3,cifar10,pcn,512,2,10,0,noise:0.2,,{f}\n");
//! let base = dir.path().join("base.csv");
//! std::fs::write(&base, format!("{header}{}", row("0.9")))?;
//! std::fs::write(dir.path().join("table.csv"), format!("{header}{}", row("0.7")))?;
//! let gate = pcmem_harness::regress::regress(dir.path(), &base, 0.1)?;
//! assert_eq!((gate.checked, gate.failures.len()), (1, 1));
//! std::fs::write(&base, header)?; // no rows: refused
//! assert!(pcmem_harness::regress::regress(dir.path(), &base, 0.1).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use polars::prelude::{CsvReadOptions, DataFrame, SerReader};

use crate::error::{HarnessError, Result};

/// The columns that identify a row: the grid, the configuration columns of the tidy table
/// ([`crate::aggregate::CONFIG_COLUMNS`] but `arm`) and the seed; `search` may be absent
/// (baselines written before grids had searches) or empty, and `arm` absent (before recall
/// arms: every row is then `paper`).
pub fn key_columns() -> Vec<&'static str> {
    std::iter::once("grid")
        .chain(
            crate::aggregate::CONFIG_COLUMNS
                .into_iter()
                .filter(|c| *c != "arm"),
        )
        .chain(["seed"])
        .collect()
}

/// What the gate found.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    /// Baseline rows checked.
    pub checked: usize,
    /// One line per row that regressed or is missing from the new run.
    pub failures: Vec<String>,
}

struct Table {
    keys: Vec<String>,
    fractions: Vec<f64>,
}

fn bad(path: &Path, reason: String) -> HarnessError {
    HarnessError::Baseline {
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads a table strictly: every column as text, fractions parsed exactly.
fn read(path: &Path) -> Result<Table> {
    let df: DataFrame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| bad(path, format!("not a readable CSV table: {e}")))?;
    let column = |name: &str| -> Result<Vec<Option<String>>> {
        let c = df
            .column(name)
            .map_err(|_| bad(path, format!("no column `{name}`")))?;
        let s = c
            .str()
            .map_err(|e| bad(path, format!("column `{name}`: {e}")))?;
        Ok(s.iter().map(|v| v.map(str::to_string)).collect())
    };
    let mut cols = Vec::new();
    for name in key_columns() {
        let values = column(name)?;
        if let Some(i) = values
            .iter()
            .position(|v| v.as_deref().is_none_or(str::is_empty))
        {
            return Err(bad(path, format!("line {}, column `{name}`: empty", i + 2)));
        }
        cols.push(values);
    }
    cols.push(if df.column("search").is_ok() {
        column("search")?
    } else {
        vec![None; df.height()]
    });
    cols.push(if df.column("arm").is_ok() {
        column("arm")?
    } else {
        vec![Some("paper".to_string()); df.height()]
    });
    let fractions = column("fraction")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let text = v.unwrap_or_default();
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() && (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err(bad(
                    path,
                    format!(
                        "line {}, column `fraction`: `{text}` is not a retrieved fraction (a \
                         number in [0, 1])",
                        i + 2
                    ),
                )),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let keys = (0..df.height())
        .map(|i| {
            cols.iter()
                .map(|c| c[i].clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    Ok(Table { keys, fractions })
}

/// Checks `dir/table.csv` against `baseline`; see the module docs.
pub fn regress(dir: &Path, baseline: &Path, tolerance: f64) -> Result<GateReport> {
    if !(tolerance.is_finite() && (0.0..=1.0).contains(&tolerance)) {
        return Err(HarnessError::Invalid(format!(
            "--tolerance {tolerance}: must be a finite number in [0, 1]"
        )));
    }
    let base = read(baseline)?;
    if base.keys.is_empty() {
        return Err(bad(
            baseline,
            "holds no rows: a gate that checks nothing cannot pass".into(),
        ));
    }
    let now_path = dir.join("table.csv");
    let now = read(&now_path)?;
    let mut failures = Vec::new();
    for (k, &b) in base.keys.iter().zip(&base.fractions) {
        match now.keys.iter().position(|x| x == k) {
            None => failures.push(format!("{k}: missing from the new run")),
            Some(j) if now.fractions[j] + tolerance < b => failures.push(format!(
                "{k}: retrieved {:.0}% < baseline {:.0}% - {:.0}%",
                100.0 * now.fractions[j],
                100.0 * b,
                100.0 * tolerance
            )),
            Some(_) => {}
        }
    }
    Ok(GateReport {
        checked: base.keys.len(),
        failures,
    })
}
