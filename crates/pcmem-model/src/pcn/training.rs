//! The training loop: epochs over the stored patterns, the stopping rule, progress and
//! checkpoints.

use super::*;

impl Pcn {
    /// One training iteration on a batch (Alg. 1): inference for `inference.steps` steps from the
    /// configured start, then one weight update. Returns the inference info (energy before the
    /// update) and the final value nodes.
    pub fn train_step(&mut self, batch: &Tensor) -> Result<(InferenceInfo, ValueNodes)> {
        let batch = self.check_patterns("batch", batch)?;
        let mut rng = self.rng.clone();
        let x = self.init_values(&batch, &mut rng)?;
        self.rng = rng;
        self.exec().train_step(self, x)
    }

    pub(super) fn train_from(
        &mut self,
        mut x: ValueNodes,
        epoch: usize,
    ) -> Result<(InferenceInfo, ValueNodes, f64)> {
        let c = self.config.inference.clone();
        let (info, fw) = self.relax(&mut x.0, None, &c, "training", epoch)?;
        let sensory_sq = sum_sq(&fw.eps[0])?;
        let (gw, gb) = self.param_grads(&fw)?;
        let rows = x.0[0].dims()[0];
        self.update_parameters(gw, gb, rows)?;
        let alpha = self.config.learning.alpha;
        for p in self.weights.iter().chain(self.prior.iter()) {
            check_finite("model parameters", p).map_err(|_| PcnError::Diverged {
                phase: "training",
                epoch,
                step: info.steps,
                energy: f64::NAN,
                gamma: c.gamma,
                alpha,
            })?;
        }
        Ok((info, x, sensory_sq))
    }

    /// Trains on `patterns` (`(N, d)`, one image per row) until the energy stops falling, the
    /// target MSE is reached, or the epoch limit (Alg. 1 repeated); see [`LearningConfig`].
    ///
    /// [`LearningConfig`]: crate::config::LearningConfig
    pub fn train(&mut self, patterns: &Tensor) -> Result<TrainReport> {
        self.train_with(patterns, |_| {})
    }

    /// Like [`Pcn::train`], calling `on_epoch` after every epoch (for progress bars).
    pub fn train_with(
        &mut self,
        patterns: &Tensor,
        on_epoch: impl FnMut(&EpochStats),
    ) -> Result<TrainReport> {
        let data = self.check_patterns("patterns", patterns)?;
        let (report, _) = self.train_epochs(&data, on_epoch, None)?;
        self.measure_errors(&data)?;
        Ok(report)
    }

    /// Like [`Pcn::train_with`], saving the training state to `policy`'s checkpoint at most once
    /// per `policy.every` (and when training stops), and resuming from that checkpoint when one
    /// is there: a run killed at any moment ends with the same bits as one never interrupted.
    /// A checkpoint that cannot be used (another config or identity, unreadable) is removed and
    /// training starts from epoch 0; [`Resume`] says which happened. The caller removes the
    /// checkpoint ([`CheckpointPolicy::remove`]) once it has kept what it needs.
    pub fn train_resumable(
        &mut self,
        patterns: &Tensor,
        policy: &CheckpointPolicy,
        on_epoch: impl FnMut(&EpochStats),
    ) -> Result<(TrainReport, Resume)> {
        let data = self.check_patterns("patterns", patterns)?;
        let out = self.train_epochs(&data, on_epoch, Some(policy))?;
        self.measure_errors(&data)?;
        Ok(out)
    }

    pub(super) fn train_epochs(
        &mut self,
        data: &Tensor,
        mut on_epoch: impl FnMut(&EpochStats),
        policy: Option<&CheckpointPolicy>,
    ) -> Result<(TrainReport, Resume)> {
        let rows = data.dims()[0];
        let lc = self.config.learning.clone();
        let bs = lc.batch_size.unwrap_or(rows).min(rows);
        let batches: Vec<Tensor> = (0..rows)
            .step_by(bs)
            .map(|s| data.narrow(0, s, bs.min(rows - s)))
            .collect::<candle_core::Result<_>>()?;
        let pixels = pixels_of(rows, &self.config);
        let (resume, prefix, kept) = self.open_checkpoint(policy, batches.len())?;
        let mut lp = EpochLoop::new(&lc, pixels, prefix, policy);
        let trained = self
            .exec()
            .train_epochs(self, &batches, kept, &mut lp, &mut on_epoch);
        self.rate_scale = 1.0;
        trained?;
        Ok((lp.report(), resume))
    }
}

/// Sums of one epoch's batches (in batch order, so every kernel adds them the same way).
#[derive(Default)]
pub(super) struct EpochSums {
    energy: f64,
    sensory_sq: f64,
    steps: f64,
}

impl EpochSums {
    pub(super) fn add(&mut self, info: &InferenceInfo, sensory_sq: f64) {
        self.energy += info.energy;
        self.sensory_sq += sensory_sq;
        self.steps += info.steps as f64;
    }
}

/// The epoch loop shared by the kernels: which epoch comes next, the curve so far, the stopping
/// rule of [`LearningConfig`] (replayed over the epochs of a checkpoint when resuming) and when
/// a checkpoint is due.
///
/// [`LearningConfig`]: crate::config::LearningConfig
pub(super) struct EpochLoop<'a> {
    max_epochs: usize,
    pixels: f64,
    tracker: StopTracker,
    epochs: Vec<EpochStats>,
    stop: Option<StopReason>,
    policy: Option<&'a CheckpointPolicy>,
    last_save: std::time::Instant,
}

impl<'a> EpochLoop<'a> {
    pub(super) fn new(
        lc: &crate::config::LearningConfig,
        pixels: f64,
        prefix: Vec<EpochStats>,
        policy: Option<&'a CheckpointPolicy>,
    ) -> Self {
        let mut tracker = StopTracker::new(lc);
        let mut stop = None;
        for s in &prefix {
            if stop.is_none() {
                stop = tracker.update(s);
            }
        }
        Self {
            max_epochs: lc.max_epochs,
            pixels,
            tracker,
            epochs: prefix,
            stop,
            policy,
            last_save: std::time::Instant::now(),
        }
    }

    /// The multiplier of `learning.alpha` for the next epoch (below 1 after plateau decays).
    pub(super) fn rate_scale(&self) -> f64 {
        self.tracker.rate_scale()
    }

    /// The next epoch to train, or None when training is over.
    pub(super) fn next_epoch(&self) -> Option<usize> {
        let e = self.epochs.len();
        (self.stop.is_none() && e < self.max_epochs).then_some(e)
    }

    /// Records epoch `epoch`, reports it and applies the stopping rule; true when a checkpoint
    /// is due now (time is up, or training just ended).
    pub(super) fn finish(
        &mut self,
        epoch: usize,
        sums: EpochSums,
        n_batches: usize,
        on_epoch: &mut impl FnMut(&EpochStats),
    ) -> bool {
        let stats = EpochStats {
            epoch,
            energy: sums.energy,
            sensory_mse: sums.sensory_sq / self.pixels,
            inference_steps: sums.steps / n_batches as f64,
        };
        on_epoch(&stats);
        self.epochs.push(stats);
        self.stop = self.tracker.update(&stats);
        self.policy.is_some_and(|p| {
            self.next_epoch().is_none() || p.stop_asked() || self.last_save.elapsed() >= p.every
        })
    }

    pub(super) fn save(
        &mut self,
        config: &PcnConfig,
        adam_step: Option<i32>,
        rng: &ChaCha8Rng,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        if let Some(p) = self.policy {
            checkpoint::write(p, config, &self.epochs, adam_step, rng, tensors)?;
            self.last_save = std::time::Instant::now();
            if p.stop_asked() && self.next_epoch().is_some() {
                return Err(PcnError::Interrupted {
                    epochs: self.epochs.len(),
                    path: p.meta_path(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn report(&self) -> TrainReport {
        TrainReport {
            epochs: self.epochs.clone(),
            stop: self.stop.unwrap_or(StopReason::EpochLimit),
            decay_epochs: self.tracker.decay_epochs.clone(),
        }
    }
}

/// Decides when training stops (target MSE, plateau of the energy) and, with plateau decays,
/// when the learning rate shrinks instead.
pub(super) struct StopTracker {
    target: Option<f64>,
    min_rel: f64,
    patience: usize,
    best: f64,
    since_best: usize,
    decays_left: usize,
    factor: f64,
    /// The learning rate's multiplier now: `factor` to the power of the decays taken.
    rate_scale: f64,
    /// The epochs after which a decay was taken.
    decay_epochs: Vec<usize>,
}

impl StopTracker {
    pub(super) fn new(lc: &crate::config::LearningConfig) -> Self {
        Self {
            target: lc.target_mse,
            min_rel: lc.min_rel_improvement,
            patience: lc.patience,
            best: f64::INFINITY,
            since_best: 0,
            decays_left: lc.plateau_decays,
            factor: lc.plateau_factor,
            rate_scale: 1.0,
            decay_epochs: Vec::new(),
        }
    }

    /// The multiplier of the learning rate for the next epoch.
    pub(super) fn rate_scale(&self) -> f64 {
        self.rate_scale
    }

    pub(super) fn update(&mut self, s: &EpochStats) -> Option<StopReason> {
        if self.target.is_some_and(|t| s.sensory_mse < t) {
            return Some(StopReason::TargetReached);
        }
        if s.energy < self.best * (1.0 - self.min_rel) {
            self.best = s.energy;
            self.since_best = 0;
        } else {
            self.since_best += 1;
            if self.since_best >= self.patience {
                if self.decays_left == 0 {
                    return Some(StopReason::Plateau);
                }
                self.decays_left -= 1;
                self.rate_scale *= self.factor;
                self.since_best = 0;
                self.decay_epochs.push(s.epoch);
            }
        }
        None
    }
}
