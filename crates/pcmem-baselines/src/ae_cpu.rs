//! The autoencoder's loss and gradients on the CPU by explicit products: the forward pass keeps
//! each layer's pre-activation and output, the backward pass runs the chain rule layer by layer
//! with one `gemm` product per weight gradient and one per back-propagated error, into buffers
//! allocated once per training. The same mathematics as candle's autograd on
//! [`crate::Autoencoder::forward`] followed by the mean squared error (tested against it), in
//! less time: autograd allocates a zero tensor and adds into it for every gradient and runs its
//! transposed products at a fraction of the plain product's rate (`cargo bench -p
//! pcmem-baselines --bench ae_training` times training both ways in one run).
//!
//! ```
//! use pcmem_baselines::ae_cpu::CpuPass;
//! use pcmem_baselines::AeActivation;
//! // One linear layer (dims 2 -> 2, no hidden layer): y = x W + b.
//! let mut pass = CpuPass::new(1, &[2, 2]);
//! let (x, w, b) = ([1.0f32, 2.0], [1.0f32, 0.0, 0.0, 1.0], [0.5f32, 0.0]);
//! let loss = pass.forward(&x, &[&w], &[&b], AeActivation::Relu);
//! assert_eq!(loss, 0.125); // errors (0.5, 0): mean of squares over 2 values
//! pass.backward(&x, &[&w], AeActivation::Relu);
//! assert_eq!(pass.bias_grad(0), [0.5, 0.0]); // 2 * error / 2 values
//! assert_eq!(pass.weight_grad(0), [0.5, 0.0, 1.0, 0.0]); // x^T (2 * error / 2)
//! ```

use pcmem_model::products::sgemm_strided;
use rayon::prelude::*;

use crate::autoencoder::AeActivation;

/// Slope of the leaky ReLU below zero (as [`crate::Autoencoder::forward`]).
const LEAK: f32 = 0.01;

/// Buffers and results of one training batch's forward and backward pass.
#[derive(Debug, Clone)]
pub struct CpuPass {
    rows: usize,
    /// Layer widths, input first: layer `l` maps `dims[l]` to `dims[l + 1]`.
    dims: Vec<usize>,
    /// Pre-activation of every layer, `rows x dims[l + 1]` (the last is the output).
    pre: Vec<Vec<f32>>,
    /// Activation of every hidden layer, `rows x dims[l + 1]`.
    post: Vec<Vec<f32>>,
    /// The error signal at the output of the layer being differentiated, and the next one.
    delta: Vec<f32>,
    back: Vec<f32>,
    gw: Vec<Vec<f32>>,
    gb: Vec<Vec<f32>>,
}

impl CpuPass {
    /// Buffers for batches of `rows` images through layers of widths `dims` (input first).
    ///
    /// # Panics
    /// With fewer than two widths.
    pub fn new(rows: usize, dims: &[usize]) -> Self {
        assert!(dims.len() >= 2, "an autoencoder has at least one layer");
        let layers = dims.len() - 1;
        let widest = dims.iter().copied().max().unwrap_or(0);
        Self {
            rows,
            dims: dims.to_vec(),
            pre: (0..layers).map(|l| vec![0.0; rows * dims[l + 1]]).collect(),
            post: (0..layers - 1)
                .map(|l| vec![0.0; rows * dims[l + 1]])
                .collect(),
            delta: vec![0.0; rows * widest],
            back: vec![0.0; rows * widest],
            gw: (0..layers)
                .map(|l| vec![0.0; dims[l] * dims[l + 1]])
                .collect(),
            gb: (0..layers).map(|l| vec![0.0; dims[l + 1]]).collect(),
        }
    }

    /// The mean squared error of the reconstruction of `x` (`rows x dims[0]`, row-major) by
    /// the layers' weights `w[l]` (`dims[l] x dims[l + 1]`) and biases `b[l]`, summed in f64.
    pub fn forward(&mut self, x: &[f32], w: &[&[f32]], b: &[&[f32]], act: AeActivation) -> f64 {
        let (rows, layers) = (self.rows, self.dims.len() - 1);
        assert_eq!(x.len(), rows * self.dims[0], "input shape");
        for l in 0..layers {
            let (fan_in, fan_out) = (self.dims[l], self.dims[l + 1]);
            let input: &[f32] = if l == 0 { x } else { &self.post[l - 1] };
            let out = &mut self.pre[l];
            sgemm_strided(
                out,
                (rows, fan_in, fan_out),
                (input, fan_in, 1),
                (w[l], fan_out, 1),
            );
            let bias = b[l];
            out.par_chunks_mut(fan_out).for_each(|row| {
                for (o, &c) in row.iter_mut().zip(bias) {
                    *o += c;
                }
            });
            if l + 1 < layers {
                let post = &mut self.post[l];
                post.par_iter_mut()
                    .zip(self.pre[l].par_iter())
                    .for_each(|(a, &h)| *a = activate(act, h));
            }
        }
        let y = &self.pre[layers - 1];
        // Per-row sums in parallel, added in row order: the same bits on every run.
        let per_row: Vec<f64> = y
            .par_chunks(self.dims[0].max(1))
            .zip(x.par_chunks(self.dims[0].max(1)))
            .map(|(yr, xr)| {
                yr.iter()
                    .zip(xr)
                    .map(|(&p, &q)| ((p - q) as f64).powi(2))
                    .sum::<f64>()
            })
            .collect();
        per_row.iter().sum::<f64>() / (rows * self.dims[0]) as f64
    }

    /// The gradients of [`CpuPass::forward`]'s loss with respect to every weight and bias, at
    /// the state of the last forward pass (same `x` and weights).
    pub fn backward(&mut self, x: &[f32], w: &[&[f32]], act: AeActivation) {
        let (rows, layers) = (self.rows, self.dims.len() - 1);
        let d = self.dims[0];
        // d loss / d y = 2 (y - x) / (rows d)
        let scale = 2.0 / (rows * d) as f32;
        let out = &self.pre[layers - 1];
        self.delta[..rows * d]
            .par_iter_mut()
            .zip(out.par_iter().zip(x.par_iter()))
            .for_each(|(g, (&y, &t))| *g = (y - t) * scale);
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.dims[l], self.dims[l + 1]);
            let delta = &self.delta[..rows * fan_out];
            let input: &[f32] = if l == 0 { x } else { &self.post[l - 1] };
            // dW = input^T delta: (fan_in x rows) (rows x fan_out)
            sgemm_strided(
                &mut self.gw[l],
                (fan_in, rows, fan_out),
                (input, 1, fan_in),
                (delta, fan_out, 1),
            );
            let gb = &mut self.gb[l];
            gb.iter_mut().for_each(|g| *g = 0.0);
            for row in delta.chunks(fan_out) {
                for (g, &v) in gb.iter_mut().zip(row) {
                    *g += v;
                }
            }
            if l == 0 {
                break;
            }
            // d input = delta W^T: (rows x fan_out) (fan_out x fan_in), then through f'.
            let back = &mut self.back[..rows * fan_in];
            sgemm_strided(
                back,
                (rows, fan_out, fan_in),
                (delta, fan_out, 1),
                (w[l], 1, fan_out),
            );
            let pre = &self.pre[l - 1];
            let post = &self.post[l - 1];
            back.par_iter_mut()
                .zip(pre.par_iter().zip(post.par_iter()))
                .for_each(|(g, (&h, &a))| *g *= slope(act, h, a));
            std::mem::swap(&mut self.delta, &mut self.back);
        }
    }

    /// The gradient of the last backward pass for layer `l`'s weights, row-major
    /// `dims[l] x dims[l + 1]`.
    pub fn weight_grad(&self, l: usize) -> &[f32] {
        &self.gw[l]
    }

    /// The gradient of the last backward pass for layer `l`'s bias.
    pub fn bias_grad(&self, l: usize) -> &[f32] {
        &self.gb[l]
    }

    /// The reconstruction of the last forward pass, `rows x dims[0]`.
    pub fn output(&self) -> &[f32] {
        &self.pre[self.pre.len() - 1]
    }
}

#[inline(always)]
fn activate(act: AeActivation, h: f32) -> f32 {
    match act {
        AeActivation::LeakyRelu => h.max(h * LEAK),
        AeActivation::Relu => h.max(0.0),
        AeActivation::Tanh => h.tanh(),
    }
}

/// The derivative of the activation at pre-activation `h` with output `a`: candle's autograd
/// takes 1 for ReLU at 0 and splits the leaky ReLU's tie at 0; at exactly 0 this takes 1 and
/// the leak (a measure-zero difference).
#[inline(always)]
fn slope(act: AeActivation, h: f32, a: f32) -> f32 {
    match act {
        AeActivation::LeakyRelu => {
            if h >= 0.0 {
                1.0
            } else {
                LEAK
            }
        }
        AeActivation::Relu => {
            if h >= 0.0 {
                1.0
            } else {
                0.0
            }
        }
        AeActivation::Tanh => 1.0 - a * a,
    }
}
