//! `Float`: the storage scalar of tensors, f32 (training) or f64 (verification).
//!
//! Everything that holds arrays is generic over it. It adds to [`Real`] what arrays and the
//! matmul kernel need, and the dispatch to `matrixmultiply`'s sgemm / dgemm.

use crate::linalg::real::Real;
use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// f32 or f64.
pub trait Float:
    Real + LinalgScalar + ScalarOperand + Sum + Default + Debug + Display + Send + Sync + 'static
{
    /// "f32" or "f64".
    const NAME: &'static str;
    /// Machine epsilon.
    const EPSILON: Self;

    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;

    /// C <- alpha A B + beta C with A [m, k], B [k, n], C [m, n] given by pointers and element
    /// strides (any sign). With beta = 0, C is only written, never read (NaN in C is fine).
    ///
    /// # Safety
    /// The pointers and strides must address valid, non-aliasing (for C) memory of those shapes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $gemm:path) => {
        impl Float for $t {
            const NAME: &'static str = stringify!($t);
            const EPSILON: Self = <$t>::EPSILON;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
        }
    };
}

impl_float!(f32, matrixmultiply::sgemm);
impl_float!(f64, matrixmultiply::dgemm);
