//! The `[train]`, `[recall]` and `[plot]` sections of a grid, with their documented defaults.

use serde::{Deserialize, Serialize};

use super::ModelKind;

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
    /// Corruptions, in the compact form of [`Corruption::parse`](super::Corruption::parse).
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

/// A grid without `[plot]`: capacity plots against `n_images`, no picture grids.
impl Default for PlotSpec {
    fn default() -> Self {
        PlotSpec {
            kind: "capacity".into(),
            x: default_x(),
            pictures: false,
        }
    }
}
