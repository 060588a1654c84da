#![allow(unsafe_code, missing_docs)]
use gemm::{gemm, Parallelism};
use std::time::Instant;
// dst(m×n) with strides (dst_rs, dst_cs); A(m×k) strides; B(k×n) strides
#[allow(clippy::too_many_arguments)]
fn run(
    name: &str,
    m: usize,
    n: usize,
    k: usize,
    d_rs: usize,
    d_cs: usize,
    a_rs: usize,
    a_cs: usize,
    b_rs: usize,
    b_cs: usize,
    acc: bool,
) {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut d = vec![0f32; m * n];
    let par = Parallelism::Rayon(2);
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        unsafe {
            gemm(
                m,
                n,
                k,
                d.as_mut_ptr(),
                d_cs as isize,
                d_rs as isize,
                acc,
                a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                1.0,
                -1.0,
                false,
                false,
                false,
                par,
            )
        }
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{name:40} {:.3} ms  {:.1} GFLOP/s",
        s * 1e3,
        2.0 * (m * n * k) as f64 / s / 1e9
    );
}
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (nn, d, h) = (a[0], a[1], a[2]);
    run(
        "square 2048",
        2048,
        2048,
        2048,
        2048,
        1,
        2048,
        1,
        2048,
        1,
        false,
    );
    // A: eps(N×d) = fx(N×h) @ W(h×d), W row-major h×d
    run("fwd rowmaj dst, W h×d", nn, d, h, d, 1, h, 1, d, 1, true);
    // A': same product, W stored as d×h (WT), access W[p,j] = WT[j*h+p]
    run(
        "fwd rowmaj dst, W stored d×h",
        nn,
        d,
        h,
        d,
        1,
        h,
        1,
        1,
        h,
        true,
    );
    // A'': col-major dst (d×N storage, i.e. eps^T)
    run(
        "fwd colmaj dst (eps^T), W h×d",
        nn,
        d,
        h,
        1,
        nn,
        h,
        1,
        d,
        1,
        true,
    );
    run(
        "fwd colmaj dst, W d×h, fx^T",
        nn,
        d,
        h,
        1,
        nn,
        1,
        nn,
        1,
        h,
        true,
    );
    // B: back(N×h) = eps(N×d) @ W^T ; W row-major h×d: W^T[p,j] = W[j*d+p] -> b_rs=1,b_cs=d
    run("back rowmaj, W h×d", nn, h, d, h, 1, d, 1, 1, d, false);
    run(
        "back rowmaj, W stored d×h",
        nn,
        h,
        d,
        h,
        1,
        d,
        1,
        h,
        1,
        false,
    );
    run(
        "back colmaj dst, eps^T, W h×d",
        nn,
        h,
        d,
        1,
        nn,
        1,
        nn,
        1,
        d,
        false,
    );
    run(
        "T-back: dst colmaj, epsT, W d×h",
        nn,
        h,
        d,
        1,
        nn,
        1,
        nn,
        h,
        1,
        false,
    );
    run(
        "T-update: W d×h += epsT fxT",
        d,
        h,
        nn,
        h,
        1,
        nn,
        1,
        1,
        nn,
        true,
    );
    // hidden layer h×h variants
    run("T-fwd hidden", nn, h, h, 1, nn, 1, nn, 1, h, true);
    run("T-back hidden", nn, h, h, 1, nn, 1, nn, h, 1, false);
    run("fwd hidden rowmaj", nn, h, h, h, 1, h, 1, h, 1, true);
    run("back hidden rowmaj", nn, h, h, h, 1, h, 1, 1, h, false);
    // C: W(h×d) += fx^T(h×N) @ eps(N×d)
    run("update W h×d", h, d, nn, d, 1, 1, h, d, 1, true);
}
