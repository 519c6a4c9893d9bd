//! `Real`: the scalar interface every elementwise formula is written against.
//!
//! It is implemented for `f32`, `f64` and [`Dual<T>`](crate::dual::Dual) for any `T: Real`, so a
//! formula written once over `R: Real` evaluates to a value on floats, to a value and its first
//! derivative on `Dual<f64>`, and to second derivatives on `Dual<Dual<f64>>`.

use num_traits::{One, Zero};
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real scalar with the elementary functions. Comparisons act on the primal value only.
pub trait Real:
    Copy
    + Debug
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Zero
    + One
{
    /// The constant `c` (zero tangent when `Self` is a dual number).
    fn constant(c: f64) -> Self;
    /// The innermost primal value, as f64 (for branching on the sign, printing and comparing).
    fn primal_f64(self) -> f64;

    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate for small x.
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    /// Error function, erf(x) = 2/sqrt(pi) int_0^x exp(-s^2) ds.
    fn erf(self) -> Self;
    /// x^n for an integer n.
    fn powi(self, n: i32) -> Self;
    /// x^p for a real p, x > 0 (x = 0 with p > 0 gives 0).
    fn powf(self, p: Self) -> Self;
    /// |x|; the derivative at 0 is taken as 0 (sign(0) = 0).
    fn abs(self) -> Self;

    /// 1 / x.
    fn recip(self) -> Self {
        Self::one() / self
    }
    /// sigma(x) = 1 / (1 + exp(-x)), evaluated without overflow for either sign of x.
    fn sigmoid(self) -> Self {
        if self.primal_f64() >= 0.0 {
            (Self::one() + (-self).exp()).recip()
        } else {
            let e = self.exp();
            e / (Self::one() + e)
        }
    }
    /// softplus(x) = ln(1 + exp(x)) = max(x, 0) + ln(1 + exp(-|x|)).
    fn softplus(self) -> Self {
        let positive_part = if self.primal_f64() > 0.0 {
            self
        } else {
            Self::zero()
        };
        positive_part + (-self.abs()).exp().ln_1p()
    }
    /// max(x, 0); derivative 0 at x = 0.
    fn relu(self) -> Self {
        if self.primal_f64() > 0.0 {
            self
        } else {
            self * Self::zero()
        }
    }
    /// x^2.
    fn square(self) -> Self {
        self * self
    }
}

macro_rules! impl_real_for_float {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            #[inline(always)]
            fn constant(c: f64) -> Self {
                c as $t
            }
            #[inline(always)]
            fn primal_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline(always)]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn recip(self) -> Self {
                1.0 / self
            }
        }
    };
}

impl_real_for_float!(f32, libm::erff);
impl_real_for_float!(f64, libm::erf);
