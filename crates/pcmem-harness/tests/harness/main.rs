//! Grids, the resumable runner, aggregation and claims, end to end on generated CIFAR-10 records.
//!
//! One test binary, its tests in modules by concern.

use pcmem_harness::report::{Claim, Metric, Op};

#[path = "../common/mod.rs"]
mod common;

mod arms;
mod claims;
mod development;
mod estimate;
mod grids;
mod kept;
mod partial;
mod runner;
mod search;

/// The claim "the PCN recalls at least 0 images" (it holds wherever the cells ran) on `grid`.
fn pcn_recalls_any(id: &str, grid: &str) -> Claim {
    Claim {
        id: id.into(),
        grid: grid.into(),
        source: "s".into(),
        text: "t".into(),
        paper: "p".into(),
        filter: [("model".to_string(), "pcn".to_string())].into(),
        metric: Metric::Recalled,
        op: Op::Ge,
        value: Some(0.0),
        tolerance: None,
        than: None,
        for_each: None,
        control: None,
    }
}
