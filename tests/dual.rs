//! Dual numbers and elementwise functions against closed forms and central finite differences.
//!
//! Every [`Real`] elementary function is checked on `Dual<f64>` (first derivative) and on
//! `Dual<Dual<f64>>` (second derivative), and every [`Elementwise`] variant up to the third
//! derivative. Errors are measured with [`scaled_error`] against the scale max_j |f^(j)(x)| over
//! the orders involved: rounding of f' = 1 - tanh^2 or of a finite difference of f is set by |f|,
//! not by |f'| (see src/verify/check.rs).

#[path = "common/closed_forms.rs"]
mod closed_forms;

use closed_forms::sigmoid as sig;
use meanflow::autodiff::dual::Dual;
use meanflow::autodiff::elementwise::{Elementwise, MAX_DERIVATIVE_ORDER};
use meanflow::linalg::real::Real;
use meanflow::verify::check::{
    central_difference, scaled_error, CLOSED_FORM_REL_TOL, F32_REL_TOL, FD_REL_TOL,
};
use proptest::prelude::*;

type D1 = Dual<f64>;
type D2 = Dual<Dual<f64>>;

const CASES: u32 = 64;

/// The functions of [`Real`] (and the arithmetic), each a map x -> f(x) written once over `R: Real`.
#[derive(Clone, Copy, Debug)]
enum Fun {
    Exp,
    Ln,
    Ln1p,
    Sqrt,
    Sin,
    Cos,
    Tanh,
    Erf,
    Powi(i32),
    /// x^p, constant p.
    Powf(f64),
    /// b^x, constant base: the exponent carries the tangent.
    PowfExponent(f64),
    /// x^x: base and exponent both carry the tangent.
    PowfBoth,
    Abs,
    Recip,
    Sigmoid,
    Softplus,
    Relu,
    Square,
    /// sin x + exp x
    Add,
    /// sin x - exp x
    Sub,
    /// sin x exp x
    Mul,
    /// sin x / (2 + cos x)
    Div,
    /// -sin x
    Neg,
    /// The compound-assignment operators: ((sin x + exp x - cos x) x) / (2 + x^2).
    Assign,
}

/// Where a function is sampled: [lo, hi], or |x| in [lo, hi] with either sign when `symmetric`.
struct Domain {
    lo: f64,
    hi: f64,
    symmetric: bool,
}

const fn interval(lo: f64, hi: f64) -> Domain {
    Domain {
        lo,
        hi,
        symmetric: false,
    }
}
/// |x| in [lo, hi], either sign: for functions with a kink or a pole at 0.
const fn away_from_zero(lo: f64, hi: f64) -> Domain {
    Domain {
        lo,
        hi,
        symmetric: true,
    }
}

impl Domain {
    /// The point for u in [0, 1) and a sign.
    fn point(&self, u: f64, negative: bool) -> f64 {
        let x = self.lo + u * (self.hi - self.lo);
        if self.symmetric && negative {
            -x
        } else {
            x
        }
    }
}

impl Fun {
    fn all(n: i32, p: f64, b: f64) -> Vec<Fun> {
        use Fun::*;
        vec![
            Exp,
            Ln,
            Ln1p,
            Sqrt,
            Sin,
            Cos,
            Tanh,
            Erf,
            Powi(n),
            Powf(p),
            PowfExponent(b),
            PowfBoth,
            Abs,
            Recip,
            Sigmoid,
            Softplus,
            Relu,
            Square,
            Add,
            Sub,
            Mul,
            Div,
            Neg,
            Assign,
        ]
    }

    fn apply<R: Real>(self, x: R) -> R {
        let c = R::constant;
        match self {
            Fun::Exp => x.exp(),
            Fun::Ln => x.ln(),
            Fun::Ln1p => x.ln_1p(),
            Fun::Sqrt => x.sqrt(),
            Fun::Sin => x.sin(),
            Fun::Cos => x.cos(),
            Fun::Tanh => x.tanh(),
            Fun::Erf => x.erf(),
            Fun::Powi(n) => x.powi(n),
            Fun::Powf(p) => x.powf(c(p)),
            Fun::PowfExponent(b) => c(b).powf(x),
            Fun::PowfBoth => x.powf(x),
            Fun::Abs => x.abs(),
            Fun::Recip => x.recip(),
            Fun::Sigmoid => x.sigmoid(),
            Fun::Softplus => x.softplus(),
            Fun::Relu => x.relu(),
            Fun::Square => x.square(),
            Fun::Add => x.sin() + x.exp(),
            Fun::Sub => x.sin() - x.exp(),
            Fun::Mul => x.sin() * x.exp(),
            Fun::Div => x.sin() / (c(2.0) + x.cos()),
            Fun::Neg => -x.sin(),
            Fun::Assign => {
                let mut y = x.sin();
                y += x.exp();
                y -= x.cos();
                y *= x;
                y /= c(2.0) + x * x;
                y
            }
        }
    }

    fn domain(self) -> Domain {
        match self {
            Fun::Exp | Fun::Sin | Fun::Cos | Fun::Tanh | Fun::Square => interval(-10.0, 10.0),
            Fun::Ln | Fun::Sqrt => interval(0.1, 10.0),
            Fun::Ln1p => interval(-0.9, 10.0),
            Fun::Erf => interval(-4.0, 4.0),
            Fun::Powi(_) => away_from_zero(0.2, 3.0),
            Fun::Powf(_) => interval(0.1, 5.0),
            Fun::PowfExponent(_) => interval(-3.0, 3.0),
            Fun::PowfBoth => interval(0.1, 4.0),
            Fun::Abs | Fun::Relu => away_from_zero(0.01, 10.0),
            Fun::Recip => away_from_zero(0.2, 10.0),
            Fun::Sigmoid | Fun::Softplus => interval(-30.0, 30.0),
            Fun::Add | Fun::Sub | Fun::Mul | Fun::Div | Fun::Neg | Fun::Assign => {
                interval(-5.0, 5.0)
            }
        }
    }

    /// [f, f', f''] from textbook formulas, independent of the dual-number code.
    fn closed_form(self, x: f64) -> [f64; 3] {
        let (s, c, e) = (x.sin(), x.cos(), x.exp());
        match self {
            Fun::Exp => [e, e, e],
            Fun::Ln => [x.ln(), 1.0 / x, -1.0 / (x * x)],
            Fun::Ln1p => [x.ln_1p(), 1.0 / (1.0 + x), -1.0 / ((1.0 + x) * (1.0 + x))],
            Fun::Sqrt => [x.sqrt(), 0.5 / x.sqrt(), -0.25 / (x * x.sqrt())],
            Fun::Sin => [s, c, -s],
            Fun::Cos => [c, -s, -c],
            Fun::Tanh => {
                let t = x.tanh();
                [t, 1.0 - t * t, -2.0 * t * (1.0 - t * t)]
            }
            Fun::Erf => {
                let d = std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp();
                [libm::erf(x), d, -2.0 * x * d]
            }
            Fun::Powi(n) => {
                let nf = n as f64;
                [
                    x.powi(n),
                    nf * x.powi(n - 1),
                    nf * (nf - 1.0) * x.powi(n - 2),
                ]
            }
            Fun::Powf(p) => [
                x.powf(p),
                p * x.powf(p - 1.0),
                p * (p - 1.0) * x.powf(p - 2.0),
            ],
            Fun::PowfExponent(b) => {
                let (f, l) = (b.powf(x), b.ln());
                [f, f * l, f * l * l]
            }
            Fun::PowfBoth => {
                let (f, l) = (x.powf(x), x.ln() + 1.0);
                [f, f * l, f * (l * l + 1.0 / x)]
            }
            Fun::Abs => [x.abs(), x.signum(), 0.0],
            Fun::Recip => [1.0 / x, -1.0 / (x * x), 2.0 / (x * x * x)],
            Fun::Sigmoid => {
                let em = (-x).exp();
                let d = em / ((1.0 + em) * (1.0 + em));
                [sig(x), d, d * (1.0 - 2.0 * sig(x))]
            }
            Fun::Softplus => {
                let em = (-x).exp();
                let d = em / ((1.0 + em) * (1.0 + em));
                [x.exp().ln_1p(), sig(x), d]
            }
            Fun::Relu => {
                if x > 0.0 {
                    [x, 1.0, 0.0]
                } else {
                    [0.0, 0.0, 0.0]
                }
            }
            Fun::Square => [x * x, 2.0 * x, 2.0],
            Fun::Add => [s + e, c + e, -s + e],
            Fun::Sub => [s - e, c - e, -s - e],
            Fun::Mul => [s * e, e * (s + c), 2.0 * e * c],
            Fun::Div => {
                let q = 2.0 + c;
                [
                    s / q,
                    (2.0 * c + 1.0) / (q * q),
                    2.0 * s * (c - 1.0) / (q * q * q),
                ]
            }
            Fun::Neg => [-s, -c, s],
            Fun::Assign => {
                // g = u / v, u = (s + e - c) x, v = 2 + x^2.
                let u = (s + e - c) * x;
                let u1 = (c + e + s) * x + (s + e - c);
                let u2 = (-s + e + c) * x + 2.0 * (c + e + s);
                let (v, v1, v2) = (2.0 + x * x, 2.0 * x, 2.0);
                [
                    u / v,
                    (u1 * v - u * v1) / (v * v),
                    u2 / v - 2.0 * u1 * v1 / (v * v) - u * v2 / (v * v)
                        + 2.0 * u * v1 * v1 / (v * v * v),
                ]
            }
        }
    }
}

/// max |values|.
fn scale(values: &[f64]) -> f64 {
    values.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// f(x + eps1 + eps2) on nested duals: (f, f' along eps1, f' along eps2, f'').
fn second_order<F: Fn(D2) -> D2>(f: F, x: f64) -> (f64, f64, f64, f64) {
    let y = f(Dual::new(D1::variable(x), D1::constant_of(1.0)));
    (
        y.value.value,
        y.value.tangent,
        y.tangent.value,
        y.tangent.tangent,
    )
}

/// Parameters of the families (powi exponent, powf exponent, powf base) and the point (u, sign).
fn params() -> impl Strategy<Value = (i32, f64, f64, f64, bool)> {
    (
        -3i32..=5,
        -2.5f64..3.5,
        0.2f64..5.0,
        0.0f64..1.0,
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// First derivatives on Dual<f64>: value equals the float evaluation, tangent equals the closed
    /// form and the central difference of f.
    #[test]
    fn first_derivatives_of_real_functions((n, p, b, u, neg) in params()) {
        for fun in Fun::all(n, p, b) {
            let x = fun.domain().point(u, neg);
            let y = fun.apply(D1::variable(x));
            let [f, df, _] = fun.closed_form(x);
            let s = scale(&[f, df]);
            prop_assert_eq!(y.value, fun.apply(x), "{:?} value at x = {}", fun, x);
            let err = scaled_error(y.value, f, s);
            prop_assert!(err <= CLOSED_FORM_REL_TOL,
                "{:?}: f({}) = {}, {} closed form, error {:e}", fun, x, y.value, f, err);
            let err = scaled_error(y.tangent, df, s);
            prop_assert!(err <= CLOSED_FORM_REL_TOL,
                "{:?}: f'({}) = {} from duals, {} closed form, error {:e}", fun, x, y.tangent, df, err);
            let fd = central_difference(|h| fun.apply(x + h));
            let err = scaled_error(y.tangent, fd, s);
            prop_assert!(err <= FD_REL_TOL,
                "{:?}: f'({}) = {} from duals, {} by central difference, error {:e}", fun, x, y.tangent, fd, err);
        }
    }

    /// Second derivatives on Dual<Dual<f64>>: both first-order parts agree with Dual<f64>, the
    /// mixed part equals the closed form f'' and the central difference of f'.
    #[test]
    fn second_derivatives_of_real_functions((n, p, b, u, neg) in params()) {
        for fun in Fun::all(n, p, b) {
            let x = fun.domain().point(u, neg);
            let (f, d_eps1, d_eps2, d2) = second_order(|z| fun.apply(z), x);
            let first = fun.apply(D1::variable(x));
            let [cf, cdf, cd2f] = fun.closed_form(x);
            let s = scale(&[cf, cdf, cd2f]);
            prop_assert_eq!(f, first.value, "{:?} value at x = {}", fun, x);
            prop_assert_eq!(d_eps1, first.tangent, "{:?} eps1 part at x = {}", fun, x);
            let err = scaled_error(d_eps2, first.tangent, s);
            prop_assert!(err <= CLOSED_FORM_REL_TOL, "{:?} eps2 part {} vs {} at x = {}", fun, d_eps2, first.tangent, x);
            let err = scaled_error(d2, cd2f, s);
            prop_assert!(err <= CLOSED_FORM_REL_TOL,
                "{:?}: f''({}) = {} from nested duals, {} closed form, error {:e}", fun, x, d2, cd2f, err);
            let fd = central_difference(|h| fun.apply(D1::variable(x + h)).tangent);
            let err = scaled_error(d2, fd, s);
            prop_assert!(err <= FD_REL_TOL,
                "{:?}: f''({}) = {} from nested duals, {} by central difference of f', error {:e}", fun, x, d2, fd, err);
        }
    }
}

/// PartialOrd on duals looks at the value alone (tangents differ in every pair below).
fn check_order<T: PartialOrd + std::fmt::Debug>(x: T, y: T, want: std::cmp::Ordering) {
    use std::cmp::Ordering::{Greater, Less};
    assert_eq!(x.partial_cmp(&y), Some(want), "{x:?} vs {y:?}");
    assert_eq!(x < y, want == Less, "{x:?} < {y:?}");
    assert_eq!(x > y, want == Greater, "{x:?} > {y:?}");
    assert_eq!(x <= y, want != Greater, "{x:?} <= {y:?}");
    assert_eq!(x >= y, want != Less, "{x:?} >= {y:?}");
}

#[test]
fn duals_compare_by_value() {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let a = D1::new(1.0, 100.0);
    let b = D1::new(2.0, -100.0);
    let same_value = D1::new(1.0, -7.0);
    check_order(a, b, Less);
    check_order(b, a, Greater);
    check_order(a, same_value, Equal);
    let nested_a = D2::new(a, D1::new(5.0, 5.0));
    let nested_b = D2::new(b, D1::new(-5.0, -5.0));
    check_order(nested_a, nested_b, Less);
    check_order(nested_b, nested_a, Greater);
    check_order(nested_a, D2::new(same_value, D1::new(0.0, 0.0)), Equal);
    // The branches of relu / abs / sigmoid / softplus follow the primal value only.
    let r = D2::new(D1::new(-1.0, 3.0), D1::new(3.0, 3.0)).relu();
    assert!(r.value.value == 0.0 && r.value.tangent == 0.0 && r.tangent.value == 0.0);
    let r = D2::new(D1::new(1.0, 3.0), D1::new(-2.0, 4.0)).abs();
    assert_eq!((r.value.tangent, r.tangent.value), (3.0, -2.0));
    assert_eq!(D2::new(a, D1::new(-9.0, 0.0)).primal_f64(), 1.0);
}

/// sigma and softplus and their first and second derivatives stay finite (and exact) far in the
/// tails, where exp(|x|) overflows; every activation at +-800 is at its limits.
#[test]
fn activations_in_the_tails() {
    for x in [-800.0, -100.0, -40.0, 40.0, 100.0, 800.0] {
        let pos = if x > 0.0 { 1.0 } else { 0.0 };
        // Closed forms in the tails: sigma = e^-|x| on the left, 1 - e^-|x| on the right.
        let tail = (-x.abs()).exp();
        let sigma = if x > 0.0 { 1.0 - tail } else { tail };
        let sigma1 = tail; // sigma' = e^-|x| (1 + O(e^-|x|))
        let sigma2 = if x > 0.0 { -tail } else { tail };
        let cases: [(Fun, [f64; 3]); 2] = [
            (Fun::Sigmoid, [sigma, sigma1, sigma2]),
            (Fun::Softplus, [pos * x + tail, sigma, sigma1]),
        ];
        for (fun, closed) in cases {
            let y1 = fun.apply(D1::variable(x));
            let (f, d_eps1, d_eps2, d2) = second_order(|z| fun.apply(z), x);
            for (what, got, want) in [
                ("f", y1.value, closed[0]),
                ("f'", y1.tangent, closed[1]),
                ("f", f, closed[0]),
                ("f' (eps1)", d_eps1, closed[1]),
                ("f' (eps2)", d_eps2, closed[1]),
                ("f''", d2, closed[2]),
            ] {
                assert!(got.is_finite(), "{fun:?} {what} at x = {x} is {got}");
                let err = scaled_error(got, want, scale(&closed));
                assert!(
                    err <= CLOSED_FORM_REL_TOL,
                    "{fun:?} {what} at x = {x}: {got}, expected {want}, error {err:e}"
                );
            }
        }
    }
    // Every activation at +-800, in f64 and f32: [f, f', f'', f'''] are at their limits there, up
    // to terms of size e^-800 (below the smallest f64): on the right x, 1, 0, 0 (1, 0, 0, 0 for
    // sigma and tanh), on the left 0, 0, 0, 0 (-1, 0, 0, 0 for tanh). A derivative rule with a
    // wrong sign or a lost factor in the saturated part (tanh' = 1 + tanh^2, say) fails here even
    // where it stays finite.
    let limits = |ew: Elementwise, x: f64| -> [f64; 4] {
        let right = x > 0.0;
        match ew {
            Elementwise::Sigmoid if right => [1.0, 0.0, 0.0, 0.0],
            Elementwise::Tanh => [x.signum(), 0.0, 0.0, 0.0],
            _ if right => [x, 1.0, 0.0, 0.0],
            _ => [0.0; 4],
        }
    };
    for ew in Elementwise::ACTIVATIONS {
        for x in [-800.0f64, 800.0] {
            for (order, &want) in limits(ew, x).iter().enumerate() {
                // Exact up to the rounding of intermediates of size |x| = 800.
                let d = ew.derivative(order, x);
                assert!(
                    (d - want).abs() <= CLOSED_FORM_REL_TOL * 800.0,
                    "{ew} derivative {order} at x = {x} is {d}, the limit {want}"
                );
                let d32 = ew.derivative(order, x as f32);
                assert!(
                    (f64::from(d32) - want).abs() <= F32_REL_TOL * 800.0,
                    "{ew} f32 derivative {order} at x = {x} is {d32}, the limit {want}"
                );
            }
        }
    }
}

/// The Elementwise variants, with the domain each is sampled on.
fn elementwise_cases(p: f64) -> Vec<(Elementwise, Domain)> {
    use Elementwise::*;
    vec![
        (Silu, interval(-20.0, 20.0)),
        (Tanh, interval(-20.0, 20.0)),
        (GeluTanh, interval(-20.0, 20.0)),
        (Relu, away_from_zero(0.01, 10.0)),
        (Softplus, interval(-20.0, 20.0)),
        (Sigmoid, interval(-20.0, 20.0)),
        (Exp, interval(-10.0, 10.0)),
        (Ln, interval(0.1, 10.0)),
        (Sqrt, interval(0.1, 10.0)),
        (Square, interval(-10.0, 10.0)),
        (Pow(p), interval(0.1, 5.0)),
        // p = 2 takes the x * x path, valid for negative x too.
        (Pow(2.0), interval(-10.0, 10.0)),
        (Pow(3.0), interval(0.1, 5.0)),
        (Pow(0.5), interval(0.1, 5.0)),
        (Sin, interval(-10.0, 10.0)),
        (Cos, interval(-10.0, 10.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The value (order 0) and derivative orders 1..=3 from nested duals against the textbook
    /// closed forms of tests/common/closed_forms.rs, and orders 1..=3 against the central
    /// difference of the order below.
    #[test]
    fn elementwise_derivatives(p in -2.5f64..3.5, u in 0.0f64..1.0, neg in any::<bool>()) {
        for (ew, domain) in elementwise_cases(p) {
            let x = domain.point(u, neg);
            let d: Vec<f64> = (0..=MAX_DERIVATIVE_ORDER).map(|k| ew.derivative(k, x)).collect();
            prop_assert_eq!(ew.value_and_derivative(x), (d[0], d[1]), "{} at x = {}", ew, x);
            let closed = closed_forms::elementwise(ew, x);
            // The activations compute small values by cancellation in O(1) intermediates
            // (1 + tanh u in GELU, 1 - tanh^2, 1 - sigma), so their rounding, and that of a finite
            // difference of them, is absolute: their scale is at least 1. The other functions have
            // no cancellation and keep the relative scale.
            let floor = if Elementwise::ACTIVATIONS.contains(&ew) { 1.0 } else { 0.0 };
            for order in 0..=MAX_DERIVATIVE_ORDER {
                let s = scale(&d[..=order]).max(floor);
                let err = scaled_error(d[order], closed[order], s);
                prop_assert!(err <= CLOSED_FORM_REL_TOL,
                    "{}: derivative {} at x = {}: {} from duals, {} closed form, error {:e}",
                    ew, order, x, d[order], closed[order], err);
                if order > 0 {
                    let fd = central_difference(|h| ew.derivative(order - 1, x + h));
                    let err = scaled_error(d[order], fd, s);
                    prop_assert!(err <= FD_REL_TOL,
                        "{}: derivative {} at x = {}: {} from duals, {} by central difference, error {:e}",
                        ew, order, x, d[order], fd, err);
                }
            }
        }
    }

    /// The f32 evaluation agrees with f64 at the same (f32-representable) point. The scale is at
    /// least 1: f32 rounding happens in O(1) intermediates (1 + tanh, 1 - sigma), so values near
    /// zero carry absolute, not relative, f32 errors.
    #[test]
    fn elementwise_f32_agrees_with_f64(p in -2.5f64..3.5, u in 0.0f64..1.0, neg in any::<bool>()) {
        for (ew, domain) in elementwise_cases(p) {
            let x32 = domain.point(u, neg) as f32;
            let x = x32 as f64;
            let (y64, d64) = ew.value_and_derivative(x);
            let (y32, d32) = ew.value_and_derivative(x32);
            prop_assert_eq!(y32, ew.eval(x32));
            let err = scaled_error(y32 as f64, y64, scale(&[y64, 1.0]));
            prop_assert!(err <= F32_REL_TOL, "{} at x = {}: f32 {} vs f64 {}, error {:e}", ew, x, y32, y64, err);
            let err = scaled_error(d32 as f64, d64, scale(&[y64, d64, 1.0]));
            prop_assert!(err <= F32_REL_TOL, "{}' at x = {}: f32 {} vs f64 {}, error {:e}", ew, x, d32, d64, err);
        }
    }
}

#[test]
#[should_panic(expected = "order 4 exceeds the supported maximum 3")]
fn elementwise_derivative_order_above_three_panics() {
    Elementwise::Tanh.derivative(4, 0.5f64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A tangent other than 1 scales the derivative: f(x + s eps) = f(x) + s f'(x) eps, for every
    /// function (a rule that multiplies by the seed's tangent in the wrong place, or divides by it,
    /// is invisible with s = 1).
    #[test]
    fn any_tangent_scales_the_derivative(
        (n, p, b, u, neg) in params(),
        s in prop_oneof![-3.0f64..-0.2, 0.2f64..3.0],
    ) {
        for fun in Fun::all(n, p, b) {
            let x = fun.domain().point(u, neg);
            let y = fun.apply(D1::new(x, s));
            let [f, df, _] = fun.closed_form(x);
            let err = scaled_error(y.tangent, s * df, s.abs() * scale(&[f, df]));
            prop_assert!(err <= CLOSED_FORM_REL_TOL,
                "{:?}: tangent {} at x = {} with seed {}: {} expected, error {:e}",
                fun, y.tangent, x, s, s * df, err);
        }
    }

    /// x^p with tangents on both: d(x^p) = p x^(p-1) dx + x^p ln(x) dp, each part with its own
    /// tangent (the exponent's part scaled by dp, not 1 / dp).
    #[test]
    fn powf_with_tangents_on_base_and_exponent(
        x in 0.2f64..4.0,
        p in -2.0f64..3.0,
        dx in -2.0f64..2.0,
        dp in prop_oneof![-2.0f64..-0.1, 0.1f64..2.0],
    ) {
        let y = D1::new(x, dx).powf(D1::new(p, dp));
        let want = p * x.powf(p - 1.0) * dx + x.powf(p) * x.ln() * dp;
        let err = scaled_error(y.tangent, want, scale(&[want, x.powf(p), 1.0]));
        prop_assert!(err <= CLOSED_FORM_REL_TOL, "tangent {} expected {}", y.tangent, want);
        prop_assert_eq!(y.value, x.powf(p));
    }
}

/// The kinks: at exactly 0, |x| and relu(x) have derivative 0 (the documented subgradient), on
/// either side the derivative is the side's, whatever the tangent.
#[test]
fn abs_and_relu_at_their_kink() {
    for s in [1.0, -2.5, 0.3] {
        let at_zero = D1::new(0.0, s);
        assert_eq!(at_zero.abs().value, 0.0);
        assert_eq!(at_zero.abs().tangent, 0.0);
        assert_eq!(at_zero.relu().value, 0.0);
        assert_eq!(at_zero.relu().tangent, 0.0);
        let neg_zero = D1::new(-0.0, s);
        assert_eq!(neg_zero.abs().tangent, 0.0);
        assert_eq!(neg_zero.relu().tangent, 0.0);
        for (x, abs_slope, relu_slope) in [(1e-300, 1.0, 1.0), (-1e-300, -1.0, 0.0)] {
            let d = D1::new(x, s);
            assert_eq!(d.abs().tangent, abs_slope * s, "abs' at {x}");
            assert_eq!(d.relu().tangent, relu_slope * s, "relu' at {x}");
        }
    }
}

/// `Zero` and `One` on duals: zero is 0 + 0 eps and the only dual that `is_zero` (a dual with a
/// zero value and a nonzero tangent is not zero: it is an infinitesimal); one is 1 + 0 eps.
#[test]
fn zero_and_one_of_duals() {
    use num_traits::{One, Zero};
    assert_eq!(D1::zero(), D1::new(0.0, 0.0));
    assert!(D1::zero().is_zero());
    assert!(!D1::new(0.0, 1.0).is_zero(), "an infinitesimal is not zero");
    assert!(!D1::new(2.0, 0.0).is_zero());
    assert!(D2::zero().is_zero());
    assert!(!D2::new(D1::zero(), D1::new(0.0, -1.0)).is_zero());
    assert_eq!(D1::one(), D1::new(1.0, 0.0));
    assert_eq!(D2::one(), D2::new(D1::new(1.0, 0.0), D1::zero()));
}

/// x^p at x = 0 with a constant exponent: the exponent's term x^p ln(x) dp is skipped when
/// dp = 0 (ln 0 = -inf would make it NaN), so 0^p and its derivative are finite for p >= 1. And
/// x^0 = 1 with derivative 0 at x = 0 too (0 x^-1 would be NaN there).
#[test]
fn powers_at_zero() {
    for (p, slope) in [(1.0, 1.0), (2.5, 0.0), (3.0, 0.0)] {
        let y = D1::variable(0.0).powf(D1::constant_of(p));
        assert_eq!((y.value, y.tangent), (0.0, slope), "0^{p}");
    }
    for (n, value, slope) in [(0, 1.0, 0.0), (1, 0.0, 1.0), (2, 0.0, 0.0)] {
        let y = D1::variable(0.0).powi(n);
        assert_eq!((y.value, y.tangent), (value, slope), "0^{n}");
    }
}

/// The configuration names of the functions: each activation's name parses back to it (and only
/// activations parse), the others are named as in configs, and an unknown name is refused with
/// the list of valid ones.
#[test]
fn elementwise_names_round_trip() {
    let names = ["silu", "tanh", "gelu_tanh", "relu", "softplus", "sigmoid"];
    for (f, name) in Elementwise::ACTIVATIONS.into_iter().zip(names) {
        assert_eq!(f.name(), name);
        assert_eq!(f.to_string(), name);
        assert_eq!(name.parse::<Elementwise>(), Ok(f));
    }
    for (f, name) in [
        (Elementwise::Exp, "exp"),
        (Elementwise::Ln, "ln"),
        (Elementwise::Sqrt, "sqrt"),
        (Elementwise::Square, "square"),
        (Elementwise::Pow(2.5), "pow(2.5)"),
        (Elementwise::Sin, "sin"),
        (Elementwise::Cos, "cos"),
    ] {
        assert_eq!(f.name(), name);
        assert!(
            name.parse::<Elementwise>().is_err(),
            "{name} is not an activation"
        );
    }
    let e = "gelu".parse::<Elementwise>().unwrap_err();
    assert!(
        e.contains("unknown activation 'gelu'") && e.contains("gelu_tanh"),
        "{e}"
    );
}
