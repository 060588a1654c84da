//! Saving and loading a trained network, and resuming training from a checkpoint.

use super::*;

impl Pcn {
    /// The weights (`w1`..) and the memory vector (`b`) by name, as a checkpoint holds them.
    pub(super) fn parameter_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut map = HashMap::new();
        for (i, w) in self.weights.iter().enumerate() {
            map.insert(format!("w{}", i + 1), w.clone());
        }
        if let Some(b) = &self.prior {
            map.insert("b".into(), b.clone());
        }
        Ok(map)
    }

    /// Restores the training state from `policy`'s checkpoint, if there is one and it fits this
    /// model; returns how training starts, the finished epochs and each batch's kept value nodes
    /// (persistent values only). An unusable checkpoint is removed and training starts afresh.
    #[allow(clippy::type_complexity)]
    pub(super) fn open_checkpoint(
        &mut self,
        policy: Option<&CheckpointPolicy>,
        n_batches: usize,
    ) -> Result<(Resume, Vec<EpochStats>, Vec<Option<Vec<Tensor>>>)> {
        let fresh = || vec![None; n_batches];
        let Some(policy) = policy else {
            return Ok((Resume::Fresh, Vec::new(), fresh()));
        };
        let refused =
            |reason: String| -> Result<(Resume, Vec<EpochStats>, Vec<Option<Vec<Tensor>>>)> {
                policy.remove().map_err(|source| PcnError::Io {
                    path: policy.meta_path(),
                    source,
                })?;
                Ok((
                    Resume::Refused {
                        path: policy.meta_path(),
                        reason,
                    },
                    Vec::new(),
                    fresh(),
                ))
            };
        let mut st = match checkpoint::read(policy, &self.config, &self.device) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok((Resume::Fresh, Vec::new(), fresh())),
            Err(PcnError::Checkpoint { reason, .. }) => return refused(reason),
            Err(e) => return Err(e),
        };
        let path = policy.meta_path();
        let before = (self.weights.clone(), self.prior.clone());
        let restored = (|| -> Result<Vec<Option<Vec<Tensor>>>> {
            let weights = (1..=self.config.layers)
                .map(|i| st.take(&format!("w{i}"), &path))
                .collect::<Result<Vec<_>>>()?;
            let prior = match self.config.memory_prior {
                MemoryPrior::Learned => Some(st.take("b", &path)?),
                MemoryPrior::Free => None,
            };
            self.set_parameters(weights, prior)?;
            if let Some(step) = st.meta.adam_step {
                let n = self.param_shapes().len();
                let (mut m, mut v) = (Vec::new(), Vec::new());
                for i in 0..n {
                    m.push(st.take(&format!("adam.m{i}"), &path)?);
                    v.push(st.take(&format!("adam.v{i}"), &path)?);
                }
                self.exec().restore_adam(self, step, m, v)?;
            }
            let mut kept = fresh();
            if self.config.learning.persistent_values {
                for (i, k) in kept.iter_mut().enumerate() {
                    if st.tensors.contains_key(&format!("kept{i}.x0")) {
                        *k = Some(
                            (0..=self.config.layers)
                                .map(|l| st.take(&format!("kept{i}.x{l}"), &path))
                                .collect::<Result<Vec<_>>>()?,
                        );
                    }
                }
            }
            Ok(kept)
        })();
        match restored {
            Ok(kept) => {
                self.rng = st.rng;
                let epoch = st.meta.epochs.len();
                Ok((Resume::From { epoch }, st.meta.epochs, kept))
            }
            Err(
                PcnError::Checkpoint { reason, .. }
                | PcnError::Shape {
                    expected: reason, ..
                },
            ) => {
                self.set_parameters(before.0, before.1)?;
                refused(reason)
            }
            Err(e) => Err(e),
        }
    }

    /// Saves the model into folder `dir`: `config.json` and `weights.safetensors` (weights,
    /// memory vector and, once measured, [`Pcn::error_mse`] as `error_mse`). Files are
    /// written under temporary names and renamed, so a killed save never leaves a half file.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PcnError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cfg_path = dir.join("config.json");
        let w_path = dir.join("weights.safetensors");
        let text = serde_json::to_string_pretty(&self.config).expect("config serialises");
        let tmp = dir.join(".config.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &cfg_path).map_err(io(&cfg_path))?;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (i, w) in self.weights.iter().enumerate() {
            map.insert(format!("w{}", i + 1), w.clone());
        }
        if let Some(b) = &self.prior {
            map.insert("b".into(), b.clone());
        }
        if let Some(m) = &self.error_mse {
            map.insert(
                "error_mse".into(),
                Tensor::from_vec(m.clone(), m.len(), &Device::Cpu)?,
            );
        }
        let tmp = dir.join(".weights.safetensors.tmp");
        candle_core::safetensors::save(&map, &tmp).map_err(|e| PcnError::Checkpoint {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&tmp, &w_path).map_err(io(&w_path))?;
        Ok(())
    }

    /// Loads a model saved by [`Pcn::save`] onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| PcnError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: PcnConfig = serde_json::from_str(&text).map_err(|e| PcnError::Checkpoint {
            path: cfg_path.clone(),
            reason: format!("config does not parse: {e}"),
        })?;
        let mut pcn = Pcn::new(config, device)?;
        let w_path = dir.join("weights.safetensors");
        if !w_path.exists() {
            return Err(PcnError::Checkpoint {
                path: w_path,
                reason: "missing; was the model saved with Pcn::save?".into(),
            });
        }
        let mut map =
            candle_core::safetensors::load(&w_path, device).map_err(|e| PcnError::Checkpoint {
                path: w_path.clone(),
                reason: e.to_string(),
            })?;
        let mut weights = Vec::new();
        for i in 1..=pcn.config.layers {
            let w = map
                .remove(&format!("w{i}"))
                .ok_or_else(|| PcnError::Checkpoint {
                    path: w_path.clone(),
                    reason: format!("tensor w{i} missing"),
                })?;
            weights.push(w);
        }
        let prior = map.remove("b");
        pcn.set_parameters(weights, prior)
            .map_err(|e| PcnError::Checkpoint {
                path: w_path.clone(),
                reason: e.to_string(),
            })?;
        if let Some(m) = map.remove("error_mse") {
            pcn.error_mse = Some(m.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(pcn)
    }
}
