//! The models a grid can name, as registered in [`crate::registry::MODELS`].

use std::fmt;

use serde::{Deserialize, Serialize};

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
