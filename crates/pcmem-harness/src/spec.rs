//! Grid specifications: one TOML file per table or figure of the paper.
//!
//! A grid has axes that need a training run (`[train]`: dataset, number of stored images,
//! model, width, depth, seed) kept apart from axes that only change recall (`[recall]`:
//! corruptions), so one trained model serves a whole recall sweep. Model settings live in
//! `[pcn]`, `[autoencoder]`, `[modern_hopfield]`, `[hopfield]` and `[dense_am]`; profiles
//! (`[profile.quick]`, `[profile.full]`) override any of these tables key by key.
//!
//! A grid may declare a small hyperparameter search (`[search.pcn]`, `[search.autoencoder]`,
//! ...): each key is a dotted path into that model's settings, each value the list to try.
//! Every cell of that model is trained at every combination (its id and record carry the
//! point); aggregation then selects, per cell, the point with the lowest final training loss
//! (the PCN's training energy), never by recall accuracy. Figures, tables and claims use the
//! selected points; the report lists every point.
//!
//! ```
//! use pcmem_harness::spec::Grid;
//! let text = r#"
//! id = "demo"
//! title = "Demo"
//! paper = "Sec. 3"
//! [train]
//! dataset = ["cifar10"]
//! n_images = [4]
//! model = ["modern_hopfield"]
//! [recall]
//! corruption = ["noise:0.2", "top:0.5"]
//! threshold = 0.005
//! [profile.quick.train]
//! n_images = [2]
//! "#;
//! let grid = Grid::parse(text, "demo.toml", "quick")?;
//! assert_eq!(grid.cells().len(), 1);
//! assert_eq!(grid.train.n_images, vec![2]);
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use pcmem_data::transforms::{Mask, Noise};
use pcmem_data::DatasetId;
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};

/// A corruption applied to the stored images before recall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Corruption {
    /// Additive Gaussian noise (`noise:<variance>`, or `noise_std:<std>`); every pixel given.
    Noise(Noise),
    /// Only the pixels of a mask are known (`top:<fraction kept>`, `random:<fraction kept>`,
    /// `centre:<side fraction hidden>`, `right:<fraction hidden>`).
    Mask(Mask),
}

impl Corruption {
    /// Parses the compact text form used in grids.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (kind, value) = s.split_once(':').ok_or_else(|| {
            format!("corruption `{s}` must look like kind:value, e.g. noise:0.2 or top:0.5")
        })?;
        let v: f64 = value
            .parse()
            .map_err(|_| format!("corruption `{s}`: `{value}` is not a number"))?;
        if !(v.is_finite() && v >= 0.0) || (kind != "noise" && kind != "noise_std" && v > 1.0) {
            return Err(format!(
                "corruption `{s}`: value out of range (noise: a finite variance >= 0; masks: a \
                 fraction in [0, 1])"
            ));
        }
        // A mask must leave something known: recall from no pixels recalls nothing.
        let nothing_known = match kind {
            "top" | "random" => v == 0.0,
            "centre" | "right" => v >= 1.0,
            _ => false,
        };
        if nothing_known {
            return Err(format!(
                "corruption `{s}` leaves no pixel known; `top`/`random` give the fraction kept \
                 (> 0), `centre`/`right` the fraction hidden (< 1)"
            ));
        }
        Ok(match kind {
            "noise" => Corruption::Noise(Noise::Variance(v)),
            "noise_std" => Corruption::Noise(Noise::Std(v)),
            "top" => Corruption::Mask(Mask::TopRows { fraction: v }),
            "random" => Corruption::Mask(Mask::RandomPixels { fraction: v }),
            "centre" => Corruption::Mask(Mask::CentrePatch { fraction: v }),
            "right" => Corruption::Mask(Mask::RightColumns { fraction: v }),
            other => {
                return Err(format!(
                    "corruption kind `{other}` unknown; use noise, noise_std, top, random, centre or right"
                ))
            }
        })
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Noise(Noise::Variance(v)) => write!(f, "noise:{v}"),
            Corruption::Noise(Noise::Std(v)) => write!(f, "noise_std:{v}"),
            Corruption::Mask(Mask::TopRows { fraction }) => write!(f, "top:{fraction}"),
            Corruption::Mask(Mask::RandomPixels { fraction }) => write!(f, "random:{fraction}"),
            Corruption::Mask(Mask::CentrePatch { fraction }) => write!(f, "centre:{fraction}"),
            Corruption::Mask(Mask::RightColumns { fraction }) => write!(f, "right:{fraction}"),
        }
    }
}

/// A model a grid can train: a name of [`crate::registry::MODELS`] (`pcn`, `autoencoder`,
/// `modern_hopfield`, `hopfield`, `dense_am`, `uhn`, `drdam`, ...). Compared, ordered and
/// serialised by name.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static dyn pcmem_model::Factory);

impl ModelKind {
    /// Name used in grids and records.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The model's factory.
    pub fn factory(self) -> &'static dyn pcmem_model::Factory {
        self.0
    }

    /// Every registered model, in registry order.
    pub fn all() -> Vec<ModelKind> {
        crate::registry::MODELS
            .iter()
            .map(|f| ModelKind(*f))
            .collect()
    }

    /// The kind of a name used in grids (`pcn`, `autoencoder`, ...); the error lists them.
    pub fn from_name(name: &str) -> std::result::Result<Self, String> {
        crate::registry::find(name).map(ModelKind).ok_or_else(|| {
            format!(
                "unknown model `{name}`; known: {}",
                crate::registry::names()
            )
        })
    }

    /// Whether patterns are binarised to +-1 before storing.
    pub fn bipolar(self) -> bool {
        self.0.bipolar()
    }

    /// Whether the grid's hidden widths and depths apply (otherwise: one cell, n = L = 0).
    pub fn sized(self) -> bool {
        self.0.sized()
    }
}

impl fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}
impl Eq for ModelKind {}
impl PartialOrd for ModelKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ModelKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}
impl std::hash::Hash for ModelKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}
impl Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ModelKind::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// Axes that need a training run; the cells are their cartesian product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainAxes {
    /// Datasets (`mnist`, `cifar10`, `tiny-imagenet`, `imagenet`).
    pub dataset: Vec<String>,
    /// Numbers of stored images N.
    pub n_images: Vec<usize>,
    /// Models.
    pub model: Vec<ModelKind>,
    /// Hidden widths n (ignored by the Hopfield networks). Default `[512]`.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Hidden layers L of the PCN (hidden layers of the autoencoder). Default `[2]`.
    #[serde(default = "default_layers")]
    pub layers: Vec<usize>,
    /// Seeds. Default `[0]`.
    #[serde(default = "default_seed")]
    pub seed: Vec<u64>,
    /// Stored images: `first` N of the split (default), `class:<label>` (first N of a class)
    /// or `range:<from>-<to>` (first N among positions from..=to, e.g. development images).
    #[serde(default = "default_subset")]
    pub subset: String,
    /// Whether this grid chooses settings by recall on the declared development images
    /// (`pcmem_data::development`): it must then store only those; every other grid (the
    /// claim grids) must store none of them. Checked on the loaded images. Default false.
    #[serde(default)]
    pub development: bool,
    /// Split the images come from: `train` (default) or `test`.
    #[serde(default = "default_split")]
    pub split: String,
    /// Binarise every image to +-1 (threshold 0.5) for every model, as for Hopfield networks.
    /// The Hopfield networks always get binarised images. Default false.
    #[serde(default)]
    pub binarise: bool,
}

fn default_split() -> String {
    "train".into()
}

fn default_hidden() -> Vec<usize> {
    vec![512]
}
fn default_layers() -> Vec<usize> {
    vec![2]
}
fn default_seed() -> Vec<u64> {
    vec![0]
}
/// `range:<from>-<to>` as (from, to), from <= to.
pub fn parse_range(subset: &str) -> Option<(usize, usize)> {
    let (a, b) = subset.strip_prefix("range:")?.split_once('-')?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn default_subset() -> String {
    "first".into()
}

/// Axes that only change recall, applied to every trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallAxes {
    /// Corruptions, in the compact form of [`Corruption::parse`].
    pub corruption: Vec<String>,
    /// An image counts as retrieved when its MSE over all pixels is below this (the paper:
    /// 0.005 for noise, 0.001 for partial images). A per-kind threshold can be given instead
    /// with `threshold_noise` and `threshold_mask`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Threshold for noise corruptions (overrides `threshold`).
    #[serde(default)]
    pub threshold_noise: Option<f64>,
    /// Threshold for masks (overrides `threshold`).
    #[serde(default)]
    pub threshold_mask: Option<f64>,
    /// Seed of the noise and random masks. Default 1.
    #[serde(default = "default_noise_seed")]
    pub noise_seed: u64,
    /// How many images per cell are kept as pictures (original / corrupted / recalled). Default 6.
    #[serde(default = "default_keep")]
    pub keep_images: usize,
}

fn default_noise_seed() -> u64 {
    1
}
fn default_keep() -> usize {
    6
}

/// What figure or table the grid renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// `capacity` (retrieved % against `x`, and beside it each line's median recall MSE against
    /// the threshold), `table` (counts), or `images` (picture grids).
    pub kind: String,
    /// Column on the x axis of capacity plots (`n_images`, `layers`, `hidden`, `corruption`).
    #[serde(default = "default_x")]
    pub x: String,
    /// Capacity plots only: also show the picture grids of the cells with the largest N (one
    /// per model), as the paper does for Fig. 9. Default false.
    #[serde(default)]
    pub pictures: bool,
}

fn default_x() -> String {
    "n_images".into()
}

/// The sections a grid file may hold besides model tables.
const SECTIONS: [&str; 11] = [
    "id",
    "title",
    "paper",
    "train",
    "recall",
    "plot",
    "per_dataset",
    "search",
    "tune",
    "arms",
    "profile",
];

/// Moves the top-level tables named after registered models into `models`; any other key
/// that is not a section is an error naming it, its line in `text` where found, and what is
/// allowed.
fn lift_models(table: &mut toml::Table, text: &str) -> std::result::Result<(), String> {
    let mut models = toml::Table::new();
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        if SECTIONS.contains(&key.as_str()) {
            continue;
        }
        let line = text
            .lines()
            .position(|l| {
                let l = l.trim_start().trim_start_matches('[');
                l.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with([']', '.', ' ', '=']))
            })
            .map(|i| format!(" (line {})", i + 1))
            .unwrap_or_default();
        if crate::registry::find(&key).is_none() {
            return Err(format!(
                "unknown table `{key}`{line}: a grid has [train], [recall], [plot], \
                 [per_dataset], [search], [tune], [arms], [profile] and tables of model \
                 settings named after a registered model ({})",
                crate::registry::names()
            ));
        }
        match table.remove(&key) {
            Some(toml::Value::Table(t)) => {
                models.insert(key, toml::Value::Table(t));
            }
            _ => {
                return Err(format!(
                    "`{key}`{line} must be a table of {key} settings, e.g. [{key}]"
                ))
            }
        }
    }
    table.insert("models".into(), toml::Value::Table(models));
    Ok(())
}

/// A parsed grid, with a profile applied. (Top-level keys that are neither a section below
/// nor a registered model are refused by [`Grid::parse`], which moves the model tables into
/// [`Grid::models`].)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Short id (`fig3`), also the record folder name.
    pub id: String,
    /// Title for the report.
    pub title: String,
    /// Where in the paper.
    pub paper: String,
    /// Training axes.
    pub train: TrainAxes,
    /// Recall axes.
    pub recall: RecallAxes,
    /// Figure kind.
    #[serde(default = "default_plot")]
    pub plot: PlotSpec,
    /// Model settings: registered model name -> any subset of its config's fields. Written in a
    /// grid as top-level tables named after the model (`[pcn]`, `[modern_hopfield]`, ...; see
    /// [`crate::registry`]), checked when the grid is read. Default: none (every default).
    #[serde(default)]
    pub models: BTreeMap<String, toml::Table>,
    /// Settings for the cells of one dataset, merged over the model tables above (before a
    /// search point): dataset name -> model table name (`pcn`, `autoencoder`, ...) -> any
    /// subset of its settings, e.g. `[per_dataset.tiny-imagenet.pcn]`. Default: none.
    #[serde(default)]
    pub per_dataset: BTreeMap<String, BTreeMap<String, toml::Table>>,
    /// Hyperparameter search: model table name (`pcn`, `autoencoder`, ...) -> dotted path
    /// into its settings (`inference.gamma`) -> values to try. Default: none.
    #[serde(default)]
    pub search: BTreeMap<String, BTreeMap<String, Vec<toml::Value>>>,
    /// Choose the search point by recall on development images (a grid with
    /// `development = true` in `[train]` and a `[search]`): see [`Tune`]. Default: none (the
    /// point with the lowest training loss is selected, recall plays no part).
    #[serde(default)]
    pub tune: Option<Tune>,
    /// Recall arms beside the paper's own (`paper`: the model tables above, which must be the
    /// paper's model): arm name -> model table name -> `{ recall = { ... } }`, laid over that
    /// model's settings. The model is trained once per cell and recalls once per arm; a model
    /// an arm does not name recalls in it as in `paper`. Default: none (only `paper`).
    #[serde(default)]
    pub arms: BTreeMap<String, BTreeMap<String, toml::Table>>,
    /// Profiles: tables merged over the above, key by key.
    #[serde(default)]
    pub profile: BTreeMap<String, toml::Table>,
    /// The profile applied (set by [`Grid::parse`]).
    #[serde(default)]
    pub applied_profile: String,
}

fn default_plot() -> PlotSpec {
    PlotSpec {
        kind: "capacity".into(),
        x: default_x(),
        pictures: false,
    }
}

/// The rule of a development grid that chooses settings by recall: per cell, the search point
/// that recalls the most images under `corruption` in recall arm `arm` is selected (ties: the
/// lower training loss, then the first point). The claim grids then state the chosen value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tune {
    /// The recall condition that decides, one of the grid's corruptions (e.g. `top:0.125`).
    pub corruption: String,
    /// The recall arm that decides. Default `paper`.
    #[serde(default = "paper_arm")]
    pub arm: String,
}

fn paper_arm() -> String {
    "paper".into()
}

/// One training run of a grid, with every recall it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Dataset name.
    pub dataset: String,
    /// Stored images N.
    pub n_images: usize,
    /// Model.
    pub model: ModelKind,
    /// Hidden width n.
    pub hidden: usize,
    /// Layers L.
    pub layers: usize,
    /// Seed.
    pub seed: u64,
    /// Point of the grid's hyperparameter search (`inference.gamma=0.01,learning.alpha=0.0002`,
    /// keys sorted); empty when the grid declares no search for this model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub search: String,
}

impl Cell {
    /// File-name-safe identifier, unique within a grid and profile.
    ///
    /// ```
    /// use pcmem_harness::spec::{Cell, ModelKind};
    /// let cell = Cell {
    ///     dataset: "cifar10".into(),
    ///     n_images: 100,
    ///     model: ModelKind::from_name("autoencoder").unwrap(),
    ///     hidden: 512,
    ///     layers: 2,
    ///     seed: 0,
    ///     search: r#"init="scaled",lr=0.001"#.into(),
    /// };
    /// assert_eq!(cell.id(), "cifar10-N100-autoencoder-n512-L2-s0-init-scaled_lr-0.001");
    /// ```
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}-N{}-{}-n{}-L{}-s{}",
            self.dataset,
            self.n_images,
            self.model.name(),
            self.hidden,
            self.layers,
            self.seed
        );
        if !self.search.is_empty() {
            id.push('-');
            // A string value's quotes are dropped (`init="scaled"` -> `init-scaled`).
            id.extend(self.search.chars().filter(|&c| c != '"').map(|c| match c {
                '=' => '-',
                ',' => '_',
                c if c.is_ascii_alphanumeric() || ".-_".contains(c) => c,
                _ => '~',
            }));
        }
        id
    }

    /// The same cell without its search point: the group within which a point is selected.
    pub fn base(&self) -> Cell {
        Cell {
            search: String::new(),
            ..self.clone()
        }
    }
}

/// The label of a search point: `path=value` pairs joined by commas, in key order.
fn point_label(point: &[(String, toml::Value)]) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sets `path` (dotted) in `table` to `value`, creating tables on the way.
pub fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("split yields at least one part");
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("made a table");
    }
    t.insert(last.to_string(), value);
}

pub(crate) fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Grid {
    /// Parses a grid and applies `profile`. Unknown keys, wrong types and impossible values
    /// are errors naming the file, the line where known, and the key.
    pub fn parse(text: &str, file: &str, profile: &str) -> Result<Self> {
        let spec_err = |msg: String| HarnessError::Spec {
            file: file.to_string(),
            message: msg,
        };
        // First pass on the text as written, for line numbers of unknown keys and wrong types
        // within the sections (top-level keys are checked by `lift_models`).
        let mut table: toml::Table = toml::from_str(text).map_err(|e| spec_err(e.to_string()))?;
        lift_models(&mut table.clone(), text).map_err(spec_err)?;
        let base: Grid = toml::from_str(text).map_err(|e| spec_err(e.to_string()))?;
        let Some(over) = base.profile.get(profile) else {
            return Err(spec_err(format!(
                "profile `{profile}` not defined; defined: {}",
                base.profile.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        for key in over.keys() {
            let section = [
                "train",
                "recall",
                "plot",
                "per_dataset",
                "search",
                "arms",
                "tune",
            ]
            .contains(&key.as_str());
            if !section && crate::registry::find(key).is_none() {
                return Err(spec_err(format!(
                    "[profile.{profile}] has unknown table `{key}`; a profile may set train, \
                     recall, plot, per_dataset, search, arms, tune or a model's table ({})",
                    crate::registry::names()
                )));
            }
        }
        merge(&mut table, over);
        // JSON, which model settings pass through, reads nan and inf as "unset": refuse them.
        if let Some(key) = crate::models::non_finite(&table, "") {
            return Err(spec_err(format!(
                "`{key}` is not a finite number; give a number, or leave the key out for its default"
            )));
        }
        lift_models(&mut table, text).map_err(spec_err)?;
        table.insert(
            "applied_profile".into(),
            toml::Value::String(profile.into()),
        );
        let grid: Grid = table.try_into().map_err(|e: toml::de::Error| {
            spec_err(format!("after applying [profile.{profile}]: {e}"))
        })?;
        grid.validate().map_err(spec_err)?;
        grid.validate_arms().map_err(spec_err)?;
        grid.validate_tune().map_err(spec_err)?;
        grid.validate_cells().map_err(spec_err)?;
        Ok(grid)
    }

    /// Resolves and checks every cell's model settings and every mask on every dataset, so
    /// that no setting is found wrong after other cells ran.
    fn validate_cells(&self) -> std::result::Result<(), String> {
        for dataset in &self.train.dataset {
            let id = DatasetId::from_name(dataset).map_err(|e| e.to_string())?;
            for c in self.corruptions() {
                if let Corruption::Mask(mask) = c {
                    let m = mask.build(id.shape(), self.recall.noise_seed);
                    if !m.iter().any(|&v| v > 0.0) {
                        return Err(format!(
                            "[recall] corruption `{c}` leaves no pixel of a {dataset} image \
                             known; keep a larger fraction"
                        ));
                    }
                }
            }
        }
        for cell in self.cells() {
            crate::models::resolve(self, &cell).map_err(|e| format!("{e} (cell {})", cell.id()))?;
            for arm in self.arm_names().iter().skip(1) {
                crate::models::resolve_arm(self, &cell, arm)
                    .map_err(|e| format!("[arms.{arm}]: {e} (cell {})", cell.id()))?;
            }
        }
        Ok(())
    }

    /// The recall arms: `paper` first, then the grid's `[arms]` in name order.
    pub fn arm_names(&self) -> Vec<String> {
        std::iter::once("paper".to_string())
            .chain(self.arms.keys().cloned())
            .collect()
    }

    fn validate_tune(&self) -> std::result::Result<(), String> {
        let Some(t) = &self.tune else {
            return Ok(());
        };
        if !self.train.development {
            return Err(
                "[tune] chooses settings by recall, which only a grid of development \
                        images may do: add `development = true` to [train] and select \
                        development images (subset = \"range:...\" or \"class:...\")"
                    .into(),
            );
        }
        if self.search.values().all(|m| m.is_empty()) {
            return Err("[tune] selects among the points of a [search]; the grid has none".into());
        }
        let names: Vec<String> = self.corruptions().iter().map(|c| c.to_string()).collect();
        let want = Corruption::parse(&t.corruption)
            .map(|c| c.to_string())
            .map_err(|e| format!("[tune] corruption: {e}"))?;
        if !names.contains(&want) {
            return Err(format!(
                "[tune] corruption `{}` is not among [recall] corruption ({})",
                t.corruption,
                names.join(", ")
            ));
        }
        if !self.arm_names().contains(&t.arm) {
            return Err(format!(
                "[tune] arm `{}` is not one of the grid's arms ({})",
                t.arm,
                self.arm_names().join(", ")
            ));
        }
        Ok(())
    }

    fn validate_arms(&self) -> std::result::Result<(), String> {
        for (arm, models) in &self.arms {
            if arm == "paper"
                || arm.is_empty()
                || !arm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "[arms.{arm}]: an arm is named in lower-case letters, digits and _, and \
                     `paper` is the model tables themselves"
                ));
            }
            for (model, table) in models {
                let kind = ModelKind::from_name(model).map_err(|e| format!("[arms.{arm}]: {e}"))?;
                if !self.train.model.contains(&kind) {
                    return Err(format!(
                        "[arms.{arm}.{model}]: `{model}` is not among [train] model"
                    ));
                }
                if let Some(k) = table.keys().find(|k| *k != "recall") {
                    return Err(format!(
                        "[arms.{arm}.{model}]: `{k}`: an arm changes recall settings only (the \
                         model is trained once for all arms); put training settings in [{model}]"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads and parses a grid file.
    pub fn load(path: &Path, profile: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), profile)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        let nonempty = |name: &str, len: usize| {
            if len == 0 {
                Err(format!("[train] {name} is empty; give at least one value"))
            } else {
                Ok(())
            }
        };
        nonempty("dataset", t.dataset.len())?;
        nonempty("n_images", t.n_images.len())?;
        nonempty("model", t.model.len())?;
        nonempty("hidden", t.hidden.len())?;
        nonempty("layers", t.layers.len())?;
        nonempty("seed", t.seed.len())?;
        for d in &t.dataset {
            DatasetId::from_name(d).map_err(|e| format!("[train] dataset: {e}"))?;
        }
        if let Some(bad) = t.n_images.iter().find(|&&n| n == 0) {
            return Err(format!(
                "[train] n_images contains {bad}; must be at least 1"
            ));
        }
        if t.hidden.contains(&0) || t.layers.contains(&0) {
            return Err("[train] hidden and layers must be at least 1".into());
        }
        let class_ok = |l: &str| l.parse::<u32>().is_ok();
        if t.subset != "first"
            && t.subset.strip_prefix("class:").is_none_or(|l| !class_ok(l))
            && parse_range(&t.subset).is_none()
        {
            return Err(format!(
                "[train] subset `{}` must be `first`, `class:<label>` or `range:<from>-<to>` \
                 (from <= to, e.g. range:2000-3999)",
                t.subset
            ));
        }
        if t.split != "train" && t.split != "test" {
            return Err(format!("[train] split `{}` must be train or test", t.split));
        }
        if self.recall.corruption.is_empty() {
            return Err("[recall] corruption is empty".into());
        }
        for c in &self.recall.corruption {
            Corruption::parse(c).map_err(|e| format!("[recall] {e}"))?;
        }
        for th in [
            self.recall.threshold,
            self.recall.threshold_noise,
            self.recall.threshold_mask,
        ]
        .into_iter()
        .flatten()
        {
            if !(th.is_finite() && th > 0.0) {
                return Err(format!("[recall] threshold {th} must be > 0"));
            }
        }
        if self.recall.threshold.is_none()
            && (self.recall.threshold_noise.is_none() || self.recall.threshold_mask.is_none())
        {
            return Err(
                "[recall] give `threshold`, or both `threshold_noise` and `threshold_mask`".into(),
            );
        }
        let model_names = t
            .model
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ");
        let trains = |model: &str| t.model.iter().any(|m| m.name() == model);
        for (dataset, models) in &self.per_dataset {
            // A profile may train on fewer datasets than the table names: only the name is
            // checked here.
            DatasetId::from_name(dataset).map_err(|e| format!("[per_dataset.{dataset}]: {e}"))?;
            for model in models.keys() {
                if !trains(model) {
                    return Err(format!(
                        "[per_dataset.{dataset}.{model}]: no model `{model}` in [train] model ({model_names})"
                    ));
                }
            }
        }
        for (model, keys) in &self.search {
            if !trains(model) {
                return Err(format!(
                    "[search.{model}]: no model `{model}` in [train] model; searchable: {model_names}"
                ));
            }
            for (path, values) in keys {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(format!(
                        "[search.{model}] key `{path}` must be a dotted path such as \"inference.gamma\""
                    ));
                }
                if values.is_empty() {
                    return Err(format!(
                        "[search.{model}] `{path}` is empty; give at least one value"
                    ));
                }
                if values.iter().any(|v| v.is_table() || v.is_array()) {
                    return Err(format!(
                        "[search.{model}] `{path}`: values must be numbers, strings or booleans"
                    ));
                }
            }
        }
        if !["capacity", "table", "images"].contains(&self.plot.kind.as_str()) {
            return Err(format!(
                "[plot] kind `{}` must be capacity, table or images",
                self.plot.kind
            ));
        }
        Ok(())
    }

    /// The retrieval threshold for a corruption.
    pub fn threshold(&self, c: &Corruption) -> f64 {
        let specific = match c {
            Corruption::Noise(_) => self.recall.threshold_noise,
            Corruption::Mask(_) => self.recall.threshold_mask,
        };
        specific.or(self.recall.threshold).expect("validated")
    }

    /// Parsed corruptions.
    pub fn corruptions(&self) -> Vec<Corruption> {
        self.recall
            .corruption
            .iter()
            .map(|c| Corruption::parse(c).expect("validated"))
            .collect()
    }

    /// Every training cell, in a stable order.
    pub fn cells(&self) -> Vec<Cell> {
        let t = &self.train;
        let mut out = Vec::new();
        for dataset in &t.dataset {
            for &n_images in &t.n_images {
                for &model in &t.model {
                    // Width and depth do not apply to the Hopfield networks: one cell each.
                    let (hidden, layers): (Vec<usize>, Vec<usize>) = if model.sized() {
                        (t.hidden.clone(), t.layers.clone())
                    } else {
                        (vec![0], vec![0])
                    };
                    for &h in &hidden {
                        for &l in &layers {
                            for &seed in &t.seed {
                                for (search, _) in self.search_points(model) {
                                    out.push(Cell {
                                        dataset: dataset.clone(),
                                        n_images,
                                        model,
                                        hidden: h,
                                        layers: l,
                                        seed,
                                        search,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The search points of a model kind with their labels, in a stable order: the cartesian
    /// product of `[search.<model>]`, or one unlabelled point when there is none.
    pub fn search_points(&self, kind: ModelKind) -> Vec<(String, Vec<(String, toml::Value)>)> {
        let mut points: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
        if let Some(keys) = self.search.get(kind.name()) {
            for (path, values) in keys {
                points = points
                    .into_iter()
                    .flat_map(|p| {
                        values.iter().map(move |v| {
                            let mut q = p.clone();
                            q.push((path.clone(), v.clone()));
                            q
                        })
                    })
                    .collect();
            }
        }
        points.into_iter().map(|p| (point_label(&p), p)).collect()
    }

    /// The settings table of a cell's model: [`Grid::model_table`] with the cell's dataset's
    /// settings (`[per_dataset.<dataset>.<model>]`) and then its search point applied. An
    /// unknown point (a record from an edited grid) is an error naming it.
    pub fn cell_table(&self, cell: &Cell) -> std::result::Result<toml::Table, String> {
        let mut table = self.model_table(cell.model).clone();
        if let Some(over) = self
            .per_dataset
            .get(&cell.dataset)
            .and_then(|models| models.get(cell.model.name()))
        {
            merge(&mut table, over);
        }
        if cell.search.is_empty() {
            return Ok(table);
        }
        let (_, point) = self
            .search_points(cell.model)
            .into_iter()
            .find(|(label, _)| *label == cell.search)
            .ok_or_else(|| {
                format!(
                    "search point `{}` is not in [search.{}]",
                    cell.search,
                    cell.model.name()
                )
            })?;
        for (path, value) in point {
            set_path(&mut table, &path, value);
        }
        Ok(table)
    }

    /// Settings table of a model kind (after the profile); empty when the grid gives none.
    pub fn model_table(&self, kind: ModelKind) -> &toml::Table {
        static EMPTY: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();
        self.models
            .get(kind.name())
            .unwrap_or_else(|| EMPTY.get_or_init(toml::Table::new))
    }
}
