//! The model of a cell: its settings resolved from the grid (model table, per-dataset table,
//! search point, then the cell's fixed sizes), checked, sized, and built.
//!
//! [`resolve`] does everything short of allocating the model, so that a grid's settings are
//! checked for every cell when the grid is read ([`crate::spec::Grid::parse`]) and
//! `--dry-run` can show each cell's memory: an unknown key, a wrong type, a value out of range
//! or a non-finite number is an error naming the table and the key before any cell runs.
//!
//! ```
//! use pcmem_harness::models::resolve;
//! use pcmem_harness::spec::Grid;
//! let text = r#"
//! id = "demo"
//! title = "Demo"
//! paper = "Sec. 3"
//! [train]
//! dataset = ["cifar10"]
//! n_images = [4]
//! model = ["pcn"]
//! hidden = [64]
//! [recall]
//! corruption = ["noise:0.2"]
//! threshold = 0.005
//! [pcn]
//! inference = { gamma = 0.05 }
//! [profile.quick]
//! "#;
//! let grid = Grid::parse(text, "demo.toml", "quick")?;
//! let model = resolve(&grid, &grid.cells()[0]).map_err(pcmem_harness::HarnessError::Invalid)?;
//! assert_eq!(model.config["inference"]["gamma"], 0.05);
//! assert!(model.memory_bytes > 0.0);
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use candle_core::Device;
use pcmem_data::DatasetId;
use pcmem_model::{AssociativeMemory, Sizes};

use crate::spec::{Cell, Grid, ModelKind};

/// A cell's model, resolved and checked but not built.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The model.
    pub kind: ModelKind,
    /// The sizes it is built for.
    pub sizes: Sizes,
    /// The full settings (defaults, the grid's table, the sizes), as written into the cell's
    /// record.
    pub config: serde_json::Value,
    /// Input dimension d (pixels times channels).
    pub input_dim: usize,
    /// Estimated peak memory of training and recall, bytes (the factory's estimate, [`pcmem_model::Factory::memory_bytes`]).
    pub memory_bytes: f64,
}

/// Input dimension of a dataset's images.
pub fn input_dim(dataset: &str) -> Option<usize> {
    DatasetId::from_name(dataset).ok().map(|id| {
        let (c, h, w) = id.shape();
        c * h * w
    })
}

/// Finds the first non-finite float (`nan`, `inf`) in a TOML table; returns its dotted key.
/// Such values cannot mean anything in a grid, and JSON (which the settings pass through)
/// would read them as "unset".
pub fn non_finite(table: &toml::Table, prefix: &str) -> Option<String> {
    fn walk(v: &toml::Value, path: &str) -> Option<String> {
        match v {
            toml::Value::Float(f) if !f.is_finite() => Some(format!("{path} = {f}")),
            toml::Value::Table(t) => t.iter().find_map(|(k, v)| walk(v, &join(path, k))),
            toml::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    table.iter().find_map(|(k, v)| walk(v, &join(prefix, k)))
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// Resolves and checks the model of `cell`. The error is a message for the grid's author: it
/// names the table (`[pcn]`, with the dataset and search point where they apply) and the key.
pub fn resolve(grid: &Grid, cell: &Cell) -> Result<Resolved, String> {
    let shape = Shape::of(cell)?;
    let name = cell.model.name();
    let mut place = format!("[{name}]");
    if grid
        .per_dataset
        .get(&cell.dataset)
        .is_some_and(|m| m.contains_key(name))
    {
        place.push_str(&format!(" with [per_dataset.{}.{name}]", cell.dataset));
    }
    if !cell.search.is_empty() {
        place.push_str(&format!(" at search point `{}`", cell.search));
    }
    let table = grid.cell_table(cell).map_err(|e| format!("{place}: {e}"))?;
    resolve_table(cell.model, &table, shape).map_err(|e| format!("{place}: {e}"))
}

/// The settings of `cell`'s model in recall arm `arm` (a name of the grid's `[arms]`): its
/// table with the arm's `recall` laid over it, resolved and checked. `None`: the arm does not
/// name this model, which then recalls as in `paper`.
pub fn resolve_arm(grid: &Grid, cell: &Cell, arm: &str) -> Result<Option<Resolved>, String> {
    let name = cell.model.name();
    let Some(over) = grid.arms.get(arm).and_then(|m| m.get(name)) else {
        return Ok(None);
    };
    let mut table = grid.cell_table(cell)?;
    crate::spec::merge(&mut table, over);
    resolve_table(cell.model, &table, Shape::of(cell)?).map(Some)
}

/// The sizes a model is built for: the rest of its settings come from its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Input dimension d.
    pub input_dim: usize,
    /// Hidden width n (PCN, autoencoder).
    pub hidden: usize,
    /// Hidden layers L (PCN, autoencoder).
    pub layers: usize,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Images to store (for the memory estimate).
    pub n_images: usize,
}

impl Shape {
    /// The sizes of `cell` (its dataset's image size, width, depth, seed, N).
    pub fn of(cell: &Cell) -> Result<Self, String> {
        Ok(Self {
            input_dim: input_dim(&cell.dataset)
                .ok_or_else(|| format!("unknown dataset `{}`", cell.dataset))?,
            hidden: cell.hidden,
            layers: cell.layers,
            seed: cell.seed,
            n_images: cell.n_images,
        })
    }

    /// As the model factories take them.
    pub fn sizes(self) -> Sizes {
        Sizes {
            input_dim: self.input_dim,
            hidden: self.hidden,
            layers: self.layers,
            seed: self.seed,
            n_images: self.n_images,
        }
    }
}

/// Resolves and checks a model of `kind` from its settings table (any subset of its config's
/// fields; the fixed sizes of `shape` win). The error names the key.
pub fn resolve_table(
    kind: ModelKind,
    table: &toml::Table,
    shape: Shape,
) -> Result<Resolved, String> {
    if let Some(key) = non_finite(table, "") {
        return Err(format!("{key}: not a finite number"));
    }
    let sizes = shape.sizes();
    let over = serde_json::to_value(table).map_err(|e| e.to_string())?;
    let config = kind.factory().resolve(&over, &sizes)?;
    let memory_bytes = kind.factory().memory_bytes(&config, &sizes);
    Ok(Resolved {
        kind,
        sizes,
        config,
        input_dim: shape.input_dim,
        memory_bytes,
    })
}

/// Physical memory of this machine in bytes (the cgroup limit when lower), if it can be read.
pub fn machine_memory() -> Option<f64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .map(|kib| kib * 1024.0)
        })?;
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok());
    Some(limit.map_or(total, |l| l.min(total)))
}

/// An upper bound of the training work of a cell in GFLOP (the model's own bound: for the
/// PCN `(T + 1)` inference steps of four products per weight and two for the update, times
/// the epoch limit; 0 for one-shot memories), for `--dry-run`.
pub fn estimate_gflop(resolved: &Resolved, n_images: usize) -> f64 {
    let sizes = Sizes {
        n_images,
        ..resolved.sizes
    };
    resolved.kind.factory().work_gflop(&resolved.config, &sizes)
}

/// An upper bound of the recall work of a cell in GFLOP (the model's own bound per
/// condition, [`pcmem_model::Factory::recall_gflop`]): every recall condition of `grid`, in
/// the paper arm and in each arm that sets the model's recall anew (an arm that leaves the
/// model as it is copies the paper arm's results), for `--dry-run`.
pub fn recall_gflop(grid: &Grid, cell: &Cell, resolved: &Resolved) -> f64 {
    recall_gflop_left(grid, cell, resolved, &[])
}

/// [`recall_gflop`] of the conditions not in `done` (arm, corruption as the grid writes it):
/// what a cell stopped during recall has left.
pub fn recall_gflop_left(
    grid: &Grid,
    cell: &Cell,
    resolved: &Resolved,
    done: &[(String, String)],
) -> f64 {
    let corruptions = grid.corruptions();
    grid.arm_names()
        .iter()
        .filter_map(|arm| Some((arm, arm_config(grid, cell, resolved, arm)?)))
        .map(|(arm, config)| {
            corruptions
                .iter()
                .filter(|k| !done.iter().any(|(a, c)| a == arm && *c == k.to_string()))
                .map(|k| condition_gflop(cell, resolved, &config, k))
                .sum::<f64>()
        })
        .sum()
}

/// The model's settings in recall arm `arm` (`paper`: `resolved`'s); `None` for an arm that
/// leaves the model as it is (it recalls nothing itself) or that does not resolve.
pub fn arm_config(
    grid: &Grid,
    cell: &Cell,
    resolved: &Resolved,
    arm: &str,
) -> Option<serde_json::Value> {
    if arm == "paper" {
        return Some(resolved.config.clone());
    }
    resolve_arm(grid, cell, arm)
        .ok()
        .flatten()
        .map(|r| r.config)
}

/// An upper bound of the work of one recall condition of a cell in GFLOP: its model with
/// `config` recalling every stored image from `corruption`.
pub fn condition_gflop(
    cell: &Cell,
    resolved: &Resolved,
    config: &serde_json::Value,
    corruption: &crate::spec::Corruption,
) -> f64 {
    let sizes = Sizes {
        n_images: cell.n_images,
        ..resolved.sizes
    };
    let masked = matches!(corruption, crate::spec::Corruption::Mask(_));
    resolved.kind.factory().recall_gflop(config, &sizes, masked)
}

/// Builds the model of a resolved cell on `device` (models that run on the CPU only ignore it).
pub fn build(
    resolved: &Resolved,
    device: &Device,
) -> Result<Box<dyn AssociativeMemory>, pcmem_model::MemoryError> {
    resolved
        .kind
        .factory()
        .build(&resolved.config, &resolved.sizes, device)
}
