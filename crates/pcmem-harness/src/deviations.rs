//! What a PCN record's settings change from the paper's reading of its model, generated from
//! the resolved config (never typed by hand), split into `model` (the energy or its fixed
//! points change: a different model) and `solver` (how the fixed points are reached: optimiser,
//! rates, steps, stopping rule, momentum, starting values).
//!
//! The paper's reading is `PcnConfig`'s defaults at the record's sizes (docs/model.md).
//!
//! ```
//! use pcmem_harness::deviations::pcn;
//! use pcmem_model::{KnownPrecision, PcnConfig};
//! let mut cfg = PcnConfig::new(12, 6);
//! cfg.recall.known_precision = KnownPrecision::Estimated;
//! cfg.recall.momentum = 0.9;
//! let d = pcn(&serde_json::to_value(&cfg).unwrap()).unwrap();
//! assert_eq!(d.model.len(), 1);
//! assert!(d.model[0].starts_with("recall.known_precision"));
//! assert!(d.solver[0].starts_with("recall.momentum = 0.9"));
//! ```

use pcmem_model::PcnConfig;
use serde_json::Value;

/// A PCN config's differences from the paper's reading, one `key = ours (paper: theirs)` each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deviations {
    /// Changes of the energy or of its fixed points.
    pub model: Vec<String>,
    /// Changes of how the fixed points are reached.
    pub solver: Vec<String>,
}

/// Settings that change the PCN's energy (Eq. 1-2) or the fixed points recall converges to.
pub const PCN_MODEL_KEYS: [&str; 5] = [
    "activation",
    "placement",
    "memory_prior",
    "recall.known_precision",
    "recall.noise_relaxation",
];

/// Sizes and execution choices: part of the cell or of how it runs, not deviations.
const NOT_SETTINGS: [&str; 5] = ["input_dim", "hidden_dim", "layers", "seed", "kernel"];

/// The deviations of a resolved PCN config (as serialised in a record) from the paper's.
pub fn pcn(config: &Value) -> Result<Deviations, serde_json::Error> {
    let ours: PcnConfig = serde_json::from_value(config.clone())?;
    let mut paper = PcnConfig::new(ours.input_dim, ours.hidden_dim);
    paper.layers = ours.layers;
    let (a, b) = (serde_json::to_value(&ours)?, serde_json::to_value(&paper)?);
    let mut out = Deviations::default();
    for (key, mine, theirs) in differences(&a, &b) {
        if NOT_SETTINGS.contains(&key.as_str()) {
            continue;
        }
        let line = format!("{key} = {} (paper: {})", compact(&mine), compact(&theirs));
        if PCN_MODEL_KEYS.contains(&key.as_str()) {
            out.model.push(line);
        } else {
            out.solver.push(line);
        }
    }
    Ok(out)
}

/// Differing keys, one level into the config's sections (`learning.alpha`), whole values below
/// (an optimiser or a precision compares as one value).
fn differences(a: &Value, b: &Value) -> Vec<(String, Value, Value)> {
    let (Value::Object(x), Value::Object(y)) = (a, b) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (p, q) = (
            x.get(k).cloned().unwrap_or(Value::Null),
            y.get(k).cloned().unwrap_or(Value::Null),
        );
        match (&p, &q) {
            (Value::Object(pi), Value::Object(qi))
                if ["inference", "learning", "recall"].contains(&k.as_str()) =>
            {
                let mut sub: Vec<&String> = pi.keys().chain(qi.keys()).collect();
                sub.sort();
                sub.dedup();
                for s in sub {
                    let (u, v) = (
                        pi.get(s).cloned().unwrap_or(Value::Null),
                        qi.get(s).cloned().unwrap_or(Value::Null),
                    );
                    if u != v {
                        out.push((format!("{k}.{s}"), u, v));
                    }
                }
            }
            _ if p != q => out.push((k.clone(), p, q)),
            _ => {}
        }
    }
    out
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}
