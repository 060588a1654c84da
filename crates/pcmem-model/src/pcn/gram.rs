//! The Gram identity on candle operations, for any device (what [`Kernel::Fused`] runs off the
//! CPU, and [`Kernel::CandleGram`] everywhere).
//!
//! While the sensory layer is clamped (training, recall from noise) and the non-linearity is
//! pre-synaptic, `x_0` does not move during a relaxation, so layer 1's bottom-up term
//! `eps_0 W_1 = x_0 W_1 - f(x_1) W_1^T W_1 = C - f(x_1) G` needs one `N x n x n` product per step
//! instead of the two `N x d x n` products of the prediction and its transpose; `G` and `C` are
//! formed once per relaxation. The sensory energy follows from the same terms:
//! `|eps_0|^2 = |x_0|^2 + sum f(x_1) (f(x_1) G - 2 C)`. Same energy, same fixed points: only the
//! order of the floating-point sums differs (the tests hold it to the direct form).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_model::{Kernel, PcnConfig};
//! let mut cfg = PcnConfig::new(8, 4);
//! cfg.inference.steps = 20;
//! let dev = Device::Cpu;
//! let data = Tensor::rand(0f32, 1f32, (6, 8), &dev)?;
//! let mut a = cfg.init_with_kernel(&dev, Kernel::Candle)?;
//! let mut b = a.clone();
//! b.set_kernel(Kernel::CandleGram)?;
//! let (ea, eb) = (a.train_step(&data)?.0.energy, b.train_step(&data)?.0.energy);
//! assert!((ea - eb).abs() <= 1e-4 * ea.abs());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::*;

/// What stays fixed during a clamped relaxation: `G = W_1^T W_1`, `C = x_0 W_1` and `|x_0|^2`.
pub(super) struct GramTerms {
    g: Tensor,
    c: Tensor,
    x0_sq: f64,
    /// An empty host tensor standing in for the sensory errors that are not formed: any use of
    /// it fails on its shape (or device) instead of reading stale numbers. Kept on the host: a
    /// zero-byte allocation is an error on some CUDA drivers.
    absent: Tensor,
}

/// Layer 1's part of a forward pass in Gram form.
pub(super) struct GramPart {
    /// `eps_0 W_1 = C - f(x_1) G`, `(rows, n)`.
    pub(super) back: Tensor,
    /// `f(x_1) G`.
    fg: Tensor,
    c: Tensor,
    x0_sq: f64,
}

impl GramPart {
    /// `|eps_0|^2` from the Gram terms (summed in f64).
    pub(super) fn sensory_sq(&self, f1: &Tensor) -> Result<f64> {
        let s = (f1 * (&self.fg - self.c.affine(2.0, 0.0)?)?)?
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        Ok(self.x0_sq + s)
    }
}

impl Pcn {
    /// Whether a relaxation of `rows` rows and `steps` steps with the sensory layer clamped
    /// runs in Gram form: the kernel asks for it on this device, the non-linearity is
    /// pre-synaptic, and the per-step saving outweighs forming `G` (the CPU engine's rule).
    pub(super) fn gram_applies(&self, rows: usize, steps: usize) -> bool {
        let asked = match self.kernel {
            Kernel::CandleGram => true,
            Kernel::Fused => !self.device.is_cpu(),
            Kernel::FusedDirect | Kernel::Candle => false,
        };
        asked
            && self.config.placement == ActivationPlacement::PreSynaptic
            && 2 * steps * rows > self.config.hidden_dim
    }

    /// `G`, `C` and `|x_0|^2` for a relaxation from the clamped sensory values `x0`.
    pub(super) fn gram_terms(&self, x0: &Tensor) -> Result<GramTerms> {
        let w = &self.weights[0];
        Ok(GramTerms {
            g: w.t()?.matmul(w)?,
            c: x0.matmul(w)?,
            x0_sq: sum_sq(x0)?,
            absent: Tensor::zeros(0, DType::F32, &Device::Cpu)?,
        })
    }

    /// Layer 1 of a forward pass in Gram form at `x1`: `(f(x_1), placeholder, part)`.
    pub(super) fn gram_layer(
        &self,
        t: &GramTerms,
        x1: &Tensor,
    ) -> Result<(Tensor, Tensor, GramPart)> {
        let f1 = self.act(x1)?;
        let fg = f1.matmul(&t.g)?;
        let part = GramPart {
            back: (&t.c - &fg)?,
            fg,
            c: t.c.clone(),
            x0_sq: t.x0_sq,
        };
        Ok((f1, t.absent.clone(), part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MemoryPrior, ValueInit};

    /// At random states the Gram form gives the direct form's energy and value-node gradients
    /// (a wrong sign or factor in `C - f G` or in the sensory energy fails here).
    #[test]
    fn gram_form_equals_direct_form_at_random_states() {
        for (activation, layers, prior) in [
            (Activation::Relu, 2, MemoryPrior::Learned),
            (Activation::Tanh, 3, MemoryPrior::Free),
            (Activation::Identity, 1, MemoryPrior::Learned),
        ] {
            let mut cfg = PcnConfig::new(40, 12);
            cfg.layers = layers;
            cfg.activation = activation;
            cfg.memory_prior = prior;
            cfg.value_init = ValueInit::Random { std: 0.7 };
            let pcn = cfg
                .init_with_kernel(&Device::Cpu, Kernel::CandleGram)
                .unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let v: Vec<f32> = (0..5 * 40)
                .map(|_| rand::Rng::gen::<f32>(&mut rng))
                .collect();
            let x0 = Tensor::from_vec(v, (5, 40), &Device::Cpu).unwrap();
            let x = pcn.init_values(&x0, &mut rng).unwrap();
            let terms = pcn.gram_terms(&x.0[0]).unwrap();
            let direct = pcn.forward(&x.0).unwrap();
            let gram = pcn.forward_with(&x.0, Some(&terms)).unwrap();
            let (ed, eg) = (
                Pcn::energy_of(&direct).unwrap(),
                Pcn::energy_of(&gram).unwrap(),
            );
            assert!(
                (ed - eg).abs() <= 1e-5 * ed,
                "{activation:?}: energy {ed} vs {eg}"
            );
            let gd = pcn.hidden_grads(&x.0, &direct).unwrap();
            let gg = pcn.hidden_grads(&x.0, &gram).unwrap();
            let max_abs =
                |t: Tensor| -> f32 { t.abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
            for (l, (a, b)) in gd.iter().zip(&gg).enumerate() {
                let (diff, scale) = (max_abs((a - b).unwrap()), max_abs(a.clone()));
                assert!(
                    diff <= 1e-5 * scale,
                    "{activation:?}: layer {} gradient off by {diff}",
                    l + 1
                );
            }
            // The sensory errors are not formed in Gram form: reading them fails loudly.
            assert!((&gram.eps[0] - &x.0[0]).is_err());
        }
    }
}
