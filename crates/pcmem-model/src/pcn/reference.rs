//! The reference kernel on candle: activations, value-node initialisation, predictions, the
//! energy and its gradients, relaxation (inference) and the parameter update (learning).

use super::*;

impl Pcn {
    pub(super) fn act(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.config.activation {
            Activation::Relu => x.relu()?,
            Activation::Tanh => x.tanh()?,
            Activation::Identity => x.clone(),
        })
    }

    pub(super) fn act_grad(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.config.activation {
            Activation::Relu => x.ge(0f64)?.to_dtype(DType::F32)?,
            Activation::Tanh => x.tanh()?.sqr()?.affine(-1.0, 1.0)?,
            Activation::Identity => x.ones_like()?,
        })
    }

    /// Starting value nodes for the rows of `x0` (sensory layer set to `x0`).
    pub fn init_values(&self, x0: &Tensor, rng: &mut ChaCha8Rng) -> Result<ValueNodes> {
        self.init_values_with(x0, rng, &self.weights, self.prior.as_ref())
    }

    /// [`Pcn::init_values`] with these parameters (the fused kernel holds the model's own
    /// while it trains; a top-down start must read them from there).
    pub(super) fn init_values_with(
        &self,
        x0: &Tensor,
        rng: &mut ChaCha8Rng,
        weights: &[Tensor],
        prior: Option<&Tensor>,
    ) -> Result<ValueNodes> {
        let rows = x0.dims()[0];
        let n = self.config.hidden_dim;
        let layers = self.config.layers;
        let mut x = vec![x0.clone(); layers + 1];
        match self.config.value_init {
            ValueInit::Zero => {
                for v in x.iter_mut().skip(1) {
                    *v = Tensor::zeros((rows, n), DType::F32, &self.device)?;
                }
            }
            ValueInit::Random { std } => {
                for v in x.iter_mut().skip(1) {
                    *v = randn(rng, rows, n, std, &self.device)?;
                }
            }
            ValueInit::Forward => {
                x[layers] = match prior {
                    Some(b) => b.broadcast_as((rows, n))?.contiguous()?,
                    None => Tensor::zeros((rows, n), DType::F32, &self.device)?,
                };
                for l in (1..layers).rev() {
                    x[l] = self.predict_with(&weights[l], &x[l + 1])?;
                }
            }
        }
        Ok(ValueNodes(x))
    }

    /// Prediction `mu_{l-1}` of layer `l-1` from the value nodes of layer `l`.
    pub(super) fn predict(&self, l: usize, xl: &Tensor) -> Result<Tensor> {
        self.predict_with(&self.weights[l - 1], xl)
    }

    /// The prediction of the layer below from value nodes `xl` through weights `w`.
    fn predict_with(&self, w: &Tensor, xl: &Tensor) -> Result<Tensor> {
        Ok(match self.config.placement {
            ActivationPlacement::PreSynaptic => self.act(xl)?.matmul(&w.t()?)?,
            ActivationPlacement::PostSynaptic => self.act(&xl.matmul(&w.t()?)?)?,
        })
    }

    pub(super) fn forward(&self, x: &[Tensor]) -> Result<Forward> {
        self.forward_with(x, None)
    }

    /// The forward pass at `x`; with `gram`, layer 1 in Gram form ([`super::gram`]).
    pub(super) fn forward_with(
        &self,
        x: &[Tensor],
        gram: Option<&super::gram::GramTerms>,
    ) -> Result<Forward> {
        let layers = self.config.layers;
        let mut eps = Vec::with_capacity(layers + 1);
        let mut inputs = Vec::with_capacity(layers);
        let mut deltas = Vec::with_capacity(layers);
        let mut part = None;
        for l in 1..=layers {
            let w = &self.weights[l - 1];
            if let (1, Some(t)) = (l, gram) {
                let (f1, absent, p) = self.gram_layer(t, &x[1])?;
                inputs.push(f1);
                deltas.push(absent.clone());
                eps.push(absent);
                part = Some(p);
                continue;
            }
            match self.config.placement {
                ActivationPlacement::PreSynaptic => {
                    let fx = self.act(&x[l])?;
                    let e = (&x[l - 1] - fx.matmul(&w.t()?)?)?;
                    inputs.push(fx);
                    deltas.push(e.clone());
                    eps.push(e);
                }
                ActivationPlacement::PostSynaptic => {
                    let a = x[l].matmul(&w.t()?)?;
                    let e = (&x[l - 1] - self.act(&a)?)?;
                    deltas.push((&e * self.act_grad(&a)?)?);
                    inputs.push(x[l].clone());
                    eps.push(e);
                }
            }
        }
        if let Some(b) = &self.prior {
            eps.push(x[layers].broadcast_sub(b)?);
        }
        Ok(Forward {
            eps,
            inputs,
            deltas,
            gram: part,
        })
    }

    pub(super) fn energy_of(fw: &Forward) -> Result<f64> {
        let mut e = match &fw.gram {
            Some(g) => g.sensory_sq(&fw.inputs[0])?,
            None => sum_sq(&fw.eps[0])?,
        };
        for t in &fw.eps[1..] {
            e += sum_sq(t)?;
        }
        Ok(0.5 * e)
    }

    /// `dE/dx_l` for `l = 1..=L` (index `l-1`).
    pub(super) fn hidden_grads(&self, x: &[Tensor], fw: &Forward) -> Result<Vec<Tensor>> {
        let layers = self.config.layers;
        let mut out = Vec::with_capacity(layers);
        for l in 1..=layers {
            let back = match (l, &fw.gram) {
                (1, Some(g)) => g.back.clone(),
                _ => fw.deltas[l - 1].matmul(&self.weights[l - 1])?,
            };
            let back = match self.config.placement {
                ActivationPlacement::PreSynaptic => (back * self.act_grad(&x[l])?)?,
                ActivationPlacement::PostSynaptic => back,
            };
            let g = match fw.eps.get(l) {
                Some(e) => (e - back)?,
                None => back.neg()?,
            };
            out.push(g);
        }
        Ok(out)
    }

    /// Energy of Eq. 2 at the state `x`, summed over rows.
    pub fn energy(&self, x: &ValueNodes) -> Result<f64> {
        Self::energy_of(&self.forward(&x.0)?)
    }

    /// Hand-derived gradients of the energy at state `x` (Eq. 3-5 are minus these, scaled).
    pub fn gradients(&self, x: &ValueNodes) -> Result<Gradients> {
        let fw = self.forward(&x.0)?;
        let mut values = vec![fw.eps[0].clone()];
        values.extend(self.hidden_grads(&x.0, &fw)?);
        let (weights, prior) = self.param_grads(&fw)?;
        Ok(Gradients {
            values,
            weights,
            prior,
        })
    }

    pub(super) fn param_grads(&self, fw: &Forward) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let layers = self.config.layers;
        let mut gw = Vec::with_capacity(layers);
        for l in 1..=layers {
            gw.push(fw.deltas[l - 1].t()?.matmul(&fw.inputs[l - 1])?.neg()?);
        }
        let gb = match &self.prior {
            Some(_) => Some(fw.eps[layers].sum_keepdim(0)?.neg()?),
            None => None,
        };
        Ok((gw, gb))
    }

    /// One synchronous inference step (Eq. 3) from `fw`, the forward pass at `x`.
    /// With momentum, `vel` holds each hidden layer's previous change and is updated.
    pub(super) fn apply_step(
        &self,
        x: &mut [Tensor],
        vel: &mut [Tensor],
        fw: &Forward,
        free0: Option<(&Tensor, FreeRule)>,
        dynamics: &InferenceConfig,
    ) -> Result<()> {
        let grads = self.hidden_grads(x, fw)?;
        let (gamma, beta) = (dynamics.gamma, dynamics.momentum);
        for (l, g) in grads.iter().enumerate() {
            if beta > 0.0 {
                vel[l] = (vel[l].affine(beta, 0.0)? - g.affine(gamma, 0.0)?)?;
                x[l + 1] = (&x[l + 1] + &vel[l])?;
            } else {
                x[l + 1] = (&x[l + 1] - g.affine(gamma, 0.0)?)?;
            }
        }
        if let Some((free, FreeRule::Step(rate))) = free0 {
            x[0] = (&x[0] - (&fw.eps[0] * free)?.affine(rate as f64, 0.0)?)?;
        }
        Ok(())
    }

    /// Runs inference on `x` (Eq. 3) with the sensory layer clamped, or with the pixels where
    /// `free0.0 == 1` left free (step size `free0.1`). Returns the info and the forward pass at
    /// the final state.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relax(
        &self,
        x: &mut [Tensor],
        free0: Option<(&Tensor, FreeRule)>,
        dynamics: &InferenceConfig,
        phase: &'static str,
        epoch: usize,
    ) -> Result<(InferenceInfo, Forward)> {
        let (gamma, steps, tolerance) = (dynamics.gamma, dynamics.steps, dynamics.tolerance);
        let diverged = |step: usize, energy: f64| PcnError::Diverged {
            phase,
            epoch,
            step,
            energy,
            gamma,
            alpha: self.config.learning.alpha,
        };
        let mut prev: Option<f64> = None;
        let mut taken = 0;
        let mut converged = false;
        let pull = |x: &mut [Tensor], fw: &mut Forward| -> Result<()> {
            if let Some((free, FreeRule::Pull(r))) = free0 {
                let moved = free.affine(r as f64, 0.0)?;
                x[0] = (&x[0] - (&fw.eps[0] * &moved)?)?;
                let keep = moved.affine(-1.0, 1.0)?;
                fw.eps[0] = (&fw.eps[0] * &keep)?;
                fw.deltas[0] = (&fw.deltas[0] * &keep)?;
            }
            Ok(())
        };
        // Velocities only with momentum: plain steps (the default) allocate nothing for them.
        let mut vel = if dynamics.momentum > 0.0 {
            x[1..]
                .iter()
                .map(Tensor::zeros_like)
                .collect::<candle_core::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let rows = x[0].dims()[0];
        let gram = match free0 {
            None if self.gram_applies(rows, steps) => Some(self.gram_terms(&x[0])?),
            _ => None,
        };
        let mut fw = self.forward_with(x, gram.as_ref())?;
        pull(x, &mut fw)?;
        for t in 0..steps {
            if let Some(tol) = tolerance {
                let e = Self::energy_of(&fw)?;
                if !e.is_finite() {
                    return Err(diverged(t, e));
                }
                if let Some(p) = prev {
                    if (p - e).abs() <= tol * p.abs().max(f64::MIN_POSITIVE) {
                        converged = true;
                        break;
                    }
                }
                prev = Some(e);
            }
            self.apply_step(x, &mut vel, &fw, free0, dynamics)?;
            taken = t + 1;
            fw = self.forward_with(x, gram.as_ref())?;
            pull(x, &mut fw)?;
        }
        if gram.is_some() {
            // The caller gets the errors themselves (learning, the recall map read eps_0).
            fw = self.forward(x)?;
        }
        let energy = Self::energy_of(&fw)?;
        if !energy.is_finite() {
            return Err(diverged(taken, energy));
        }
        Ok((
            InferenceInfo {
                steps: taken,
                energy,
                converged,
            },
            fw,
        ))
    }

    /// Runs training-time inference (sensory layer clamped) on `x` in place.
    pub fn infer(&self, x: &mut ValueNodes) -> Result<InferenceInfo> {
        self.exec().infer(self, x)
    }

    pub(super) fn update_parameters(
        &mut self,
        gw: Vec<Tensor>,
        gb: Option<Tensor>,
        rows: usize,
    ) -> Result<()> {
        let lc = &self.config.learning;
        let scale = match lc.gradient_scale {
            GradientScale::Sum => 1.0,
            GradientScale::Mean => 1.0 / rows as f64,
        };
        let mut grads = gw;
        grads.extend(gb);
        match lc.optimizer {
            Optimizer::Sgd => {
                let step = lc.alpha * self.rate_scale * scale;
                for (p, g) in self.params_mut().into_iter().zip(&grads) {
                    *p = (&*p - g.affine(step, 0.0)?)?;
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                let alpha = lc.alpha * self.rate_scale;
                let mut st = match self.adam.take() {
                    Some(s) => s,
                    None => AdamState {
                        step: 0,
                        m: grads
                            .iter()
                            .map(|g| g.zeros_like())
                            .collect::<candle_core::Result<_>>()?,
                        v: grads
                            .iter()
                            .map(|g| g.zeros_like())
                            .collect::<candle_core::Result<_>>()?,
                    },
                };
                st.step += 1;
                let rule = crate::optim::AdamStep::at(st.step, alpha, beta1, beta2, eps);
                for (i, (p, g)) in self.params_mut().into_iter().zip(&grads).enumerate() {
                    let g = g.affine(scale, 0.0)?;
                    rule.tensors(p, &mut st.m[i], &mut st.v[i], &g)?;
                }
                self.adam = Some(st);
            }
        }
        Ok(())
    }

    pub(super) fn params_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v: Vec<&mut Tensor> = self.weights.iter_mut().collect();
        if let Some(b) = self.prior.as_mut() {
            v.push(b);
        }
        v
    }

    /// One weight update (Eq. 4-5, or Adam) at the state `x`, whose sensory layer holds the data.
    pub fn learn(&mut self, x: &ValueNodes) -> Result<()> {
        self.exec().learn(self, x)
    }
}

/// The reference kernel: one candle operation per term of the equations, on any device.
pub(super) struct Reference;

impl Exec for Reference {
    fn infer(&self, pcn: &Pcn, x: &mut ValueNodes) -> Result<InferenceInfo> {
        let c = &pcn.config.inference;
        Ok(pcn.relax(&mut x.0, None, c, "inference", 0)?.0)
    }

    fn learn(&self, pcn: &mut Pcn, x: &ValueNodes) -> Result<()> {
        let fw = pcn.forward(&x.0)?;
        let (gw, gb) = pcn.param_grads(&fw)?;
        pcn.update_parameters(gw, gb, x.0[0].dims()[0])
    }

    fn train_step(&self, pcn: &mut Pcn, x: ValueNodes) -> Result<(InferenceInfo, ValueNodes)> {
        let (info, x, _) = pcn.train_from(x, 0)?;
        Ok((info, x))
    }

    fn train_epochs(
        &self,
        pcn: &mut Pcn,
        batches: &[Tensor],
        kept: Vec<Option<Vec<Tensor>>>,
        lp: &mut EpochLoop<'_>,
        mut on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<()> {
        let lc = pcn.config.learning.clone();
        let mut kept: Vec<Option<ValueNodes>> =
            kept.into_iter().map(|k| k.map(ValueNodes)).collect();
        while let Some(epoch) = lp.next_epoch() {
            pcn.rate_scale = lp.rate_scale();
            let mut acc = EpochSums::default();
            for (i, batch) in batches.iter().enumerate() {
                let start = match kept[i].take() {
                    Some(x) if lc.persistent_values => x,
                    _ => {
                        let mut rng = pcn.rng.clone();
                        let x = pcn.init_values(batch, &mut rng)?;
                        pcn.rng = rng;
                        x
                    }
                };
                let (info, x, sensory_sq) = pcn.train_from(start, epoch)?;
                if lc.persistent_values {
                    kept[i] = Some(x);
                }
                acc.add(&info, sensory_sq);
            }
            if lp.finish(epoch, acc, batches.len(), &mut on_epoch) {
                let mut tensors = pcn.parameter_tensors()?;
                if let Some(st) = &pcn.adam {
                    for (i, (m, v)) in st.m.iter().zip(&st.v).enumerate() {
                        tensors.insert(format!("adam.m{i}"), m.clone());
                        tensors.insert(format!("adam.v{i}"), v.clone());
                    }
                }
                for (i, k) in kept.iter().enumerate() {
                    for (l, t) in k.iter().flat_map(|x| x.0.iter().enumerate()) {
                        tensors.insert(format!("kept{i}.x{l}"), t.clone());
                    }
                }
                let step = pcn.adam.as_ref().map(|a| a.step);
                lp.save(&pcn.config, step, &pcn.rng, &tensors)?;
            }
        }
        Ok(())
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
        for _ in 0..iterations {
            let mut x = pcn.init_values(&c, rng)?;
            let (info, fw) = pcn.relax(&mut x.0, None, relaxation, "recall", 0)?;
            c = (&x.0[0] - &fw.eps[0])?;
            runs.push(info);
        }
        Ok((c, RecallInfo { runs }))
    }

    fn recall_partial(
        &self,
        pcn: &Pcn,
        mut x: ValueNodes,
        free: &Tensor,
        rule: FreeRule,
        relaxation: &InferenceConfig,
    ) -> Result<(Tensor, RecallInfo)> {
        let (info, _) = pcn.relax(&mut x.0, Some((free, rule)), relaxation, "recall", 0)?;
        let out = x.0.swap_remove(0);
        Ok((out, RecallInfo { runs: vec![info] }))
    }

    fn restore_adam(&self, pcn: &mut Pcn, step: i32, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        pcn.adam = Some(AdamState { step, m, v });
        Ok(())
    }
}
