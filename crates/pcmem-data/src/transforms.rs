//! Corruptions and conversions the experiments need: pixel ranges, seeded Gaussian noise,
//! known-pixel masks, binarisation for Hopfield networks, and images back from rows.
//!
//! A mask is a `Vec<f32>` of length `channels * height * width` with 1 where a pixel is known
//! (kept) and 0 where it is hidden; the same mask applies to every image of a batch.
//!
//! ```
//! use pcmem_data::transforms::{Mask, Noise};
//! let m = Mask::TopRows { fraction: 0.5 }.build((3, 4, 4), 0);
//! assert_eq!(m.iter().sum::<f32>(), 24.0); // top 2 of 4 rows, 3 channels
//! let mut x = vec![0.5f32; 1000];
//! Noise::Variance(0.2).apply(&mut x, 7);
//! assert!(x.iter().any(|&v| v != 0.5));
//! ```

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Pixel range of the model's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PixelRange {
    /// `[0, 1]` (as loaded; the default).
    #[default]
    ZeroOne,
    /// `[-1, 1]`.
    MinusOneOne,
}

impl PixelRange {
    /// Maps `[0, 1]` values into this range, in place.
    pub fn apply(self, x: &mut [f32]) {
        if self == PixelRange::MinusOneOne {
            x.iter_mut().for_each(|v| *v = 2.0 * *v - 1.0);
        }
    }

    /// Maps values of this range back to `[0, 1]` (for pictures), in place.
    pub fn invert(self, x: &mut [f32]) {
        if self == PixelRange::MinusOneOne {
            x.iter_mut().for_each(|v| *v = 0.5 * (*v + 1.0));
        }
    }
}

/// Additive Gaussian noise, no clipping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// Zero-mean noise of this variance (the paper's "Gaussian noise of variance 0.2").
    Variance(f64),
    /// Zero-mean noise of this standard deviation.
    Std(f64),
}

impl Noise {
    /// Standard deviation of this noise.
    pub fn std(self) -> f64 {
        match self {
            Noise::Variance(v) => v.max(0.0).sqrt(),
            Noise::Std(s) => s.max(0.0),
        }
    }

    /// Adds seeded noise to `x` in place.
    pub fn apply(self, x: &mut [f32], seed: u64) {
        let std = self.std() as f32;
        if std == 0.0 {
            return;
        }
        let normal = Normal::new(0.0f32, std).expect("finite std");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        x.iter_mut().for_each(|v| *v += normal.sample(&mut rng));
    }
}

/// Which pixels of an image are known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mask {
    /// Keep the top `round(fraction * height)` rows, all channels (the paper's partial images).
    TopRows {
        /// Fraction of rows kept.
        fraction: f64,
    },
    /// Keep a seeded random `fraction` of pixel positions, all channels.
    RandomPixels {
        /// Fraction of pixel positions kept.
        fraction: f64,
    },
    /// Hide a centred square covering `fraction` of the image's side (Fig. 10).
    CentrePatch {
        /// Side of the hidden square as a fraction of the image's side.
        fraction: f64,
    },
    /// Hide the right `round(fraction * width)` columns.
    RightColumns {
        /// Fraction of columns hidden.
        fraction: f64,
    },
}

impl Mask {
    /// The known-pixel mask for images of `(channels, height, width)`; `seed` is used by
    /// random masks only.
    pub fn build(self, (c, h, w): (usize, usize, usize), seed: u64) -> Vec<f32> {
        let clamp = |f: f64| f.clamp(0.0, 1.0);
        let mut plane = vec![0f32; h * w];
        match self {
            Mask::TopRows { fraction } => {
                let rows = (clamp(fraction) * h as f64).round() as usize;
                plane[..rows * w].fill(1.0);
            }
            Mask::RandomPixels { fraction } => {
                let k = (clamp(fraction) * (h * w) as f64).round() as usize;
                let mut idx: Vec<usize> = (0..h * w).collect();
                idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                idx[..k].iter().for_each(|&i| plane[i] = 1.0);
            }
            Mask::CentrePatch { fraction } => {
                plane.fill(1.0);
                let (ph, pw) = (
                    (clamp(fraction) * h as f64).round() as usize,
                    (clamp(fraction) * w as f64).round() as usize,
                );
                let (y0, x0) = ((h - ph) / 2, (w - pw) / 2);
                for y in y0..y0 + ph {
                    plane[y * w + x0..y * w + x0 + pw].fill(0.0);
                }
            }
            Mask::RightColumns { fraction } => {
                let cols = (clamp(fraction) * w as f64).round() as usize;
                for y in 0..h {
                    plane[y * w..y * w + w - cols].fill(1.0);
                }
            }
        }
        plane.repeat(c)
    }
}

/// Applies a known-pixel mask to every row of `x`: hidden pixels are set to `fill`.
pub fn apply_mask(x: &mut [f32], mask: &[f32], fill: f32) {
    for row in x.chunks_mut(mask.len()) {
        for (v, &m) in row.iter_mut().zip(mask) {
            if m == 0.0 {
                *v = fill;
            }
        }
    }
}

/// Bipolar patterns for Hopfield networks: +1 where `x > threshold`, -1 elsewhere.
pub fn binarise(x: &[f32], threshold: f32) -> Vec<f32> {
    x.iter()
        .map(|&v| if v > threshold { 1.0 } else { -1.0 })
        .collect()
}

/// One channel-major row back to an interleaved 8-bit image (`height * width * channels`),
/// clamping to `[0, 1]`; for plotting.
pub fn to_hwc_u8(row: &[f32], (c, h, w): (usize, usize, usize)) -> Vec<u8> {
    let mut out = vec![0u8; h * w * c];
    for ch in 0..c {
        for i in 0..h * w {
            out[i * c + ch] = (row[ch * h * w + i].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    out
}
