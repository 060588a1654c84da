//! The models a grid can name: one line each. To add an associative memory, implement
//! [`pcmem_model::AssociativeMemory`] and [`pcmem_model::ModelFactory`] in one file (see
//! [`pcmem_model::factory`] for a complete example), add `&Registered::<YourFactory>::NEW` to
//! [`MODELS`], and name it in a grid: `[train] model = ["your_name"]` with its settings in a
//! top-level `[your_name]` table. Everything else (validation of the table when the grid is
//! read, sizes, `--dry-run` estimates, records, the report) follows from the factory.
//!
//! ```
//! let names: Vec<&str> = pcmem_harness::registry::MODELS.iter().map(|f| f.name()).collect();
//! assert!(names.contains(&"pcn") && names.contains(&"uhn") && names.contains(&"drdam"));
//! assert!(pcmem_harness::registry::find("dense_am").unwrap().bipolar());
//! ```

use pcmem_baselines::{
    AutoencoderFactory, DenseAmFactory, DrDamFactory, HopfieldFactory, ModernHopfieldFactory,
    UhnFactory,
};
use pcmem_model::factory::{Factory, Registered};
use pcmem_model::PcnFactory;

/// Every registered model, in the order listings show them.
pub static MODELS: &[&dyn Factory] = &[
    &Registered::<PcnFactory>::NEW,
    &Registered::<AutoencoderFactory>::NEW,
    &Registered::<ModernHopfieldFactory>::NEW,
    &Registered::<HopfieldFactory>::NEW,
    &Registered::<DenseAmFactory>::NEW,
    &Registered::<UhnFactory>::NEW,
    &Registered::<DrDamFactory>::NEW,
];

/// The factory of a model name.
pub fn find(name: &str) -> Option<&'static dyn Factory> {
    MODELS.iter().copied().find(|f| f.name() == name)
}

/// Every registered name, comma-separated (for error messages).
pub fn names() -> String {
    MODELS
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::MODELS;
    use pcmem_model::Sizes;

    /// Every registered model prices its recall (from noise and from a partial image) above
    /// zero at its defaults, growing with the images recalled: `--dry-run` never reads a
    /// recall as free.
    #[test]
    fn every_model_prices_its_recall() {
        let sizes = |n_images| Sizes {
            input_dim: 784,
            hidden: 16,
            layers: 2,
            n_images,
            ..Sizes::default()
        };
        for f in MODELS {
            let config = f
                .resolve(&serde_json::json!({}), &sizes(10))
                .unwrap_or_else(|e| panic!("{}: {e}", f.name()));
            for masked in [false, true] {
                let small = f.recall_gflop(&config, &sizes(10), masked);
                let large = f.recall_gflop(&config, &sizes(20), masked);
                assert!(
                    small > 0.0 && large > small,
                    "{} {masked}: {small} {large}",
                    f.name()
                );
            }
        }
    }
}
