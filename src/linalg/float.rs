//! `Float`: the storage scalar of tensors, f32 (training) or f64 (verification).
//!
//! Everything that holds arrays is generic over it. It adds to [`Real`] what arrays and the
//! matmul kernel need; the kernel itself is chosen in [`crate::linalg::matmul`].

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
    /// The largest finite value, as an f64.
    const MAX_F64: f64;

    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;

    /// `matrixmultiply`'s kernel for this type (`sgemm` or `dgemm`), with its contract:
    /// C <- alpha A B + beta C with A [m, k], B [k, n], C [m, n] given by pointers and element
    /// strides (any sign); with beta = 0, C is only written, never read.
    const MATRIXMULTIPLY_GEMM: MatrixmultiplyGemm<Self>;
}

/// The signature shared by `matrixmultiply::sgemm` and `dgemm`: (m, k, n, alpha, a, rsa, csa, b,
/// rsb, csb, beta, c, rsc, csc).
pub type MatrixmultiplyGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

macro_rules! impl_float {
    ($t:ty, $gemm:path) => {
        impl Float for $t {
            const NAME: &'static str = stringify!($t);
            const EPSILON: Self = <$t>::EPSILON;
            const MAX_F64: f64 = <$t>::MAX as f64;
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
            const MATRIXMULTIPLY_GEMM: MatrixmultiplyGemm<Self> = $gemm;
        }
    };
}

impl_float!(f32, matrixmultiply::sgemm);
impl_float!(f64, matrixmultiply::dgemm);
