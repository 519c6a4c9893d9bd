//! The README's first code example ("The engine in a few lines"), as a program: `cargo test`
//! builds it, `cargo run --example readme` runs it, and tests/functional.rs checks that the README
//! shows exactly this code.

// README example begins
fn main() {
    use meanflow::autodiff::elementwise::Elementwise;
    use meanflow::autodiff::tape::{grad, jvp, vjp, Tape, Var};
    use ndarray::array;

    // u(x, W) = tanh(x W^T): x [1, 2], W [1, 2].
    let u = |tape: &mut Tape<f64>, p: &[Var]| {
        let pre = tape.matmul_t(p[0], false, p[1], true);
        vec![tape.map(pre, Elementwise::Tanh)]
    };
    let (x, w) = (array![[1.0, 2.0]], array![[0.5, -0.25]]);

    // Forward mode, u_dot = J (x_dot, W_dot):  (u, u_dot) = jax.jvp(u, (x, W), (x_dot, W_dot))
    let (x_dot, w_dot) = (array![[1.0, 0.0]], array![[0.0, 0.0]]);
    let (out, out_dot) = jvp(u, &[x.view(), w.view()], &[x_dot.view(), w_dot.view()]);
    assert_eq!((&out[0], &out_dot[0]), (&array![[0.0]], &array![[0.5]])); // tanh(0), x_dot W^T

    // Reverse mode, (x_bar, W_bar) = J^T u_bar:  (u, u_vjp) = jax.vjp(u, x, W); u_vjp(u_bar)
    let (_, mut u_vjp) = vjp(u, &[x.view(), w.view()]);
    let bars = u_vjp.call(&[array![[1.0]].view()]);
    assert_eq!(bars, vec![w.clone(), x.clone()]); // (u_bar W, u_bar x) at tanh'(0) = 1

    // The gradient of a [1, 1] output:  jax.grad(lambda x, W: u(x, W)[0, 0], (0, 1))(x, W)
    let grads = grad(
        |tape: &mut Tape<f64>, p: &[Var]| u(tape, p)[0],
        &[x.view(), w.view()],
    );
    assert_eq!(grads, bars);
}
// README example ends
