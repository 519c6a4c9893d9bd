//! Forward mode (JVP) and reverse mode (VJP) of a small MLP on the tape.
//!
//!     y(x) = tanh(x W1^T + b1) W2^T + b2,    x [4, 3] -> y [4, 2]
//!
//! - JVP: seed a tangent v on x with `set_tangent`; every op recorded afterwards also records its
//!   derivative rule, so `tangent(y)` is J v. Checked against central finite differences.
//! - VJP: `backward_with(y, w)` runs reverse mode seeded with w; `grad(x)` is J^T w. Checked with
//!   the adjoint identity <w, J v> = <J^T w, v>, which holds exactly (up to rounding).
//! - Reverse over forward: J v is made of ordinary tape nodes, so `backward` through it gives the
//!   gradient of the JVP with respect to the weights: what exact MeanFlow needs.
//!
//! Run with `cargo run --example mlp_jvp`.

use meanflow::check::{
    central_difference, central_difference_array, fd_relative_error, fd_relative_error_array,
    inner, scalar_relative_error, ADJOINT_REL_TOL, FD_REL_TOL,
};
use meanflow::elementwise::Elementwise;
use meanflow::rng::Rng;
use meanflow::tape::{Tape, Var};
use ndarray::Array2;

/// The weights of the MLP.
struct Weights {
    w1: Array2<f64>,
    b1: Array2<f64>,
    w2: Array2<f64>,
    b2: Array2<f64>,
}

/// Records y = tanh(x W1^T + b1) W2^T + b2 on the tape; the weights are `param`s (gradients are
/// taken with respect to them). Returns (y, the W1 node).
fn mlp(tape: &mut Tape<f64>, x: Var, p: &Weights) -> (Var, Var) {
    let w1 = tape.param(p.w1.view());
    let b1 = tape.param(p.b1.view());
    let w2 = tape.param(p.w2.view());
    let b2 = tape.param(p.b2.view());
    let pre = tape.linear(x, w1, b1); // x W1^T + b1 (PyTorch nn.Linear layout)
    let hidden = tape.map(pre, Elementwise::Tanh);
    (tape.linear(hidden, w2, b2), w1)
}

/// y(x) alone, on a fresh tape: the function the finite differences evaluate.
fn y_of(x: &Array2<f64>, p: &Weights) -> Array2<f64> {
    let mut tape = Tape::new();
    let x = tape.constant(x.view());
    let (y, _) = mlp(&mut tape, x, p);
    tape.value(y).to_owned()
}

/// <w, J v> at weights p, on a fresh tape (forward mode): the scalar whose W1-gradient part 3 checks.
fn w_dot_jv(x: &Array2<f64>, v: &Array2<f64>, w: &Array2<f64>, p: &Weights) -> f64 {
    let mut tape = Tape::new();
    let xv = tape.constant(x.view());
    let vv = tape.constant(v.view());
    tape.set_tangent(xv, vv);
    let (y, _) = mlp(&mut tape, xv, p);
    inner(w.view(), tape.value(tape.tangent(y).unwrap()))
}

fn main() {
    let mut rng = Rng::seed_from_u64(7);
    let mut normal =
        |shape: (usize, usize), s: f64| Array2::from_shape_simple_fn(shape, || s * rng.normal());
    let p = Weights {
        w1: normal((5, 3), 0.6),
        b1: normal((1, 5), 0.1),
        w2: normal((2, 5), 0.4),
        b2: normal((1, 2), 0.1),
    };
    let x = normal((4, 3), 1.0); // the input
    let v = normal((4, 3), 1.0); // a direction in input space (the JVP's tangent)
    let w = normal((4, 2), 1.0); // a direction in output space (the VJP's cotangent)

    // --- 1. JVP by forward mode. x is a param here only so that part 2 can read J^T w from it.
    let mut tape = Tape::new();
    let xv = tape.param(x.view());
    let vv = tape.constant(v.view());
    tape.set_tangent(xv, vv); // seed: dx = v. Must come before the ops that use x.
    let (y, w1) = mlp(&mut tape, xv, &p);
    let jv_node = tape
        .tangent(y)
        .expect("y depends on x, so it has a tangent");
    let jv = tape.value(jv_node).to_owned();

    // The same derivative by central differences: (y(x + h v) - y(x - h v)) / 2h.
    let fd = central_difference_array(|s| y_of(&(&x + &(s * &v)), &p));
    let y_scale = tape.value(y).iter().fold(0.0f64, |m, a| m.max(a.abs()));
    let jvp_err = fd_relative_error_array(jv.view(), fd.view(), y_scale);

    println!("1. JVP  J v  (forward mode) vs central differences");
    println!(
        "{:>4} {:>14} {:>14} {:>14} {:>14}",
        "row", "Jv[.,0]", "FD[.,0]", "Jv[.,1]", "FD[.,1]"
    );
    for i in 0..jv.nrows() {
        println!(
            "{i:>4} {:>14.10} {:>14.10} {:>14.10} {:>14.10}",
            jv[[i, 0]],
            fd[[i, 0]],
            jv[[i, 1]],
            fd[[i, 1]]
        );
    }
    println!("     relative error {jvp_err:.1e}  (tolerance FD_REL_TOL = {FD_REL_TOL:.0e})\n");
    assert!(jvp_err <= FD_REL_TOL);

    // --- 2. VJP by reverse mode: seed the cotangent w on y, read J^T w on x.
    tape.backward_with(y, w.view());
    let jtw = tape.grad_or_zeros(xv);
    let lhs = inner(w.view(), jv.view()); // <w, J v>
    let rhs = inner(jtw.view(), v.view()); // <J^T w, v>
    let adjoint_err = scalar_relative_error(lhs, rhs);
    println!("2. adjoint identity");
    println!("   <w, J v>   = {lhs:.15}");
    println!("   <J^T w, v> = {rhs:.15}");
    println!("   relative error {adjoint_err:.1e}  (tolerance ADJOINT_REL_TOL = {ADJOINT_REL_TOL:.0e})\n");
    assert!(adjoint_err <= ADJOINT_REL_TOL);

    // --- 3. Reverse over forward: d <w, J v> / d W1, by backward through the tangent nodes.
    let w_const = tape.constant(w.view());
    let weighted = tape.mul(jv_node, w_const);
    let s = tape.sum(weighted); // s = <w, J v>, a [1, 1] node built from tangent nodes
    tape.backward(s);
    let grad_w1 = tape.grad_or_zeros(w1);
    // Check it along a random direction D of W1: <grad, D> vs FD of s(W1 + h D).
    let d = normal((5, 3), 1.0);
    let analytic = inner(grad_w1.view(), d.view());
    let shifted = |h: f64| Weights {
        w1: &p.w1 + &(h * &d),
        b1: p.b1.clone(),
        w2: p.w2.clone(),
        b2: p.b2.clone(),
    };
    let fd = central_difference(|h| w_dot_jv(&x, &v, &w, &shifted(h)));
    let rof_err = fd_relative_error(analytic, fd, lhs);
    println!("3. reverse over forward: d<w, J v>/dW1 along a random D");
    println!("   <grad, D> = {analytic:.12}");
    println!("   FD        = {fd:.12}");
    println!("   relative error {rof_err:.1e}  (tolerance FD_REL_TOL = {FD_REL_TOL:.0e})");
    assert!(rof_err <= FD_REL_TOL);
}
