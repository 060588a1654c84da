//! Memory use of a training iteration, measured with a counting global allocator: the bytes
//! allocated per inference step do not exceed what the step's matrix products allocate by
//! themselves (measured on this CPU: nothing with AVX2 kernels, gemm's packing buffers with
//! AVX-512 ones) plus a few bytes of bookkeeping, so no buffer of a layer's or the state's
//! size is allocated per step; live memory does not grow from one iteration to the
//! next, and the peak stays within twice the size of weights + value nodes + data plus the
//! fused kernel's cached transposed copy of the weights and the workspace of the matrix
//! products.
//!
//! The matrix-product workspace is not a constant: `gemm` sizes its packing buffers from the
//! CPU's caches and picks other kernels (and blocks) where the CPU has AVX-512. So the bound
//! does not hard-code it: the test measures, with the same allocator and in the same process,
//! the largest peak of live memory that bare `gemm` calls reach at every product shape the
//! network can use (every ordered triple of batch, input and hidden sizes), and adds it. The
//! bound is thereby the same statement on every CPU: the training iteration needs no more than
//! twice its state plus its transposed weights plus what one matrix product of its sizes needs
//! on that CPU.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use candle_core::{Device, Tensor};
use pcmem_model::{Optimizer, PcnConfig};

mod common;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only keeps counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), SeqCst) + l.size();
            PEAK.fetch_max(now, SeqCst);
            CALLS.fetch_add(1, SeqCst);
            BYTES.fetch_add(l.size(), SeqCst);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), SeqCst) + l.size();
            PEAK.fetch_max(now, SeqCst);
            CALLS.fetch_add(1, SeqCst);
            BYTES.fetch_add(l.size(), SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), SeqCst);
            let now = LIVE.fetch_add(new, SeqCst) + new;
            PEAK.fetch_max(now, SeqCst);
            CALLS.fetch_add(1, SeqCst);
            BYTES.fetch_add(l.size(), SeqCst);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocation calls, bytes allocated, live bytes after, peak bytes during) of one iteration.
fn measure(pcn: &mut pcmem_model::Pcn, data: &Tensor) -> (usize, usize, usize, usize) {
    let (calls0, bytes0) = (CALLS.load(SeqCst), BYTES.load(SeqCst));
    PEAK.store(LIVE.load(SeqCst), SeqCst);
    drop(pcn.train_step(data).unwrap());
    (
        CALLS.load(SeqCst) - calls0,
        BYTES.load(SeqCst) - bytes0,
        LIVE.load(SeqCst),
        PEAK.load(SeqCst),
    )
}

/// The largest rise of live memory above its level before the first product, over the fused
/// kernel's matrix products at every ordered triple of the sizes in `dims`:
/// the packing buffers, thread-local slabs and bookkeeping of one matrix product on this CPU.
fn gemm_workspace(dims: &[usize]) -> usize {
    let largest = dims.iter().copied().max().unwrap_or(0);
    // Operands big enough for any triple that is not d x d x d (at most two input-sized
    // factors meet in one operand).
    let (a, b) = (
        vec![0.5f32; largest * largest],
        vec![0.25f32; largest * largest],
    );
    let mut c = vec![0f32; largest * largest];
    let before = LIVE.load(SeqCst);
    PEAK.store(before, SeqCst);
    for &m in dims {
        for &n in dims {
            for &k in dims {
                // The network never multiplies three input-sized factors: skip d x d x d.
                if m == largest && n == largest && k == largest {
                    continue;
                }
                pcmem_model::products::sgemm(&mut c, &a, &b, (m, k, n));
            }
        }
    }
    PEAK.load(SeqCst).saturating_sub(before)
}

/// Bytes the matrix products of one inference step allocate by themselves on this CPU (gemm
/// allocates packing buffers per call for some layouts on some CPUs, e.g. with AVX-512): one
/// call of each product a step of the fused kernel can make, in its layout (weights `W_l`
/// stored `d_{l-1} x d_l` row-major, with a cached transposed copy): per layer the bottom-up
/// product `(batch x d_{l-1}) (d_{l-1} x d_l)`, the top-down prediction
/// `(batch x d_l) (d_l x d_{l-1})` from the transposed copy, and the Gram form of layer 1
/// (batch x n -> n).
fn step_product_bytes(rows: usize, dims: &[usize]) -> usize {
    use pcmem_model::products::sgemm_strided;
    let widest = dims.iter().copied().max().unwrap_or(0);
    let (a, b) = (vec![0.5f32; rows * widest], vec![0.25f32; widest * widest]);
    let mut c = vec![0f32; rows * widest];
    // ((m, k, n), (a row stride, a column stride), (b row stride, b column stride))
    let n1 = dims[1];
    let mut calls = vec![((rows, n1, n1), (n1, 1), (n1, 1))];
    for l in 1..dims.len() {
        let (dl, db) = (dims[l], dims[l - 1]);
        calls.push(((rows, db, dl), (db, 1), (dl, 1)));
        calls.push(((rows, dl, db), (dl, 1), (db, 1)));
    }
    let mut total = 0;
    for (shape, (ar, ac), (br, bc)) in calls {
        // Warm (thread-local slabs), then count one call.
        sgemm_strided(&mut c, shape, (&a, ar, ac), (&b, br, bc));
        let before = BYTES.load(SeqCst);
        sgemm_strided(&mut c, shape, (&a, ar, ac), (&b, br, bc));
        total += BYTES.load(SeqCst) - before;
    }
    total
}

// One test in this file: the counters are process-wide.
#[test]
fn training_iteration_allocates_nothing_per_step_and_stays_within_twice_the_state() {
    let (d, n, rows) = (3072usize, 512usize, 100usize);
    let data = common::uniform(rows, d, 5);
    let floats = |x: usize| x * 4;
    let weights = floats(d * n + n * n + n);
    let values = floats(rows * (d + 2 * n));
    let data_bytes = floats(rows * d);
    let workspace = gemm_workspace(&[rows, n, d]);
    let products = step_product_bytes(rows, &[d, n, n]);
    eprintln!("bytes the products of one inference step allocate on this CPU: {products} B");
    eprintln!("gemm workspace at the PCN's product shapes on this CPU: {workspace} B");
    // The fused kernel also caches a transposed copy of the weights for the predictions.
    let bound = 2 * (weights + values + data_bytes) + weights + workspace;
    for optimizer in [Optimizer::Sgd, Optimizer::adam()] {
        // Adam keeps two moments and a gradient buffer of the weights' size on top.
        let extra = if optimizer == Optimizer::Sgd {
            0
        } else {
            3 * weights
        };
        let mut counts = Vec::new();
        for steps in [5, 25] {
            let mut cfg = PcnConfig::new(d, n);
            cfg.learning.optimizer = optimizer;
            cfg.inference.steps = steps;
            let mut pcn = cfg.init(&Device::Cpu).unwrap();
            let (_, _, live1, peak1) = measure(&mut pcn, &data);
            let (_, _, live2, peak2) = measure(&mut pcn, &data);
            let (c3, b3, live3, _) = measure(&mut pcn, &data);
            eprintln!(
                "{optimizer:?} T={steps}: {c3} allocations of {b3} B in all, live {live1}/{live2}/{live3} B, \
                 peak {peak1}/{peak2} B, bound {} B (+{extra} B Adam state)",
                bound
            );
            assert_eq!(
                live2, live3,
                "{optimizer:?}: live memory grew between iterations"
            );
            assert!(
                peak2 <= bound + extra,
                "{optimizer:?}: peak {peak2} B above 2 x (weights + value nodes + data) + \
                 transposed weights + gemm workspace ({workspace} B) = {bound} B"
            );
            counts.push(b3);
        }
        let per_step = (counts[1] as f64 - counts[0] as f64) / 20.0;
        eprintln!("{optimizer:?}: {per_step:.0} B allocated per inference step");
        // Nothing outside the matrix products allocates more than bookkeeping per step: no
        // buffer of a layer's or the state's size.
        assert!(
            per_step < products as f64 + 16.0 * 1024.0,
            "{optimizer:?}: {per_step} B allocated per inference step, the products alone \
             allocate {products} B (state is {weights} B)"
        );
    }
}
