//! A set of images as flat `f32` rows, with labels, names and the SHA-256 of the bytes used.
//!
//! Pixels are stored channel-major per image (all of channel 0, then channel 1, ...), the layout
//! of CIFAR-10's records, so that a row is a flattened image of `channels * height * width`
//! values. Values are in `[0, 1]` as loaded; see [`crate::transforms`] for other ranges.
//!
//! ```
//! use pcmem_data::{ImageSet, Selection};
//! let set = ImageSet::from_rows(vec![0.0; 4 * 12], 4, (3, 2, 2), vec![0, 1, 0, 1], "demo").unwrap();
//! let firsts = set.select(&Selection::First(2)).unwrap();
//! assert_eq!(firsts.len(), 2);
//! let ones = set.select(&Selection::Class { label: 1, n: 2 }).unwrap();
//! assert_eq!(ones.labels, vec![1, 1]);
//! ```

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// Images, one flattened image per row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `len() * dim()` values, row-major, channel-major within a row.
    pub pixels: Vec<f32>,
    /// Channels, height, width.
    pub shape: (usize, usize, usize),
    /// One label per image (class index; 0 where the dataset has none).
    pub labels: Vec<u32>,
    /// One name per image (file name or record index), for reports.
    pub names: Vec<String>,
    /// Hex SHA-256 of exactly the source bytes of the images in this set, in order.
    pub sha256: String,
    /// Where the images came from (dataset, file or folder).
    pub source: String,
    /// Position of each image in the dataset's own order (the split as its loader reads it);
    /// empty for a set that is itself the whole order.
    pub positions: Vec<usize>,
}

/// How a subset is chosen; always deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Selection {
    /// The first `n` images in the dataset's own order.
    First(usize),
    /// The first `n` images with this label.
    Class {
        /// Class index.
        label: u32,
        /// How many.
        n: usize,
    },
    /// `n` images drawn without replacement with a seeded generator (kept in dataset order).
    Random {
        /// How many.
        n: usize,
        /// Seed of the draw.
        seed: u64,
    },
    /// The first `n` images among positions `from..=to` of the dataset's own order (e.g. the
    /// declared development images, [`crate::development`]).
    Range {
        /// First position (0-based).
        from: usize,
        /// Last position, inclusive.
        to: usize,
        /// How many.
        n: usize,
    },
    /// Every image.
    All,
}

/// Hex SHA-256 over a sequence of byte slices (concatenated).
pub fn sha256_hex<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ImageSet {
    /// Builds a set from rows; the hash is of the little-endian bytes of the values.
    pub fn from_rows(
        pixels: Vec<f32>,
        n: usize,
        shape: (usize, usize, usize),
        labels: Vec<u32>,
        source: &str,
    ) -> Result<Self> {
        let dim = shape.0 * shape.1 * shape.2;
        if pixels.len() != n * dim || labels.len() != n {
            return Err(DataError::Invalid(format!(
                "{source}: {} values and {} labels for {n} images of shape {shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(Self {
            sha256: sha256_hex([bytes.as_slice()]),
            pixels,
            shape,
            labels,
            names: (0..n).map(|i| i.to_string()).collect(),
            source: source.to_string(),
            positions: (0..n).collect(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (`channels * height * width`).
    pub fn dim(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// Image `i` as a flat row.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.pixels[i * self.dim()..(i + 1) * self.dim()]
    }

    /// The images at `indices`, in that order. `hashes[i]` is the SHA-256 of image `i`'s source
    /// bytes when known (then the subset's hash covers exactly those), else the pixel values.
    pub fn pick(&self, indices: &[usize], hashes: Option<&[[u8; 32]]>) -> Self {
        let dim = self.dim();
        let mut pixels = Vec::with_capacity(indices.len() * dim);
        for &i in indices {
            pixels.extend_from_slice(self.row(i));
        }
        let sha256 = match hashes {
            Some(h) => sha256_hex(indices.iter().map(|&i| h[i].as_slice())),
            None => {
                let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
                sha256_hex([bytes.as_slice()])
            }
        };
        Self {
            pixels,
            shape: self.shape,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            names: indices.iter().map(|&i| self.names[i].clone()).collect(),
            sha256,
            source: self.source.clone(),
            positions: indices
                .iter()
                .map(|&i| self.positions.get(i).copied().unwrap_or(i))
                .collect(),
        }
    }

    /// Indices chosen by `sel`, or an error saying how many images are available.
    pub fn indices(&self, sel: &Selection) -> Result<Vec<usize>> {
        let short = |want: usize, have: usize, what: &str| {
            DataError::Invalid(format!(
                "{}: asked for {want} images{what}, only {have} available",
                self.source
            ))
        };
        match *sel {
            Selection::All => Ok((0..self.len()).collect()),
            Selection::First(n) => {
                if n > self.len() {
                    return Err(short(n, self.len(), ""));
                }
                Ok((0..n).collect())
            }
            Selection::Class { label, n } => {
                let idx: Vec<usize> = (0..self.len())
                    .filter(|&i| self.labels[i] == label)
                    .collect();
                if n > idx.len() {
                    return Err(short(n, idx.len(), &format!(" of class {label}")));
                }
                Ok(idx[..n].to_vec())
            }
            Selection::Range { from, to, n } => {
                let end = to.min(self.len().saturating_sub(1));
                let have = if from > end { 0 } else { end - from + 1 };
                if n > have || from > to {
                    return Err(short(n, have, &format!(" in positions {from}..={to}")));
                }
                Ok((from..from + n).collect())
            }
            Selection::Random { n, seed } => {
                if n > self.len() {
                    return Err(short(n, self.len(), ""));
                }
                let mut idx: Vec<usize> = (0..self.len()).collect();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                idx.shuffle(&mut rng);
                let mut chosen = idx[..n].to_vec();
                chosen.sort_unstable();
                Ok(chosen)
            }
        }
    }

    /// The subset chosen by `sel` (hash over the pixel values; loaders that know the source
    /// bytes select before decoding and hash those instead).
    pub fn select(&self, sel: &Selection) -> Result<Self> {
        Ok(self.pick(&self.indices(sel)?, None))
    }
}
