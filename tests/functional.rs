//! The functional front door (`meanflow::autodiff::tape::{jvp, vjp, grad, value_and_grad}`), in f64:
//! - jvp against central finite differences of the function, output by output;
//! - the adjoint identity <w, J v> = <J^T w, v> between jvp and the vjp pullback, several inputs
//!   and outputs at once;
//! - grad of a scalar function against central differences along a random direction, and equal
//!   to the pullback of the cotangent 1;
//! - an input with no path to an output (zero tangent, zero gradient, no panic), row-prefix
//!   tangents, an output returned twice, and the panics that name the shapes.
//!
//! Shapes are random from 1 x 1 up (proptest, bounded case counts).

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{grad, jvp, value_and_grad, vjp, Tape, Var};
use meanflow::rng::Rng;
use meanflow::verify::check::*;
use ndarray::{array, s, Array2, ArrayView2, Zip};
use proptest::prelude::*;

const CASES: u32 = 32;

fn normal(rng: &mut Rng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.normal())
}

fn views(arrays: &[Array2<f64>]) -> Vec<ArrayView2<'_, f64>> {
    arrays.iter().map(|a| a.view()).collect()
}

/// <|a|, |b|>: the scale of the inner product <a, b>.
fn abs_inner(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let mut s = 0.0;
    Zip::from(&a).and(&b).for_each(|&x, &y| s += (x * y).abs());
    s
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Inputs x [m, n], W [p, n], b [1, p], c [q, r]; outputs
///   y0 = tanh(x W^T + b)          [m, p]
///   y1 = sum(x * x) + sum(W)      [1, 1]
///   y2 = sin(W)                   [p, n]
/// c has no path to any output.
fn three_outputs(tape: &mut Tape<f64>, inputs: &[Var]) -> Vec<Var> {
    let (x, w, b) = (inputs[0], inputs[1], inputs[2]);
    let pre = tape.linear(x, w, b);
    let y0 = tape.map(pre, Elementwise::Tanh);
    let xx = tape.mul(x, x);
    let sxx = tape.sum(xx);
    let sw = tape.sum(w);
    let y1 = tape.add(sxx, sw);
    let y2 = tape.map(w, Elementwise::Sin);
    vec![y0, y1, y2]
}

/// A scalar function of (x, W, b, c): mean(tanh(x W^T + b)^2) + sum(x); c unused.
fn scalar_loss(tape: &mut Tape<f64>, inputs: &[Var]) -> Var {
    let (x, w, b) = (inputs[0], inputs[1], inputs[2]);
    let pre = tape.linear(x, w, b);
    let h = tape.map(pre, Elementwise::Tanh);
    let h2 = tape.square(h);
    let m = tape.mean(h2);
    let sx = tape.sum(x);
    tape.add(m, sx)
}

/// Random primals for `three_outputs` / `scalar_loss`, with the given shapes.
fn primals(rng: &mut Rng, m: usize, n: usize, p: usize, q: usize, r: usize) -> Vec<Array2<f64>> {
    vec![
        normal(rng, (m, n)),
        normal(rng, (p, n)),
        normal(rng, (1, p)),
        normal(rng, (q, r)),
    ]
}

/// primals + s tangents.
fn shifted(primals: &[Array2<f64>], tangents: &[Array2<f64>], s: f64) -> Vec<Array2<f64>> {
    primals
        .iter()
        .zip(tangents)
        .map(|(x, v)| x + &(s * v))
        .collect()
}

fn outputs_at(primals: &[Array2<f64>]) -> Vec<Array2<f64>> {
    vjp(three_outputs, &views(primals)).0
}

fn check_jvp_and_adjoint(seed: u64, dims: [usize; 5]) -> Result<(), TestCaseError> {
    let [m, n, p, q, r] = dims;
    let mut rng = Rng::seed_from_u64(seed);
    let xs = primals(&mut rng, m, n, p, q, r);
    let vs: Vec<Array2<f64>> = xs.iter().map(|x| normal(&mut rng, x.dim())).collect();

    let (ys, ys_dot) = jvp(three_outputs, &views(&xs), &views(&vs));
    prop_assert_eq!(ys.len(), 3);
    prop_assert_eq!(ys_dot.len(), 3);
    for (k, (y, y_dot)) in ys.iter().zip(&ys_dot).enumerate() {
        prop_assert_eq!(y.dim(), y_dot.dim(), "output {}", k);
        // out_dot = J v against central differences of the function along v.
        let fd = central_difference_array(|s| outputs_at(&shifted(&xs, &vs, s))[k].clone());
        let err = fd_relative_error_array(y_dot.view(), fd.view(), max_abs(y));
        prop_assert!(err <= FD_REL_TOL, "output {}: jvp vs FD {:e}", k, err);
    }
    // The outputs of jvp and vjp are the same values.
    let (ys_again, mut pullback) = vjp(three_outputs, &views(&xs));
    prop_assert_eq!(&ys, &ys_again);
    prop_assert_eq!(
        pullback.output_shapes(),
        ys.iter().map(|y| y.dim()).collect::<Vec<_>>()
    );

    // <w, J v> = <J^T w, v>, summed over the outputs and the inputs.
    let ws: Vec<Array2<f64>> = ys.iter().map(|y| normal(&mut rng, y.dim())).collect();
    let xs_bar = pullback.call(&views(&ws));
    prop_assert_eq!(xs_bar.len(), 4);
    let (mut lhs, mut lhs_scale) = (0.0, 0.0);
    for (w, y_dot) in ws.iter().zip(&ys_dot) {
        lhs += inner(w.view(), y_dot.view());
        lhs_scale += abs_inner(w.view(), y_dot.view());
    }
    let (mut rhs, mut rhs_scale) = (0.0, 0.0);
    for (x_bar, (x, v)) in xs_bar.iter().zip(xs.iter().zip(&vs)) {
        prop_assert_eq!(x_bar.dim(), x.dim());
        rhs += inner(x_bar.view(), v.view());
        rhs_scale += abs_inner(x_bar.view(), v.view());
    }
    let err = scaled_error(lhs, rhs, lhs_scale.max(rhs_scale));
    prop_assert!(err <= ADJOINT_REL_TOL, "adjoint: {lhs} vs {rhs}: {err:e}");

    // c has no path to any output: zero cotangent, and a tangent on it changes nothing.
    prop_assert!(xs_bar[3].iter().all(|&g| g == 0.0));
    let mut only_c = vec![
        Array2::zeros((m, n)),
        Array2::zeros((p, n)),
        Array2::zeros((1, p)),
    ];
    only_c.push(vs[3].clone());
    let (_, dots) = jvp(three_outputs, &views(&xs), &views(&only_c));
    prop_assert!(dots.iter().all(|d| d.iter().all(|&e| e == 0.0)));

    // The pullback is linear and may be called again: 2 w gives 2 J^T w.
    let ws2: Vec<Array2<f64>> = ws.iter().map(|w| 2.0 * w).collect();
    let xs_bar2 = pullback.call(&views(&ws2));
    for (a, b) in xs_bar.iter().zip(&xs_bar2) {
        prop_assert!(relative_error(b.view(), (2.0 * a).view()) <= REWRITE_REL_TOL);
    }
    Ok(())
}

fn check_grad(seed: u64, dims: [usize; 5]) -> Result<(), TestCaseError> {
    let [m, n, p, q, r] = dims;
    let mut rng = Rng::seed_from_u64(seed);
    let xs = primals(&mut rng, m, n, p, q, r);
    let vs: Vec<Array2<f64>> = xs.iter().map(|x| normal(&mut rng, x.dim())).collect();

    let (value, g) = value_and_grad(scalar_loss, &views(&xs));
    prop_assert_eq!(g.len(), 4);
    prop_assert_eq!(&g, &grad(scalar_loss, &views(&xs)));
    for (gi, x) in g.iter().zip(&xs) {
        prop_assert_eq!(gi.dim(), x.dim());
    }
    prop_assert!(
        g[3].iter().all(|&e| e == 0.0),
        "unused input: zero gradient"
    );

    // <grad, v> against central differences of the function along v.
    let loss_at = |xs: &[Array2<f64>]| value_and_grad(scalar_loss, &views(xs)).0;
    let fd = central_difference(|s| loss_at(&shifted(&xs, &vs, s)));
    let analytic: f64 = g
        .iter()
        .zip(&vs)
        .map(|(gi, v)| inner(gi.view(), v.view()))
        .sum();
    let err = fd_relative_error(analytic, fd, value);
    prop_assert!(err <= FD_REL_TOL, "grad vs FD: {analytic} vs {fd}: {err:e}");

    // grad is the pullback of the cotangent 1.
    let (_, mut pullback) = vjp(
        |t: &mut Tape<f64>, x: &[Var]| vec![scalar_loss(t, x)],
        &views(&xs),
    );
    prop_assert_eq!(&g, &pullback.call(&[array![[1.0]].view()]));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn jvp_matches_fd_and_vjp_is_its_adjoint(
        seed in any::<u64>(),
        m in 1usize..=5, n in 1usize..=4, p in 1usize..=4, q in 1usize..=3, r in 1usize..=3,
    ) {
        check_jvp_and_adjoint(seed, [m, n, p, q, r])?;
    }

    #[test]
    fn grad_matches_fd(
        seed in any::<u64>(),
        m in 1usize..=5, n in 1usize..=4, p in 1usize..=4, q in 1usize..=3, r in 1usize..=3,
    ) {
        check_grad(seed, [m, n, p, q, r])?;
    }
}

#[test]
fn all_one_by_one() {
    check_jvp_and_adjoint(1, [1, 1, 1, 1, 1]).unwrap();
    check_grad(2, [1, 1, 1, 1, 1]).unwrap();
}

#[test]
fn closed_forms() {
    // f(x, y) = (x * y, x + y) elementwise: J v = (v_x y + x v_y, v_x + v_y).
    let f = |t: &mut Tape<f64>, v: &[Var]| vec![t.mul(v[0], v[1]), t.add(v[0], v[1])];
    let (x, y) = (array![[1.0, 2.0, 3.0]], array![[4.0, 5.0, 6.0]]);
    let (vx, vy) = (array![[1.0, 0.0, -1.0]], array![[0.5, 1.0, 2.0]]);
    let (out, out_dot) = jvp(f, &[x.view(), y.view()], &[vx.view(), vy.view()]);
    assert_eq!(out, vec![&x * &y, &x + &y]);
    assert_eq!(out_dot, vec![&vx * &y + &x * &vy, &vx + &vy]);
    // J^T (w0, w1) = (w0 y + w1, w0 x + w1).
    let (w0, w1) = (array![[1.0, -1.0, 2.0]], array![[3.0, 0.0, 1.0]]);
    let (_, mut pullback) = vjp(f, &[x.view(), y.view()]);
    let bars = pullback.call(&[w0.view(), w1.view()]);
    assert_eq!(bars, vec![&w0 * &y + &w1, &w0 * &x + &w1]);
    // grad of sum(x * y) = (y, x); its value is <x, y>.
    let (value, g) = value_and_grad(
        |t: &mut Tape<f64>, v: &[Var]| {
            let p = t.mul(v[0], v[1]);
            t.sum(p)
        },
        &[x.view(), y.view()],
    );
    assert_eq!(value, 32.0);
    assert_eq!(g, vec![y.clone(), x.clone()]);
}

#[test]
fn stop_gradient_carries_no_tangent_and_no_cotangent() {
    // y = x * sg(x): out_dot = v * x (not 2 x v), x_bar = w * x (not 2 x w).
    let f = |t: &mut Tape<f64>, v: &[Var]| {
        let stopped = t.stop_gradient(v[0]);
        vec![t.mul(v[0], stopped)]
    };
    let x = array![[1.5, -2.0], [0.5, 3.0]];
    let v = array![[1.0, 2.0], [-1.0, 0.5]];
    let (out, out_dot) = jvp(f, &[x.view()], &[v.view()]);
    assert_eq!(out[0], &x * &x);
    assert_eq!(out_dot[0], &v * &x);
    let (_, mut pullback) = vjp(f, &[x.view()]);
    assert_eq!(pullback.call(&[v.view()])[0], &v * &x);
    // Only through sg: a zero tangent and a zero gradient.
    let only_sg = |t: &mut Tape<f64>, v: &[Var]| vec![t.stop_gradient(v[0])];
    assert_eq!(
        jvp(only_sg, &[x.view()], &[v.view()]).1[0],
        Array2::<f64>::zeros((2, 2))
    );
    assert_eq!(
        vjp(only_sg, &[x.view()]).1.call(&[v.view()])[0],
        Array2::<f64>::zeros((2, 2))
    );
}

#[test]
fn a_row_prefix_tangent_equals_its_zero_padded_tangent() {
    let mut rng = Rng::seed_from_u64(3);
    let xs = primals(&mut rng, 5, 3, 4, 2, 2);
    let mut vs: Vec<Array2<f64>> = xs.iter().map(|x| normal(&mut rng, x.dim())).collect();
    // x's tangent on rows 0..2 only.
    let prefix = vs[0].slice(s![..2, ..]).to_owned();
    vs[0].slice_mut(s![2.., ..]).fill(0.0);
    let (_, padded) = jvp(three_outputs, &views(&xs), &views(&vs));
    let mut short = vs.clone();
    short[0] = prefix;
    let (_, dots) = jvp(three_outputs, &views(&xs), &views(&short));
    for (d, e) in dots.iter().zip(&padded) {
        assert_eq!(d.dim(), e.dim(), "output tangents have the full shape");
        assert!(relative_error(d.view(), e.view()) <= REWRITE_REL_TOL);
    }
}

#[test]
fn an_output_returned_twice_adds_its_cotangents() {
    let f = |t: &mut Tape<f64>, v: &[Var]| {
        let y = t.map(v[0], Elementwise::Tanh);
        vec![y, y]
    };
    let x = array![[0.3, -1.2], [2.0, 0.1]];
    let (w0, w1) = (
        array![[1.0, 2.0], [3.0, 4.0]],
        array![[-0.5, 0.25], [1.0, 0.0]],
    );
    let (_, mut twice) = vjp(f, &[x.view()]);
    let (_, mut once) = vjp(|t: &mut Tape<f64>, v: &[Var]| vec![f(t, v)[0]], &[x.view()]);
    let sum = &w0 + &w1;
    let a = twice.call(&[w0.view(), w1.view()]);
    let b = once.call(&[sum.view()]);
    assert!(relative_error(a[0].view(), b[0].view()) <= REWRITE_REL_TOL);
}

#[test]
fn an_output_that_is_an_input_or_a_constant() {
    // y0 = x itself, y1 a constant: J = [I; 0].
    let f = |t: &mut Tape<f64>, v: &[Var]| vec![v[0], t.full((2, 1), 7.0)];
    let x = array![[1.0, 2.0]];
    let v = array![[3.0, 4.0]];
    let (out, out_dot) = jvp(f, &[x.view()], &[v.view()]);
    assert_eq!(out, vec![x.clone(), array![[7.0], [7.0]]]);
    assert_eq!(out_dot, vec![v.clone(), Array2::zeros((2, 1))]);
    let (_, mut pullback) = vjp(f, &[x.view()]);
    let w = array![[5.0, 6.0]];
    assert_eq!(
        pullback.call(&[w.view(), array![[1.0], [1.0]].view()]),
        vec![w]
    );
}

#[test]
fn no_inputs_and_no_outputs() {
    let (out, dots) = jvp(|_: &mut Tape<f64>, _: &[Var]| Vec::new(), &[], &[]);
    assert!(out.is_empty() && dots.is_empty());
    let x = array![[1.0]];
    let (out, mut pullback) = vjp(|_: &mut Tape<f64>, _: &[Var]| Vec::new(), &[x.view()]);
    assert!(out.is_empty());
    assert_eq!(pullback.call(&[]), vec![array![[0.0]]]);
}

#[test]
fn works_in_f32() {
    let x = array![[0.5f32, -1.0], [2.0, 0.25]];
    let g = grad(
        |t: &mut Tape<f32>, v: &[Var]| {
            let sq = t.square(v[0]);
            t.sum(sq)
        },
        &[x.view()],
    );
    assert_eq!(g[0], 2.0 * &x);
}

#[test]
#[should_panic(expected = "jvp: primal 1 has shape (2, 3) but its tangent has shape (2, 2)")]
fn jvp_tangent_shape() {
    let (a, b) = (Array2::<f64>::zeros((1, 1)), Array2::<f64>::zeros((2, 3)));
    let bad = Array2::<f64>::zeros((2, 2));
    jvp(
        |_: &mut Tape<f64>, v: &[Var]| v.to_vec(),
        &[a.view(), b.view()],
        &[a.view(), bad.view()],
    );
}

#[test]
#[should_panic(expected = "jvp: 2 primals but 1 tangents")]
fn jvp_tangent_count() {
    let a = Array2::<f64>::zeros((1, 1));
    jvp(
        |_: &mut Tape<f64>, v: &[Var]| v.to_vec(),
        &[a.view(), a.view()],
        &[a.view()],
    );
}

#[test]
#[should_panic(
    expected = "vjp pullback: cotangent 0 has shape (3, 1) but output 0 has shape (1, 3)"
)]
fn pullback_cotangent_shape() {
    let a = Array2::<f64>::zeros((1, 3));
    let (_, mut pullback) = vjp(|_: &mut Tape<f64>, v: &[Var]| v.to_vec(), &[a.view()]);
    pullback.call(&[Array2::zeros((3, 1)).view()]);
}

#[test]
#[should_panic(expected = "vjp pullback: 2 cotangents for 1 outputs")]
fn pullback_cotangent_count() {
    let a = Array2::<f64>::zeros((1, 3));
    let (_, mut pullback) = vjp(|_: &mut Tape<f64>, v: &[Var]| v.to_vec(), &[a.view()]);
    pullback.call(&[a.view(), a.view()]);
}

#[test]
#[should_panic(expected = "grad: the function's output has shape (2, 3), not [1, 1]")]
fn grad_of_a_non_scalar() {
    let a = Array2::<f64>::zeros((2, 3));
    grad(|_: &mut Tape<f64>, v: &[Var]| v[0], &[a.view()]);
}

/// The README's first code example is examples/readme.rs (which `cargo test` builds and which
/// asserts its results), line for line: the README cannot drift from code that compiles.
#[test]
fn the_readme_example_is_examples_readme() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/readme.rs")).unwrap();
    let section = &readme[readme
        .find("## The engine in a few lines")
        .expect("README section")..];
    let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let block = &section[start..start + section[start..].find("```").expect("block end")];
    let body = &example[example.find("fn main() {\n").expect("main") + "fn main() {\n".len()
        ..example
            .find("}\n// README example ends")
            .expect("end marker")];
    let unindented: String = body
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(block, unindented, "README.md and examples/readme.rs differ");
}
