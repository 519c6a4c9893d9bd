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
//!
//! Accounting: between [`start_matmul_accounting`] and [`take_matmul_accounting`], every product
//! that reaches the kernel adds its flops (2 m n k) and its time inside the kernel to process-wide
//! counters, summed over all calling threads (see [`MatmulAccounting`]). Off by default; when off,
//! a product pays one relaxed atomic load for it and reads no clock.

use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static FIRST_PRODUCT_DONE: AtomicBool = AtomicBool::new(false);

/// Whether products are being accounted; the only thing a product reads when accounting is off.
static ACCOUNTING: AtomicBool = AtomicBool::new(false);
static ACCOUNTED_CALLS: AtomicU64 = AtomicU64::new(0);
static ACCOUNTED_FLOPS: AtomicU64 = AtomicU64::new(0);
static ACCOUNTED_NANOS: AtomicU64 = AtomicU64::new(0);

/// What the products did between [`start_matmul_accounting`] and [`take_matmul_accounting`],
/// summed over every thread that called [`gemm`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MatmulAccounting {
    /// Products that reached the kernel (those with m = 0 or n = 0 return before it).
    pub calls: u64,
    /// Sum over those products of 2 m n k (one multiply and one add per term of each dot
    /// product), an exact integer.
    pub flops: u64,
    /// Sum over those products of the wall time each spent in the kernel. Calls on different
    /// threads add up, so with one kernel thread per call (`MATMUL_NUM_THREADS=1`) this is CPU
    /// time; with more, a call's helper threads are not counted and this understates it.
    pub seconds: f64,
}

impl MatmulAccounting {
    /// The speed of the matmul work itself: flops / seconds / 1e9, in GFLOP/s per calling thread
    /// (0 if nothing was timed).
    pub fn gflops(&self) -> f64 {
        if self.seconds > 0.0 {
            self.flops as f64 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Zeroes the counters and starts accounting every product of the process (all threads).
pub fn start_matmul_accounting() {
    ACCOUNTED_CALLS.store(0, Ordering::Relaxed);
    ACCOUNTED_FLOPS.store(0, Ordering::Relaxed);
    ACCOUNTED_NANOS.store(0, Ordering::Relaxed);
    ACCOUNTING.store(true, Ordering::Relaxed);
}

/// Stops accounting and returns what was counted since [`start_matmul_accounting`]. A product
/// running on another thread at this moment may or may not be included: take the accounting once
/// the work being measured has returned.
pub fn take_matmul_accounting() -> MatmulAccounting {
    ACCOUNTING.store(false, Ordering::Relaxed);
    MatmulAccounting {
        calls: ACCOUNTED_CALLS.swap(0, Ordering::Relaxed),
        flops: ACCOUNTED_FLOPS.swap(0, Ordering::Relaxed),
        seconds: ACCOUNTED_NANOS.swap(0, Ordering::Relaxed) as f64 * 1e-9,
    }
}

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
    // Read the clock only when accounting, so that the default path costs one relaxed load.
    let accounting_start = ACCOUNTING.load(Ordering::Relaxed).then(Instant::now);
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
    if let Some(start) = accounting_start {
        let nanos = start.elapsed().as_nanos() as u64;
        ACCOUNTED_CALLS.fetch_add(1, Ordering::Relaxed);
        ACCOUNTED_FLOPS.fetch_add(2 * m as u64 * n as u64 * k as u64, Ordering::Relaxed);
        ACCOUNTED_NANOS.fetch_add(nanos, Ordering::Relaxed);
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
