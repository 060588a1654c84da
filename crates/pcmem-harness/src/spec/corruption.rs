//! The corruptions a grid recalls from: noise and masks, as a grid writes them.

use std::fmt;

use pcmem_data::transforms::{Mask, Noise};

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
