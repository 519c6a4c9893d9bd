//! `Dual<T>`: a forward-mode dual number a + b eps with eps^2 = 0.
//!
//! f(a + b eps) = f(a) + f'(a) b eps, so evaluating any formula on a dual number carries the
//! derivative along. Every elementary function is written once, through [`Dual::chain`]:
//! given f(a) and f'(a) it returns f(a) + f'(a) b eps. Because `Dual<T>` is itself [`Real`],
//! duals nest: on `Dual<Dual<f64>>` the innermost-outermost tangent is the exact second derivative.

use crate::linalg::real::Real;
use num_traits::{One, Zero};
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// value + tangent * eps, eps^2 = 0.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Dual<T> {
    pub value: T,
    pub tangent: T,
}

impl<T: Real> Dual<T> {
    pub fn new(value: T, tangent: T) -> Self {
        Dual { value, tangent }
    }
    /// The independent variable x + 1 eps (seed for d/dx).
    pub fn variable(x: T) -> Self {
        Dual::new(x, T::one())
    }
    /// The constant c + 0 eps.
    pub fn constant_of(c: T) -> Self {
        Dual::new(c, T::zero())
    }
    /// f(a + b eps) = f(a) + f'(a) b eps, from f(a) and f'(a).
    #[inline(always)]
    pub fn chain(self, f: T, df: T) -> Self {
        Dual::new(f, df * self.tangent)
    }
}

impl<T: Real> Zero for Dual<T> {
    fn zero() -> Self {
        Dual::new(T::zero(), T::zero())
    }
    fn is_zero(&self) -> bool {
        self.value.is_zero() && self.tangent.is_zero()
    }
}

impl<T: Real> One for Dual<T> {
    fn one() -> Self {
        Dual::new(T::one(), T::zero())
    }
}

impl<T: Real> PartialOrd for Dual<T> {
    /// Dual numbers compare by value alone.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<T: Real> Add for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Dual::new(self.value + o.value, self.tangent + o.tangent)
    }
}
impl<T: Real> Sub for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Dual::new(self.value - o.value, self.tangent - o.tangent)
    }
}
impl<T: Real> Mul for Dual<T> {
    type Output = Self;
    /// (a + a' eps)(b + b' eps) = ab + (a' b + a b') eps
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Dual::new(
            self.value * o.value,
            self.tangent * o.value + self.value * o.tangent,
        )
    }
}
impl<T: Real> Div for Dual<T> {
    type Output = Self;
    /// (a + a' eps) / (b + b' eps) = a/b + (a' - (a/b) b') / b eps
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        let q = self.value / o.value;
        Dual::new(q, (self.tangent - q * o.tangent) / o.value)
    }
}
impl<T: Real> Neg for Dual<T> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Dual::new(-self.value, -self.tangent)
    }
}
macro_rules! assign_op {
    ($tr:ident, $m:ident, $op:tt) => {
        impl<T: Real> $tr for Dual<T> {
            #[inline(always)]
            fn $m(&mut self, o: Self) {
                *self = *self $op o;
            }
        }
    };
}
assign_op!(AddAssign, add_assign, +);
assign_op!(SubAssign, sub_assign, -);
assign_op!(MulAssign, mul_assign, *);
assign_op!(DivAssign, div_assign, /);

impl<T: Real> Real for Dual<T> {
    fn constant(c: f64) -> Self {
        Dual::constant_of(T::constant(c))
    }
    fn primal_f64(self) -> f64 {
        self.value.primal_f64()
    }
    /// exp' = exp
    fn exp(self) -> Self {
        let e = self.value.exp();
        self.chain(e, e)
    }
    /// ln' = 1/x
    fn ln(self) -> Self {
        self.chain(self.value.ln(), self.value.recip())
    }
    /// ln_1p' = 1/(1+x)
    fn ln_1p(self) -> Self {
        self.chain(self.value.ln_1p(), (T::one() + self.value).recip())
    }
    /// sqrt' = 1/(2 sqrt x)
    fn sqrt(self) -> Self {
        let s = self.value.sqrt();
        self.chain(s, (T::constant(2.0) * s).recip())
    }
    /// sin' = cos
    fn sin(self) -> Self {
        self.chain(self.value.sin(), self.value.cos())
    }
    /// cos' = -sin
    fn cos(self) -> Self {
        self.chain(self.value.cos(), -self.value.sin())
    }
    /// tanh' = 1 - tanh^2
    fn tanh(self) -> Self {
        let t = self.value.tanh();
        self.chain(t, T::one() - t * t)
    }
    /// erf' = 2/sqrt(pi) exp(-x^2)
    fn erf(self) -> Self {
        let two_over_sqrt_pi = T::constant(std::f64::consts::FRAC_2_SQRT_PI);
        self.chain(
            self.value.erf(),
            two_over_sqrt_pi * (-(self.value * self.value)).exp(),
        )
    }
    /// (x^n)' = n x^(n-1)
    fn powi(self, n: i32) -> Self {
        let d = if n == 0 {
            T::zero()
        } else {
            T::constant(n as f64) * self.value.powi(n - 1)
        };
        self.chain(self.value.powi(n), d)
    }
    /// d(x^p) = p x^(p-1) dx + x^p ln(x) dp; the ln term is dropped when dp = 0 so that x = 0 works.
    fn powf(self, p: Self) -> Self {
        let xp = self.value.powf(p.value);
        let d_base = p.value * self.value.powf(p.value - T::one()) * self.tangent;
        let d_exponent = if p.tangent == T::zero() {
            T::zero()
        } else {
            xp * self.value.ln() * p.tangent
        };
        Dual::new(xp, d_base + d_exponent)
    }
    /// |x|' = sign(x), sign(0) = 0
    fn abs(self) -> Self {
        let v = self.value.primal_f64();
        let sign = if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            0.0
        };
        self.chain(self.value.abs(), T::constant(sign))
    }
    /// sigma' = sigma (1 - sigma); written directly so that the derivative never overflows.
    fn sigmoid(self) -> Self {
        let s = self.value.sigmoid();
        self.chain(s, s * (T::one() - s))
    }
    /// softplus' = sigma
    fn softplus(self) -> Self {
        self.chain(self.value.softplus(), self.value.sigmoid())
    }
}
