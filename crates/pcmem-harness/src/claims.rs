//! The paper's claims as data (`results/paper/claims.toml`) and their evaluation against the
//! tidy table.
//!
//! A claim names the grid, the cells it is about (`where`: column = value of the tidy table),
//! a typed metric ([`Metric`]), a typed comparison ([`Op`], with `value` and, for `within`, a
//! `tolerance`) and, for claims comparing two models, `than` (another `where`) with `for_each`
//! (the column over which the comparison must hold at every shared value). Without
//! `for_each`, every selected cell must satisfy the claim on its own. A cell the profile did
//! not run is reported as not run, not as passed. A claim that a model recalling nothing would
//! pass (at most, fewer than, none, a small number, worse than) must carry a `control`: a
//! positive control on the same model (its `where` overrides keys of the claim's, e.g. a light
//! corruption or a smaller N) that must hold first, so a broken model cannot pass the claim.
//! Claims, figures and tables use the selected points
//! of a grid's hyperparameter search only (see [`crate::aggregate::selected`]); the report
//! lists every point of a search in its own table.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("claims.toml");
//! let claim = r#"
//! [[claim]]
//! id = "demo"
//! grid = "fig3"
//! source = "Sec. 3"
//! text = "stores 250 images"
//! paper = "250/250"
//! where = { model = "pcn", n_images = "250" }
//! metric = "fraction"
//! op = ">="
//! value = 1.0
//! "#;
//! std::fs::write(&path, claim)?;
//! let claims = pcmem_harness::claims::load_claims(&path)?;
//! assert_eq!(claims[0].op, pcmem_harness::claims::Op::Ge);
//! // An unknown comparison is an error, never a silent equality.
//! std::fs::write(&path, claim.replace("\">=\"", "\"=>\""))?;
//! assert!(pcmem_harness::claims::load_claims(&path).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::DataFrame;
use serde::Deserialize;

use crate::aggregate::{floats, strings, CONFIG_COLUMNS};
use crate::error::{io_err, HarnessError, Result};
use crate::natural::Natural;

/// What a claim counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Retrieved / N, in [0, 1].
    Fraction,
    /// Images retrieved.
    Recalled,
}

impl Metric {
    /// The tidy table's column holding it.
    fn column(self) -> &'static str {
        match self {
            Metric::Fraction => "fraction",
            Metric::Recalled => "recalled",
        }
    }

    /// A value as the report shows it: a fraction in whole percent, a count (seeds averaged)
    /// to one decimal.
    fn show(self, v: f64) -> String {
        match self {
            Metric::Fraction => format!("{:.0}%", 100.0 * v),
            Metric::Recalled => format!("{v:.1}"),
        }
    }
}

/// How our number is compared with the claim's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    /// At least.
    #[serde(rename = ">=")]
    Ge,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// More than.
    #[serde(rename = ">")]
    Gt,
    /// Fewer than.
    #[serde(rename = "<")]
    Lt,
    /// Exactly.
    #[serde(rename = "==")]
    Eq,
    /// Within `value +- tolerance` (the paper gives a number; the tolerance is stated beside it).
    #[serde(rename = "within")]
    Within,
}

impl Op {
    fn holds(self, a: f64, b: f64, tolerance: f64) -> bool {
        match self {
            Op::Ge => a >= b - 1e-12,
            Op::Le => a <= b + 1e-12,
            Op::Gt => a > b,
            Op::Lt => a < b,
            Op::Eq => (a - b).abs() < 1e-12,
            Op::Within => (a - b).abs() <= tolerance + 1e-12,
        }
    }
}

/// One claim of the paper.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Short id.
    pub id: String,
    /// Grid it is checked on.
    pub grid: String,
    /// Where in the paper it is stated.
    pub source: String,
    /// The claim in words.
    pub text: String,
    /// The paper's number, as text.
    pub paper: String,
    /// Cells of the tidy table the claim is about (column -> value). Without `for_each` the
    /// claim must hold for every selected cell (seeds averaged), never for their mean.
    #[serde(rename = "where")]
    pub filter: BTreeMap<String, String>,
    /// What is counted.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// Threshold value (absent when comparing against `than`).
    pub value: Option<f64>,
    /// Half-width of the interval of `op = "within"` (required there, refused elsewhere).
    pub tolerance: Option<f64>,
    /// Other cells to compare against.
    pub than: Option<BTreeMap<String, String>>,
    /// Column over which a comparison against `than` must hold at every shared value.
    pub for_each: Option<String>,
    /// Positive control of a claim that a model recalling nothing would pass.
    pub control: Option<Control>,
}

/// A positive control: the same model recalls from an easier cue (a light corruption, fewer
/// images). Its cells are the claim's `where` with the control's `where` laid over it; each
/// must hold on its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Keys of the claim's `where` to replace or add.
    #[serde(rename = "where")]
    pub filter: BTreeMap<String, String>,
    /// What is counted.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// Threshold value.
    pub value: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    claim: Vec<Claim>,
}

impl Claim {
    /// Checks the claim's own consistency; the message names the claim.
    fn check(&self) -> std::result::Result<(), String> {
        let id = &self.id;
        if self.value.is_some() == self.than.is_some() {
            return Err(format!(
                "claim {id}: give exactly one of `value` and `than`"
            ));
        }
        if (self.op == Op::Within) != self.tolerance.is_some() {
            return Err(format!(
                "claim {id}: `tolerance` goes with `op = \"within\"` and only there"
            ));
        }
        if let Some(t) = self.tolerance {
            if !(t.is_finite() && t >= 0.0) {
                return Err(format!(
                    "claim {id}: tolerance {t} must be a finite number >= 0"
                ));
            }
        }
        if self.value.is_some_and(|v| !v.is_finite()) {
            return Err(format!("claim {id}: value must be finite"));
        }
        // A model that recalls nothing must not pass without a positive control.
        let zero_passes = match (self.value, &self.than) {
            (Some(v), _) => self.op.holds(0.0, v, self.tolerance.unwrap_or(0.0)),
            (None, Some(_)) => matches!(self.op, Op::Lt | Op::Le),
            _ => false,
        };
        match (&self.control, zero_passes) {
            (None, true) => {
                return Err(format!(
                    "claim {id}: a model that recalls nothing would pass it; add a positive \
                     `control` on the same model (e.g. control = {{ where = {{ corruption = \
                     \"noise:0.01\" }}, metric = \"fraction\", op = \">=\", value = 0.5 }})"
                ))
            }
            (Some(c), _) => {
                if c.op.holds(0.0, c.value, 0.0) || c.op == Op::Within {
                    return Err(format!(
                        "claim {id}: its control must fail for a model that recalls nothing \
                         (use >= or > with a positive value)"
                    ));
                }
                if c.filter.is_empty() {
                    return Err(format!(
                        "claim {id}: the control's `where` must change something (a lighter \
                         corruption, fewer images)"
                    ));
                }
            }
            (None, false) => {}
        }
        for k in self
            .filter
            .keys()
            .chain(self.than.iter().flat_map(|t| t.keys()))
            .chain(self.control.iter().flat_map(|c| c.filter.keys()))
            .chain(self.for_each.iter())
        {
            if !(CONFIG_COLUMNS.contains(&k.as_str()) || k == "seed") {
                return Err(format!(
                    "claim {id}: unknown column `{k}`; claims select on {}, seed",
                    CONFIG_COLUMNS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Reads the claims file; an unknown metric, comparison or column is an error naming the
/// claim.
pub fn load_claims(path: &Path) -> Result<Vec<Claim>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let spec = |message: String| HarnessError::Spec {
        file: path.display().to_string(),
        message,
    };
    let f: ClaimsFile = toml::from_str(&text).map_err(|e| spec(e.to_string()))?;
    for c in &f.claim {
        c.check().map_err(spec)?;
    }
    let mut ids: Vec<&str> = f.claim.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(spec(format!("claim id `{}` appears twice", w[0])));
    }
    Ok(f.claim)
}

/// Outcome of one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Our value, as text.
    pub ours: String,
    /// `Some(true)` pass, `Some(false)` fail, `None` not run in this profile.
    pub pass: Option<bool>,
}

/// Rows of the tidy table matching a filter: (for_each value, metric).
fn select(
    df: &DataFrame,
    grid: &str,
    filter: &BTreeMap<String, String>,
    metric: Metric,
    by: Option<&str>,
) -> Result<Vec<(String, f64)>> {
    let g = strings(df, "grid")?;
    let m = floats(df, metric.column())?;
    let cols: Vec<(String, Vec<String>)> = filter
        .keys()
        .map(|k| Ok((k.clone(), strings(df, k)?)))
        .collect::<Result<_>>()?;
    let chosen = strings(df, "selected")?;
    let rows: Vec<usize> = (0..g.len())
        .filter(|&i| {
            g[i] == grid && chosen[i] == "true" && cols.iter().all(|(k, v)| v[i] == filter[k])
        })
        .collect();
    let key: Vec<String> = match by {
        Some(b) => {
            let v = strings(df, b)?;
            rows.iter().map(|&i| v[i].clone()).collect()
        }
        // Without `for_each`, every cell (seeds averaged) is judged on its own; it is named by
        // the columns that tell the selected cells apart.
        None => {
            let mut parts: Vec<(&str, Vec<String>)> = Vec::new();
            for c in CONFIG_COLUMNS.iter().filter(|c| !filter.contains_key(**c)) {
                let v = strings(df, c)?;
                if rows.iter().any(|&i| v[i] != v[rows[0]]) {
                    parts.push((c, v));
                }
            }
            rows.iter()
                .map(|&i| {
                    parts
                        .iter()
                        .map(|(c, v)| format!("{c}={}", v[i]))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        }
    };
    Ok(key.into_iter().zip(rows.iter().map(|&i| m[i])).collect())
}

/// Evaluates a claim on the tidy table (seeds averaged), its positive control first: a claim
/// whose control fails is a FAIL whatever its own number, and not run while its control is.
pub fn evaluate(claim: &Claim, df: &DataFrame) -> Result<Verdict> {
    let own = evaluate_own(claim, df)?;
    let Some(c) = &claim.control else {
        return Ok(own);
    };
    let mut filter = claim.filter.clone();
    filter.extend(c.filter.clone());
    let vals: Vec<(String, f64)> = mean_by(select(df, &claim.grid, &filter, c.metric, None)?)
        .into_iter()
        .map(|(k, v)| (k.0, v))
        .collect();
    let what = c
        .filter
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if vals.is_empty() {
        return Ok(Verdict {
            ours: format!("{}; control ({what}) not run in this profile", own.ours),
            pass: None,
        });
    }
    let shown = vals
        .iter()
        .map(|(k, v)| {
            let v = c.metric.show(*v);
            if k.is_empty() || vals.len() == 1 {
                v
            } else {
                format!("{k}: {v}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let control_ok = vals.iter().all(|(_, v)| c.op.holds(*v, c.value, 0.0));
    Ok(Verdict {
        ours: format!(
            "{}; control ({what}): {shown}{}",
            own.ours,
            if control_ok { "" } else { " FAILED" }
        ),
        pass: if control_ok {
            own.pass
        } else {
            own.pass.map(|_| false)
        },
    })
}

/// The columns of the tidy table that name a cell (the others name a recall condition).
const CELL_COLUMNS: [&str; 5] = ["dataset", "model", "hidden", "layers", "n_images"];

/// How many of the cells a claim judges have results, and how many the grid's profile has:
/// `(run, in the grid)`. The cells judged are those of its `where`, of its `than` (the other
/// side of a comparison) and of its control. A claim about every width or every N judged on
/// some of them is not yet a PASS (a FAIL on some of them is one already).
pub fn coverage(claim: &Claim, df: &DataFrame, grid: &crate::spec::Grid) -> Result<(usize, usize)> {
    use std::collections::BTreeSet;
    let control = claim.control.as_ref().map(|c| {
        let mut f = claim.filter.clone();
        f.extend(c.filter.clone());
        f
    });
    let filters: Vec<&BTreeMap<String, String>> = std::iter::once(&claim.filter)
        .chain(claim.than.as_ref())
        .chain(control.as_ref())
        .collect();
    let field = |c: &crate::spec::Cell, k: &str| crate::run::cell_field(c, k).unwrap_or_default();
    let cells = grid.cells();
    let g = strings(df, "grid")?;
    let chosen = strings(df, "selected")?;
    let cell_cols: Vec<Vec<String>> = CELL_COLUMNS
        .iter()
        .map(|k| strings(df, k))
        .collect::<Result<_>>()?;
    let (mut expected, mut run) = (BTreeSet::new(), BTreeSet::new());
    for filter in filters {
        let mine: BTreeSet<Vec<String>> = cells
            .iter()
            .filter(|c| {
                CELL_COLUMNS
                    .iter()
                    .all(|k| filter.get(*k).is_none_or(|v| *v == field(c, k)))
            })
            .map(|c| CELL_COLUMNS.iter().map(|k| field(c, k)).collect())
            .collect();
        let filter_cols: Vec<(&String, Vec<String>)> = filter
            .iter()
            .map(|(k, v)| Ok((v, strings(df, k)?)))
            .collect::<Result<_>>()?;
        run.extend(
            (0..g.len())
                .filter(|&i| {
                    g[i] == claim.grid
                        && chosen[i] == "true"
                        && filter_cols.iter().all(|(want, col)| col[i] == **want)
                })
                .map(|i| cell_cols.iter().map(|c| c[i].clone()).collect::<Vec<_>>())
                .filter(|key| mine.contains(key)),
        );
        expected.extend(mine);
    }
    Ok((run.len(), expected.len()))
}

/// The claim restricted to one recall arm (its `where`, `than` and control), unless it names
/// an arm itself.
pub fn in_arm(claim: &Claim, arm: &str) -> Claim {
    let mut c = claim.clone();
    if !c.filter.contains_key("arm") {
        c.filter.insert("arm".into(), arm.into());
        if let Some(t) = c.than.as_mut() {
            t.entry("arm".into()).or_insert_with(|| arm.into());
        }
    }
    c
}

/// The mean value of each group of rows (its seeds), the groups in the order a person reads
/// them (`n_images=250` before `n_images=1000`).
fn mean_by(rows: Vec<(String, f64)>) -> BTreeMap<Natural, f64> {
    let mut acc: BTreeMap<Natural, (f64, usize)> = BTreeMap::new();
    for (k, v) in rows {
        let e = acc.entry(Natural(k)).or_default();
        e.0 += v;
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

/// A claim's values, one per group: `for_each=key: value` joined by `; `, the bare value where
/// there is one group and nothing tells it apart.
fn listing(values: &BTreeMap<Natural, f64>, by: Option<&str>, metric: Metric) -> String {
    values
        .iter()
        .map(|(k, a)| {
            let a = metric.show(*a);
            if k.0.is_empty() || (by.is_none() && values.len() == 1) {
                a
            } else if let Some(b) = by {
                format!("{b}={k}: {a}")
            } else {
                format!("{k}: {a}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn evaluate_own(claim: &Claim, df: &DataFrame) -> Result<Verdict> {
    let by = claim.for_each.as_deref();
    let ours = mean_by(select(df, &claim.grid, &claim.filter, claim.metric, by)?);
    let m = claim.metric;
    // One side of a comparison may have records while the other has none: the claim is not
    // run, and the side that ran is shown so a reader sees what there is.
    let other = match &claim.than {
        Some(than) => Some(mean_by(select(df, &claim.grid, than, claim.metric, by)?)),
        None => None,
    };
    if ours.is_empty() {
        let ours = match other.as_ref().filter(|o| !o.is_empty()) {
            Some(o) => format!(
                "not run in this profile (the cells it is compared with: {})",
                listing(o, by, m)
            ),
            None => "not run in this profile".into(),
        };
        return Ok(Verdict { ours, pass: None });
    }
    match (other, claim.value) {
        (Some(other), _) => {
            let shared: Vec<_> = ours
                .iter()
                .filter_map(|(k, a)| other.get(k).map(|b| (k, *a, *b)))
                .collect();
            if shared.is_empty() {
                return Ok(Verdict {
                    ours: format!(
                        "compared cells not run in this profile (its own cells: {})",
                        listing(&ours, by, m)
                    ),
                    pass: None,
                });
            }
            let text = shared
                .iter()
                .map(|(k, a, b)| {
                    let tie = if (a - b).abs() < 1e-12 { " (tie)" } else { "" };
                    format!(
                        "{}={k}: {} vs {}{tie}",
                        by.unwrap_or(""),
                        m.show(*a),
                        m.show(*b)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let tol = claim.tolerance.unwrap_or(0.0);
            let pass = shared.iter().all(|(_, a, b)| claim.op.holds(*a, *b, tol));
            Ok(Verdict {
                ours: text,
                pass: Some(pass),
            })
        }
        (None, Some(v)) => Ok(Verdict {
            ours: listing(&ours, by, m),
            pass: Some(
                ours.values()
                    .all(|a| claim.op.holds(*a, v, claim.tolerance.unwrap_or(0.0))),
            ),
        }),
        (None, None) => Err(HarnessError::Invalid(format!(
            "claim {}: give `value` or `than`",
            claim.id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::{evaluate, Claim};

    /// A claim's cells are listed with their numbers in order: N = 250 before N = 1000, the
    /// widths from 512 up (it was text order: 100, 1000, 250, 500).
    #[test]
    fn cells_are_listed_with_their_numbers_in_order() {
        let n = [1000i64, 250, 100, 500, 1000, 250, 100, 500];
        let model = ["pcn", "pcn", "pcn", "pcn", "ae", "ae", "ae", "ae"];
        let df = df!(
            "grid" => ["g"; 8],
            "selected" => ["true"; 8],
            "arm" => ["paper"; 8],
            "dataset" => ["cifar10"; 8],
            "model" => model,
            "hidden" => [512i64, 1024, 2048, 4096, 512, 512, 512, 512],
            "layers" => [2i64; 8],
            "n_images" => n,
            "corruption" => ["noise:0.2"; 8],
            "fraction" => [0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
        let claim = |extra: &str| -> Claim {
            toml::from_str(&format!(
                "id = \"c\"\ngrid = \"g\"\nsource = \"s\"\ntext = \"t\"\npaper = \"p\"\n\
                 metric = \"fraction\"\n{extra}"
            ))
            .unwrap()
        };
        // Each cell on its own: named by what tells them apart (N and width here).
        let each = claim("op = \">=\"\nvalue = 0.0\nwhere = { model = \"pcn\" }");
        assert_eq!(
            evaluate(&each, &df).unwrap().ours,
            "hidden=512,n_images=1000: 10%; hidden=1024,n_images=250: 20%; \
             hidden=2048,n_images=100: 30%; hidden=4096,n_images=500: 40%"
        );
        // Per N, compared with another model, and with a control.
        let per_n = claim(
            "op = \">\"\nfor_each = \"n_images\"\nwhere = { model = \"pcn\" }\n\
             than = { model = \"ae\" }\ncontrol = { where = { model = \"pcn\" }, metric = \"fraction\", op = \">=\", \
             value = 0.0 }",
        );
        let v = evaluate(&per_n, &df).unwrap();
        assert_eq!(
            v.ours,
            "n_images=100: 30% vs 0%; n_images=250: 20% vs 0%; n_images=500: 40% vs 0%; \
             n_images=1000: 10% vs 0%; control (model=pcn): hidden=512,n_images=1000: 10%; \
             hidden=1024,n_images=250: 20%; hidden=2048,n_images=100: 30%; \
             hidden=4096,n_images=500: 40%"
        );
        // One side of a comparison without records: not run, and the side that ran is shown.
        let no_own = claim(
            "op = \">\"\nfor_each = \"n_images\"\nwhere = { model = \"hopfield\" }\n\
             than = { model = \"ae\", n_images = \"250\" }",
        );
        let v = evaluate(&no_own, &df).unwrap();
        assert_eq!(v.pass, None);
        assert_eq!(
            v.ours,
            "not run in this profile (the cells it is compared with: n_images=250: 0%)"
        );
        let no_other = claim(
            "op = \">\"\nfor_each = \"n_images\"\nwhere = { model = \"pcn\", n_images = \"100\" }\n\
             than = { model = \"hopfield\" }",
        );
        let v = evaluate(&no_other, &df).unwrap();
        assert_eq!(v.pass, None);
        assert_eq!(
            v.ours,
            "compared cells not run in this profile (its own cells: n_images=100: 30%)"
        );
    }
}
