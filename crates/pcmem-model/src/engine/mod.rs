//! Fused CPU kernel for inference and learning.
//!
//! Candle allocates a fresh tensor for every operation; the PCN's hot loop is a few matrix
//! products per inference step plus element-wise work, so on CPU this module runs the same
//! equations on buffers allocated once per call: the sensory error is formed in place by one
//! matrix product that accumulates into a copy of `x_0` (`eps = x - f(x') W`), the element-wise
//! parts of Eq. 3 are one fused pass per layer (which also leaves `f(x)` and the copy of `x`
//! that the next prediction accumulates into), and the SGD weight update of Eq. 4 accumulates
//! straight into the weights. Matrix products go through `gemm`, the kernel candle itself uses on
//! CPU; the top-down predictions read a transposed copy of the weights, made once per weight
//! update, because `gemm` would repack weights read transposed at every step. The candle-op
//! implementation in [`crate::pcn`] is the reference; tests hold the two equal.

mod elementwise;

use std::borrow::Cow;

use rayon::prelude::*;

use crate::config::{Activation, ActivationPlacement, InferenceConfig};
pub(crate) use crate::products::gemm_into;
use elementwise::{
    presynaptic_pass, sum_sq, transpose_into, update_nodes, zip_apply, Act, Ident, LayerPass, Relu,
    Tanh, CHUNK, PAR_MIN,
};

/// How the free sensory pixels of a partial recall move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FreeRule {
    /// With the latents, one gradient step of this size per step (Alg. 2).
    Step(f32),
    /// Before every latent step, this fraction of the way to their current prediction.
    Pull(f32),
}

/// Parameters of a PCN as flat row-major buffers. `w[l-1]` is `theta^l`, `(d_{l-1}, d_l)`.
#[derive(Debug, Clone)]
pub(crate) struct Engine<'a> {
    pub dims: Vec<usize>,
    pub activation: Activation,
    pub placement: ActivationPlacement,
    /// Borrowed from the model's tensors for recall, owned while training.
    pub w: Vec<Cow<'a, [f32]>>,
    pub b: Option<Cow<'a, [f32]>>,
    /// Allow the Gram identity for a clamped sensory layer (see [`Engine::relax`]).
    pub allow_gram: bool,
    /// Cached `G = W_1^T W_1` (`d_1 x d_1`); cleared whenever the weights change.
    pub gram: Option<Vec<f32>>,
    /// Cached transposed copies `W_l^T` (`d_l x d_{l-1}` row-major) for the top-down
    /// predictions, which `gemm` multiplies 1.5-3x faster from this layout than by reading
    /// `W_l` transposed (it would repack the weights at every call); cleared with `gram`.
    pub wt: Option<Vec<Vec<f32>>>,
}

/// How the sensory layer's bottom-up term is computed during a relaxation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `eps_0 = x_0 - f(x_1) W_1^T`, then `eps_0 W_1`: two `N x d x n` products per step.
    Direct,
    /// With `x_0` clamped, `eps_0 W_1 = x_0 W_1 - f(x_1) (W_1^T W_1)`: one `N x n x n` product
    /// per step after computing `C = x_0 W_1` and `G = W_1^T W_1` once.
    Gram,
}

/// Value nodes and scratch for `rows` data points, allocated once per call.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub rows: usize,
    /// `x[l]`: `(rows, d_l)` for `l = 0..=L`.
    pub x: Vec<Vec<f32>>,
    /// `eps[l]`: `(rows, d_l)`; `eps[L]` only when there is a prior.
    pub eps: Vec<Vec<f32>>,
    /// Pre-synaptic: `f(x_l)` at index `l-1`. Post-synaptic: `f'(x_l W_l)`-weighted errors.
    pub inp: Vec<Vec<f32>>,
    /// Bottom-up products `delta_{l-1} W_l`, `(rows, d_l)`, at index `l-1`. In Gram mode
    /// `back[0]` holds `f(x_1) G` after the forward pass.
    pub back: Vec<Vec<f32>>,
    /// Gram mode: `C = x_0 W_1`, `(rows, d_1)`.
    pub gram_c: Vec<f32>,
    /// Gram mode: squared norm of each row of `x_0`.
    pub x0_sq: Vec<f64>,
    /// With momentum: the last change of each hidden layer, `(rows, d_l)` at index `l-1`.
    pub vel: Vec<Vec<f32>>,
}

impl<'p> Engine<'p> {
    /// An engine on the given parameters, with nothing cached.
    pub fn new(
        dims: Vec<usize>,
        (activation, placement): (Activation, ActivationPlacement),
        w: Vec<Cow<'p, [f32]>>,
        b: Option<Cow<'p, [f32]>>,
        allow_gram: bool,
    ) -> Self {
        Self {
            dims,
            activation,
            placement,
            w,
            b,
            allow_gram,
            gram: None,
            wt: None,
        }
    }

    /// Drops what was computed from the weights; call after every change of them.
    fn weights_changed(&mut self) {
        self.gram = None;
        self.wt = None;
    }

    /// Computes the transposed weights for the top-down predictions, unless cached.
    pub fn prepare_transposed(&mut self) {
        if self.wt.is_some() {
            return;
        }
        let wt = (1..=self.layers())
            .map(|l| {
                let (dl, db) = (self.dims[l], self.dims[l - 1]);
                let mut t = vec![0.0; dl * db];
                transpose_into(&self.w[l - 1], (db, dl), &mut t);
                t
            })
            .collect();
        self.wt = Some(wt);
    }

    /// `W_l^T` as (slice, row stride, column stride) of a `d_l x d_{l-1}` operand: the cached
    /// copy when there is one, else `W_l` read transposed.
    fn w_transposed(&self, l: usize) -> (&[f32], usize, usize) {
        let (dl, db) = (self.dims[l], self.dims[l - 1]);
        match &self.wt {
            Some(wt) => (&wt[l - 1], db, 1),
            None => (&self.w[l - 1], 1, dl),
        }
    }

    fn layers(&self) -> usize {
        self.dims.len() - 1
    }

    /// A workspace holding the given value nodes (`x[l]` flat, `rows x d_l`).
    pub fn workspace(&self, x: Vec<Vec<f32>>) -> Workspace {
        let rows = x[0].len() / self.dims[0];
        let l_max = self.layers();
        let eps = (0..=l_max)
            .map(|l| {
                if l < l_max || self.b.is_some() {
                    vec![0.0; rows * self.dims[l]]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let inp = (1..=l_max)
            .map(|l| match self.placement {
                ActivationPlacement::PreSynaptic => vec![0.0; rows * self.dims[l]],
                ActivationPlacement::PostSynaptic => vec![0.0; rows * self.dims[l - 1]],
            })
            .collect();
        let back = (1..=l_max)
            .map(|l| vec![0.0; rows * self.dims[l]])
            .collect();
        Workspace {
            rows,
            x,
            eps,
            inp,
            back,
            gram_c: Vec::new(),
            x0_sq: Vec::new(),
            vel: Vec::new(),
        }
    }

    /// Errors of every layer at the current state (and `f(x)` or the weighted errors).
    pub fn forward(&self, ws: &mut Workspace) {
        self.forward_mode(ws, Mode::Direct, false)
    }

    /// With `prepared` (after a pre-synaptic [`Engine::step`]), `f(x_l)` and the copies of the
    /// hidden `x_l` in `eps_l` are already in place and only the products remain.
    fn forward_mode(&self, ws: &mut Workspace, mode: Mode, prepared: bool) {
        match self.activation {
            Activation::Relu => self.forward_a::<Relu>(ws, mode, prepared),
            Activation::Tanh => self.forward_a::<Tanh>(ws, mode, prepared),
            Activation::Identity => self.forward_a::<Ident>(ws, mode, prepared),
        }
    }

    fn forward_a<A: Act>(&self, ws: &mut Workspace, mode: Mode, prepared: bool) {
        let rows = ws.rows;
        let Workspace {
            x, eps, inp, back, ..
        } = ws;
        for l in 1..=self.layers() {
            let (dl, db) = (self.dims[l], self.dims[l - 1]);
            match self.placement {
                ActivationPlacement::PreSynaptic => {
                    if !prepared {
                        zip_apply(&mut inp[l - 1], [&x[l]], |d, [s]| {
                            for (o, &v) in d.iter_mut().zip(s) {
                                *o = A::f(v);
                            }
                        });
                    }
                    if l == 1 && mode == Mode::Gram {
                        let g = self
                            .gram
                            .as_deref()
                            .expect("Gram matrix computed before use");
                        gemm_into(
                            &mut back[0],
                            (rows, dl, dl),
                            (&inp[0], dl, 1),
                            (g, dl, 1),
                            false,
                            1.0,
                        );
                        continue;
                    }
                    if !prepared || l == 1 {
                        eps[l - 1].copy_from_slice(&x[l - 1]);
                    }
                    gemm_into(
                        &mut eps[l - 1],
                        (rows, db, dl),
                        (&inp[l - 1], dl, 1),
                        self.w_transposed(l),
                        true,
                        -1.0,
                    );
                }
                ActivationPlacement::PostSynaptic => {
                    // a = x_l W_l into inp, then eps = x - f(a) and inp = eps * f'(a).
                    gemm_into(
                        &mut inp[l - 1],
                        (rows, db, dl),
                        (&x[l], dl, 1),
                        self.w_transposed(l),
                        false,
                        1.0,
                    );
                    let (xb, e, a) = (&x[l - 1], &mut eps[l - 1], &mut inp[l - 1]);
                    for ((ei, ai), &xi) in e.iter_mut().zip(a.iter_mut()).zip(xb) {
                        let av = *ai;
                        *ei = xi - A::f(av);
                        *ai = *ei * A::df(av);
                    }
                }
            }
        }
        if let Some(b) = &self.b {
            let l = self.layers();
            let n = self.dims[l];
            for (er, xr) in eps[l].chunks_mut(n).zip(x[l].chunks(n)) {
                for ((e, &xv), &bv) in er.iter_mut().zip(xr).zip(b.iter()) {
                    *e = xv - bv;
                }
            }
        }
    }

    /// The error signal that `W_l` carries up (index `l-1`).
    fn delta<'a>(&self, ws: &'a Workspace, l: usize) -> &'a [f32] {
        match self.placement {
            ActivationPlacement::PreSynaptic => &ws.eps[l - 1],
            ActivationPlacement::PostSynaptic => &ws.inp[l - 1],
        }
    }

    /// Left operand of the prediction from layer `l`: `f(x_l)` or `x_l`.
    fn input<'a>(&self, ws: &'a Workspace, l: usize) -> &'a [f32] {
        match self.placement {
            ActivationPlacement::PreSynaptic => &ws.inp[l - 1],
            ActivationPlacement::PostSynaptic => &ws.x[l],
        }
    }

    /// Energy (Eq. 2) from the errors of the last [`Engine::forward`].
    pub fn energy(&self, ws: &Workspace) -> f64 {
        self.energy_mode(ws, Mode::Direct)
    }

    fn energy_mode(&self, ws: &Workspace, mode: Mode) -> f64 {
        let skip = usize::from(mode == Mode::Gram);
        let hidden: f64 = ws.eps.iter().skip(skip).map(|e| sum_sq(e)).sum();
        let sensory = match mode {
            Mode::Direct => 0.0,
            // |x0 - f W^T|^2 = |x0|^2 - 2 f . (x0 W) + f . (f W^T W), per row.
            Mode::Gram => {
                let n = self.dims[1];
                (0..ws.rows)
                    .map(|r| {
                        let s = r * n..(r + 1) * n;
                        let f = &ws.inp[0][s.clone()];
                        let c = &ws.gram_c[s.clone()];
                        let fg = &ws.back[0][s];
                        let dot = |a: &[f32], b: &[f32]| -> f64 {
                            a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
                        };
                        ws.x0_sq[r] - 2.0 * dot(f, c) + dot(f, fg)
                    })
                    .sum()
            }
        };
        0.5 * (hidden + sensory)
    }

    /// Moves the free sensory pixels a fraction `r` of the way to their current prediction and
    /// updates the errors of the last forward pass to match (no new matrix product: the error
    /// of a free pixel shrinks by `1 - r`, and so does the signal it sends up).
    fn pull_free(&self, ws: &mut Workspace, free: &[f32], r: f32) {
        let post = self.placement == ActivationPlacement::PostSynaptic;
        let Workspace { x, eps, inp, .. } = ws;
        zip_apply(&mut x[0], [&eps[0], free], |xv, [e, fr]| {
            for ((xi, &ei), &fi) in xv.iter_mut().zip(e).zip(fr) {
                *xi -= r * fi * ei;
            }
        });
        zip_apply(&mut eps[0], [free], |e, [fr]| {
            for (ei, &fi) in e.iter_mut().zip(fr) {
                *ei *= 1.0 - r * fi;
            }
        });
        if post {
            zip_apply(&mut inp[0], [free], |a, [fr]| {
                for (ai, &fi) in a.iter_mut().zip(fr) {
                    *ai *= 1.0 - r * fi;
                }
            });
        }
    }

    /// Runs `steps` inference steps (Eq. 3) from the state in `ws`, or until the relative
    /// energy change of a step falls below `tolerance`; pixels with `free0.0 == 1` move too, by
    /// the rule `free0.1` (Alg. 2).
    /// Uses the Gram identity when the sensory layer is clamped and it saves work. Leaves the
    /// errors of the final state in `ws` and returns (steps, final energy, converged), or the
    /// step and energy at which the energy stopped being finite.
    pub fn relax(
        &mut self,
        ws: &mut Workspace,
        free0: Option<(&[f32], FreeRule)>,
        dynamics: &InferenceConfig,
    ) -> Result<(usize, f64, bool), (usize, f64)> {
        let (gamma, steps, tolerance) = (dynamics.gamma as f32, dynamics.steps, dynamics.tolerance);
        let beta = dynamics.momentum as f32;
        ws.vel.clear();
        if beta > 0.0 {
            ws.vel = (1..=self.layers())
                .map(|l| vec![0.0; ws.rows * self.dims[l]])
                .collect();
        }
        let n1 = self.dims[1];
        let mode = if self.allow_gram
            && free0.is_none()
            && self.placement == ActivationPlacement::PreSynaptic
            && 2 * steps * ws.rows > n1
        {
            Mode::Gram
        } else {
            Mode::Direct
        };
        if mode == Mode::Gram {
            self.prepare_gram(ws);
        }
        self.prepare_transposed();
        let mut prev: Option<f64> = None;
        let (mut taken, mut converged) = (0, false);
        let pull = match free0 {
            Some((free, FreeRule::Pull(r))) => Some((free, r)),
            _ => None,
        };
        self.forward_mode(ws, mode, false);
        if let Some((free, r)) = pull {
            self.pull_free(ws, free, r);
        }
        for t in 0..steps {
            if let Some(tol) = tolerance {
                let e = self.energy_mode(ws, mode);
                if !e.is_finite() {
                    return Err((t, e));
                }
                if let Some(p) = prev {
                    if (p - e).abs() <= tol * p.abs().max(f64::MIN_POSITIVE) {
                        converged = true;
                        break;
                    }
                }
                prev = Some(e);
            }
            let prepared = self.step(ws, free0, (gamma, beta), mode);
            taken = t + 1;
            self.forward_mode(ws, mode, prepared);
            if let Some((free, r)) = pull {
                self.pull_free(ws, free, r);
            }
        }
        if mode == Mode::Gram {
            self.forward_mode(ws, Mode::Direct, false);
        }
        let energy = self.energy(ws);
        if !energy.is_finite() {
            return Err((taken, energy));
        }
        Ok((taken, energy, converged))
    }

    /// Computes `G = W_1^T W_1` (cached until the weights change), `C = x_0 W_1` and `|x_0|^2`.
    fn prepare_gram(&mut self, ws: &mut Workspace) {
        let (d, n) = (self.dims[0], self.dims[1]);
        let w: &[f32] = &self.w[0];
        if self.gram.is_none() {
            let mut g = vec![0.0; n * n];
            gemm_into(&mut g, (n, n, d), (w, 1, n), (w, n, 1), false, 1.0);
            self.gram = Some(g);
        }
        ws.gram_c.resize(ws.rows * n, 0.0);
        gemm_into(
            &mut ws.gram_c,
            (ws.rows, n, d),
            (&ws.x[0], d, 1),
            (w, n, 1),
            false,
            1.0,
        );
        ws.x0_sq = ws.x[0]
            .chunks(d)
            .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum())
            .collect();
    }

    /// Half the squared error of layer `l` from the last forward pass.
    pub fn energy_of_layer(ws: &Workspace, l: usize) -> f64 {
        0.5 * sum_sq(&ws.eps[l])
    }

    /// One synchronous inference step (Eq. 3) using the errors of the last forward pass;
    /// sensory pixels with `free0.0 == 1` move too under [`FreeRule::Step`] (Alg. 2).
    /// `rate` is (gamma, momentum beta); with beta > 0 `ws.vel` holds the last changes.
    /// Returns whether the next forward pass finds `f(x)` and the copies of `x` prepared.
    fn step(
        &self,
        ws: &mut Workspace,
        free0: Option<(&[f32], FreeRule)>,
        rate: (f32, f32),
        mode: Mode,
    ) -> bool {
        match self.activation {
            Activation::Relu => self.step_a::<Relu>(ws, free0, rate, mode),
            Activation::Tanh => self.step_a::<Tanh>(ws, free0, rate, mode),
            Activation::Identity => self.step_a::<Ident>(ws, free0, rate, mode),
        }
    }

    fn step_a<A: Act>(
        &self,
        ws: &mut Workspace,
        free0: Option<(&[f32], FreeRule)>,
        (gamma, beta): (f32, f32),
        mode: Mode,
    ) -> bool {
        let rows = ws.rows;
        let top = self.layers();
        // Every bottom-up product first: they read only the errors of the last forward pass,
        // which the node updates below overwrite. In Gram form `back[0]` already holds
        // `f(x_1) G` and the update pass forms `C - f(x_1) G` itself.
        for l in 1..=top {
            if l == 1 && mode == Mode::Gram {
                continue;
            }
            let (dl, db) = (self.dims[l], self.dims[l - 1]);
            let mut back = std::mem::take(&mut ws.back[l - 1]);
            gemm_into(
                &mut back,
                (rows, dl, db),
                (self.delta(ws, l), db, 1),
                (&self.w[l - 1], dl, 1),
                false,
                1.0,
            );
            ws.back[l - 1] = back;
        }
        let pre = self.placement == ActivationPlacement::PreSynaptic;
        for l in 1..=top {
            let has_eps = l < top || self.b.is_some();
            let Workspace {
                x,
                eps,
                inp,
                back,
                vel,
                gram_c,
                ..
            } = &mut *ws;
            let vl: &mut [f32] = vel.get_mut(l - 1).map_or(&mut [], |v| v.as_mut_slice());
            if pre {
                let gram = l == 1 && mode == Mode::Gram;
                let pass = LayerPass {
                    x: &mut x[l],
                    vel: vl,
                    eps: if has_eps { &mut eps[l] } else { &mut [] },
                    fx: &mut inp[l - 1],
                    back: &back[l - 1],
                    gram_c: if gram { gram_c } else { &[] },
                };
                presynaptic_pass::<A>(pass, gamma, beta, l < top);
                continue;
            }
            let (xl, bl) = (&mut x[l], &back[l - 1]);
            // Without an error at this layer (free top layer) `back` stands in for it, unused.
            let el: &[f32] = if has_eps { &eps[l] } else { bl };
            if has_eps {
                update_nodes(xl, vl, beta, el, bl, |_, e, b| -gamma * (e - b));
            } else {
                update_nodes(xl, vl, beta, el, bl, |_, _, b| gamma * b);
            }
        }
        if let Some((free, FreeRule::Step(rate))) = free0 {
            zip_apply(&mut ws.x[0], [&ws.eps[0], free], |x, [e, fr]| {
                for ((xv, &ev), &fv) in x.iter_mut().zip(e).zip(fr) {
                    *xv -= rate * ev * fv;
                }
            });
        }
        pre
    }

    /// Gradients of the energy with respect to the parameters, scaled by `scale`, written into
    /// `gw` (shapes of `w`) and `gb`.
    pub fn param_grads(
        &self,
        ws: &Workspace,
        scale: f32,
        gw: &mut [Vec<f32>],
        gb: Option<&mut Vec<f32>>,
    ) {
        for l in 1..=self.layers() {
            let (dl, db) = (self.dims[l], self.dims[l - 1]);
            gemm_into(
                &mut gw[l - 1],
                (db, dl, ws.rows),
                (self.delta(ws, l), 1, db),
                (self.input(ws, l), dl, 1),
                false,
                -scale,
            );
        }
        if let Some(gb) = gb {
            gb.fill(0.0);
            let l = self.layers();
            for er in ws.eps[l].chunks(self.dims[l]) {
                for (g, &e) in gb.iter_mut().zip(er) {
                    *g -= scale * e;
                }
            }
        }
    }

    /// Plain gradient step of size `lr` (Eq. 4-5), accumulated straight into the parameters.
    pub fn sgd(&mut self, ws: &Workspace, lr: f32) {
        self.weights_changed();
        for l in 1..=self.layers() {
            let (dl, db) = (self.dims[l], self.dims[l - 1]);
            let mut w = std::mem::take(&mut self.w[l - 1]).into_owned();
            gemm_into(
                &mut w,
                (db, dl, ws.rows),
                (self.delta(ws, l), 1, db),
                (self.input(ws, l), dl, 1),
                true,
                lr,
            );
            self.w[l - 1] = Cow::Owned(w);
        }
        let l = self.layers();
        let n = self.dims[l];
        if let Some(b) = self.b.as_mut() {
            let b = b.to_mut();
            for er in ws.eps[l].chunks(n) {
                for (bv, &e) in b.iter_mut().zip(er) {
                    *bv += lr * e;
                }
            }
        }
    }
}

/// Adam moments for every parameter (weights in order, then the prior), on CPU.
#[derive(Debug, Clone)]
pub(crate) struct AdamCpu {
    pub step: i32,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    /// Gradient scratch, same shapes.
    pub g: Vec<Vec<f32>>,
}

impl AdamCpu {
    pub fn zeros(shapes: &[usize]) -> Self {
        let z = || shapes.iter().map(|&s| vec![0.0; s]).collect::<Vec<_>>();
        Self {
            step: 0,
            m: z(),
            v: z(),
            g: z(),
        }
    }

    /// One Adam update of the engine's parameters from the gradients at `ws`.
    pub fn update(
        &mut self,
        eng: &mut Engine,
        ws: &Workspace,
        scale: f32,
        (alpha, b1, b2, eps): (f64, f64, f64, f64),
    ) {
        let nw = eng.w.len();
        eng.weights_changed();
        {
            let (gw, gb) = self.g.split_at_mut(nw);
            eng.param_grads(ws, scale, gw, gb.first_mut());
        }
        self.step += 1;
        let rule = crate::optim::AdamStep::at(self.step, alpha, b1, b2, eps);
        let params = eng.w.iter_mut().chain(eng.b.iter_mut());
        for (i, p) in params.enumerate() {
            let p = p.to_mut();
            let (m, v, g) = (&mut self.m[i], &mut self.v[i], &self.g[i]);
            if p.len() >= PAR_MIN {
                p.par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .zip(g.par_chunks(CHUNK))
                    .for_each(|(((p, m), v), g)| rule.slices(p, m, v, g));
            } else {
                rule.slices(p, m, v, g);
            }
        }
    }
}
