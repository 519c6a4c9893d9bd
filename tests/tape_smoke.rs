//! A first end-to-end check of the tape on y = sum(tanh(x W^T + b)^2).
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::Tape;
use meanflow::verify::check::*;
use ndarray::{array, Array2};

fn f(x: &Array2<f64>, w: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let mut t = Tape::new();
    let (x, w, b) = (t.constant(x.view()), t.param(w.view()), t.param(b.view()));
    let h = t.linear(x, w, b);
    let a = t.map(h, Elementwise::Tanh);
    let s = t.square(a);
    let y = t.sum(s);
    t.scalar(y)
}

#[test]
fn gradient_and_jvp_of_a_layer_match_finite_differences() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let mut t = Tape::new();
    let (xv, wv, bv) = (t.constant(x.view()), t.param(w.view()), t.param(b.view()));
    let w_dot = array![[1.0, 0.5, -0.3], [0.2, -0.7, 0.4]];
    let wd = t.constant(w_dot.view());
    t.set_tangent(wv, wd);
    let h = t.linear(xv, wv, bv);
    let a = t.map(h, Elementwise::Tanh);
    let s = t.square(a);
    let y = t.sum(s);
    let y_dot = t.scalar(t.tangent(y).unwrap());
    let fd = central_difference(|e| f(&x, &(&w + &(e * &w_dot)), &b));
    assert!(
        scalar_relative_error(y_dot, fd) < FD_REL_TOL,
        "{y_dot} vs {fd}"
    );
    t.backward(y);
    let gw = t.grad(wv).unwrap().to_owned();
    let directional = (&gw * &w_dot).sum();
    assert!(scalar_relative_error(directional, fd) < FD_REL_TOL);
    // Reverse over forward: the gradient of y_dot with respect to b.
    let yd = t.tangent(y).unwrap();
    t.backward(yd);
    let gb = t.grad(bv).unwrap().to_owned();
    let db = array![[0.3, -0.8]];
    let jvp_at = |e: f64| {
        let bb = &b + &(e * &db);
        central_difference(|h| f(&x, &(&w + &(h * &w_dot)), &bb))
    };
    let fd2 = (jvp_at(1e-4) - jvp_at(-1e-4)) / 2e-4;
    let an = (&gb * &db).sum();
    assert!((an - fd2).abs() < 1e-5 * an.abs().max(1.0), "{an} vs {fd2}");
}
