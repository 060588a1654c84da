//! # pcmem-harness: the paper's tables and figures as declarative grids
//!
//! [`spec`] parses a grid (`experiments/<id>.toml`) with its profiles; [`run`] expands it into
//! training cells, skips cells already recorded, and writes one [`record::RunRecord`] per cell;
//! [`aggregate`] turns the records into one tidy polars table; [`plots`] and [`report`] draw the
//! figures and write `REPORT.md` with the paper's claims beside our numbers. [`registry`] lists
//! the models a grid can name.

pub mod aggregate;
pub mod atomic;
pub mod claims;
pub mod deviations;
pub mod error;
pub mod estimate;
pub mod left;
pub mod models;
pub mod natural;
pub mod plots;
pub mod provision;
pub mod record;
pub mod registry;
pub mod regress;
pub mod report;
pub mod run;
pub mod shard;
pub mod spec;
pub mod stale;

pub use candle_core;
pub use error::{HarnessError, Result};
pub use pcmem_model::device;

/// The repository's README, whose library example `cargo test` compiles and runs.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
