//! First and second derivatives by hand with dual numbers.
//!
//! A dual number is a + b eps with eps^2 = 0. Expanding any formula on it,
//!     f(a + b eps) = f(a) + f'(a) b eps,
//! so if we feed the "variable" x + 1 eps into f, the eps part of the result is f'(x): exact,
//! no step size, no truncation error. Nesting gives second derivatives: on Dual<Dual<f64>> there
//! are two independent eps's, and the eps1 eps2 part of f(x + eps1 + eps2) is f''(x).
//!
//! Run with `cargo run --example dual_numbers`.

use meanflow::autodiff::dual::Dual;
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::linalg::real::Real;
use meanflow::verify::check::{scalar_relative_error, REWRITE_REL_TOL};

/// f(x) = exp(sin x), written ONCE over any `Real`: f64, Dual<f64>, Dual<Dual<f64>>, ...
/// Every operation it uses (sin, exp) knows its own derivative rule (see src/autodiff/dual.rs).
fn f<R: Real>(x: R) -> R {
    x.sin().exp()
}

/// The closed forms we check against: f' = cos x e^(sin x), f'' = (cos^2 x - sin x) e^(sin x).
fn f_prime(x: f64) -> f64 {
    x.cos() * x.sin().exp()
}
fn f_second(x: f64) -> f64 {
    (x.cos() * x.cos() - x.sin()) * x.sin().exp()
}

/// silu(x) = x sigma(x) and its closed-form derivatives, for the activation check below.
fn silu_derivatives(x: f64) -> (f64, f64) {
    let s = 1.0 / (1.0 + (-x).exp());
    let d1 = s * (1.0 + x * (1.0 - s));
    let d2 = s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s));
    (d1, d2)
}

fn main() {
    // --- 1. The arithmetic by hand: (3 + 1 eps)^2 = 9 + 6 eps, and d/dx x^2 = 2x = 6 at x = 3.
    let x = Dual::variable(3.0_f64); // value 3, tangent 1: "this is the variable"
    let y = x * x; // the product rule (a + a' eps)(b + b' eps) = ab + (a'b + ab') eps
    println!(
        "(3 + 1 eps)^2 = {} + {} eps   (d/dx x^2 at 3 is 6)\n",
        y.value, y.tangent
    );
    assert_eq!((y.value, y.tangent), (9.0, 6.0));

    // --- 2. f(x) = exp(sin x): first derivative from Dual<f64>, second from Dual<Dual<f64>>.
    println!("f(x) = exp(sin x)");
    println!(
        "{:>6} {:>12} {:>14} {:>14} {:>14} {:>14} {:>9}",
        "x", "f(x)", "f' dual", "f' closed", "f'' nested", "f'' closed", "max rel"
    );
    let mut worst = 0.0f64;
    for &x0 in &[-1.5, -0.5, 0.0, 0.7, 2.0] {
        // One level: x0 + 1 eps. The tangent of the result is f'(x0).
        let first = f(Dual::variable(x0));

        // Two levels: the outer tangent seeds eps2 (a constant 1), the inner one eps1.
        // x = (x0 + 1 eps1) + (1 + 0 eps1) eps2. Then, for the result r:
        //   r.value.value     = f(x0)
        //   r.value.tangent   = f'(x0)   (the eps1 part)
        //   r.tangent.value   = f'(x0)   (the eps2 part)
        //   r.tangent.tangent = f''(x0)  (the eps1 eps2 part)
        let x2 = Dual::new(Dual::variable(x0), Dual::constant_of(1.0));
        let second = f(x2);

        let errs = [
            scalar_relative_error(first.tangent, f_prime(x0)),
            scalar_relative_error(second.value.tangent, f_prime(x0)),
            scalar_relative_error(second.tangent.value, f_prime(x0)),
            scalar_relative_error(second.tangent.tangent, f_second(x0)),
        ];
        let err = errs.iter().cloned().fold(0.0, f64::max);
        worst = worst.max(err);
        println!(
            "{x0:>6.2} {:>12.8} {:>14.10} {:>14.10} {:>14.10} {:>14.10} {err:>9.1e}",
            first.value,
            first.tangent,
            f_prime(x0),
            second.tangent.tangent,
            f_second(x0)
        );
    }

    // --- 3. The same machinery drives the network's activations: Elementwise::derivative(order, x)
    // evaluates the one formula of silu on nested duals. Here against the closed forms.
    println!("\nsilu(x) = x sigma(x) through Elementwise::derivative");
    println!(
        "{:>6} {:>14} {:>14} {:>14} {:>14} {:>9}",
        "x", "silu' dual", "silu' closed", "silu'' dual", "silu'' closed", "max rel"
    );
    for &x0 in &[-3.0, -0.5, 0.5, 4.0] {
        let d1 = Elementwise::Silu.derivative(1, x0);
        let d2 = Elementwise::Silu.derivative(2, x0);
        let (c1, c2) = silu_derivatives(x0);
        let err = scalar_relative_error(d1, c1).max(scalar_relative_error(d2, c2));
        worst = worst.max(err);
        println!("{x0:>6.2} {d1:>14.10} {c1:>14.10} {d2:>14.10} {c2:>14.10} {err:>9.1e}");
    }

    // Dual numbers are exact: the only difference from the closed forms is rounding.
    println!(
        "\nworst relative error {worst:.1e} (tolerance REWRITE_REL_TOL = {REWRITE_REL_TOL:.0e})"
    );
    assert!(
        worst <= REWRITE_REL_TOL,
        "dual derivatives differ from the closed forms"
    );
}
