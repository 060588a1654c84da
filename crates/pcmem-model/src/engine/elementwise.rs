//! Element-wise passes of the fused kernel: the activations, chunked parallel maps, the
//! node updates of Eq. 3 (one pass per layer, which also leaves `f(x)` and the copy of `x`
//! the next prediction accumulates into), sums of squares and the tiled transpose.

use rayon::prelude::*;

/// Arrays at least this long are processed by rayon in parallel chunks.
pub(super) const PAR_MIN: usize = 1 << 15;
pub(super) const CHUNK: usize = 1 << 13;

/// A non-linearity `f` with its derivative.
pub(super) trait Act: Copy + Send + Sync {
    fn f(v: f32) -> f32;
    fn df(v: f32) -> f32;
    /// `f'(v)` given `fv = f(v)`, equal to `df(v)` bit for bit (cheaper for tanh).
    #[inline(always)]
    fn df_given(v: f32, _fv: f32) -> f32 {
        Self::df(v)
    }
}

/// `max(v, 0)`.
#[derive(Clone, Copy)]
pub(super) struct Relu;
/// `tanh(v)`.
#[derive(Clone, Copy)]
pub(super) struct Tanh;
/// `v`.
#[derive(Clone, Copy)]
pub(super) struct Ident;
impl Act for Relu {
    #[inline(always)]
    fn f(v: f32) -> f32 {
        v.max(0.0)
    }
    #[inline(always)]
    fn df(v: f32) -> f32 {
        if v >= 0.0 {
            1.0
        } else {
            0.0
        }
    }
}
impl Act for Tanh {
    #[inline(always)]
    fn f(v: f32) -> f32 {
        v.tanh()
    }
    #[inline(always)]
    fn df(v: f32) -> f32 {
        let t = v.tanh();
        1.0 - t * t
    }
    #[inline(always)]
    fn df_given(_: f32, t: f32) -> f32 {
        1.0 - t * t
    }
}
impl Act for Ident {
    #[inline(always)]
    fn f(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn df(_: f32) -> f32 {
        1.0
    }
}

/// [`zip_apply`] with a second written buffer `dst2` (same length as `dst`).
pub(super) fn zip_apply2<const K: usize>(
    dst: &mut [f32],
    dst2: &mut [f32],
    srcs: [&[f32]; K],
    op: impl Fn(&mut [f32], &mut [f32], [&[f32]; K]) + Sync,
) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(CHUNK)
            .zip(dst2.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (d, d2))| {
                let s = c * CHUNK;
                op(d, d2, srcs.map(|x| &x[s..s + d.len()]));
            });
    } else {
        op(dst, dst2, srcs);
    }
}

/// `x += u(x, e, b)` element-wise, or with momentum `beta > 0` and the previous changes in
/// `vel`: `v = beta v + u(x, e, b); x += v`.
pub(super) fn update_nodes(
    x: &mut [f32],
    vel: &mut [f32],
    beta: f32,
    e: &[f32],
    b: &[f32],
    u: impl Fn(f32, f32, f32) -> f32 + Sync,
) {
    if beta > 0.0 {
        zip_apply2(x, vel, [e, b], |x, v, [e, b]| {
            for (((xv, vv), &ev), &bv) in x.iter_mut().zip(v.iter_mut()).zip(e).zip(b) {
                *vv = beta * *vv + u(*xv, ev, bv);
                *xv += *vv;
            }
        });
    } else {
        zip_apply(x, [e, b], |x, [e, b]| {
            for ((xv, &ev), &bv) in x.iter_mut().zip(e).zip(b) {
                *xv += u(*xv, ev, bv);
            }
        });
    }
}

/// Applies `op` to matching chunks of `dst` and the inputs, in parallel when large.
pub(super) fn zip_apply<const K: usize>(
    dst: &mut [f32],
    srcs: [&[f32]; K],
    op: impl Fn(&mut [f32], [&[f32]; K]) + Sync,
) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(CHUNK).enumerate().for_each(|(c, d)| {
            let s = c * CHUNK;
            op(d, srcs.map(|x| &x[s..s + d.len()]));
        });
    } else {
        op(dst, srcs);
    }
}

pub(super) fn sum_sq(v: &[f32]) -> f64 {
    let part = |c: &[f32]| c.iter().map(|&e| (e as f64) * (e as f64)).sum::<f64>();
    if v.len() >= PAR_MIN {
        v.par_chunks(CHUNK).map(part).sum()
    } else {
        part(v)
    }
}

/// `dst (cols x rows) = src (rows x cols)^T`, both row-major, in cache-sized tiles.
pub(super) fn transpose_into(src: &[f32], (rows, cols): (usize, usize), dst: &mut [f32]) {
    const TILE: usize = 32;
    let band = |(jb, out): (usize, &mut [f32])| {
        let j0 = jb * TILE;
        let jn = (cols - j0).min(TILE);
        for i0 in (0..rows).step_by(TILE) {
            for i in i0..(i0 + TILE).min(rows) {
                let row = &src[i * cols + j0..i * cols + j0 + jn];
                for (j, &v) in row.iter().enumerate() {
                    out[j * rows + i] = v;
                }
            }
        }
    };
    if rows * cols >= PAR_MIN {
        dst.par_chunks_mut(TILE * rows).enumerate().for_each(band);
    } else {
        dst.chunks_mut(TILE * rows).enumerate().for_each(band);
    }
}

/// The buffers of one hidden layer that its update pass reads and writes, all of one length;
/// an empty slice stands for an absent buffer.
pub(super) struct LayerPass<'s> {
    /// Value nodes `x_l`, moved by the step.
    pub x: &'s mut [f32],
    /// With momentum: the last change of each node; else empty.
    pub vel: &'s mut [f32],
    /// The layer's error `eps_l` from the last forward pass (empty for a top layer without a
    /// prior); with `copy_x`, overwritten with the new `x_l` for the next prediction.
    pub eps: &'s mut [f32],
    /// `f(x_l)` of the state before the step; receives `f` of the new state.
    pub fx: &'s mut [f32],
    /// The bottom-up product `eps_{l-1} W_l`, or in Gram form `f(x_1) G`.
    pub back: &'s [f32],
    /// Gram form: `C = x_0 W_1`, the bottom-up term being `C - back`; else empty.
    pub gram_c: &'s [f32],
}

impl<'s> LayerPass<'s> {
    fn len(&self) -> usize {
        self.x.len()
    }

    fn split_at(self, mid: usize) -> (Self, Self) {
        fn cut(v: &mut [f32], mid: usize) -> (&mut [f32], &mut [f32]) {
            if v.is_empty() {
                (&mut [], &mut [])
            } else {
                v.split_at_mut(mid)
            }
        }
        fn cut_ref(v: &[f32], mid: usize) -> (&[f32], &[f32]) {
            if v.is_empty() {
                (&[], &[])
            } else {
                v.split_at(mid)
            }
        }
        let (x0, x1) = self.x.split_at_mut(mid);
        let (v0, v1) = cut(self.vel, mid);
        let (e0, e1) = cut(self.eps, mid);
        let (f0, f1) = self.fx.split_at_mut(mid);
        let (b0, b1) = self.back.split_at(mid);
        let (c0, c1) = cut_ref(self.gram_c, mid);
        let part = |x, vel, eps, fx, back, gram_c| LayerPass {
            x,
            vel,
            eps,
            fx,
            back,
            gram_c,
        };
        (part(x0, v0, e0, f0, b0, c0), part(x1, v1, e1, f1, b1, c1))
    }
}

/// One pre-synaptic inference step of a hidden layer (Eq. 3) in one pass:
/// `u = -gamma (eps - f'(x) * b)` (or `gamma f'(x) b` without an error), `x += u` (with
/// momentum `beta > 0`: `v = beta v + u; x += v`), then `fx = f(x)` and, with `copy_x`,
/// `eps = x`. The arithmetic of each node is that of the separate passes it replaces.
pub(super) fn presynaptic_pass<A: Act>(p: LayerPass<'_>, gamma: f32, beta: f32, copy_x: bool) {
    if p.len() >= PAR_MIN {
        let mid = p.len() / 2;
        let (left, right) = p.split_at(mid);
        rayon::join(
            || presynaptic_pass::<A>(left, gamma, beta, copy_x),
            || presynaptic_pass::<A>(right, gamma, beta, copy_x),
        );
        return;
    }
    let (has_eps, gram, momentum) = (!p.eps.is_empty(), !p.gram_c.is_empty(), beta > 0.0);
    for i in 0..p.x.len() {
        let b = if gram {
            p.gram_c[i] - p.back[i]
        } else {
            p.back[i]
        };
        let x = p.x[i];
        let df = A::df_given(x, p.fx[i]);
        let u = if has_eps {
            -gamma * (p.eps[i] - df * b)
        } else {
            gamma * df * b
        };
        let x = if momentum {
            let v = beta * p.vel[i] + u;
            p.vel[i] = v;
            x + v
        } else {
            x + u
        };
        p.x[i] = x;
        p.fx[i] = A::f(x);
        if copy_x {
            p.eps[i] = x;
        }
    }
}
