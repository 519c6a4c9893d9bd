//! Elementwise functions (activations and the few math functions the losses need), each written
//! once over [`Real`]. Their derivatives of any order up to 3 come from evaluating that one
//! formula on nested dual numbers, so there is no hand-written derivative to get wrong.

use crate::autodiff::dual::Dual;
use crate::linalg::float::Float;
use crate::linalg::real::Real;
use std::fmt;
use std::str::FromStr;

/// The widest vector extension the elementwise kernels are compiled for that this CPU has.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Avx512,
    Avx2,
    Baseline,
}

/// Detected once (a relaxed atomic load afterwards): the kernels run for every layer of every step.
#[cfg(target_arch = "x86_64")]
fn widest_simd() -> Simd {
    use std::arch::is_x86_feature_detected as has;
    use std::sync::atomic::{AtomicU8, Ordering};
    static DETECTED: AtomicU8 = AtomicU8::new(0);
    match DETECTED.load(Ordering::Relaxed) {
        1 => Simd::Avx512,
        2 => Simd::Avx2,
        3 => Simd::Baseline,
        _ => {
            let avx2 = has!("avx2") && has!("fma");
            let avx512 =
                avx2 && has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw");
            let (simd, code) = match (avx512, avx2) {
                (true, _) => (Simd::Avx512, 1),
                (false, true) => (Simd::Avx2, 2),
                _ => (Simd::Baseline, 3),
            };
            DETECTED.store(code, Ordering::Relaxed);
            simd
        }
    }
}

/// A scalar function applied to every element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    /// x sigma(x)
    Silu,
    /// tanh(x)
    Tanh,
    /// GELU, tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    GeluTanh,
    /// max(x, 0)
    Relu,
    /// ln(1 + e^x)
    Softplus,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// e^x
    Exp,
    /// ln x
    Ln,
    /// sqrt x
    Sqrt,
    /// x^2
    Square,
    /// x^p for a constant p (x > 0, or x >= 0 with p > 0)
    Pow(f64),
    /// sin x
    Sin,
    /// cos x
    Cos,
}

/// The highest derivative order [`Elementwise::derivative`] computes (triple-nested duals).
pub const MAX_DERIVATIVE_ORDER: usize = 3;

impl Elementwise {
    /// f(x), on any [`Real`]: floats, duals, nested duals.
    #[inline(always)]
    pub fn eval<R: Real>(self, x: R) -> R {
        match self {
            Elementwise::Silu => x * x.sigmoid(),
            Elementwise::Tanh => x.tanh(),
            Elementwise::GeluTanh => {
                let k = R::constant((2.0 / std::f64::consts::PI).sqrt());
                let inner = k * (x + R::constant(0.044715) * x * x * x);
                R::constant(0.5) * x * (R::one() + inner.tanh())
            }
            Elementwise::Relu => x.relu(),
            Elementwise::Softplus => x.softplus(),
            Elementwise::Sigmoid => x.sigmoid(),
            Elementwise::Exp => x.exp(),
            Elementwise::Ln => x.ln(),
            Elementwise::Sqrt => x.sqrt(),
            Elementwise::Square => x * x,
            Elementwise::Pow(p) => {
                if p == 2.0 {
                    x * x
                } else {
                    x.powf(R::constant(p))
                }
            }
            Elementwise::Sin => x.sin(),
            Elementwise::Cos => x.cos(),
        }
    }

    /// (f(x), f'(x)) in one evaluation on a dual number.
    #[inline(always)]
    pub fn value_and_derivative<T: Real>(self, x: T) -> (T, T) {
        let y = self.eval(Dual::variable(x));
        (y.value, y.tangent)
    }

    /// The fused kernel of a hidden layer: for a row-major block `a` of rows of width
    /// `bias.len()`, x = a + bias, then a <- f(x) and d <- f'(x); and for the tangent rows
    /// `a_dot` (whole rows, at most as many as `a` has; tangent row i belongs to row i),
    /// a_dot <- f'(x) a_dot, while row i of d is still in cache. The match on the function is
    /// hoisted out of the loop, so each activation gets its own straight-line, vectorisable loop.
    pub fn activate_with_derivative<T: Float>(
        self,
        a: &mut [T],
        d: &mut [T],
        a_dot: &mut [T],
        bias: &[T],
    ) {
        #[inline(always)]
        fn run<T: Float>(
            a: &mut [T],
            d: &mut [T],
            a_dot: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<T>) -> Dual<T>,
        ) {
            let w = bias.len();
            assert!(
                w > 0 && a.len() == d.len() && a.len().is_multiple_of(w) && a_dot.len().is_multiple_of(w) && a_dot.len() <= a.len(),
                "activate_with_derivative: values {}, derivatives {} and tangents {} must be whole rows of width {w}, tangents no more than values",
                a.len(),
                d.len(),
                a_dot.len()
            );
            let mut tangent_rows = a_dot.chunks_exact_mut(w);
            for (a_row, d_row) in a.chunks_exact_mut(w).zip(d.chunks_exact_mut(w)) {
                for ((a, d), &b) in a_row.iter_mut().zip(d_row.iter_mut()).zip(bias) {
                    let y = f(Dual::variable(*a + b));
                    *a = y.value;
                    *d = y.tangent;
                }
                if let Some(a_dot_row) = tangent_rows.next() {
                    for (a_dot, &d) in a_dot_row.iter_mut().zip(d_row.iter()) {
                        *a_dot *= d;
                    }
                }
            }
        }
        /// The same loop compiled for AVX2 + FMA, chosen at run time where the CPU has them.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run_avx2<T: Float>(
            a: &mut [T],
            d: &mut [T],
            a_dot: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<T>) -> Dual<T>,
        ) {
            run(a, d, a_dot, bias, f)
        }
        /// The same loop compiled for AVX-512, chosen at run time where the CPU has it.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn run_avx512<T: Float>(
            a: &mut [T],
            d: &mut [T],
            a_dot: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<T>) -> Dual<T>,
        ) {
            run(a, d, a_dot, bias, f)
        }
        #[inline(always)]
        fn dispatch<T: Float>(
            a: &mut [T],
            d: &mut [T],
            a_dot: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<T>) -> Dual<T>,
        ) {
            #[cfg(target_arch = "x86_64")]
            match widest_simd() {
                // SAFETY: the CPU supports the features each function is compiled for.
                Simd::Avx512 => return unsafe { run_avx512(a, d, a_dot, bias, f) },
                Simd::Avx2 => return unsafe { run_avx2(a, d, a_dot, bias, f) },
                Simd::Baseline => {}
            }
            run(a, d, a_dot, bias, f)
        }
        match self {
            Elementwise::Silu => dispatch(a, d, a_dot, bias, |x| Elementwise::Silu.eval(x)),
            Elementwise::Tanh => dispatch(a, d, a_dot, bias, |x| Elementwise::Tanh.eval(x)),
            Elementwise::GeluTanh => dispatch(a, d, a_dot, bias, |x| Elementwise::GeluTanh.eval(x)),
            Elementwise::Relu => dispatch(a, d, a_dot, bias, |x| Elementwise::Relu.eval(x)),
            Elementwise::Softplus => dispatch(a, d, a_dot, bias, |x| Elementwise::Softplus.eval(x)),
            Elementwise::Sigmoid => dispatch(a, d, a_dot, bias, |x| Elementwise::Sigmoid.eval(x)),
            other => run(a, d, a_dot, bias, |x| other.eval(x)),
        }
    }

    /// x <- f''(x + bias) for a row-major block of rows of width `bias.len()`: the second
    /// derivative from one evaluation on nested dual numbers (as [`Self::derivative`] with order 2),
    /// the match on the function hoisted out of the loop so that each activation gets its own
    /// vectorisable loop (AVX2 + FMA where the CPU has them). Reverse over forward through a dense
    /// layer needs it for every tangent row.
    pub fn second_derivative_in_place<T: Float>(self, x: &mut [T], bias: &[T]) {
        #[inline(always)]
        fn run<T: Float>(x: &mut [T], bias: &[T], f: impl Fn(Dual<Dual<T>>) -> Dual<Dual<T>>) {
            let w = bias.len();
            assert!(
                w > 0 && x.len().is_multiple_of(w),
                "second_derivative_in_place: {} values are not whole rows of width {w}",
                x.len()
            );
            for row in x.chunks_exact_mut(w) {
                for (x, &b) in row.iter_mut().zip(bias) {
                    let seeded = Dual::new(Dual::variable(*x + b), Dual::constant_of(T::one()));
                    *x = f(seeded).tangent.tangent;
                }
            }
        }
        /// The same loop compiled for AVX2 + FMA, chosen at run time where the CPU has them.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run_avx2<T: Float>(
            x: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<Dual<T>>) -> Dual<Dual<T>>,
        ) {
            run(x, bias, f)
        }
        /// The same loop compiled for AVX-512, chosen at run time where the CPU has it.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn run_avx512<T: Float>(
            x: &mut [T],
            bias: &[T],
            f: impl Fn(Dual<Dual<T>>) -> Dual<Dual<T>>,
        ) {
            run(x, bias, f)
        }
        #[inline(always)]
        fn dispatch<T: Float>(x: &mut [T], bias: &[T], f: impl Fn(Dual<Dual<T>>) -> Dual<Dual<T>>) {
            #[cfg(target_arch = "x86_64")]
            match widest_simd() {
                // SAFETY: the CPU supports the features each function is compiled for.
                Simd::Avx512 => return unsafe { run_avx512(x, bias, f) },
                Simd::Avx2 => return unsafe { run_avx2(x, bias, f) },
                Simd::Baseline => {}
            }
            run(x, bias, f)
        }
        match self {
            Elementwise::Silu => dispatch(x, bias, |x| Elementwise::Silu.eval(x)),
            Elementwise::Tanh => dispatch(x, bias, |x| Elementwise::Tanh.eval(x)),
            Elementwise::GeluTanh => dispatch(x, bias, |x| Elementwise::GeluTanh.eval(x)),
            Elementwise::Relu => dispatch(x, bias, |x| Elementwise::Relu.eval(x)),
            Elementwise::Softplus => dispatch(x, bias, |x| Elementwise::Softplus.eval(x)),
            Elementwise::Sigmoid => dispatch(x, bias, |x| Elementwise::Sigmoid.eval(x)),
            other => run(x, bias, |x| other.eval(x)),
        }
    }

    /// The derivative of order `order` (0 = f itself) at x, from nested dual numbers:
    /// f'(x) is the tangent of f(x + eps); f''(x) the eps1 eps2 part of f(x + eps1 + eps2); f''' likewise.
    pub fn derivative<T: Real>(self, order: usize, x: T) -> T {
        match order {
            0 => self.eval(x),
            1 => self.eval(Dual::variable(x)).tangent,
            2 => {
                let x2 = Dual::new(Dual::variable(x), Dual::constant_of(T::one()));
                self.eval(x2).tangent.tangent
            }
            3 => {
                let one = Dual::constant_of(Dual::constant_of(T::one()));
                let x3 = Dual::new(Dual::new(Dual::variable(x), Dual::constant_of(T::one())), one);
                self.eval(x3).tangent.tangent.tangent
            }
            _ => panic!(
                "Elementwise::derivative: order {order} exceeds the supported maximum {MAX_DERIVATIVE_ORDER}"
            ),
        }
    }

    /// The activations a model may use, by their command-line names.
    pub const ACTIVATIONS: [Elementwise; 6] = [
        Elementwise::Silu,
        Elementwise::Tanh,
        Elementwise::GeluTanh,
        Elementwise::Relu,
        Elementwise::Softplus,
        Elementwise::Sigmoid,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> String {
        match self {
            Elementwise::Silu => "silu".into(),
            Elementwise::Tanh => "tanh".into(),
            Elementwise::GeluTanh => "gelu_tanh".into(),
            Elementwise::Relu => "relu".into(),
            Elementwise::Softplus => "softplus".into(),
            Elementwise::Sigmoid => "sigmoid".into(),
            Elementwise::Exp => "exp".into(),
            Elementwise::Ln => "ln".into(),
            Elementwise::Sqrt => "sqrt".into(),
            Elementwise::Square => "square".into(),
            Elementwise::Pow(p) => format!("pow({p})"),
            Elementwise::Sin => "sin".into(),
            Elementwise::Cos => "cos".into(),
        }
    }
}

impl fmt::Display for Elementwise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

crate::serde_by_name!(Elementwise);

/// Parses an activation name (`silu`, `tanh`, `gelu_tanh`, `relu`, `softplus`, `sigmoid`).
impl FromStr for Elementwise {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Elementwise::ACTIVATIONS
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown activation '{s}' (expected one of: silu, tanh, gelu_tanh, relu, softplus, sigmoid)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised second-derivative kernel equals `derivative(2, .)` bit for bit, on every
    /// activation, at points around the kinks and in the tails.
    #[test]
    fn second_derivative_kernel_equals_derivative_2() {
        let bias = [0.25f64, -0.5, 0.0];
        let xs: Vec<f64> = (-24..24).map(|i| i as f64 * 0.37).collect();
        for f in Elementwise::ACTIVATIONS {
            let mut kernel = xs.clone();
            f.second_derivative_in_place(&mut kernel, &bias);
            for (i, (&x, &k)) in xs.iter().zip(&kernel).enumerate() {
                let want = f.derivative(2, x + bias[i % bias.len()]);
                assert_eq!(k.to_bits(), want.to_bits(), "{f} at {x}: {k} vs {want}");
            }
        }
    }
}
