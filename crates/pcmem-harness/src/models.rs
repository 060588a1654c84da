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
use pcmem_baselines::{
    Autoencoder, AutoencoderConfig, ClassicalHopfield, DenseAm, HopfieldConfig, Interaction,
    ModernHopfield, ModernHopfieldConfig,
};
use pcmem_data::DatasetId;
use pcmem_model::{AssociativeMemory, PcnConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::spec::{Cell, Grid, ModelKind};

/// The typed settings of one model.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
    /// The PCN (boxed: its config is much larger than the others).
    Pcn(Box<PcnConfig>),
    /// The autoencoder, with its input dimension.
    Autoencoder(AutoencoderConfig, usize),
    /// The modern Hopfield network.
    ModernHopfield(ModernHopfieldConfig),
    /// The classical Hopfield network.
    Hopfield(HopfieldConfig),
    /// The dense associative memory.
    DenseAm(HopfieldConfig, Interaction),
}

/// A cell's model, resolved and checked but not built.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The typed settings.
    pub settings: Settings,
    /// The settings as JSON, as written into the cell's record.
    pub config: serde_json::Value,
    /// Input dimension d (pixels times channels).
    pub input_dim: usize,
    /// Estimated peak memory of training and recall, bytes (see [`memory_bytes`]).
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

/// Merges `table` and then `fixed` over the serialised defaults and reads the typed config;
/// errors name the key path (`learning.max_epochs: invalid type ...`).
fn configure<T: Serialize + DeserializeOwned>(
    base: T,
    table: &toml::Table,
    fixed: serde_json::Value,
) -> Result<T, String> {
    if let Some(key) = non_finite(table, "") {
        return Err(format!("{key}: not a finite number"));
    }
    let mut value = serde_json::to_value(base).expect("configs serialise");
    let over = serde_json::to_value(table).expect("toml tables serialise");
    fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(x) if x.is_object() && v.is_object() => merge(x, v),
                        _ => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (a, b) => *a = b.clone(),
        }
    }
    merge(&mut value, &over);
    merge(&mut value, &fixed);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
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
}

/// Resolves and checks a model of `kind` from its settings table (any subset of its config's
/// fields; the fixed sizes of `shape` win). The error names the key.
pub fn resolve_table(
    kind: ModelKind,
    table: &toml::Table,
    shape: Shape,
) -> Result<Resolved, String> {
    let Shape {
        input_dim: d,
        hidden,
        layers,
        seed,
        n_images,
    } = shape;
    let settings = match kind {
        ModelKind::Pcn => {
            let fixed = serde_json::json!({"input_dim": d, "hidden_dim": hidden, "layers": layers, "seed": seed});
            let cfg: PcnConfig = configure(PcnConfig::new(d, hidden), table, fixed)?;
            cfg.validate().map_err(|e| e.to_string())?;
            Settings::Pcn(Box::new(cfg))
        }
        ModelKind::Autoencoder => {
            let fixed =
                serde_json::json!({"hidden_dim": hidden, "hidden_layers": layers, "seed": seed});
            let cfg: AutoencoderConfig = configure(AutoencoderConfig::default(), table, fixed)?;
            cfg.validate().map_err(|e| e.to_string())?;
            Settings::Autoencoder(cfg, d)
        }
        ModelKind::ModernHopfield => {
            let cfg: ModernHopfieldConfig = configure(
                ModernHopfieldConfig::default(),
                table,
                serde_json::json!({}),
            )?;
            cfg.validate().map_err(|e| e.to_string())?;
            Settings::ModernHopfield(cfg)
        }
        ModelKind::Hopfield => {
            let cfg: HopfieldConfig =
                configure(HopfieldConfig::default(), table, serde_json::json!({}))?;
            cfg.validate().map_err(|e| e.to_string())?;
            Settings::Hopfield(cfg)
        }
        ModelKind::DenseAm => {
            let mut t = table.clone();
            let interaction: Interaction = match t.remove("interaction") {
                Some(v) => v
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("interaction: {e}"))?,
                None => Interaction::Polynomial { degree: 3 },
            };
            let cfg: HopfieldConfig =
                configure(HopfieldConfig::default(), &t, serde_json::json!({}))?;
            DenseAm::new(cfg.clone(), interaction).map_err(|e| e.to_string())?;
            Settings::DenseAm(cfg, interaction)
        }
    };
    let config = match &settings {
        Settings::Pcn(c) => serde_json::to_value(c),
        Settings::Autoencoder(c, _) => serde_json::to_value(c),
        Settings::ModernHopfield(c) => serde_json::to_value(c),
        Settings::Hopfield(c) => serde_json::to_value(c),
        Settings::DenseAm(c, i) => serde_json::to_value(c).map(|mut v| {
            v["interaction"] = serde_json::to_value(i).expect("serialises");
            v
        }),
    }
    .expect("configs serialise");
    let memory_bytes = memory_bytes(&settings, n_images, d);
    Ok(Resolved {
        settings,
        config,
        input_dim: d,
        memory_bytes,
    })
}

/// Estimated peak memory in bytes of training a model on `n` images of dimension `d` and
/// recalling them (f32 throughout; f64 arithmetic so that absurd sizes cannot overflow):
///
/// - PCN, weights W = d n + (L-1) n^2 + n: weights, gradients and two Adam moments (4 W),
///   five value-node arrays per layer (values, errors, inputs, back-propagated errors,
///   velocities), the Gram matrix n^2, and six copies of the data (images, cues, recalls,
///   pictures);
/// - autoencoder, W = 2 d n + (L-1) n^2: 4 W for Adam, four activation arrays per layer for
///   backprop, six copies of the data;
/// - modern Hopfield: the stored patterns, the N x N similarities, six copies of the data;
/// - classical Hopfield: the d x d weights; dense AM: the stored patterns.
pub fn memory_bytes(settings: &Settings, n: usize, d: usize) -> f64 {
    let (n, d) = (n as f64, d as f64);
    let data = 6.0 * n * d;
    let floats = match settings {
        Settings::Pcn(c) => {
            let (h, l) = (c.hidden_dim as f64, c.layers as f64);
            let w = d * h + (l - 1.0) * h * h + h;
            4.0 * w + 5.0 * n * (d + l * h) + h * h + data
        }
        Settings::Autoencoder(c, _) => {
            let (h, l) = (c.hidden_dim as f64, c.hidden_layers as f64);
            let w = 2.0 * d * h + (l - 1.0).max(0.0) * h * h + 2.0 * h + d;
            4.0 * w + 4.0 * n * (2.0 * d + l * h) + data
        }
        Settings::ModernHopfield(_) => n * d + 2.0 * n * n + data,
        Settings::Hopfield(_) => d * d + data,
        Settings::DenseAm(..) => n * d + data,
    };
    4.0 * floats
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

/// An upper bound of the training work of a cell in GFLOP (PCN: `(T + 1)` inference steps of
/// four products per weight and two for the update, times the epoch limit; autoencoder:
/// forward and backward times epochs; 0 for one-shot memories), for `--dry-run`.
pub fn estimate_gflop(resolved: &Resolved, n_images: usize) -> f64 {
    let (nimg, d) = (n_images as f64, resolved.input_dim as f64);
    match &resolved.settings {
        Settings::Pcn(c) => {
            let (n, l) = (c.hidden_dim as f64, c.layers as f64);
            let epochs = c.learning.max_epochs as f64;
            let steps = c.inference.steps as f64;
            let pair = nimg * (d * n + (l - 1.0) * n * n);
            epochs * ((steps + 1.0) * 4.0 * pair + 2.0 * pair) / 1e9
        }
        Settings::Autoencoder(c, _) => {
            let (n, l) = (c.hidden_dim as f64, c.hidden_layers as f64);
            let weights = 2.0 * d * n + (l - 1.0) * n * n;
            c.max_epochs as f64 * 6.0 * nimg * weights / 1e9
        }
        _ => 0.0,
    }
}

/// Builds the model of a resolved cell on `device` (the PCN and the autoencoder; the others
/// stay on the CPU).
pub fn build(
    resolved: &Resolved,
    device: &Device,
) -> Result<Box<dyn AssociativeMemory>, pcmem_model::MemoryError> {
    Ok(match &resolved.settings {
        Settings::Pcn(cfg) => Box::new(cfg.init(device)?),
        Settings::Autoencoder(cfg, d) => {
            Box::new(Autoencoder::new(cfg.clone(), *d).and_then(|ae| ae.on_device(device))?)
        }
        Settings::ModernHopfield(cfg) => Box::new(ModernHopfield::new(cfg.clone())?),
        Settings::Hopfield(cfg) => Box::new(ClassicalHopfield::new(cfg.clone())?),
        Settings::DenseAm(cfg, i) => Box::new(DenseAm::new(cfg.clone(), *i)?),
    })
}
