//! `Real`: the scalar interface every elementwise formula is written against.
//!
//! It is implemented for `f32`, `f64` and [`Dual<T>`](crate::autodiff::dual::Dual) for any `T: Real`, so a
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
    /// sigma(x) = 1 / (1 + exp(-x)). For x << 0, exp(-x) overflows to inf and sigma to 0, the
    /// right limit; no branch, so loops over it vectorise.
    fn sigmoid(self) -> Self {
        (Self::one() + (-self).exp()).recip()
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

/// e^x in f32 without a libm call, so that loops over it vectorise: x = n ln2 + r with
/// |r| <= ln2 / 2 (Cody-Waite split of ln 2), e^r by the degree-6 minimax polynomial of Cephes'
/// `expf` (relative error below 2 ulp), times 2^n built in the exponent bits. Overflow gives +inf,
/// underflow below the normal range gives 0, NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.5);
    // Round to nearest by the 1.5 2^23 trick: no libm call, so the loop vectorises.
    const ROUNDER: f32 = 12_582_912.0;
    let shifted = xc * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let er = p * r * r + r + 1.0;
    // 2^n as 2^(n/2) 2^(n - n/2): each factor stays a normal number for n in [-126, 128].
    // n from the bits of `shifted` (ROUNDER + n, whose unit in the last place is 1): an `as i32`
    // cast would be a saturating scalar conversion that stops the loop from vectorising.
    let n = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let half = n >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = er * pow2(half) * pow2(n - half);
    if x > 88.72 {
        f32::INFINITY
    } else if x < -87.0 {
        0.0
    } else {
        y
    }
}

macro_rules! impl_real_for_float {
    ($t:ty, $erf:path, $exp:path) => {
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
                $exp(self)
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

impl_real_for_float!(f32, libm::erff, exp_f32);
impl_real_for_float!(f64, libm::erf, f64::exp);

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_within_two_ulp_of_f64_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.5 {
            let exact = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - exact) / exact).abs());
            x += 0.0137;
        }
        assert!(
            worst < 2.0 * f32::EPSILON as f64,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
