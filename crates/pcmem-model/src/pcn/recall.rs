//! Recall: from noisy cues (Alg. 2 from the cue) and from partial cues (known pixels fixed).

use super::*;

impl Pcn {
    pub(super) fn recall_rng(&self, salt: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x9e37_79b9_7f4a_7c15 ^ salt)
    }

    /// Recall from corrupted images (Sec. 3): clamp the sensory layer to the cue, run inference,
    /// take the sensory prediction `mu_0`; apply this map F `recall.iterations` times.
    pub fn recall_noisy(&self, cues: &Tensor) -> Result<(Tensor, RecallInfo)> {
        let rc = self.config.recall.clone();
        let relaxation = self.config.noise_relaxation();
        let c = self.check_patterns("cues", cues)?;
        let mut rng = self.recall_rng(1);
        self.exec()
            .recall_noisy(self, c, &mut rng, &relaxation, rc.iterations)
    }

    /// Recall from partial images (Alg. 2): the sensory pixels where `known` is 1 are clamped to
    /// the cue, the others start at the cue's values and evolve with the hidden layers (step size
    /// `recall.free_pixel_rate`, by default `recall.gamma`); returns the sensory value nodes after
    /// `recall.steps` steps. `known` is `(N, d)` or `(1, d)` of 0/1.
    /// With a known-pixel precision P != 1 (`recall.known_precision`) this runs on the model
    /// with `W_1` and the cue scaled by `sqrt(P)` (the same energy) at rate `gamma / max(P, 1)`,
    /// and scales the result back; the energies reported are the precision-weighted ones.
    pub fn recall_partial(&self, cues: &Tensor, known: &Tensor) -> Result<(Tensor, RecallInfo)> {
        let rc = self.config.recall.clone();
        let c = self.check_patterns("cues", cues)?;
        let p = self.known_precision()?;
        if p != 1.0 {
            let s = p.sqrt();
            let mut cfg = self.config.clone();
            cfg.recall.known_precision = KnownPrecision::default();
            cfg.recall.gamma = rc.gamma / p.max(1.0);
            let mut weights = self.weights.clone();
            weights[0] = weights[0].affine(s, 0.0)?;
            let (out, info) = self
                .variant(cfg, weights)
                .recall_partial(&c.affine(s, 0.0)?, known)?;
            return Ok((out.affine(1.0 / s, 0.0)?, info));
        }
        let rows = c.dims()[0];
        let d = self.config.input_dim;
        if known.rank() != 2
            || known.dims()[1] != d
            || (known.dims()[0] != rows && known.dims()[0] != 1)
        {
            return Err(PcnError::Shape {
                what: "known-pixel mask",
                got: known.dims().to_vec(),
                expected: format!("[{rows}, {d}] or [1, {d}] of 0/1"),
            });
        }
        let known = known.to_device(&self.device)?.to_dtype(DType::F32)?;
        check_finite("known-pixel mask", &known)?;
        let free = known
            .affine(-1.0, 1.0)?
            .broadcast_as((rows, d))?
            .contiguous()?;
        if rc.free_pixel_rate == Some(1.0) && known.dims()[0] == 1 {
            if let Some(out) = self.recall_known_only(&c, &known)? {
                return Ok(out);
            }
        }
        let rule = match rc.free_pixel_rate {
            None => FreeRule::Step(rc.gamma as f32),
            Some(r) => FreeRule::Pull(r as f32),
        };
        let mut rng = self.recall_rng(2);
        let x = self.init_values(&c, &mut rng)?;
        self.exec()
            .recall_partial(self, x, &free, rule, &rc.relaxation())
    }

    /// Partial recall with `free_pixel_rate = 1` and one mask for every row, on the network
    /// restricted to the known pixels. With rate 1 the free pixels sit on their prediction
    /// after every step, so their errors are zero and the latents feel only the known pixels:
    /// inference with the known pixels clamped and the first weight matrix cut to their rows
    /// runs the very same dynamics (same steps, same energy), at the cost of the known pixels
    /// only and with the Gram identity; the free pixels are then read off as `mu_0`.
    /// `None` when no pixel is known (nothing to restrict to) or the mask is not 0/1.
    pub(super) fn recall_known_only(
        &self,
        c: &Tensor,
        known: &Tensor,
    ) -> Result<Option<(Tensor, RecallInfo)>> {
        let rc = &self.config.recall;
        let mask = known.flatten_all()?.to_vec1::<f32>()?;
        if mask.iter().any(|&m| m != 0.0 && m != 1.0) {
            return Ok(None);
        }
        let idx: Vec<u32> = (0..mask.len() as u32)
            .filter(|&i| mask[i as usize] == 1.0)
            .collect();
        if idx.is_empty() {
            return Ok(None);
        }
        let idx = Tensor::from_vec(idx.clone(), idx.len(), &self.device)?;
        let mut cfg = self.config.clone();
        cfg.input_dim = idx.dims()[0];
        cfg.inference = rc.relaxation();
        cfg.validate()?;
        let mut weights = self.weights.clone();
        weights[0] = weights[0].index_select(&idx, 0)?.contiguous()?;
        let sub = self.variant(cfg, weights);
        let mut rng = self.recall_rng(2);
        let mut x = sub.init_values(&c.index_select(&idx, 1)?.contiguous()?, &mut rng)?;
        let info = sub.infer(&mut x)?;
        let mu0 = self.predict(1, &x.0[1])?;
        let keep = known.broadcast_as(c.dims())?;
        let out = ((c * &keep)? + (mu0 * keep.affine(-1.0, 1.0)?)?)?;
        Ok(Some((out, RecallInfo { runs: vec![info] })))
    }
}
