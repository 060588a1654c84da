//! One training run of a grid and its identifier.

use serde::{Deserialize, Serialize};

use super::ModelKind;

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
