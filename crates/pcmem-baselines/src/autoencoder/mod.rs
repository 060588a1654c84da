//! Overparameterised autoencoder trained by backprop (Radhakrishnan, Belkin and Uhler 2019,
//! "Overparameterized neural networks implement associative memory"): fully connected
//! `d -> n -> ... -> n -> d`, trained with Adam to reproduce its training images; recall
//! iterates the map from the cue, clamping the known pixels after every iteration (as the paper
//! did for fairness). Its settings are in `config`, its training (and checkpoints) in `train`,
//! how a grid builds and prices it in `factory`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use pcmem_baselines::{Autoencoder, AutoencoderConfig};
//! use pcmem_model::AssociativeMemory;
//! let mut ae = Autoencoder::new(AutoencoderConfig { hidden_dim: 16, max_epochs: 5, ..Default::default() }, 8)?;
//! assert_eq!(ae.parameter_count(), 8 * 16 + 16 + 16 * 16 + 16 + 16 * 8 + 8);
//! let x = Tensor::rand(0f32, 1f32, (3, 8), &Device::Cpu)?;
//! let fit = ae.fit(&x)?;
//! assert_eq!(fit.curve.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use candle_core::{DType, Device, Tensor, Var};
use pcmem_model::{
    AssociativeMemory, CheckpointPolicy, FitProgress, FitReport, MemoryError, Recall, Resume,
};
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::error::{check_rows, iterate_clamped, mask_for, BaselineError, Result};

mod config;
mod factory;
mod train;

pub use config::{AeActivation, AeInit, AutoencoderConfig};
use factory::training_settings;
pub use factory::AutoencoderFactory;

/// The autoencoder; see the module docs.
#[derive(Debug)]
pub struct Autoencoder {
    config: AutoencoderConfig,
    /// (weight `(fan_in, fan_out)`, bias `(1, fan_out)`) per layer.
    layers: Vec<(Var, Var)>,
    input_dim: usize,
    device: Device,
    /// Gradients by candle's autograd even on the CPU (see [`Autoencoder::use_autograd`]).
    autograd: bool,
}

/// Half-width of the uniform range of a layer's initial weights (see [`AeInit`]).
fn init_bound(init: AeInit, activation: AeActivation, fan_in: usize, output: bool) -> f32 {
    let gain = match (init, output, activation) {
        (AeInit::UniformFanIn, _, _) => return 1.0 / (fan_in as f32).sqrt(),
        (AeInit::Scaled, true, _) => 1.0,
        (AeInit::Scaled, false, AeActivation::LeakyRelu) => (2.0f32 / (1.0 + 0.01 * 0.01)).sqrt(),
        (AeInit::Scaled, false, AeActivation::Relu) => 2.0f32.sqrt(),
        (AeInit::Scaled, false, AeActivation::Tanh) => 5.0 / 3.0,
    };
    gain * (3.0 / fan_in as f32).sqrt()
}

impl Autoencoder {
    /// Builds the network for inputs of dimension `input_dim`, with seeded uniform weights as
    /// `config.init` says and zero biases.
    pub fn new(config: AutoencoderConfig, input_dim: usize) -> Result<Self> {
        config.validate()?;
        if input_dim == 0 {
            return Err(BaselineError::InvalidConfig {
                field: "input_dim",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
        let mut dims = vec![input_dim];
        dims.extend(std::iter::repeat_n(config.hidden_dim, config.hidden_layers));
        dims.push(input_dim);
        let mut layers = Vec::new();
        let last = dims.len() - 2;
        for (l, w) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = init_bound(config.init, config.activation, fan_in, l == last);
            let data: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            let weight =
                Var::from_tensor(&Tensor::from_vec(data, (fan_in, fan_out), &Device::Cpu)?)?;
            let bias = Var::from_tensor(&Tensor::zeros((1, fan_out), DType::F32, &Device::Cpu)?)?;
            layers.push((weight, bias));
        }
        Ok(Self {
            config,
            layers,
            input_dim,
            device: Device::Cpu,
            autograd: false,
        })
    }

    /// Moves the network to `device` (built on the CPU, so the seeded weights are the same on
    /// every device); inputs are moved to it when fitting and recalling.
    pub fn on_device(mut self, device: &Device) -> Result<Self> {
        for (w, b) in &mut self.layers {
            *w = Var::from_tensor(&w.as_tensor().to_device(device)?)?;
            *b = Var::from_tensor(&b.as_tensor().to_device(device)?)?;
        }
        self.device = device.clone();
        Ok(self)
    }

    /// Writes the network into `dir`: `config.json` (settings and input dimension) and
    /// `weights.safetensors` (`w0`, `b0`, `w1`, ...).
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        let saved = |path: &std::path::Path, reason: String| BaselineError::Saved {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| saved(dir, e.to_string()))?;
        let mut tensors = std::collections::HashMap::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            tensors.insert(format!("w{i}"), w.as_tensor().to_device(&Device::Cpu)?);
            tensors.insert(format!("b{i}"), b.as_tensor().to_device(&Device::Cpu)?);
        }
        candle_core::safetensors::save(&tensors, dir.join("weights.safetensors"))?;
        let cfg = serde_json::json!({"config": self.config, "input_dim": self.input_dim});
        let path = dir.join("config.json");
        std::fs::write(&path, cfg.to_string()).map_err(|e| saved(&path, e.to_string()))
    }

    /// Reads a network written by [`Autoencoder::save`] onto `device`.
    pub fn load(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let path = dir.join("config.json");
        let saved = |reason: String| BaselineError::Saved {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| saved(e.to_string()))?;
        #[derive(Deserialize)]
        struct Saved {
            config: AutoencoderConfig,
            input_dim: usize,
        }
        let s: Saved = serde_json::from_str(&text).map_err(|e| saved(e.to_string()))?;
        let mut ae = Autoencoder::new(s.config, s.input_dim)?;
        let tensors =
            candle_core::safetensors::load(dir.join("weights.safetensors"), &Device::Cpu)?;
        for (i, (w, b)) in ae.layers.iter_mut().enumerate() {
            for (name, var) in [(format!("w{i}"), w), (format!("b{i}"), b)] {
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| saved(format!("weights.safetensors has no `{name}`")))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(saved(format!(
                        "`{name}` has shape {:?}, the config needs {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    )));
                }
                *var = Var::from_tensor(t)?;
            }
        }
        ae.on_device(device)
    }

    /// Computes the training gradients with candle's autograd (`true`) instead of the explicit
    /// CPU products of [`crate::ae_cpu`] (`false`, the default on the CPU; other devices always
    /// use autograd). The same mathematics; kept as the reference that tests and benchmarks
    /// compare with.
    pub fn use_autograd(mut self, yes: bool) -> Self {
        self.autograd = yes;
        self
    }

    /// Layer widths, input first.
    fn dims(&self) -> Vec<usize> {
        let mut dims = vec![self.input_dim];
        dims.extend(self.layers.iter().map(|(w, _)| w.as_tensor().dims()[1]));
        dims
    }

    /// Runs `f` on the weights and biases of every layer (`w0, b0, w1, b1, ...`) as contiguous
    /// f32 values; `None` where they are not that (off the CPU).
    fn with_parameters<R>(&self, f: impl FnOnce(&[&[f32]], &[&[f32]]) -> R) -> Option<R> {
        let tensors: Vec<Tensor> = self.vars().iter().map(|v| v.as_tensor().clone()).collect();
        let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let values: Vec<&[f32]> = guards
            .iter()
            .zip(&tensors)
            .map(|((s, l), t)| crate::adam::cpu_slice(s, l, t.elem_count()))
            .collect::<Option<_>>()?;
        let w: Vec<&[f32]> = values.iter().step_by(2).copied().collect();
        let b: Vec<&[f32]> = values.iter().skip(1).step_by(2).copied().collect();
        Some(f(&w, &b))
    }

    /// The map `x -> AE(x)` on rows.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            if i < last {
                h = match self.config.activation {
                    AeActivation::Relu => h.relu()?,
                    AeActivation::Tanh => h.tanh()?,
                    AeActivation::LeakyRelu => h.maximum(&(&h * 0.01)?)?,
                };
            }
        }
        Ok(h)
    }

    /// The parameters in checkpoint order: `w0, b0, w1, b1, ...`.
    fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    fn recall_impl(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall> {
        check_rows("cues", cues, Some(self.input_dim))?;
        let cues = cues.to_device(&self.device)?.to_dtype(DType::F32)?;
        let rows = cues.dims()[0];
        let mask = known
            .map(|k| mask_for(&k.to_device(&self.device)?, rows, self.input_dim))
            .transpose()?;
        iterate_clamped(
            &cues,
            mask.as_ref(),
            self.config.recall_iterations,
            self.config.recall_tolerance,
            |x| Ok(self.forward(x)?.detach()),
        )
    }
}

impl AssociativeMemory for Autoencoder {
    fn name(&self) -> &'static str {
        "autoencoder"
    }

    fn fit(&mut self, patterns: &Tensor) -> Result<FitReport, MemoryError> {
        Ok(self.fit_impl(patterns, &mut |_| {}, None)?.0)
    }

    fn fit_with(
        &mut self,
        patterns: &Tensor,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<FitReport, MemoryError> {
        Ok(self.fit_impl(patterns, on_epoch, None)?.0)
    }

    fn fit_resumable(
        &mut self,
        patterns: &Tensor,
        checkpoint: &CheckpointPolicy,
        on_epoch: &mut dyn FnMut(&FitProgress),
    ) -> Result<(FitReport, Resume), MemoryError> {
        self.fit_impl(patterns, on_epoch, Some(checkpoint))
    }

    fn recall(&self, cues: &Tensor, known: Option<&Tensor>) -> Result<Recall, MemoryError> {
        Ok(self.recall_impl(cues, known)?)
    }

    fn set_recall_settings(&mut self, config: &serde_json::Value) -> Result<(), MemoryError> {
        let new: AutoencoderConfig = serde_json::from_value(config.clone())?;
        new.validate()?;
        if training_settings(&new)? != training_settings(&self.config)? {
            return Err(
                "recall settings only may change without retraining; the other \
                        settings differ from the trained autoencoder's"
                    .into(),
            );
        }
        self.config = new;
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .map(|(w, b)| w.elem_count() + b.elem_count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ae_cpu::CpuPass;

    /// The largest difference between `a` and `b`, relative to the largest `|b|`.
    fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let gap = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        gap / scale.max(1e-30)
    }

    /// A `rows` x `cols` tensor of seeded uniform values in [lo, hi): the same on every run
    /// (candle's `Tensor::rand` is unseeded, and a tolerance met by most draws is a flaky test).
    fn seeded(rows: usize, cols: usize, lo: f32, hi: f32, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(lo..hi)).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// The mean square of the output of a fresh 10-hidden-layer network, relative to its input's.
    fn output_scale(init: AeInit, activation: AeActivation) -> f32 {
        let d = 256;
        let cfg = AutoencoderConfig {
            hidden_dim: 512,
            hidden_layers: 10,
            activation,
            init,
            ..Default::default()
        };
        let ae = Autoencoder::new(cfg, d).unwrap();
        // Seeded inputs of unit variance, so the ratio is the same on every run.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let bound = 3f32.sqrt();
        let v: Vec<f32> = (0..64 * d).map(|_| rng.gen_range(-bound..bound)).collect();
        let x = Tensor::from_vec(v, (64, d), &Device::Cpu).unwrap();
        let ms = |t: &Tensor| {
            t.sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        ms(&ae.forward(&x).unwrap()) / ms(&x)
    }

    /// The scaled start keeps the signal's scale through ten (leaky) ReLU layers, each with the
    /// gain of its activation and the output layer with none; PyTorch's start lets it fade (by
    /// about 1/6 a layer). A missing hidden gain shrinks the scaled ratio by 2 a layer, a gain on the
    /// output layer doubles it: both fail.
    #[test]
    fn the_scaled_start_keeps_the_signal_through_depth() {
        for act in [AeActivation::LeakyRelu, AeActivation::Relu] {
            let scaled = output_scale(AeInit::Scaled, act);
            assert!(
                (0.6..1.3).contains(&scaled),
                "{act:?}: scaled start {scaled}"
            );
            let plain = output_scale(AeInit::UniformFanIn, act);
            assert!(plain < 1e-5, "{act:?}: PyTorch's start {plain}");
        }
        // tanh saturates, so its scale shrinks, but with its gain it stays of order one.
        let tanh = output_scale(AeInit::Scaled, AeActivation::Tanh);
        assert!((0.2..1.0).contains(&tanh), "tanh: scaled start {tanh}");
    }

    /// `init` is read from a grid's table by name, and a config without it (every record
    /// written before it existed) reads as PyTorch's start.
    #[test]
    fn init_reads_by_name_and_defaults_to_pytorchs() {
        let c: AutoencoderConfig = serde_json::from_str(r#"{"init": "scaled"}"#).unwrap();
        assert_eq!(c.init, AeInit::Scaled);
        let c: AutoencoderConfig = serde_json::from_str(r#"{"lr": 0.001}"#).unwrap();
        assert_eq!(c.init, AeInit::UniformFanIn);
    }

    /// The explicit CPU pass against candle's autograd on the network's own `forward`: loss and
    /// every weight and bias gradient, for each activation and for one and two hidden layers
    /// (non-square layers, non-zero biases, so a transposed product or a misplaced bias shows).
    #[test]
    fn the_cpu_pass_has_autograds_loss_and_gradients() {
        for act in [
            AeActivation::LeakyRelu,
            AeActivation::Relu,
            AeActivation::Tanh,
        ] {
            for hidden_layers in [1, 2] {
                let cfg = AutoencoderConfig {
                    hidden_dim: 24,
                    hidden_layers,
                    activation: act,
                    ..Default::default()
                };
                let ae = Autoencoder::new(cfg, 20).unwrap();
                for (_, b) in &ae.layers {
                    let n = b.as_tensor().dims()[1];
                    b.set(&seeded(1, n, -0.3, 0.3, 10 + n as u64)).unwrap();
                }
                let x = seeded(7, 20, 0.0, 1.0, 1);
                let loss = (ae.forward(&x).unwrap() - &x)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap();
                let grads = loss.backward().unwrap();
                let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let mut pass = CpuPass::new(7, &ae.dims());
                let value = ae
                    .with_parameters(|w, b| pass.forward(&xs, w, b, act))
                    .unwrap();
                let want = loss.to_scalar::<f32>().unwrap() as f64;
                assert!(
                    (value - want).abs() <= 1e-6 * want,
                    "{act:?}: loss {value} vs {want}"
                );
                let out = ae.forward(&x).unwrap().flatten_all().unwrap();
                assert!(relative_gap(pass.output(), &out.to_vec1::<f32>().unwrap()) < 1e-6);
                ae.with_parameters(|w, _| pass.backward(&xs, w, act))
                    .unwrap();
                for (l, (w, b)) in ae.layers.iter().enumerate() {
                    for (name, var, got) in [
                        ("weight", w, pass.weight_grad(l)),
                        ("bias", b, pass.bias_grad(l)),
                    ] {
                        let g = grads.get(var.as_tensor()).unwrap();
                        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                        let gap = relative_gap(got, &g);
                        assert!(
                            gap < 1e-5,
                            "{act:?}, {hidden_layers} hidden: layer {l} {name} gradient off by {gap}"
                        );
                    }
                }
            }
        }
    }

    /// Training by the CPU pass follows autograd's training: the same loss curve to float
    /// rounding over 40 Adam steps.
    #[test]
    fn training_by_the_cpu_pass_follows_autograds() {
        let x = seeded(6, 30, 0.0, 1.0, 2);
        let cfg = AutoencoderConfig {
            hidden_dim: 40,
            max_epochs: 40,
            target_mse: 0.0,
            ..Default::default()
        };
        let mut fast = Autoencoder::new(cfg.clone(), 30).unwrap();
        let mut reference = Autoencoder::new(cfg, 30).unwrap().use_autograd(true);
        let a = fast.fit(&x).unwrap().curve;
        let b = reference.fit(&x).unwrap().curve;
        assert_eq!(a.len(), 40);
        assert!(b[39] < 0.5 * b[0], "training should lower the loss: {b:?}");
        for (e, (p, q)) in a.iter().zip(&b).enumerate() {
            assert!((p - q).abs() <= 1e-4 * q, "epoch {e}: {p} vs {q}");
        }
    }
}
