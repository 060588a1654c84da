//! Full-batch training with Adam, checkpointed so that a killed run resumes to the same bits.

use candle_core::{DType, Tensor, Var};
use pcmem_model::factory::ModelFactory;
use pcmem_model::{CheckpointPolicy, FitProgress, FitReport, MemoryError, Resume};

use crate::adam::Adam;
use crate::error::{check_rows, BaselineError};

use super::{training_settings, Autoencoder, AutoencoderConfig, AutoencoderFactory};

impl Autoencoder {
    /// Trains on `patterns`; with a `policy`, saves the training state (weights, Adam's
    /// moments and step, the loss curve) at most once per `policy.every` and resumes from it,
    /// so that a killed run ends with the bits of one never interrupted.
    pub(super) fn fit_impl(
        &mut self,
        patterns: &Tensor,
        on_epoch: &mut dyn FnMut(&FitProgress),
        policy: Option<&CheckpointPolicy>,
    ) -> std::result::Result<(FitReport, Resume), MemoryError> {
        check_rows("patterns", patterns, Some(self.input_dim))?;
        let x = patterns.to_device(&self.device)?.to_dtype(DType::F32)?;
        let vars = self.vars();
        let mut adam = Adam::new(&vars, self.config.lr)?;
        let mut curve = Vec::new();
        let mut resume = match policy {
            Some(_) => Resume::Fresh,
            None => Resume::Unsupported,
        };
        // With `restore_best`: the epoch of the lowest loss so far and the weights it was
        // measured on.
        let mut best: Option<Best> = None;
        if let Some(policy) = policy {
            match self.restore(policy, &vars, &mut adam) {
                Ok(Some(saved)) => {
                    resume = Resume::From {
                        epoch: saved.curve.len(),
                    };
                    curve = saved.curve;
                    best = saved.best;
                }
                Ok(None) => {}
                Err(reason) => {
                    policy.remove().map_err(|e| BaselineError::Saved {
                        path: policy.meta_path(),
                        reason: e.to_string(),
                    })?;
                    resume = Resume::Refused {
                        path: policy.meta_path(),
                        reason,
                    };
                }
            }
        }
        // A checkpoint written when training ended (a trained model kept for recall): its
        // last loss already met the target, so there is nothing left to train.
        let at_target = |curve: Vec<f64>| FitReport {
            curve,
            converged: true,
            stop: "target MSE reached".into(),
            ..Default::default()
        };
        if curve.last().is_some_and(|&l| l < self.config.target_mse) {
            return Ok((at_target(curve), resume));
        }
        let saved_epochs = curve.len();
        let mut last_save = std::time::Instant::now();
        // The explicit CPU pass where it applies (module ae_cpu), else candle's autograd.
        let act = self.config.activation;
        let mut cpu = match self.device.is_cpu() && !self.autograd {
            true => Some((
                crate::ae_cpu::CpuPass::new(x.dims()[0], &self.dims()),
                x.flatten_all()?.to_vec1::<f32>()?,
            )),
            false => None,
        };
        for epoch in curve.len()..self.config.max_epochs {
            let (value, loss) = match cpu.as_mut() {
                Some((pass, xs)) => (
                    self.with_parameters(|w, b| pass.forward(xs, w, b, act))
                        .ok_or(BaselineError::CpuParameters)?,
                    None,
                ),
                None => {
                    let loss = (self.forward(&x)? - &x)?.sqr()?.mean_all()?;
                    (loss.to_scalar::<f32>()? as f64, Some(loss))
                }
            };
            if !value.is_finite() {
                return Err(BaselineError::Diverged {
                    model: "autoencoder",
                    epoch,
                    loss: value,
                }
                .into());
            }
            if self.config.restore_best && best.as_ref().is_none_or(|b| value < curve[b.epoch]) {
                Best::record(&mut best, epoch, &vars)?;
            }
            curve.push(value);
            on_epoch(&FitProgress {
                epoch: epoch + 1,
                max_epochs: self.config.max_epochs,
                loss: value,
                mse: value,
            });
            if value < self.config.target_mse {
                // The trained model, for a caller that keeps it (recall-only reruns).
                if let Some(policy) = policy {
                    self.save_state(policy, &vars, &adam, &curve, best.as_ref())?;
                }
                return Ok((at_target(curve), resume));
            }
            match loss {
                Some(loss) => adam.step(&vars, &loss.backward()?)?,
                None => {
                    let (pass, xs) = cpu.as_mut().ok_or(BaselineError::CpuParameters)?;
                    self.with_parameters(|w, _| pass.backward(xs, w, act))
                        .ok_or(BaselineError::CpuParameters)?;
                    let grads: Vec<&[f32]> = (0..self.layers.len())
                        .flat_map(|l| [pass.weight_grad(l), pass.bias_grad(l)])
                        .collect();
                    adam.step_slices(&vars, &grads)?;
                }
            }
            if let Some(policy) = policy {
                let stop = policy.stop_asked();
                if stop || last_save.elapsed() >= policy.every {
                    self.save_state(policy, &vars, &adam, &curve, best.as_ref())?;
                    last_save = std::time::Instant::now();
                }
                if stop {
                    return Err(Box::new(pcmem_model::PcnError::Interrupted {
                        epochs: curve.len(),
                        path: policy.meta_path(),
                    }));
                }
            }
        }
        if let Some(policy) = policy {
            if curve.len() > saved_epochs {
                self.save_state(policy, &vars, &adam, &curve, best.as_ref())?;
            }
        }
        let mut report = FitReport {
            curve,
            converged: false,
            stop: "epoch limit".into(),
            ..Default::default()
        };
        // The weights the lowest loss was measured on (those after the last step were never
        // measured); the checkpoint keeps the last ones and this copy, so that a kept model
        // restores the same weights.
        if let Some(b) = best {
            for (v, w) in vars.iter().zip(&b.weights) {
                v.set(w.as_tensor())?;
            }
            report.stop = format!(
                "epoch limit; the weights of epoch {} (the lowest training loss, {:.4e}) restored",
                b.epoch + 1,
                report.curve[b.epoch]
            );
            report
                .resolved
                .insert("restored_epoch".into(), (b.epoch + 1) as f64);
        }
        Ok((report, resume))
    }

    fn save_state(
        &self,
        policy: &CheckpointPolicy,
        vars: &[Var],
        adam: &Adam,
        curve: &[f64],
        best: Option<&Best>,
    ) -> std::result::Result<(), MemoryError> {
        let mut tensors = std::collections::HashMap::new();
        for (i, v) in vars.iter().enumerate() {
            tensors.insert(format!("p{i}"), v.as_tensor().clone());
            tensors.insert(format!("m{i}"), adam.m[i].clone());
            tensors.insert(format!("v{i}"), adam.v[i].clone());
        }
        if let Some(b) = best {
            for (i, w) in b.weights.iter().enumerate() {
                tensors.insert(format!("b{i}"), w.as_tensor().clone());
            }
        }
        let payload = serde_json::json!({
            "config": self.config,
            "input_dim": self.input_dim,
            "adam_step": adam.step,
            "curve": curve,
            "best_epoch": best.map(|b| b.epoch),
        });
        Ok(pcmem_model::checkpoint::save_state(
            policy,
            curve.len(),
            &payload,
            &tensors,
        )?)
    }

    /// The loss curve of the saved state and its best epoch (with `restore_best`), with the
    /// weights and moments restored; `Ok(None)`: no checkpoint; `Err`: one that cannot be
    /// used, and why.
    fn restore(
        &self,
        policy: &CheckpointPolicy,
        vars: &[Var],
        adam: &mut Adam,
    ) -> std::result::Result<Option<Saved>, String> {
        let saved = match pcmem_model::checkpoint::load_state(policy, &self.device) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        // What decides training: the recall settings may differ (a recall-only change resumes).
        let ours = serde_json::json!({
            "config": training_settings(&self.config).map_err(|e| e.to_string())?,
            "input_dim": self.input_dim,
        });
        // A setting added since (`init`) takes its default instead of counting as a difference.
        let saved_config =
            pcmem_model::checkpoint::as_today::<AutoencoderConfig>(&saved.payload["config"]);
        let theirs = serde_json::json!({
            "config": pcmem_model::factory::without_keys(
                &saved_config,
                AutoencoderFactory::RECALL_KEYS,
            ),
            "input_dim": saved.payload["input_dim"],
        });
        if ours != theirs {
            let keys = pcmem_model::checkpoint::differing_keys(&theirs, &ours, "");
            return Err(format!(
                "written by another autoencoder config (differs in {})",
                keys.join(", ")
            ));
        }
        let curve: Vec<f64> = serde_json::from_value(saved.payload["curve"].clone())
            .map_err(|e| format!("curve: {e}"))?;
        let step = saved.payload["adam_step"]
            .as_u64()
            .ok_or("adam_step missing")? as usize;
        if curve.len() != saved.epochs {
            return Err(format!(
                "{} epochs but a curve of {}",
                saved.epochs,
                curve.len()
            ));
        }
        let take = |name: String| {
            saved
                .tensors
                .get(&name)
                .cloned()
                .ok_or(format!("tensor `{name}` missing"))
        };
        for (i, v) in vars.iter().enumerate() {
            let p = take(format!("p{i}"))?;
            if p.dims() != v.as_tensor().dims() {
                return Err(format!("tensor `p{i}` has shape {:?}", p.dims()));
            }
            v.set(&p).map_err(|e| e.to_string())?;
            adam.m[i] = take(format!("m{i}"))?;
            adam.v[i] = take(format!("v{i}"))?;
        }
        adam.step = step;
        let best = match saved.payload["best_epoch"].as_u64() {
            Some(epoch) if (epoch as usize) < curve.len() => Some(Best {
                epoch: epoch as usize,
                weights: (0..vars.len())
                    .map(|i| Var::from_tensor(&take(format!("b{i}"))?).map_err(|e| e.to_string()))
                    .collect::<std::result::Result<_, _>>()?,
            }),
            Some(epoch) => return Err(format!("best epoch {epoch} beyond its curve")),
            None if self.config.restore_best && !curve.is_empty() => {
                return Err("`restore_best` without the best weights".into())
            }
            None => None,
        };
        Ok(Some(Saved { curve, best }))
    }
}

/// A checkpoint's training state beyond the weights and moments: the loss curve and, with
/// `restore_best`, the best epoch.
struct Saved {
    curve: Vec<f64>,
    best: Option<Best>,
}

/// The epoch (0-based) of the lowest training loss so far and a copy of the weights it was
/// measured on (`restore_best`).
struct Best {
    epoch: usize,
    weights: Vec<Var>,
}

impl Best {
    /// Makes the current weights of `vars` the best, at `epoch`: copied (the optimiser
    /// updates them in place) into the buffers of the earlier best, allocated only the first
    /// time.
    fn record(best: &mut Option<Self>, epoch: usize, vars: &[Var]) -> candle_core::Result<()> {
        if best.is_none() {
            let weights = vars
                .iter()
                .map(|v| Var::zeros(v.shape(), v.dtype(), v.device()))
                .collect::<candle_core::Result<_>>()?;
            *best = Some(Self { epoch, weights });
        }
        if let Some(b) = best {
            for (w, v) in b.weights.iter().zip(vars) {
                w.set(v.as_tensor())?;
            }
            b.epoch = epoch;
        }
        Ok(())
    }
}
