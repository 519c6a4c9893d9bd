//! General matrix multiply on strided ndarray views, through `matrixmultiply` or the `gemm` crate.
//!
//! Contract: `gemm(alpha, a, b, beta, c)` computes C <- alpha A B + beta C for A [m, k], B [k, n],
//! C [m, n]. A transpose is a view (`a.t()`), never a copy: the kernel takes any row and column
//! strides, negative ones included. With beta = 0, C is written without being read, so it may hold
//! garbage (even NaN) beforehand.
//!
//! Backends ([`GemmBackend`]): `matrixmultiply` is the portable GEMM the project was specified
//! with. With the cargo feature `gemm` (on by default) products run on the `gemm` crate instead,
//! whose kernels (AVX-512 or AVX2 + FMA, chosen at run time) were 3-16% faster on the training
//! step's products and 2-8x faster on its skinny ones (docs/performance.md). The environment
//! variable `MEANFLOW_GEMM=matrixmultiply` (or `gemm`), read once at the first product, picks the
//! backend of a build that has both: a before / after comparison in one binary.
//!
//! Threads: both backends can split a large product across threads. The count is read once, from
//! the environment variable `MATMUL_NUM_THREADS`, at the first product in the process; when it is
//! unset the default is `matrixmultiply`'s (the number of physical cores) and, for the `gemm` crate,
//! the available parallelism, both capped at 4. [`set_matmul_threads`] sets it and reports whether
//! the setting can still take effect.
//!
//! Accounting: between [`start_matmul_accounting`] and [`take_matmul_accounting`], every product
//! that reaches the kernel adds its flops (2 m n k) and its time inside the kernel to process-wide
//! counters, summed over all calling threads (see [`MatmulAccounting`]). Off by default; when off,
//! a product pays one relaxed atomic load for it and reads no clock.

use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

static FIRST_PRODUCT_DONE: AtomicBool = AtomicBool::new(false);

/// The kernel that runs every product of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmBackend {
    /// `matrixmultiply::sgemm` / `dgemm`: the portable default.
    Matrixmultiply,
    /// `gemm::gemm` (cargo feature `gemm`).
    GemmCrate,
}

impl GemmBackend {
    /// "matrixmultiply" or "gemm": the value `MEANFLOW_GEMM` takes and benchmarks report.
    pub fn name(self) -> &'static str {
        match self {
            GemmBackend::Matrixmultiply => "matrixmultiply",
            GemmBackend::GemmCrate => "gemm",
        }
    }

    /// The backends this build has, the default first.
    pub fn available() -> &'static [GemmBackend] {
        if cfg!(feature = "gemm") {
            &[GemmBackend::GemmCrate, GemmBackend::Matrixmultiply]
        } else {
            &[GemmBackend::Matrixmultiply]
        }
    }
}

/// 0 until the first product resolves it; then 1 + the index of the backend in `available()`.
static BACKEND: AtomicU8 = AtomicU8::new(0);

/// The backend a `MEANFLOW_GEMM` value asks for: `None` when unset or empty, an error (one line,
/// naming the value and the choices) when this build has no backend of that name.
pub fn parse_gemm_backend(value: Option<&str>) -> Result<Option<GemmBackend>, String> {
    let available = GemmBackend::available();
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => available
            .iter()
            .copied()
            .find(|b| b.name() == name)
            .map(Some)
            .ok_or_else(|| {
                let choices: Vec<&str> = available.iter().map(|b| b.name()).collect();
                format!(
                    "MEANFLOW_GEMM={name:?} names no GEMM backend of this build (choices: {})",
                    choices.join(", ")
                )
            }),
    }
}

/// The backend `MEANFLOW_GEMM` asks for in this process (see [`parse_gemm_backend`]); the
/// command-line tool checks it before any work, so that a typo is an error, not a silent default.
pub fn requested_gemm_backend() -> Result<Option<GemmBackend>, String> {
    parse_gemm_backend(std::env::var("MEANFLOW_GEMM").ok().as_deref())
}

/// The backend products run on: the one `MEANFLOW_GEMM` names, else the build's default (the
/// first of [`GemmBackend::available`]). Fixed at the first call. A library caller that set an
/// unknown name gets the default: the choice is a tuning knob, never a reason for a product to fail.
pub fn gemm_backend() -> GemmBackend {
    let available = GemmBackend::available();
    match BACKEND.load(Ordering::Relaxed) {
        0 => {
            let index = requested_gemm_backend()
                .ok()
                .flatten()
                .and_then(|chosen| available.iter().position(|&b| b == chosen))
                .unwrap_or(0);
            BACKEND.store(index as u8 + 1, Ordering::Relaxed);
            available[index]
        }
        chosen => available[chosen as usize - 1],
    }
}

thread_local! {
    /// Whether this thread is inside a backend's kernel: lets an allocation counter tell the
    /// backend's own buffers from meanflow's (tests/no_alloc.rs).
    static INSIDE_KERNEL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is inside a GEMM backend's kernel right now. For allocation
/// accounting: both backends allocate their packing buffers per product and take no buffer from
/// the caller, so "no allocation per step" is about the allocations made outside the kernel.
pub fn inside_gemm_kernel() -> bool {
    INSIDE_KERNEL.with(Cell::get)
}

/// The thread count for the `gemm` crate, resolved once (see the module doc).
#[cfg(feature = "gemm")]
fn gemm_crate_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, 4)
    })
}

/// Whether products are being accounted; the only thing a product reads when accounting is off.
static ACCOUNTING: AtomicBool = AtomicBool::new(false);
static ACCOUNTED_CALLS: AtomicU64 = AtomicU64::new(0);
static ACCOUNTED_FLOPS: AtomicU64 = AtomicU64::new(0);
static ACCOUNTED_NANOS: AtomicU64 = AtomicU64::new(0);

/// What the products did between [`start_matmul_accounting`] and [`take_matmul_accounting`],
/// summed over every thread that called [`gemm()`].
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

/// C <- alpha A B + beta C on the process's backend ([`gemm_backend`]). Panics, naming the
/// shapes, if they do not fit.
pub fn gemm<T: Float>(alpha: T, a: ArrayView2<T>, b: ArrayView2<T>, beta: T, c: ArrayViewMut2<T>) {
    gemm_on(gemm_backend(), alpha, a, b, beta, c)
}

/// C <- alpha A B + beta C on the given backend (one of [`GemmBackend::available`]): lets tests
/// and benchmarks run every backend of the build in one process. Panics, naming the shapes, if
/// they do not fit, or if the backend is not in this build.
pub fn gemm_on<T: Float>(
    backend: GemmBackend,
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
    INSIDE_KERNEL.with(|inside| inside.set(true));
    // SAFETY: the views guarantee that every (i, j) within their dims addresses a valid element
    // through (ptr, strides); C is a unique mutable view, so it aliases neither A nor B.
    match backend {
        GemmBackend::Matrixmultiply => unsafe {
            T::MATRIXMULTIPLY_GEMM(
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
            )
        },
        #[cfg(feature = "gemm")]
        GemmBackend::GemmCrate => {
            let threads = gemm_crate_threads();
            let parallelism = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            // The gemm crate's contract is dst <- alpha dst + beta lhs rhs, with dst read only
            // when asked: so its alpha is our beta, its beta our alpha, and C is read iff beta != 0
            // (beta = 0 must not read C, which may hold NaN). Strides go column first.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    csc,
                    rsc,
                    beta != T::zero(),
                    a.as_ptr(),
                    csa,
                    rsa,
                    b.as_ptr(),
                    csb,
                    rsb,
                    beta,
                    alpha,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        }
        #[cfg(not(feature = "gemm"))]
        GemmBackend::GemmCrate => unreachable!("the gemm backend is not in this build"),
    }
    INSIDE_KERNEL.with(|inside| inside.set(false));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_backend_names_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_gemm_backend(None), Ok(None));
        assert_eq!(parse_gemm_backend(Some(" ")), Ok(None));
        assert_eq!(
            parse_gemm_backend(Some("matrixmultiply")),
            Ok(Some(GemmBackend::Matrixmultiply))
        );
        let gemm = parse_gemm_backend(Some("gemm"));
        if cfg!(feature = "gemm") {
            assert_eq!(gemm, Ok(Some(GemmBackend::GemmCrate)));
        } else {
            assert!(gemm.is_err());
        }
        let error = parse_gemm_backend(Some("blas")).unwrap_err();
        assert!(
            error.contains("\"blas\"") && error.contains("matrixmultiply") && !error.contains('\n'),
            "{error}"
        );
    }
}
