//! Forward mode (JVP) and reverse mode (VJP) of a small MLP, twice: through the functional front
//! door (`jvp`, `vjp`, `grad`: JAX's calls) and through the stateful tape mechanism underneath it.
//!
//!     y(x) = tanh(x W1^T + b1) W2^T + b2,    x [4, 3] -> y [4, 2]
//!
//! - JVP, J v: `jvp(f, &[x], &[v])` records f on a fresh tape with a tangent v seeded on x.
//!   Underneath, that is `set_tangent(x, v)` before recording: every op recorded afterwards also
//!   records its derivative rule, so `tangent(y)` is J v. Checked against central differences.
//! - VJP, J^T w: `vjp(f, &[x])` returns a pullback; `pullback.call(&[w])` is J^T w. Underneath,
//!   `backward_with(y, w)` runs reverse mode seeded with w and `grad(x)` reads J^T w. Checked
//!   with the adjoint identity <w, J v> = <J^T w, v>, which holds exactly (up to rounding).
//! - Reverse over forward: J v is made of ordinary tape nodes, so `backward` through it gives the
//!   gradient of <w, J v> with respect to the weights: what exact MeanFlow needs. `jvp` hands back
//!   arrays, so it does not nest inside `grad`; instead the function given to `grad` seeds its
//!   tangent itself with `set_tangent`: both layers in one call.
//!
//! Run with `cargo run --example mlp_jvp`.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{grad, jvp, vjp, Tape, Var};
use meanflow::rng::Rng;
use meanflow::verify::check::{
    central_difference, central_difference_array, fd_relative_error, fd_relative_error_array,
    inner, relative_error, scalar_relative_error, ADJOINT_REL_TOL, FD_REL_TOL, REWRITE_REL_TOL,
};
use ndarray::Array2;

/// The weights of the MLP.
struct Weights {
    w1: Array2<f64>,
    b1: Array2<f64>,
    w2: Array2<f64>,
    b2: Array2<f64>,
}

impl Weights {
    /// The weights as `param`s of the tape (gradients are taken with respect to them).
    fn on(&self, tape: &mut Tape<f64>) -> [Var; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2].map(|a| tape.param(a.view()))
    }
}

/// Records y = tanh(x W1^T + b1) W2^T + b2 on the tape from the weight nodes [W1, b1, W2, b2].
fn mlp(tape: &mut Tape<f64>, x: Var, [w1, b1, w2, b2]: [Var; 4]) -> Var {
    let pre = tape.linear(x, w1, b1); // x W1^T + b1 (PyTorch nn.Linear layout)
    let hidden = tape.map(pre, Elementwise::Tanh);
    tape.linear(hidden, w2, b2)
}

/// y(x) alone, on a fresh tape: the function the finite differences evaluate.
fn y_of(x: &Array2<f64>, p: &Weights) -> Array2<f64> {
    let mut tape = Tape::new();
    let x = tape.constant(x.view());
    let weights = p.on(&mut tape);
    let y = mlp(&mut tape, x, weights);
    tape.value(y).to_owned()
}

/// <w, J v> at weights p, on a fresh tape (forward mode): the scalar whose W1-gradient part 3 checks.
fn w_dot_jv(x: &Array2<f64>, v: &Array2<f64>, w: &Array2<f64>, p: &Weights) -> f64 {
    let (_, jv) = jvp(
        |tape: &mut Tape<f64>, inputs: &[Var]| {
            let weights = p.on(tape);
            vec![mlp(tape, inputs[0], weights)]
        },
        &[x.view()],
        &[v.view()],
    );
    inner(w.view(), jv[0].view())
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

    // f(x) = y, as a function for the functional calls: it records on the tape it is given, from
    // the input nodes it is given (here x alone; the weights are recorded inside).
    let f = |tape: &mut Tape<f64>, inputs: &[Var]| {
        let weights = p.on(tape);
        vec![mlp(tape, inputs[0], weights)]
    };

    // --- 1. JVP by forward mode: jax.jvp(f, (x,), (v,)).
    let (ys, jvs) = jvp(f, &[x.view()], &[v.view()]);
    let (y, jv) = (&ys[0], &jvs[0]);

    // Underneath: seed the tangent on x, record, read the tangent of y. x is a param here only
    // so that part 2 can read J^T w from the same tape.
    let mut tape = Tape::new();
    let xv = tape.param(x.view());
    let vv = tape.constant(v.view());
    tape.set_tangent(xv, vv); // seed: dx = v. Must come before the ops that use x.
    let weights = p.on(&mut tape);
    let yv = mlp(&mut tape, xv, weights);
    let jv_node = tape
        .tangent(yv)
        .expect("y depends on x, so it has a tangent");
    let same = relative_error(tape.value(jv_node), jv.view());
    assert!(same <= REWRITE_REL_TOL);

    // The same derivative by central differences: (y(x + h v) - y(x - h v)) / 2h.
    let fd = central_difference_array(|s| y_of(&(&x + &(s * &v)), &p));
    let y_scale = y.iter().fold(0.0f64, |m, a| m.max(a.abs()));
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
    println!("     relative error {jvp_err:.1e}  (tolerance FD_REL_TOL = {FD_REL_TOL:.0e})");
    println!("     jvp(f, [x], [v]) against set_tangent + tangent(y): {same:.1e}\n");
    assert!(jvp_err <= FD_REL_TOL);

    // --- 2. VJP by reverse mode: y, f_vjp = jax.vjp(f, x); f_vjp(w).
    let (_, mut pullback) = vjp(f, &[x.view()]);
    let jtw = pullback.call(&[w.view()]).remove(0);

    // Underneath: seed the cotangent w on y, read J^T w on x.
    tape.backward_with(yv, w.view());
    let same = relative_error(tape.grad_or_zeros(xv).view(), jtw.view());
    assert!(same <= REWRITE_REL_TOL);

    let lhs = inner(w.view(), jv.view()); // <w, J v>
    let rhs = inner(jtw.view(), v.view()); // <J^T w, v>
    let adjoint_err = scalar_relative_error(lhs, rhs);
    println!("2. adjoint identity");
    println!("   <w, J v>   = {lhs:.15}");
    println!("   <J^T w, v> = {rhs:.15}");
    println!(
        "   relative error {adjoint_err:.1e}  (tolerance ADJOINT_REL_TOL = {ADJOINT_REL_TOL:.0e})"
    );
    println!("   pullback(w) against backward_with(y, w) + grad(x): {same:.1e}\n");
    assert!(adjoint_err <= ADJOINT_REL_TOL);

    // --- 3. Reverse over forward: d <w, J v> / d W1, the gradient of a JVP. With `grad`: the
    // function of the weights seeds the tangent on x itself and returns <w, J v>.
    let grads = grad(
        |tape: &mut Tape<f64>, weights: &[Var]| {
            let xv = tape.constant(x.view());
            let vv = tape.constant(v.view());
            tape.set_tangent(xv, vv);
            let y = mlp(tape, xv, [weights[0], weights[1], weights[2], weights[3]]);
            let jv = tape.tangent(y).expect("y depends on x");
            let w = tape.constant(w.view());
            let weighted = tape.mul(jv, w);
            tape.sum(weighted) // <w, J v>, a [1, 1] node built from tangent nodes
        },
        &[p.w1.view(), p.b1.view(), p.w2.view(), p.b2.view()],
    );
    let grad_w1 = &grads[0];

    // Underneath: backward from <w, J v> on the tape of part 1, through its tangent nodes.
    let w_const = tape.constant(w.view());
    let weighted = tape.mul(jv_node, w_const);
    let s = tape.sum(weighted);
    tape.backward(s);
    let same = relative_error(tape.grad_or_zeros(weights[0]).view(), grad_w1.view());
    assert!(same <= REWRITE_REL_TOL);

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
    println!("   grad(...) against backward through tangent(y): {same:.1e}");
    assert!(rof_err <= FD_REL_TOL);
}
