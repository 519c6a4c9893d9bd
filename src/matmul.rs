//! General matrix multiply on strided ndarray views, through `matrixmultiply`.
//!
//! Contract: `gemm(alpha, a, b, beta, c)` computes C <- alpha A B + beta C for A [m, k], B [k, n],
//! C [m, n]. A transpose is a view (`a.t()`), never a copy: the kernel takes any row and column
//! strides, negative ones included. With beta = 0, C is written without being read, so it may hold
//! garbage (even NaN) beforehand.
//!
//! Threads: `matrixmultiply` (feature `threading`) splits large products across threads. Its
//! thread count is read once, from the environment variable `MATMUL_NUM_THREADS`, at the first
//! product in the process; when it is unset the default is the number of physical cores. [`set_matmul_threads`] sets it
//! and reports whether the setting can still take effect.

use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::sync::atomic::{AtomicBool, Ordering};

static FIRST_PRODUCT_DONE: AtomicBool = AtomicBool::new(false);

/// C <- alpha A B + beta C. Panics, naming the shapes, if they do not fit.
pub fn gemm<T: Float>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    mut c: ArrayViewMut2<T>,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm: shapes do not fit: A {:?} B {:?} C {:?} (need A [m, k], B [k, n], C [m, n])",
        a.dim(),
        b.dim(),
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    FIRST_PRODUCT_DONE.store(true, Ordering::Relaxed);
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the views guarantee that every (i, j) within their dims addresses a valid element
    // through (ptr, strides); C is a unique mutable view, so it aliases neither A nor B.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

/// Sets the number of threads `matrixmultiply` uses for large products (`MATMUL_NUM_THREADS`).
/// Returns false (and changes nothing) if a product has already run in this process, because the
/// kernel reads the setting only once.
pub fn set_matmul_threads(threads: usize) -> bool {
    if FIRST_PRODUCT_DONE.load(Ordering::Relaxed) {
        return std::env::var("MATMUL_NUM_THREADS").ok() == Some(threads.to_string());
    }
    std::env::set_var("MATMUL_NUM_THREADS", threads.max(1).to_string());
    true
}
