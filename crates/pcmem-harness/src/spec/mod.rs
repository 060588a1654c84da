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
use std::path::Path;

use pcmem_data::DatasetId;
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};

mod axes;
mod cell;
mod corruption;
mod model_kind;

pub use axes::{parse_range, PlotSpec, RecallAxes, TrainAxes};
pub use cell::Cell;
pub use corruption::Corruption;
pub use model_kind::ModelKind;

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
    #[serde(default)]
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
