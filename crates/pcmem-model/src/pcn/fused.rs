//! The fused CPU kernel (see `crate::engine`): conversions and the training and recall loops.

use super::*;

/// The fused CPU kernel (see [`crate::engine`]): conversions and the training/recall loops.
impl Pcn {
    pub(super) fn engine_dims(&self) -> Vec<usize> {
        let mut dims = vec![self.config.input_dim];
        dims.extend(std::iter::repeat_n(
            self.config.hidden_dim,
            self.config.layers,
        ));
        dims
    }

    /// Shapes of the parameters: weights in order, then the prior.
    pub(super) fn param_shapes(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = (1..=self.config.layers)
            .map(|l| (self.config.layer_dim(l - 1), self.config.layer_dim(l)))
            .collect();
        if self.config.memory_prior == MemoryPrior::Learned {
            v.push((1, self.config.hidden_dim));
        }
        v
    }

    /// Moves the parameters into a fused-kernel engine, one tensor at a time so that at most one
    /// matrix exists twice; [`Pcn::store_engine`] moves them back.
    pub(super) fn take_engine(&mut self) -> Result<Engine<'static>> {
        let mut w = Vec::with_capacity(self.weights.len());
        for t in self.weights.iter_mut() {
            let taken = std::mem::replace(t, Tensor::zeros(0, DType::F32, &self.device)?);
            w.push(Cow::Owned(taken.flatten_all()?.to_vec1::<f32>()?));
        }
        let b = match self.prior.take() {
            Some(t) => Some(Cow::Owned(t.flatten_all()?.to_vec1::<f32>()?)),
            None => None,
        };
        Ok(Engine::new(
            self.engine_dims(),
            (self.config.activation, self.config.placement),
            w,
            b,
            self.kernel == Kernel::Fused,
        ))
    }

    /// Runs `f` on an engine that borrows the parameters straight from the tensors' storage.
    pub(super) fn with_engine<R>(&self, f: impl FnOnce(Engine<'_>) -> Result<R>) -> Result<R> {
        let params: Vec<&Tensor> = self.weights.iter().chain(self.prior.iter()).collect();
        let guards: Vec<_> = params.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices = Vec::with_capacity(params.len());
        for ((storage, layout), t) in guards.iter().zip(&params) {
            match &**storage {
                Storage::Cpu(CpuStorage::F32(v)) if layout.is_contiguous() => {
                    let start = layout.start_offset();
                    slices.push(Cow::Borrowed(&v[start..start + t.elem_count()]));
                }
                _ => {
                    return Err(PcnError::Shape {
                        what: "model parameters",
                        got: t.dims().to_vec(),
                        expected: "contiguous f32 tensors on the CPU for the fused kernel".into(),
                    })
                }
            }
        }
        let b = if self.prior.is_some() {
            slices.pop()
        } else {
            None
        };
        f(Engine::new(
            self.engine_dims(),
            (self.config.activation, self.config.placement),
            slices,
            b,
            self.kernel == Kernel::Fused,
        ))
    }

    /// Takes the fused kernel's Adam state (zeros at the first update); `store_engine` puts it
    /// back.
    pub(super) fn adam_cpu(&mut self) -> Result<Option<AdamCpu>> {
        if !matches!(self.config.learning.optimizer, Optimizer::Adam { .. }) {
            return Ok(None);
        }
        Ok(Some(self.adam_cpu.take().unwrap_or_else(|| {
            let sizes: Vec<usize> = self.param_shapes().iter().map(|(r, c)| r * c).collect();
            AdamCpu::zeros(&sizes)
        })))
    }

    pub(super) fn store_engine(
        &mut self,
        eng: Engine<'static>,
        adam: Option<AdamCpu>,
    ) -> Result<()> {
        let shapes = self.param_shapes();
        let nw = self.weights.len();
        for (i, w) in eng.w.into_iter().enumerate() {
            self.weights[i] = Tensor::from_vec(w.into_owned(), shapes[i], &self.device)?;
        }
        if let Some(b) = eng.b {
            self.prior = Some(Tensor::from_vec(b.into_owned(), shapes[nw], &self.device)?);
        }
        self.adam_cpu = adam;
        Ok(())
    }

    /// [`Pcn::init_values`] while `eng` holds the parameters (they are taken out of the model
    /// for training): a top-down start reads them from the engine.
    fn init_values_in(
        &self,
        eng: &Engine<'_>,
        x0: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<ValueNodes> {
        if !matches!(self.config.value_init, ValueInit::Forward) {
            return self.init_values(x0, rng);
        }
        let shapes = self.param_shapes();
        let weights = eng
            .w
            .iter()
            .zip(&shapes)
            .map(|(w, &shape)| Tensor::from_slice(w, shape, &self.device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let prior = match &eng.b {
            Some(b) => Some(Tensor::from_slice(b, shapes[weights.len()], &self.device)?),
            None => None,
        };
        self.init_values_with(x0, rng, &weights, prior.as_ref())
    }

    pub(super) fn to_nodes(&self, ws: Workspace) -> Result<ValueNodes> {
        let rows = ws.rows;
        let nodes =
            ws.x.into_iter()
                .enumerate()
                .map(|(l, v)| Tensor::from_vec(v, (rows, self.config.layer_dim(l)), &self.device))
                .collect::<candle_core::Result<_>>()?;
        Ok(ValueNodes(nodes))
    }

    /// [`Pcn::relax`] on the fused kernel; leaves the errors of the final state in `ws`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relax_fused(
        &self,
        eng: &mut Engine,
        ws: &mut Workspace,
        free0: Option<(&[f32], FreeRule)>,
        dynamics: &InferenceConfig,
        phase: &'static str,
        epoch: usize,
    ) -> Result<InferenceInfo> {
        let gamma = dynamics.gamma;
        match eng.relax(ws, free0, dynamics) {
            Ok((steps, energy, converged)) => Ok(InferenceInfo {
                steps,
                energy,
                converged,
            }),
            Err((step, energy)) => Err(PcnError::Diverged {
                phase,
                epoch,
                step,
                energy,
                gamma,
                alpha: self.config.learning.alpha,
            }),
        }
    }

    pub(super) fn learn_fused(&self, eng: &mut Engine, adam: &mut Option<AdamCpu>, ws: &Workspace) {
        let lc = &self.config.learning;
        let scale = match lc.gradient_scale {
            GradientScale::Sum => 1.0,
            GradientScale::Mean => 1.0 / ws.rows as f32,
        };
        match (lc.optimizer, adam.as_mut()) {
            (Optimizer::Adam { beta1, beta2, eps }, Some(st)) => st.update(
                eng,
                ws,
                scale,
                (lc.alpha * self.rate_scale, beta1, beta2, eps),
            ),
            _ => eng.sgd(ws, (lc.alpha * self.rate_scale) as f32 * scale),
        }
    }

    /// Inference then one weight update; returns the info and the sensory squared error.
    pub(super) fn train_fused(
        &self,
        eng: &mut Engine,
        adam: &mut Option<AdamCpu>,
        ws: &mut Workspace,
        epoch: usize,
    ) -> Result<(InferenceInfo, f64)> {
        let c = &self.config.inference;
        let info = self.relax_fused(eng, ws, None, c, "training", epoch)?;
        let sensory_sq = 2.0 * Engine::energy_of_layer(ws, 0);
        self.learn_fused(eng, adam, ws);
        Ok((info, sensory_sq))
    }

    pub(super) fn train_epochs_fused(
        &mut self,
        eng: &mut Engine,
        adam: &mut Option<AdamCpu>,
        batches: &[Tensor],
        kept: Vec<Option<Vec<Tensor>>>,
        lp: &mut EpochLoop,
        on_epoch: &mut impl FnMut(&EpochStats),
    ) -> Result<()> {
        let lc = self.config.learning.clone();
        let mut spaces: Vec<Option<Workspace>> = Vec::with_capacity(batches.len());
        for k in kept {
            spaces.push(match k {
                Some(x) => Some(eng.workspace(to_flat(&x)?)),
                None => None,
            });
        }
        while let Some(epoch) = lp.next_epoch() {
            self.rate_scale = lp.rate_scale();
            let mut acc = EpochSums::default();
            for (i, batch) in batches.iter().enumerate() {
                if !(lc.persistent_values && spaces[i].is_some()) {
                    let mut rng = self.rng.clone();
                    let x = self.init_values_in(eng, batch, &mut rng)?;
                    self.rng = rng;
                    match spaces[i].as_mut() {
                        Some(ws) => {
                            for (dst, t) in ws.x.iter_mut().zip(&x.0) {
                                dst.copy_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
                            }
                        }
                        None => spaces[i] = Some(eng.workspace(to_flat(&x.0)?)),
                    }
                }
                let ws = spaces[i].as_mut().expect("workspace set above");
                let (info, sensory_sq) = self.train_fused(eng, adam, ws, epoch)?;
                acc.add(&info, sensory_sq);
            }
            if lp.finish(epoch, acc, batches.len(), on_epoch) {
                let shapes = self.param_shapes();
                let nw = self.weights.len();
                let mut tensors = HashMap::new();
                for (i, w) in eng.w.iter().enumerate() {
                    tensors.insert(
                        format!("w{}", i + 1),
                        Tensor::from_slice(w, shapes[i], &Device::Cpu)?,
                    );
                }
                if let Some(b) = &eng.b {
                    tensors.insert("b".into(), Tensor::from_slice(b, shapes[nw], &Device::Cpu)?);
                }
                if let Some(a) = adam.as_ref().filter(|a| a.step > 0) {
                    for (i, (m, v)) in a.m.iter().zip(&a.v).enumerate() {
                        tensors.insert(
                            format!("adam.m{i}"),
                            Tensor::from_slice(m, shapes[i], &Device::Cpu)?,
                        );
                        tensors.insert(
                            format!("adam.v{i}"),
                            Tensor::from_slice(v, shapes[i], &Device::Cpu)?,
                        );
                    }
                }
                if lc.persistent_values {
                    let dims = self.engine_dims();
                    for (i, ws) in spaces.iter().enumerate() {
                        for (l, x) in ws.iter().flat_map(|w| w.x.iter().enumerate()) {
                            tensors.insert(
                                format!("kept{i}.x{l}"),
                                Tensor::from_slice(x, (x.len() / dims[l], dims[l]), &Device::Cpu)?,
                            );
                        }
                    }
                }
                let step = adam.as_ref().map(|a| a.step).filter(|&s| s > 0);
                lp.save(&self.config, step, &self.rng, &tensors)?;
            }
        }
        Ok(())
    }
}

/// The fused CPU kernel ([`crate::engine`]): buffers allocated once per call, the products by
/// `gemm`, one element-wise pass per layer (and the Gram identity where [`Kernel::Fused`]
/// allows it).
pub(super) struct Fused;

impl Exec for Fused {
    fn infer(&self, pcn: &Pcn, x: &mut ValueNodes) -> Result<InferenceInfo> {
        let c = &pcn.config.inference;
        pcn.with_engine(|mut eng| {
            let mut ws = eng.workspace(to_flat(&x.0)?);
            let info = pcn.relax_fused(&mut eng, &mut ws, None, c, "inference", 0)?;
            *x = pcn.to_nodes(ws)?;
            Ok(info)
        })
    }

    fn learn(&self, pcn: &mut Pcn, x: &ValueNodes) -> Result<()> {
        let mut eng = pcn.take_engine()?;
        let mut adam = pcn.adam_cpu()?;
        let mut ws = eng.workspace(to_flat(&x.0)?);
        eng.forward(&mut ws);
        pcn.learn_fused(&mut eng, &mut adam, &ws);
        pcn.store_engine(eng, adam)
    }

    fn train_step(&self, pcn: &mut Pcn, x: ValueNodes) -> Result<(InferenceInfo, ValueNodes)> {
        let mut eng = pcn.take_engine()?;
        let mut adam = pcn.adam_cpu()?;
        let mut ws = eng.workspace(to_flat(&x.0)?);
        let res = pcn.train_fused(&mut eng, &mut adam, &mut ws, 0);
        pcn.store_engine(eng, adam)?;
        let (info, _) = res?;
        Ok((info, pcn.to_nodes(ws)?))
    }

    fn train_epochs(
        &self,
        pcn: &mut Pcn,
        batches: &[Tensor],
        kept: Vec<Option<Vec<Tensor>>>,
        lp: &mut EpochLoop<'_>,
        mut on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<()> {
        let mut eng = pcn.take_engine()?;
        let mut adam = pcn.adam_cpu()?;
        let res = pcn.train_epochs_fused(&mut eng, &mut adam, batches, kept, lp, &mut on_epoch);
        pcn.store_engine(eng, adam)?;
        res
    }

    fn recall_noisy(
        &self,
        pcn: &Pcn,
        mut c: Tensor,
        rng: &mut ChaCha8Rng,
        relaxation: &InferenceConfig,
        iterations: usize,
    ) -> Result<(Tensor, RecallInfo)> {
        let mut runs = Vec::with_capacity(iterations);
        pcn.with_engine(|mut eng| {
            let mut ws: Option<Workspace> = None;
            for _ in 0..iterations {
                let x = pcn.init_values(&c, rng)?;
                let mut w = match ws.take() {
                    None => eng.workspace(to_flat(&x.0)?),
                    Some(mut w) => {
                        for (dst, t) in w.x.iter_mut().zip(&x.0) {
                            dst.copy_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
                        }
                        w
                    }
                };
                runs.push(pcn.relax_fused(&mut eng, &mut w, None, relaxation, "recall", 0)?);
                // mu_0 = x_0 - eps_0 becomes the next cue.
                let mu: Vec<f32> = w.x[0].iter().zip(&w.eps[0]).map(|(x, e)| x - e).collect();
                c = Tensor::from_vec(mu, c.dims(), &pcn.device)?;
                ws = Some(w);
            }
            Ok((c, RecallInfo { runs }))
        })
    }

    fn recall_partial(
        &self,
        pcn: &Pcn,
        x: ValueNodes,
        free: &Tensor,
        rule: FreeRule,
        relaxation: &InferenceConfig,
    ) -> Result<(Tensor, RecallInfo)> {
        let (rows, d) = free.dims2()?;
        pcn.with_engine(|mut eng| {
            let free = free.flatten_all()?.to_vec1::<f32>()?;
            let mut ws = eng.workspace(to_flat(&x.0)?);
            let info = pcn.relax_fused(
                &mut eng,
                &mut ws,
                Some((&free, rule)),
                relaxation,
                "recall",
                0,
            )?;
            let out = Tensor::from_vec(ws.x.swap_remove(0), (rows, d), &pcn.device)?;
            Ok((out, RecallInfo { runs: vec![info] }))
        })
    }

    fn restore_adam(&self, pcn: &mut Pcn, step: i32, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        let sizes: Vec<usize> = pcn.param_shapes().iter().map(|(r, c)| r * c).collect();
        let mut a = AdamCpu::zeros(&sizes);
        a.step = step;
        a.m = to_flat(&m)?;
        a.v = to_flat(&v)?;
        pcn.adam_cpu = Some(a);
        Ok(())
    }
}
