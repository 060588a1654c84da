//! Adam without weight decay for the autoencoder, in the arithmetic of candle-nn's `AdamW`
//! (which trained the autoencoder first): `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`, each product a candle affine map
//! (`x * a + 0` in f32) in the order candle-nn applies them. Moments and step are in the open so
//! that a checkpoint can hold them.
//!
//! Two executions of the same arithmetic: candle operations (any device; fourteen tensors per
//! parameter and step) and, for contiguous f32 tensors on the CPU, one pass over each parameter
//! that updates it and its moments in place. They give the same bits (tested below); the pass
//! only saves the memory traffic, which was two thirds of an epoch for CIFAR-10 at n = 2048.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use pcmem_baselines::adam::Adam;
//! let p = Var::from_tensor(&Tensor::new(&[1.0f32, -1.0], &Device::Cpu)?)?;
//! let mut adam = Adam::new(&[p.clone()], 0.1)?;
//! let loss = (p.as_tensor() * 2.0)?.sum_all()?; // gradient 2 everywhere
//! adam.step(&[p.clone()], &loss.backward()?)?;
//! // The first step moves each parameter by the learning rate against the gradient's sign.
//! let now = p.as_tensor().to_vec1::<f32>()?;
//! assert!((now[0] - 0.9).abs() < 1e-6 && (now[1] + 1.1).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Storage, Tensor, Var};
use rayon::prelude::*;

use crate::error::Result;

/// Elements per parallel task of the CPU pass.
const CHUNK: usize = 1 << 15;

/// Adam's state for a list of parameters.
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// Steps taken.
    pub step: usize,
    /// First moments, one per parameter.
    pub m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub v: Vec<Tensor>,
}

/// The f32 constants of one step, as candle's affine maps round them.
#[derive(Clone, Copy)]
struct Consts {
    b1: f32,
    c1: f32,
    b2: f32,
    c2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    lr: f32,
}

impl Consts {
    /// One element: parameter, moments and gradient, as the candle operations of
    /// [`Adam::step_ops`] compute them (`x * a + 0` is candle's affine map; `+ 0` turns -0
    /// into +0 as it does).
    #[inline(always)]
    fn apply(&self, p: &mut f32, m: &mut f32, v: &mut f32, g: f32) {
        let next_m = (*m * self.b1 + 0.0) + (g * self.c1 + 0.0);
        let next_v = (*v * self.b2 + 0.0) + ((g * g) * self.c2 + 0.0);
        let m_hat = next_m * self.scale_m + 0.0;
        let v_hat = next_v * self.scale_v + 0.0;
        let theta = *p * 1.0 + 0.0;
        let adjusted = m_hat / (v_hat.sqrt() * 1.0 + self.eps);
        *p = theta - (adjusted * self.lr + 0.0);
        *m = next_m;
        *v = next_v;
    }
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    /// Zero moments for `vars`, step 0.
    pub fn new(vars: &[Var], lr: f64) -> Result<Self> {
        let zeros = || -> Result<Vec<Tensor>> {
            Ok(vars
                .iter()
                .map(|v| v.as_tensor().zeros_like())
                .collect::<candle_core::Result<_>>()?)
        };
        Ok(Self {
            lr,
            step: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// The constants of the next step (`self.step` already counts it).
    fn consts(&self) -> (f64, f64) {
        let (b1, b2) = (Self::BETA1, Self::BETA2);
        let scale_m = 1f64 / (1f64 - b1.powi(self.step as i32));
        let scale_v = 1f64 / (1f64 - b2.powi(self.step as i32));
        (scale_m, scale_v)
    }

    /// One step on every parameter that has a gradient: in one CPU pass where the parameter,
    /// its moments and its gradient are contiguous f32 CPU tensors, else by candle operations.
    pub fn step(&mut self, vars: &[Var], grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            if !self.step_cpu(i, var, g)? {
                self.step_ops(i, var, g)?;
            }
        }
        Ok(())
    }

    /// One step on every parameter with the gradients given as contiguous f32 values, one
    /// slice per parameter in the order of `vars` (e.g. [`crate::ae_cpu::CpuPass`]'s); the
    /// parameters and moments must be contiguous f32 tensors on the CPU.
    pub fn step_slices(&mut self, vars: &[Var], grads: &[&[f32]]) -> Result<()> {
        self.step += 1;
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            if !self.step_cpu_slice(i, var, g)? {
                return Err(crate::error::BaselineError::CpuParameters);
            }
        }
        Ok(())
    }

    /// The same step by candle operations only (the reference execution, which [`Adam::step`]
    /// takes off the CPU).
    pub fn step_reference(&mut self, vars: &[Var], grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (i, var) in vars.iter().enumerate() {
            if let Some(g) = grads.get(var.as_tensor()) {
                self.step_ops(i, var, g)?;
            }
        }
        Ok(())
    }

    /// Candle operations, any device: the arithmetic of candle-nn's `AdamW` without decay.
    fn step_ops(&mut self, i: usize, var: &Var, g: &Tensor) -> Result<()> {
        let (b1, b2) = (Self::BETA1, Self::BETA2);
        let (scale_m, scale_v) = self.consts();
        let next_m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
        let next_v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let m_hat = (&next_m * scale_m)?;
        let v_hat = (&next_v * scale_v)?;
        let theta = (var.as_tensor() * 1f64)?;
        let adjusted = (m_hat / (v_hat.sqrt()? + Self::EPS)?)?;
        var.set(&(theta - (adjusted * self.lr)?)?)?;
        // Detached: a moment that kept its graph would chain every epoch's to the last.
        self.m[i] = next_m.detach();
        self.v[i] = next_v.detach();
        Ok(())
    }

    /// The same step in one pass over contiguous f32 CPU storage; `false` (nothing done) for
    /// anything else.
    fn step_cpu(&mut self, i: usize, var: &Var, g: &Tensor) -> Result<bool> {
        let n = g.elem_count();
        if !is_cpu_f32(g) {
            return Ok(false);
        }
        let (g_storage, g_layout) = g.storage_and_layout();
        let Some(gs) = cpu_slice(&g_storage, g_layout, n) else {
            return Ok(false);
        };
        self.step_cpu_slice(i, var, gs)
    }

    /// [`Adam::step_cpu`] with the gradient's values.
    fn step_cpu_slice(&mut self, i: usize, var: &Var, gs: &[f32]) -> Result<bool> {
        let (scale_m, scale_v) = self.consts();
        let k = Consts {
            b1: Self::BETA1 as f32,
            c1: (1.0 - Self::BETA1) as f32,
            b2: Self::BETA2 as f32,
            c2: (1.0 - Self::BETA2) as f32,
            scale_m: scale_m as f32,
            scale_v: scale_v as f32,
            eps: Self::EPS as f32,
            lr: self.lr as f32,
        };
        let p = var.as_tensor();
        let n = p.elem_count();
        if [&self.m[i], &self.v[i]]
            .iter()
            .any(|t| t.elem_count() != n || !is_cpu_f32(t))
            || !is_cpu_f32(p)
            || gs.len() != n
        {
            return Ok(false);
        }
        let mut done = false;
        with_slice_mut(p, |ps| {
            with_slice_mut(&self.m[i], |ms| {
                with_slice_mut(&self.v[i], |vs| {
                    ps.par_chunks_mut(CHUNK)
                        .zip(ms.par_chunks_mut(CHUNK))
                        .zip(vs.par_chunks_mut(CHUNK))
                        .zip(gs.par_chunks(CHUNK))
                        .for_each(|(((p, m), v), g)| {
                            for (((p, m), v), &g) in
                                p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g)
                            {
                                k.apply(p, m, v, g);
                            }
                        });
                    done = true;
                    Ok(())
                })
            })
        })?;
        Ok(done)
    }
}

fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous()
}

/// The `n` contiguous f32 values of a CPU storage, or `None`.
pub(crate) fn cpu_slice<'a>(storage: &'a Storage, layout: &Layout, n: usize) -> Option<&'a [f32]> {
    match storage {
        Storage::Cpu(CpuStorage::F32(v)) if layout.is_contiguous() => {
            let start = layout.start_offset();
            v.get(start..start + n)
        }
        _ => None,
    }
}

/// Runs `f` on the contiguous f32 values of `t` in place (through candle's in-place op, which
/// holds the storage's write lock); `f` is not run where they are not contiguous f32 on the
/// CPU. The tensors passed to nested calls must not share storage.
fn with_slice_mut(
    t: &Tensor,
    f: impl FnOnce(&mut [f32]) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    let op = InPlace(RefCell::new(Some(f)));
    t.inplace_op1(&op)
}

struct InPlace<F>(RefCell<Option<F>>);

impl<F: FnOnce(&mut [f32]) -> candle_core::Result<()>> candle_core::InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "adam-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        if let (CpuStorage::F32(v), Some((start, end))) = (storage, layout.contiguous_offsets()) {
            if let Some(f) = self.0.borrow_mut().take() {
                return f(&mut v[start..end]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    /// Parameters with signed zeros, tiny and large values; the loss's gradient is not
    /// separable, so every element gets its own.
    fn setup() -> (Vec<Var>, Tensor) {
        let dev = Device::Cpu;
        // Seeded, so that every run checks the same values.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut normal = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
                .collect()
        };
        let mut vals = normal(3 * 70_001);
        vals[0] = -0.0;
        vals[1] = 0.0;
        vals[2] = 1e-30;
        vals[3] = 3e4;
        let p = Var::from_tensor(&Tensor::from_vec(vals, (3, 70_001), &dev).unwrap()).unwrap();
        let q = Var::from_tensor(&Tensor::from_vec(normal(70_001), (1, 70_001), &dev).unwrap())
            .unwrap();
        let target = Tensor::from_vec(normal(3 * 70_001), (3, 70_001), &dev).unwrap();
        (vec![p, q], target)
    }

    fn loss(vars: &[Var], target: &Tensor) -> Tensor {
        let y = vars[0]
            .as_tensor()
            .broadcast_mul(vars[1].as_tensor())
            .unwrap();
        (y - target).unwrap().sqr().unwrap().mean_all().unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    #[test]
    fn the_cpu_pass_gives_the_bits_of_the_candle_operations() {
        let (a, target) = setup();
        let start = bits(a[1].as_tensor());
        // The same start, copied.
        let b: Vec<Var> = a
            .iter()
            .map(|v| Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())
            .collect();
        let mut fast = Adam::new(&a, 1e-2).unwrap();
        let mut ops = Adam::new(&b, 1e-2).unwrap();
        for _ in 0..5 {
            let ga = loss(&a, &target).backward().unwrap();
            fast.step(&a, &ga).unwrap();
            let gb = loss(&b, &target).backward().unwrap();
            ops.step_reference(&b, &gb).unwrap();
        }
        let same = |x: &Tensor, y: &Tensor, what: String| {
            let (x, y) = (bits(x), bits(y));
            let differ = x.iter().zip(&y).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 0, "{what}: {differ} of {} elements differ", x.len());
        };
        for i in 0..a.len() {
            same(a[i].as_tensor(), b[i].as_tensor(), format!("p{i}"));
            same(&fast.m[i], &ops.m[i], format!("m{i}"));
            same(&fast.v[i], &ops.v[i], format!("v{i}"));
        }
        // And the parameters moved (the test would pass on a no-op otherwise).
        assert_ne!(bits(a[1].as_tensor()), start);
    }
}
