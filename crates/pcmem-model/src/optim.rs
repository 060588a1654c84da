//! The optimiser's update rule, written once for both kernels: [`AdamStep`] holds one Adam
//! step's constants (the bias corrections of its step number) and applies the rule to candle
//! tensors (the reference kernel, any device) or to f32 slices (the fused CPU kernel), with the
//! same arithmetic in the same order.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::optim::AdamStep;
//! let step = AdamStep::at(1, 0.1, 0.9, 0.999, 1e-8);
//! let (mut p, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
//! step.slices(&mut p, &mut m, &mut v, &[2.0]);
//! // The first Adam step moves each parameter by alpha against the gradient's sign.
//! assert!((p[0] - 0.9).abs() < 1e-6);
//! let dev = Device::Cpu;
//! let (mut pt, mut mt, mut vt) = (
//!     Tensor::new(&[1.0f32], &dev)?,
//!     Tensor::new(&[0.0f32], &dev)?,
//!     Tensor::new(&[0.0f32], &dev)?,
//! );
//! step.tensors(&mut pt, &mut mt, &mut vt, &Tensor::new(&[2.0f32], &dev)?)?;
//! assert!((pt.to_vec1::<f32>()?[0] - p[0]).abs() < 1e-6);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::Tensor;

/// One Adam step (Kingma and Ba 2015) at step number `t`: `m = b1 m + (1 - b1) g`,
/// `v = b2 v + (1 - b2) g^2`, `p -= alpha / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// `alpha / (1 - b1^t)`.
    pub lr: f64,
    /// `1 / (1 - b2^t)`.
    pub inv_bc2: f64,
    /// Decay of the first moment.
    pub b1: f64,
    /// Decay of the second moment.
    pub b2: f64,
    /// Added to the second moment's root.
    pub eps: f64,
}

impl AdamStep {
    /// The constants of step number `t` (1 for the first update).
    pub fn at(t: i32, alpha: f64, b1: f64, b2: f64, eps: f64) -> Self {
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        Self {
            lr: alpha / bc1,
            inv_bc2: 1.0 / bc2,
            b1,
            b2,
            eps,
        }
    }

    /// The rule on f32 slices of equal length, in place.
    pub fn slices(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let (lr, b1, b2, eps) = (
            self.lr as f32,
            self.b1 as f32,
            self.b2 as f32,
            self.eps as f32,
        );
        let inv_bc2 = self.inv_bc2 as f32;
        for (((pv, mv), vv), &gv) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            *mv = b1 * *mv + (1.0 - b1) * gv;
            *vv = b2 * *vv + (1.0 - b2) * gv * gv;
            *pv -= lr * *mv / ((*vv * inv_bc2).sqrt() + eps);
        }
    }

    /// The rule on candle tensors of one shape (any device).
    pub fn tensors(
        &self,
        p: &mut Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        g: &Tensor,
    ) -> candle_core::Result<()> {
        *m = (m.affine(self.b1, 0.0)? + g.affine(1.0 - self.b1, 0.0)?)?;
        *v = (v.affine(self.b2, 0.0)? + g.sqr()?.affine(1.0 - self.b2, 0.0)?)?;
        let denom = v.affine(self.inv_bc2, 0.0)?.sqrt()?.affine(1.0, self.eps)?;
        let upd = m.affine(self.lr, 0.0)?.div(&denom)?;
        *p = (&*p - upd)?;
        Ok(())
    }
}
