//! The one error type of this crate.

/// What can go wrong when fitting or recalling with a baseline.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// A configuration value is out of range.
    #[error("invalid config value `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// Field name.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A tensor has the wrong shape.
    #[error("{what} has shape {got:?}, expected {expected}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Shape given.
        got: Vec<usize>,
        /// Expected shape, in words.
        expected: String,
    },
    /// Recall was asked of a memory that stores nothing yet.
    #[error("{model}: recall before fit; call fit with the patterns to store first")]
    NotFitted {
        /// Which model.
        model: &'static str,
    },
    /// A Hopfield network was given patterns that are not +1/-1.
    #[error("{model}: patterns must be bipolar (+1/-1); binarise them first (pcmem_data::transforms::binarise)")]
    NotBipolar {
        /// Which model.
        model: &'static str,
    },
    /// Input holds NaN or infinite values.
    #[error("{what} contains NaN or infinite values")]
    NonFinite {
        /// Which argument.
        what: &'static str,
    },
    /// Training diverged.
    #[error("{model}: training loss became {loss} at epoch {epoch}; try a smaller learning rate")]
    Diverged {
        /// Which model.
        model: &'static str,
        /// Epoch.
        epoch: usize,
        /// The loss seen.
        loss: f64,
    },
    /// The explicit CPU training pass found a parameter, moment or gradient that is not a
    /// contiguous f32 CPU tensor of the expected size (a bug, not an input error).
    #[error("autoencoder: a parameter is not contiguous f32 on the CPU; use_autograd(true) trains with candle's autograd instead")]
    CpuParameters,
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a saved model failed.
    #[error("{path}: {reason}")]
    Saved {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// `Err(InvalidConfig)` for `field` = `value`, with what is allowed: the one way the configs'
/// `validate` methods refuse a setting.
pub(crate) fn bad<T>(field: &'static str, value: String, reason: &'static str) -> Result<T> {
    Err(BaselineError::InvalidConfig {
        field,
        value,
        reason,
    })
}

/// Result alias of this crate.
pub type Result<T, E = BaselineError> = std::result::Result<T, E>;

pub(crate) fn check_rows(
    what: &'static str,
    t: &candle_core::Tensor,
    d: Option<usize>,
) -> Result<()> {
    let ok = t.rank() == 2 && t.dims()[0] > 0 && d.is_none_or(|d| t.dims()[1] == d);
    if !ok {
        return Err(BaselineError::Shape {
            what,
            got: t.dims().to_vec(),
            expected: match d {
                Some(d) => format!("[rows >= 1, {d}]"),
                None => "[rows >= 1, d]".into(),
            },
        });
    }
    let s = t
        .abs()?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    if !s.is_finite() {
        return Err(BaselineError::NonFinite { what });
    }
    Ok(())
}

/// Checks a known-pixel mask against cues of `rows x d`; returns it as `(rows, d)` f32.
pub(crate) fn mask_for(
    known: &candle_core::Tensor,
    rows: usize,
    d: usize,
) -> Result<candle_core::Tensor> {
    if known.rank() != 2
        || known.dims()[1] != d
        || (known.dims()[0] != 1 && known.dims()[0] != rows)
    {
        return Err(BaselineError::Shape {
            what: "known-pixel mask",
            got: known.dims().to_vec(),
            expected: format!("[{rows}, {d}] or [1, {d}] of 0/1"),
        });
    }
    Ok(known
        .to_dtype(candle_core::DType::F32)?
        .broadcast_as((rows, d))?
        .contiguous()?)
}

/// Applies `map` to `cues` (`(rows, d)`) until no value moves by more than `tolerance` or
/// `max_iterations` applications, putting the known pixels of `mask` (1 = known) back after
/// every application: the recall loop of the baselines whose recall iterates a map.
pub(crate) fn iterate_clamped(
    cues: &candle_core::Tensor,
    mask: Option<&candle_core::Tensor>,
    max_iterations: usize,
    tolerance: f64,
    mut map: impl FnMut(&candle_core::Tensor) -> Result<candle_core::Tensor>,
) -> Result<pcmem_model::Recall> {
    let mut x = cues.clone();
    let (mut steps, mut converged) = (0, false);
    for _ in 0..max_iterations {
        let mut next = map(&x)?;
        if let Some(m) = mask {
            next = (m * cues + (m.affine(-1.0, 1.0)? * next)?)?;
        }
        let moved = (&next - &x)?.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        x = next;
        steps += 1;
        if moved <= tolerance {
            converged = true;
            break;
        }
    }
    Ok(pcmem_model::Recall {
        images: x,
        steps,
        converged,
    })
}
