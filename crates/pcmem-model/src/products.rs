//! The f32 matrix product of the fused kernel, exposed for benchmarks and memory tests:
//! `gemm` (the kernel candle itself uses on the CPU) on row-major slices, in parallel over
//! rayon's threads for all but tiny products. With the workspace's `x86-v4` feature of
//! `gemm`, AVX-512 kernels are chosen at run time where the CPU has them (AVX2/FMA otherwise).
//!
//! ```
//! let (a, b) = (vec![1f32, 2., 3., 4.], vec![5f32, 6., 7., 8.]);
//! let mut c = vec![0f32; 4];
//! pcmem_model::products::sgemm(&mut c, &a, &b, (2, 2, 2));
//! assert_eq!(c, [19., 22., 43., 50.]);
//! ```

use gemm::{gemm, Parallelism};

/// `c (m x n) = a (m x k) * b (k x n)`, all row-major and contiguous.
///
/// # Panics
/// When a slice is shorter than its shape.
pub fn sgemm(c: &mut [f32], a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm: slices shorter than {m} x {k} x {n}"
    );
    gemm_into(c, (m, n, k), (a, k, 1), (b, n, 1), false, 1.0);
}

/// `c (m x n) = A (m x k) * B (k x n)` with `A[i, p] = a[i * a_rs + p * a_cs]` and
/// `B[p, j] = b[p * b_rs + j * b_cs]`: the product exactly as the fused kernel calls it, with
/// its layouts (e.g. the weights read transposed in the top-down prediction).
///
/// # Panics
/// When a slice is too short for its shape and strides.
pub fn sgemm_strided(
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
) {
    gemm_into(c, (m, n, k), a, b, false, 1.0);
}

/// `dst (m x n, row-major) = [dst if accumulate] + beta * A (m x k) * B (k x n)`, where
/// `A[i, p] = a[i * a_rs + p * a_cs]` and `B[p, j] = b[p * b_rs + j * b_cs]`.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub(crate) fn gemm_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    accumulate: bool,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= m * n, "gemm: destination too small");
    if k > 0 {
        assert!(
            (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
            "gemm: lhs too small"
        );
        assert!(
            (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
            "gemm: rhs too small"
        );
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= 1 << 16 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices; `dst`
    // is a unique borrow that aliases neither `a` nor `b`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            par,
        )
    }
}
