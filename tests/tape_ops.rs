//! Every primitive of the tape, on random shapes (1..=7 rows and columns, 1x1 included), checked
//! three ways in f64:
//!
//! (a) JVP: the tangent recorded by forward mode, J v, against central finite differences;
//! (b) VJP: J^T w from `backward_with` against FD through <w, J v>_FD = <J^T w, v>;
//! (c) the adjoint identity <w, J v> = <J^T w, v> with both sides exact (forward vs reverse mode).
//!
//! Inner products are compared against the scale max(<|w|, |J v|>, <|J^T w|, |v|>): the size of the
//! terms summed, so that cancellation in a sum does not inflate a relative error.
//!
//! Each case runs three times: once with every input a parameter carrying a tangent, once with a
//! random subset (the rest constants without tangents), which exercises the rules' `None` branches
//! and checks that constants get no cotangent, and once with every tangent on a random row prefix
//! (k of the input's rows, the rest zero), which exercises the row-prefix rules. The value itself must not depend on the seeding (bit for
//! bit: a map with a tangent evaluates f and f' in one fused pass).
//!
//! Each op's value is also checked against a reference written independently of the engine (naive
//! loops, and the textbook closed forms of tests/common/closed_forms.rs for the elementwise
//! functions and their derivatives): (a)-(c) only relate the op's derivatives to its own values,
//! so an error in the value that is constant in x (x + c computed as x - c) is invisible to them.
//!
//! `layer_norm` and `inverse_deviation` (the node its JVP rule records) are checked the same
//! ways, layer norm's reverse over forward against FD of its closed-form JVP, and the fused op
//! against its composition of primitives.
//!
//! `log_softmax`, whose JVP rule records exp(out) (a node that depends on the input), also has
//! its reverse over forward checked against finite differences of the JVP, and the softmax
//! cross-entropy built on it is checked against its closed forms and at logits beyond exp's range.

#[path = "common/closed_forms.rs"]
mod closed_forms;

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Map, Op, Tape, Var};
use meanflow::rng::Rng;
use meanflow::verify::check::*;
use ndarray::{Array2, ArrayView2, Zip};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const CASES: u32 = 48;

// ----- random inputs ----------------------------------------------------------------------------

fn normal(rng: &mut Rng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.normal())
}

/// Uniform in [lo, hi).
fn uniform(rng: &mut Rng, shape: (usize, usize), lo: f64, hi: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.uniform_range(lo, hi))
}

/// |x| uniform in [lo, hi), random sign: away from zero (denominators, kinks).
fn away_from_zero(rng: &mut Rng, shape: (usize, usize), lo: f64, hi: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || {
        let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
        sign * rng.uniform_range(lo, hi)
    })
}

/// <|a|, |b|>: the scale of the inner product <a, b>.
fn abs_inner(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let mut s = 0.0;
    Zip::from(&a).and(&b).for_each(|&x, &y| s += (x * y).abs());
    s
}

// ----- naive references --------------------------------------------------------------------------

/// Entry (i, j) of x seen at any shape: an axis of length 1 repeats.
fn at(x: &Array2<f64>, i: usize, j: usize) -> f64 {
    let i = if x.nrows() == 1 { 0 } else { i };
    let j = if x.ncols() == 1 { 0 } else { j };
    x[[i, j]]
}

/// f(a_ij, b_ij) at the broadcast shape of a and b.
fn zip_broadcast(a: &Array2<f64>, b: &Array2<f64>, f: impl Fn(f64, f64) -> f64) -> Array2<f64> {
    let shape = (a.nrows().max(b.nrows()), a.ncols().max(b.ncols()));
    Array2::from_shape_fn(shape, |(i, j)| f(at(a, i, j), at(b, i, j)))
}

/// op(A) op(B) by the triple loop, op a transpose where asked.
fn naive_matmul(a: &Array2<f64>, ta: bool, b: &Array2<f64>, tb: bool) -> Array2<f64> {
    let a_at = |i: usize, k: usize| if ta { a[[k, i]] } else { a[[i, k]] };
    let b_at = |k: usize, j: usize| if tb { b[[j, k]] } else { b[[k, j]] };
    let (m, k) = if ta { (a.ncols(), a.nrows()) } else { a.dim() };
    let n = if tb { b.nrows() } else { b.ncols() };
    Array2::from_shape_fn((m, n), |(i, j)| {
        (0..k).map(|l| a_at(i, l) * b_at(l, j)).sum()
    })
}

/// f(x W^T + b) row by row, f from its closed form (None: the identity).
fn naive_dense(
    x: &Array2<f64>,
    w: &Array2<f64>,
    b: &Array2<f64>,
    f: Option<Elementwise>,
) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), w.nrows()), |(i, o)| {
        let pre = b[[0, o]] + (0..x.ncols()).map(|k| x[[i, k]] * w[[o, k]]).sum::<f64>();
        f.map_or(pre, |f| closed_forms::elementwise(f, pre)[0])
    })
}

/// Columns start..end, rows start..end, and rows stacked or padded, by index.
fn naive_cols(x: &Array2<f64>, start: usize, end: usize) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), end - start), |(i, j)| x[[i, start + j]])
}
fn naive_rows(x: &Array2<f64>, start: usize, end: usize) -> Array2<f64> {
    Array2::from_shape_fn((end - start, x.ncols()), |(i, j)| x[[start + i, j]])
}
fn naive_concat_cols(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let na = a.ncols();
    Array2::from_shape_fn((a.nrows(), na + b.ncols()), |(i, j)| {
        if j < na {
            a[[i, j]]
        } else {
            b[[i, j - na]]
        }
    })
}
fn naive_stack_rows(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let ma = a.nrows();
    Array2::from_shape_fn((ma + b.nrows(), a.ncols()), |(i, j)| {
        if i < ma {
            a[[i, j]]
        } else {
            b[[i - ma, j]]
        }
    })
}
fn naive_pad_rows(x: &Array2<f64>, rows: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, x.ncols()), |(i, j)| {
        if i < x.nrows() {
            x[[i, j]]
        } else {
            0.0
        }
    })
}

/// z_ij - ln sum_k exp(z_ik), without the max subtraction (the logits here are at most ~40).
fn naive_log_softmax(z: &Array2<f64>) -> Array2<f64> {
    Array2::from_shape_fn(z.dim(), |(i, j)| {
        z[[i, j]] - z.row(i).iter().map(|x| x.exp()).sum::<f64>().ln()
    })
}

/// 1 / sqrt(var + eps) of each row [m, 1], the mean and the variance in two passes over the row.
fn naive_inverse_deviation(x: &Array2<f64>, eps: f64) -> Array2<f64> {
    let n = x.ncols() as f64;
    Array2::from_shape_fn((x.nrows(), 1), |(i, _)| {
        let mean = x.row(i).sum() / n;
        let var = x
            .row(i)
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / n;
        1.0 / (var + eps).sqrt()
    })
}

/// LN of each row, (x - mean) / sqrt(var + eps).
fn naive_layer_norm(x: &Array2<f64>, eps: f64) -> Array2<f64> {
    let s = naive_inverse_deviation(x, eps);
    let n = x.ncols() as f64;
    Array2::from_shape_fn(x.dim(), |(i, j)| {
        (x[[i, j]] - x.row(i).sum() / n) * s[[i, 0]]
    })
}

/// A 1 x 1 array.
fn scalar(x: f64) -> Array2<f64> {
    Array2::from_elem((1, 1), x)
}

// ----- the harness ------------------------------------------------------------------------------

/// The op's output at the given inputs, on a fresh tape (inputs as constants).
fn evaluate(inputs: &[Array2<f64>], build: &dyn Fn(&mut Tape<f64>, &[Var]) -> Var) -> Array2<f64> {
    let mut t = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| t.constant(x.view())).collect();
    let out = build(&mut t, &vars);
    t.value(out).to_owned()
}

/// Checks (a), (b), (c) of the module documentation for the op `build` at `inputs`, with tangents
/// (and parameters) on the inputs where `seeded` is true.
fn check_seeded(
    name: &str,
    inputs: &[Array2<f64>],
    seeded: &[bool],
    prefix: bool,
    rng: &mut Rng,
    build: &dyn Fn(&mut Tape<f64>, &[Var]) -> Var,
) -> Result<(), TestCaseError> {
    // The rows each tangent covers: all, or (prefix) a random 1..=rows of them.
    let tangent_rows: Vec<usize> = inputs
        .iter()
        .map(|x| {
            if prefix {
                1 + rng.below(x.nrows())
            } else {
                x.nrows()
            }
        })
        .collect();
    let directions: Vec<Array2<f64>> = inputs
        .iter()
        .zip(seeded)
        .zip(&tangent_rows)
        .map(|((x, &s), &k)| {
            let mut v = Array2::zeros(x.dim());
            if s {
                v.slice_mut(ndarray::s![..k, ..])
                    .assign(&normal(rng, (k, x.ncols())));
            }
            v
        })
        .collect();

    // Exact JVP (forward mode) and VJP (reverse mode) on one tape.
    let mut t = Tape::new();
    // A decoy at Var(0): a parameter with a tangent that is none of the op's inputs. An op that
    // read another node than its own (`inputs` naming Var(0), the default Var) would take its
    // tangent or its need for a gradient, and a cotangent would reach it.
    let decoy = t.param(Array2::from_elem((1, 1), 0.7).view());
    let decoy_dot = t.constant(Array2::from_elem((1, 1), 1.3).view());
    t.set_tangent(decoy, decoy_dot);
    let vars: Vec<Var> = inputs
        .iter()
        .zip(seeded)
        .map(|(x, &s)| {
            if s {
                t.param(x.view())
            } else {
                t.constant(x.view())
            }
        })
        .collect();
    for (((&x, v), &s), &k) in vars.iter().zip(&directions).zip(seeded).zip(&tangent_rows) {
        if s {
            let v = t.constant(v.slice(ndarray::s![..k, ..]));
            t.set_tangent(x, v);
        }
    }
    let out = build(&mut t, &vars);
    let shape = t.shape(out);
    let unseeded = evaluate(inputs, build);
    prop_assert_eq!(
        t.value(out),
        unseeded.view(),
        "{}: the value depends on whether tangents are seeded",
        name
    );
    let jv = match t.tangent(out) {
        Some(d) => {
            let (rows, cols) = t.shape(d);
            prop_assert!(
                cols == shape.1 && rows <= shape.0,
                "{}: tangent shape {:?} for a value of shape {:?}",
                name,
                (rows, cols),
                shape
            );
            let mut full = Array2::zeros(shape);
            full.slice_mut(ndarray::s![..rows, ..]).assign(&t.value(d));
            full
        }
        None => Array2::zeros(shape),
    };
    if !seeded.iter().any(|&s| s) {
        prop_assert!(t.tangent(out).is_none(), "{}: tangent without seeds", name);
        prop_assert!(
            !t.requires_grad(out),
            "{}: requires_grad without params",
            name
        );
    }
    let w = normal(rng, shape);
    t.backward_with(out, w.view());
    prop_assert!(
        t.grad(decoy).is_none(),
        "{}: a cotangent reached the decoy",
        name
    );
    let mut vjp_v = 0.0;
    let mut vjp_scale = 0.0;
    for ((&x, v), &s) in vars.iter().zip(&directions).zip(seeded) {
        if s {
            let g = t.grad_or_zeros(x);
            vjp_v += inner(g.view(), v.view());
            vjp_scale += abs_inner(g.view(), v.view());
        } else {
            prop_assert!(t.grad(x).is_none(), "{}: a constant got a cotangent", name);
        }
    }

    // Central finite differences of the op along the directions.
    let jv_fd = central_difference_array(|s| {
        let moved: Vec<Array2<f64>> = inputs
            .iter()
            .zip(&directions)
            .map(|(x, v)| x + &(s * v))
            .collect();
        evaluate(&moved, build)
    });

    // (a) JVP vs FD, against the derivative's scale or, where that is far below the values (a
    // single row's tangent at a flat point of f), the rounding the values leave in FD.
    let value_scale = unseeded.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let abs = compare(jv.view(), jv_fd.view()).0;
    let rel = fd_relative_error_array(jv.view(), jv_fd.view(), value_scale);
    prop_assert!(
        rel < FD_REL_TOL,
        "{}: JVP vs FD: rel {:e} (abs {:e}), seeded {:?}\nexact {:?}\nfd {:?}",
        name,
        rel,
        abs,
        seeded,
        jv,
        jv_fd
    );
    let scale = abs_inner(w.view(), jv.view()).max(vjp_scale).max(ABS_FLOOR);
    // (b) VJP vs FD, with FD's rounding floor as in (a), carried through <w, .>.
    let w_jv_fd = inner(w.view(), jv_fd.view());
    let w_l1: f64 = w.iter().map(|x| x.abs()).sum();
    let rel = (w_jv_fd - vjp_v).abs() / scale.max(FD_VALUE_SCALE * value_scale * w_l1);
    prop_assert!(
        rel < FD_REL_TOL,
        "{}: <w, Jv>_FD = {} vs <J^T w, v> = {}: rel {:e}, seeded {:?}",
        name,
        w_jv_fd,
        vjp_v,
        rel,
        seeded
    );
    // (c) adjoint identity, both sides exact.
    let w_jv = inner(w.view(), jv.view());
    let rel = (w_jv - vjp_v).abs() / scale;
    prop_assert!(
        rel < ADJOINT_REL_TOL,
        "{}: adjoint <w, Jv> = {} vs <J^T w, v> = {}: rel {:e}, seeded {:?}",
        name,
        w_jv,
        vjp_v,
        rel,
        seeded
    );
    Ok(())
}

/// Checks the op's value at `inputs` against `reference` (the same function written as naive
/// loops or closed forms), then runs [`check_seeded`] with every input seeded, with a random
/// subset, and both again on row prefixes.
///
/// The inputs are O(1) (normal, or uniform in ranges of size 1 to 2) and no reduction sums more
/// than 7 x 7 terms, so both evaluations round at about 1e-15 of max(1, |value|): the tolerance is
/// CLOSED_FORM_REL_TOL against that scale.
fn check_op(
    name: &str,
    inputs: &[Array2<f64>],
    rng: &mut Rng,
    build: impl Fn(&mut Tape<f64>, &[Var]) -> Var,
    reference: impl Fn(&[Array2<f64>]) -> Array2<f64>,
) -> Result<(), TestCaseError> {
    let got = evaluate(inputs, &build);
    let want = reference(inputs);
    prop_assert_eq!(got.dim(), want.dim(), "{}: shape", name);
    let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want.iter())
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    prop_assert!(
        diff <= CLOSED_FORM_REL_TOL * scale,
        "{}: value differs from the reference by {:e}\ngot {:?}\nreference {:?}",
        name,
        diff,
        got,
        want
    );
    let all = vec![true; inputs.len()];
    check_seeded(name, inputs, &all, false, rng, &build)?;
    let subset: Vec<bool> = inputs.iter().map(|_| rng.uniform() < 0.5).collect();
    if subset != all {
        check_seeded(name, inputs, &subset, false, rng, &build)?;
    }
    check_seeded(name, inputs, &all, true, rng, &build)?;
    check_seeded(name, inputs, &subset, true, rng, &build)
}

// ----- broadcasting binary ops ------------------------------------------------------------------

/// The operand shapes of every broadcast pattern, both orders.
fn broadcast_patterns(m: usize, n: usize) -> Vec<((usize, usize), (usize, usize))> {
    let forward = [
        ((m, n), (m, n)),
        ((m, n), (1, n)),
        ((m, n), (m, 1)),
        ((1, n), (m, 1)),
        ((m, n), (1, 1)),
    ];
    let mut all = forward.to_vec();
    all.extend(forward[1..].iter().map(|&(a, b)| (b, a)));
    all
}

#[derive(Clone, Copy, Debug)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

fn check_binary(op: Binary, m: usize, n: usize, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::seed_from_u64(seed);
    for (sa, sb) in broadcast_patterns(m, n) {
        let a = normal(&mut rng, sa);
        let b = match op {
            Binary::Div => away_from_zero(&mut rng, sb, 0.5, 2.0),
            _ => normal(&mut rng, sb),
        };
        let name = format!("{op:?} {sa:?} {sb:?}");
        check_op(
            &name,
            &[a, b],
            &mut rng,
            |t, x| match op {
                Binary::Add => t.add(x[0], x[1]),
                Binary::Sub => t.sub(x[0], x[1]),
                Binary::Mul => t.mul(x[0], x[1]),
                Binary::Div => t.div(x[0], x[1]),
            },
            |x| {
                zip_broadcast(&x[0], &x[1], |a, b| match op {
                    Binary::Add => a + b,
                    Binary::Sub => a - b,
                    Binary::Mul => a * b,
                    Binary::Div => a / b,
                })
            },
        )?;
    }
    Ok(())
}

// ----- elementwise maps -------------------------------------------------------------------------

const MAPS: [Elementwise; 15] = [
    Elementwise::Silu,
    Elementwise::Tanh,
    Elementwise::GeluTanh,
    Elementwise::Relu,
    Elementwise::Softplus,
    Elementwise::Sigmoid,
    Elementwise::Exp,
    Elementwise::Ln,
    Elementwise::Sqrt,
    Elementwise::Square,
    Elementwise::Pow(2.0),
    Elementwise::Pow(3.0),
    Elementwise::Pow(0.5),
    Elementwise::Pow(-1.5),
    Elementwise::Pow(2.7),
];

/// Inputs where f and its derivatives are smooth: positive for ln, sqrt and powers, away from
/// relu's kink.
fn map_input(f: Elementwise, rng: &mut Rng, shape: (usize, usize)) -> Array2<f64> {
    match f {
        Elementwise::Ln | Elementwise::Sqrt | Elementwise::Pow(_) => uniform(rng, shape, 0.5, 2.0),
        Elementwise::Relu => away_from_zero(rng, shape, 0.1, 2.0),
        _ => normal(rng, shape),
    }
}

// ----- softmax --------------------------------------------------------------------------------

/// Rows e_{labels[i]} of the identity in R^classes.
fn one_hot(labels: &[usize], classes: usize) -> Array2<f64> {
    Array2::from_shape_fn((labels.len(), classes), |(i, j)| f64::from(labels[i] == j))
}

/// Rows of positive probabilities summing to 1.
fn soft_targets(rng: &mut Rng, shape: (usize, usize)) -> Array2<f64> {
    let mut y = uniform(rng, shape, 0.1, 1.0);
    for mut row in y.rows_mut() {
        let total = row.sum();
        row /= total;
    }
    y
}

/// The tangent of log_softmax at z along v (v may cover a row prefix), by forward mode.
fn log_softmax_jvp(z: &Array2<f64>, v: &Array2<f64>) -> Array2<f64> {
    let mut t = Tape::new();
    let zv = t.constant(z.view());
    let vv = t.constant(v.view());
    t.set_tangent(zv, vv);
    let out = t.log_softmax(zv);
    let jv = t.tangent(out).expect("z carries a tangent");
    t.value(jv).to_owned()
}

// ----- the properties ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn matmul_all_transposes(m in 1usize..=7, k in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        for ta in [false, true] {
            for tb in [false, true] {
                let a = normal(&mut rng, if ta { (k, m) } else { (m, k) });
                let b = normal(&mut rng, if tb { (n, k) } else { (k, n) });
                check_op(&format!("matmul ta={ta} tb={tb} m={m} k={k} n={n}"), &[a, b], &mut rng,
                    |t, x| t.matmul_t(x[0], ta, x[1], tb),
                    |x| naive_matmul(&x[0], ta, &x[1], tb))?;
            }
        }
    }

    #[test]
    fn add_all_broadcasts(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        check_binary(Binary::Add, m, n, seed)?;
    }

    #[test]
    fn sub_all_broadcasts(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        check_binary(Binary::Sub, m, n, seed)?;
    }

    #[test]
    fn mul_all_broadcasts(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        check_binary(Binary::Mul, m, n, seed)?;
    }

    #[test]
    fn div_all_broadcasts(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        check_binary(Binary::Div, m, n, seed)?;
    }

    #[test]
    fn scale_and_add_scalar(m in 1usize..=7, n in 1usize..=7, c in -3.0f64..3.0, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = normal(&mut rng, (m, n));
        check_op("scale", std::slice::from_ref(&x), &mut rng, |t, v| t.scale(v[0], c),
            |v| v[0].mapv(|x| c * x))?;
        check_op("neg", std::slice::from_ref(&x), &mut rng, |t, v| t.neg(v[0]),
            |v| v[0].mapv(|x| -x))?;
        check_op("add_scalar", &[x], &mut rng, |t, v| t.add_scalar(v[0], c),
            |v| v[0].mapv(|x| x + c))?;
    }

    /// Every elementwise function at orders 0 (f), 1 (f') and 2 (f'', whose VJP needs f''').
    #[test]
    fn map_every_function_and_order(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        for f in MAPS {
            for order in 0..=2 {
                let x = map_input(f, &mut rng, (m, n));
                check_op(&format!("map {f} order {order}"), &[x], &mut rng,
                    |t, v| t.push(Op::Map(Map { x: v[0], f, order })),
                    |v| v[0].mapv(|x| closed_forms::elementwise(f, x)[order]))?;
            }
        }
    }

    #[test]
    fn concat_cols(m in 1usize..=7, na in 1usize..=7, nb in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let a = normal(&mut rng, (m, na));
        let b = normal(&mut rng, (m, nb));
        check_op("concat_cols", &[a, b], &mut rng, |t, x| t.concat_cols(x[0], x[1]),
            |x| naive_concat_cols(&x[0], &x[1]))?;
    }

    #[test]
    fn slice_cols(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let start = rng.below(n + 1);
        let end = start + rng.below(n - start + 1);
        let x = normal(&mut rng, (m, n));
        check_op(&format!("slice_cols {start}..{end} of {n}"), &[x], &mut rng,
            |t, v| t.slice_cols(v[0], start, end), |v| naive_cols(&v[0], start, end))?;
    }

    #[test]
    fn broadcast_every_pattern(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        for shape in [(m, n), (1, n), (m, 1), (1, 1)] {
            let x = normal(&mut rng, shape);
            check_op(&format!("broadcast {shape:?} to {:?}", (m, n)), &[x], &mut rng,
                |t, v| t.broadcast(v[0], m, n),
                |v| Array2::from_shape_fn((m, n), |(i, j)| at(&v[0], i, j)))?;
        }
    }

    #[test]
    fn sum_every_reduction(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = normal(&mut rng, (m, n));
        let total = |x: &Array2<f64>| x.iter().sum::<f64>();
        check_op("sum_rows", std::slice::from_ref(&x), &mut rng, |t, v| t.sum_rows(v[0]),
            |v| Array2::from_shape_fn((1, n), |(_, j)| (0..m).map(|i| v[0][[i, j]]).sum()))?;
        check_op("sum_cols", std::slice::from_ref(&x), &mut rng, |t, v| t.sum_cols(v[0]),
            |v| Array2::from_shape_fn((m, 1), |(i, _)| (0..n).map(|j| v[0][[i, j]]).sum()))?;
        check_op("sum", std::slice::from_ref(&x), &mut rng, |t, v| t.sum(v[0]),
            |v| scalar(total(&v[0])))?;
        check_op("mean", &[x], &mut rng, |t, v| t.mean(v[0]),
            |v| scalar(total(&v[0]) / (m * n) as f64))?;
    }

    /// The dense layer f(x W^T + b), every activation and none: with tangents on x alone it
    /// takes the dual-block form, with tangents on W or b the general rule.
    #[test]
    fn dense_every_activation(m in 1usize..=7, n_in in 1usize..=7, n_out in 1usize..=7, seed in any::<u64>()) {
        // |x W^T + b| <= 1.5 on both layers: no activation saturates, where f' ~ 0 would leave a
        // JVP below the finite differences' rounding.
        let mut rng = Rng::seed_from_u64(seed);
        let x = uniform(&mut rng, (m, n_in), -1.0, 1.0);
        let w = uniform(&mut rng, (n_out, n_in), -1.0 / n_in as f64, 1.0 / n_in as f64);
        let b = uniform(&mut rng, (1, n_out), -0.5, 0.5);
        for f in [None, Some(Elementwise::Silu), Some(Elementwise::Tanh), Some(Elementwise::GeluTanh), Some(Elementwise::Softplus)] {
            let inputs = [x.clone(), w.clone(), b.clone()];
            check_op(&format!("dense {f:?}"), &inputs, &mut rng, |t, v| t.dense(v[0], v[1], v[2], f),
                |v| naive_dense(&v[0], &v[1], &v[2], f))?;
            // Two layers: the second takes the first's block as it stands.
            let w2 = uniform(&mut rng, (n_in, n_out), -1.0 / n_out as f64, 1.0 / n_out as f64);
            let inputs = [x.clone(), w.clone(), b.clone(), w2];
            check_op(&format!("dense {f:?} twice"), &inputs, &mut rng, |t, v| {
                let h = t.dense(v[0], v[1], v[2], f);
                let zero_bias = t.full((1, n_in), 0.0);
                t.dense(h, v[3], zero_bias, f)
            }, |v| {
                let h = naive_dense(&v[0], &v[1], &v[2], f);
                naive_dense(&h, &v[3], &Array2::zeros((1, n_in)), f)
            })?;
        }
    }

    #[test]
    fn row_views_stacks_and_pads(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let start = rng.below(m + 1);
        let end = start + rng.below(m - start + 1);
        let x = normal(&mut rng, (m, n));
        let y_rows = 1 + rng.below(4);
        let y = normal(&mut rng, (y_rows, n));
        check_op(&format!("rows {start}..{end} of {m}"), std::slice::from_ref(&x), &mut rng,
            |t, v| t.rows(v[0], start, end), |v| naive_rows(&v[0], start, end))?;
        check_op("rows of rows", std::slice::from_ref(&x), &mut rng, |t, v| {
            let r = t.rows(v[0], start, m);
            t.rows(r, 0, end - start)
        }, |v| naive_rows(&v[0], start, end))?;
        check_op("stack_rows", &[x.clone(), y], &mut rng, |t, v| t.stack_rows(v[0], v[1]),
            |v| naive_stack_rows(&v[0], &v[1]))?;
        let extra = rng.below(4);
        check_op(&format!("pad_rows +{extra}"), &[x], &mut rng, |t, v| t.pad_rows(v[0], m + extra),
            |v| naive_pad_rows(&v[0], m + extra))?;
    }

    /// The same node as both operands: the two cotangent contributions must add up.
    #[test]
    fn aliased_operands(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = normal(&mut rng, (m, n));
        let p = away_from_zero(&mut rng, (m, n), 0.5, 2.0);
        let one = std::slice::from_ref(&x);
        check_op("x + x", one, &mut rng, |t, v| t.add(v[0], v[0]), |v| v[0].mapv(|x| 2.0 * x))?;
        check_op("x - x", one, &mut rng, |t, v| t.sub(v[0], v[0]), |v| v[0].mapv(|_| 0.0))?;
        check_op("x * x", one, &mut rng, |t, v| t.mul(v[0], v[0]), |v| v[0].mapv(|x| x * x))?;
        check_op("x / x", &[p], &mut rng, |t, v| t.div(v[0], v[0]), |v| v[0].mapv(|_| 1.0))?;
        check_op("x x^T", one, &mut rng, |t, v| t.matmul_t(v[0], false, v[0], true),
            |v| naive_matmul(&v[0], false, &v[0], true))?;
        check_op("x^T x", one, &mut rng, |t, v| t.matmul_t(v[0], true, v[0], false),
            |v| naive_matmul(&v[0], true, &v[0], false))?;
        check_op("[x | x]", one, &mut rng, |t, v| t.concat_cols(v[0], v[0]),
            |v| naive_concat_cols(&v[0], &v[0]))?;
    }

    /// log_softmax per row (logits of unit and of large scale, and shifted by hundreds, where a
    /// softmax without the max subtraction would overflow), and the softmax cross-entropy built
    /// on it, against one-hot targets (a constant) and against soft targets (an input too).
    #[test]
    fn log_softmax_and_cross_entropy(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        // Shifts of 30 keep central differences at z + h exact to ~1e-10; at 300 the rounding of
        // z + h alone (ulp 6e-14 against h = 1e-5) costs 1e-6 of FD accuracy, so there the
        // check is shift invariance: log_softmax(z + c) = log_softmax(z).
        for (scale, shift) in [(1.0, 0.0), (4.0, 0.0), (1.0, 30.0), (1.0, -30.0)] {
            let z = normal(&mut rng, (m, n)) * scale + shift;
            check_op(&format!("log_softmax {m}x{n} scale {scale} shift {shift}"),
                std::slice::from_ref(&z), &mut rng, |t, v| t.log_softmax(v[0]),
                |v| naive_log_softmax(&v[0]))?;
        }
        let z = normal(&mut rng, (m, n));
        let log_softmax_of = |z: &Array2<f64>| {
            let mut t = Tape::new();
            let zv = t.constant(z.view());
            let out = t.log_softmax(zv);
            t.value(out).to_owned()
        };
        let base = log_softmax_of(&z);
        for shift in [300.0, -300.0] {
            let shifted = log_softmax_of(&(&z + shift));
            let diff = shifted.iter().zip(base.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(diff < 1e-12 * (1.0 + shift.abs()), "shift {shift}: {diff}");
        }
        let z = normal(&mut rng, (m, n)) * 2.0;
        let labels: Vec<usize> = (0..m).map(|_| rng.below(n)).collect();
        let y = one_hot(&labels, n);
        // -(1/m) sum_ij y_ij log_softmax(z)_ij.
        let cross_entropy = |z: &Array2<f64>, y: &Array2<f64>| {
            let log_p = naive_log_softmax(z);
            scalar(-log_p.iter().zip(y.iter()).map(|(l, y)| l * y).sum::<f64>() / m as f64)
        };
        check_op(&format!("softmax_cross_entropy one-hot {m}x{n}"), std::slice::from_ref(&z),
            &mut rng, |t, v| {
                let y = t.constant(y.view());
                t.softmax_cross_entropy(v[0], y)
            }, |v| cross_entropy(&v[0], &y))?;
        let soft = soft_targets(&mut rng, (m, n));
        check_op(&format!("softmax_cross_entropy soft {m}x{n}"), &[z, soft], &mut rng,
            |t, v| t.softmax_cross_entropy(v[0], v[1]), |v| cross_entropy(&v[0], &v[1]))?;
    }

    /// Reverse over forward: the gradient in z of <w, J(z) v>, J the Jacobian of log_softmax at
    /// z (its JVP rule records exp(out), whose VJP runs back through log_softmax's), against
    /// central differences of the exact JVP; v on all rows and on a row prefix.
    #[test]
    fn log_softmax_reverse_over_forward(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let z = normal(&mut rng, (m, n)) * 2.0;
        let d = normal(&mut rng, (m, n));
        for k in [m, 1 + rng.below(m)] {
            let v = normal(&mut rng, (k, n));
            let w = normal(&mut rng, (k, n));
            let phi = |z: &Array2<f64>| inner(w.view(), log_softmax_jvp(z, &v).view());
            let mut t = Tape::new();
            let zv = t.param(z.view());
            let vv = t.constant(v.view());
            t.set_tangent(zv, vv);
            let out = t.log_softmax(zv);
            let jv = t.tangent(out).expect("z carries a tangent");
            prop_assert_eq!(t.shape(jv), (k, n), "the tangent keeps its row prefix");
            let wv = t.constant(w.view());
            let wjv = t.mul(wv, jv);
            let loss = t.sum(wjv);
            t.backward(loss);
            let g = t.grad_or_zeros(zv);
            let exact = inner(g.view(), d.view());
            let fd = central_difference(|s| phi(&(&z + &(s * &d))));
            let scale = fd.abs().max(abs_inner(g.view(), d.view())).max(ABS_FLOOR);
            let rel = (exact - fd).abs() / scale;
            prop_assert!(rel < FD_REL_TOL, "k = {}: exact {} vs fd {}: rel {:e}", k, exact, fd, rel);
        }
    }

    /// Layer norm, a composition of primitives, checked as one op: its value against two passes
    /// per row, (a)-(c) with tangents on all rows and on a row prefix. Inputs at unit scale and
    /// shifted by 50 (the mean is taken out first). From 3 columns: with 1 or 2 the Jacobian is
    /// 0 or of order eps / var, all cancellation (`layer_norm_of_one_and_two_columns`).
    #[test]
    fn layer_norm_as_one_op(m in 1usize..=7, n in 3usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        for shift in [0.0, 50.0] {
            let x = normal(&mut rng, (m, n)) * 2.0 + shift;
            check_op(&format!("layer_norm {m}x{n} shift {shift}"), std::slice::from_ref(&x),
                &mut rng, |t, v| t.layer_norm(v[0], 1e-5), |v| naive_layer_norm(&v[0], 1e-5))?;
        }
    }

    /// 1 / sqrt(var + eps) per row, the node LN's JVP rule records, as an op of its own.
    #[test]
    fn inverse_deviation_as_one_op(m in 1usize..=7, n in 2usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = normal(&mut rng, (m, n)) * 2.0 + 3.0;
        check_op(&format!("inverse_deviation {m}x{n}"), std::slice::from_ref(&x), &mut rng,
            |t, v| t.inverse_deviation(v[0], 1e-5),
            |v| naive_inverse_deviation(&v[0], 1e-5))?;
    }

    /// The fused primitive against the same function composed of sums, broadcasting differences
    /// and products and a power (each checked above): value, JVP on a row prefix, the gradient
    /// of a loss that uses both, and so reverse over forward, to 1e-12.
    #[test]
    fn layer_norm_equals_its_composition(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x = normal(&mut rng, (m, n)) * 2.0 + 1.0;
        let k = 1 + rng.below(m);
        let v = normal(&mut rng, (k, n));
        let (w1, w2) = (normal(&mut rng, (m, n)), normal(&mut rng, (k, n)));
        let run = |fused: bool| {
            let mut t = Tape::new();
            let xv = t.param(x.view());
            let vv = t.constant(v.view());
            t.set_tangent(xv, vv);
            let y = if fused { t.layer_norm(xv, 1e-5) } else {
                let sum = t.sum_cols(xv);
                let mean = t.scale(sum, 1.0 / n as f64);
                let centred = t.sub(xv, mean);
                let squares = t.square(centred);
                let sum_squares = t.sum_cols(squares);
                let var = t.scale(sum_squares, 1.0 / n as f64);
                let var_eps = t.add_scalar(var, 1e-5);
                let s = t.map(var_eps, Elementwise::Pow(-0.5));
                t.mul(centred, s)
            };
            let y_dot = t.tangent(y).expect("x carries a tangent");
            let (a, b) = (t.constant(w1.view()), t.constant(w2.view()));
            let (ay, by) = (t.mul(a, y), t.mul(b, y_dot));
            let (sa, sb) = (t.sum(ay), t.sum(by));
            let loss = t.add(sa, sb);
            t.backward(loss);
            (t.value(y).to_owned(), t.value(y_dot).to_owned(), t.grad_or_zeros(xv))
        };
        let (fused, composed) = (run(true), run(false));
        let close = |a: &Array2<f64>, b: &Array2<f64>| {
            let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            a.dim() == b.dim() && a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-12 * scale)
        };
        prop_assert!(close(&fused.0, &composed.0), "value {:?} vs {:?}", fused.0, composed.0);
        prop_assert!(close(&fused.1, &composed.1), "JVP {:?} vs {:?}", fused.1, composed.1);
        prop_assert!(close(&fused.2, &composed.2), "gradient {:?} vs {:?}", fused.2, composed.2);
    }

    /// Rows of one column normalise to exactly 0 with a zero gradient; rows of two columns to
    /// -/+ d / sqrt(d^2 + 4 eps), d = x_2 - x_1, against that closed form.
    #[test]
    fn layer_norm_of_one_and_two_columns(m in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let eps = 1e-5;
        let one = normal(&mut rng, (m, 1));
        let mut t = Tape::new();
        let x = t.param(one.view());
        let y = t.layer_norm(x, eps);
        prop_assert!(t.value(y).iter().all(|&v| v == 0.0));
        let s = t.sum(y);
        t.backward(s);
        prop_assert!(t.grad_or_zeros(x).iter().all(|&g| g == 0.0));
        let two = normal(&mut rng, (m, 2));
        let got = evaluate(std::slice::from_ref(&two), &|t, v| t.layer_norm(v[0], eps));
        for i in 0..m {
            let d = two[[i, 1]] - two[[i, 0]];
            let y2 = d / (d * d + 4.0 * eps).sqrt();
            prop_assert!((got[[i, 1]] - y2).abs() < 1e-12 && (got[[i, 0]] + y2).abs() < 1e-12,
                "row {}: {:?} vs -/+{}", i, got.row(i), y2);
        }
    }

    /// Reverse over forward through layer norm: the gradient in x of <w, J(x) v> against central
    /// differences of the exact JVP, (v - mean(v) - y mean(y v)) / sqrt(var + eps) per row with
    /// y = LN(x), written out here; v on all rows and on a row prefix.
    #[test]
    fn layer_norm_reverse_over_forward(m in 1usize..=7, n in 3usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let eps = 1e-5;
        let x = normal(&mut rng, (m, n)) * 2.0;
        let d = normal(&mut rng, (m, n));
        let closed_form_jvp = |x: &Array2<f64>, v: &Array2<f64>| {
            let (y, s) = (naive_layer_norm(x, eps), naive_inverse_deviation(x, eps));
            let cols = n as f64;
            Array2::from_shape_fn(v.dim(), |(i, j)| {
                let v_mean = v.row(i).sum() / cols;
                let yv_mean = (0..n).map(|k| y[[i, k]] * v[[i, k]]).sum::<f64>() / cols;
                (v[[i, j]] - v_mean - y[[i, j]] * yv_mean) * s[[i, 0]]
            })
        };
        for k in [m, 1 + rng.below(m)] {
            let v = normal(&mut rng, (k, n));
            let w = normal(&mut rng, (k, n));
            let phi = |x: &Array2<f64>| inner(w.view(), closed_form_jvp(x, &v).view());
            let mut t = Tape::new();
            let xv = t.param(x.view());
            let vv = t.constant(v.view());
            t.set_tangent(xv, vv);
            let out = t.layer_norm(xv, eps);
            let jv = t.tangent(out).expect("x carries a tangent");
            prop_assert_eq!(t.shape(jv), (k, n), "the tangent keeps its row prefix");
            let recorded = t.value(jv).to_owned();
            let closed = closed_form_jvp(&x, &v);
            let gap = (&recorded - &closed).iter().fold(0.0f64, |a, b| a.max(b.abs()));
            prop_assert!(gap < 1e-10, "the recorded JVP differs from the closed form by {:e}", gap);
            let wv = t.constant(w.view());
            let wjv = t.mul(wv, jv);
            let loss = t.sum(wjv);
            t.backward(loss);
            let g = t.grad_or_zeros(xv);
            let exact = inner(g.view(), d.view());
            let fd = central_difference(|s| phi(&(&x + &(s * &d))));
            let scale = fd.abs().max(abs_inner(g.view(), d.view())).max(ABS_FLOOR);
            let rel = (exact - fd).abs() / scale;
            prop_assert!(rel < FD_REL_TOL, "k = {}: exact {} vs fd {}: rel {:e}", k, exact, fd, rel);
        }
    }

    /// The cross-entropy's value is mean_i (logsumexp(z_i) - z_i[y_i]) and its gradient
    /// (softmax(z) - Y) / m, both against direct formulas; f32 agrees with f64.
    #[test]
    fn cross_entropy_closed_forms(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let z = normal(&mut rng, (m, n)) * 3.0;
        let labels: Vec<usize> = (0..m).map(|_| rng.below(n)).collect();
        let y = one_hot(&labels, n);
        let mut t = Tape::new();
        let zv = t.param(z.view());
        let yv = t.constant(y.view());
        let loss = t.softmax_cross_entropy(zv, yv);
        t.backward(loss);
        let lse = |row: ndarray::ArrayView1<f64>| row.iter().map(|x| x.exp()).sum::<f64>().ln();
        let expected = (0..m).map(|i| lse(z.row(i)) - z[[i, labels[i]]]).sum::<f64>() / m as f64;
        // Against the size of the terms: with one column the loss is 0 = lse - z up to rounding.
        let terms = (0..m).map(|i| lse(z.row(i)).abs() + z[[i, labels[i]]].abs()).sum::<f64>() / m as f64;
        prop_assert!(scaled_error(t.scalar(loss), expected, terms) < REWRITE_REL_TOL,
            "loss {} vs {}", t.scalar(loss), expected);
        let mut softmax_minus_y = z.clone();
        for (i, mut row) in softmax_minus_y.rows_mut().into_iter().enumerate() {
            let l = lse(z.row(i));
            row.mapv_inplace(|x| (x - l).exp());
            row[labels[i]] -= 1.0;
        }
        let expected_grad = softmax_minus_y / m as f64;
        let g = t.grad_or_zeros(zv);
        // Against the scale of its terms: softmax and y lie in [0, 1], so each entry is a
        // difference of numbers of size 1 / m (with one column, 1 - 1 = 0 up to rounding).
        let max_diff = |a: ndarray::ArrayView2<f64>| {
            a.iter().zip(expected_grad.iter()).map(|(x, e)| (x - e).abs()).fold(0.0, f64::max) * m as f64
        };
        prop_assert!(max_diff(g.view()) < REWRITE_REL_TOL,
            "gradient {:?} vs {:?}", g, expected_grad);
        // The same in f32.
        let mut t32 = Tape::<f32>::new();
        let z32 = t32.param(z.mapv(|x| x as f32).view());
        let y32 = t32.constant(y.mapv(|x| x as f32).view());
        let loss32 = t32.softmax_cross_entropy(z32, y32);
        t32.backward(loss32);
        prop_assert!(scaled_error(t32.scalar(loss32) as f64, expected, terms) < F32_REL_TOL);
        prop_assert!(max_diff(t32.grad_or_zeros(z32).mapv(f64::from).view()) < F32_REL_TOL);
    }

    /// sg(x): no tangent, no cotangent; x * sg(x) differentiates only through the first factor.
    #[test]
    fn stop_gradient(m in 1usize..=7, n in 1usize..=7, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let x0 = normal(&mut rng, (m, n));
        let v0 = normal(&mut rng, (m, n));
        let w0 = normal(&mut rng, (m, n));
        let mut t = Tape::new();
        let x = t.param(x0.view());
        let v = t.constant(v0.view());
        t.set_tangent(x, v);
        let s = t.stop_gradient(x);
        prop_assert_eq!(t.value(s), x0.view());
        prop_assert!(t.tangent(s).is_none());
        prop_assert!(!t.requires_grad(s));
        t.backward_with(s, w0.view());
        prop_assert!(t.grad(x).is_none());

        let y = t.mul(x, s);
        let y_dot = t.value(t.tangent(y).expect("x carries a tangent")).to_owned();
        prop_assert!(relative_error(y_dot.view(), (&v0 * &x0).view()) < ADJOINT_REL_TOL);
        t.backward_with(y, w0.view());
        let g = t.grad(x).expect("x is a parameter").to_owned();
        prop_assert!(relative_error(g.view(), (&w0 * &x0).view()) < ADJOINT_REL_TOL);
    }
}

// ----- shape errors name the shapes ---------------------------------------------------------------

fn zeros(t: &mut Tape<f64>, shape: (usize, usize)) -> Var {
    t.full(shape, 0.0)
}

#[test]
#[should_panic(expected = "matmul: op(A) is (2, 3) and op(B) is (4, 5)")]
fn matmul_inner_dimensions() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (2, 3)), zeros(&mut t, (4, 5)));
    t.matmul(a, b);
}

#[test]
#[should_panic(
    expected = "matmul: op(A) is (2, 3) and op(B) is (2, 5) (A (3, 2) transposed, B (5, 2) transposed)"
)]
fn matmul_inner_dimensions_transposed() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (3, 2)), zeros(&mut t, (5, 2)));
    t.matmul_t(a, true, b, true);
}

#[test]
#[should_panic(expected = "add: shapes (2, 3) and (3, 2) do not broadcast")]
fn add_does_not_broadcast() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (2, 3)), zeros(&mut t, (3, 2)));
    t.add(a, b);
}

#[test]
#[should_panic(expected = "div: shapes (1, 3) and (2, 2) do not broadcast")]
fn div_does_not_broadcast() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (1, 3)), zeros(&mut t, (2, 2)));
    t.div(a, b);
}

#[test]
#[should_panic(expected = "concat_cols: row counts differ: (2, 3) and (3, 3)")]
fn concat_cols_rows_differ() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (2, 3)), zeros(&mut t, (3, 3)));
    t.concat_cols(a, b);
}

#[test]
#[should_panic(expected = "slice_cols: columns 2..5 out of range for shape (2, 3)")]
fn slice_cols_out_of_range() {
    let mut t = Tape::new();
    let a = zeros(&mut t, (2, 3));
    t.slice_cols(a, 2, 5);
}

#[test]
#[should_panic(expected = "broadcast: (2, 3) cannot widen to (2, 1)")]
fn broadcast_cannot_narrow() {
    let mut t = Tape::new();
    let a = zeros(&mut t, (2, 3));
    t.broadcast(a, 2, 1);
}

#[test]
#[should_panic(expected = "has shape (2, 3) but tangent Var(1) has shape (3, 2)")]
fn set_tangent_shape() {
    let mut t = Tape::new();
    let (a, b) = (zeros(&mut t, (2, 3)), zeros(&mut t, (3, 2)));
    t.set_tangent(a, b);
}

#[test]
#[should_panic(expected = "backward: output Var(0) has shape (2, 3)")]
fn backward_needs_a_scalar() {
    let mut t = Tape::new();
    let a = zeros(&mut t, (2, 3));
    t.backward(a);
}

#[test]
#[should_panic(
    expected = "backward_with: cotangent shape (3, 2) differs from output Var(0) shape (2, 3)"
)]
fn backward_with_cotangent_shape() {
    let mut t = Tape::new();
    let a = zeros(&mut t, (2, 3));
    t.backward_with(a, Array2::zeros((3, 2)).view());
}

#[test]
#[should_panic(expected = "log_softmax: shape (2, 0) has no columns to normalise over")]
fn log_softmax_needs_columns() {
    let mut t = Tape::new();
    let a = zeros(&mut t, (2, 0));
    t.log_softmax(a);
}

#[test]
#[should_panic(
    expected = "softmax_cross_entropy: logits (2, 3) and targets (2, 4): need the same shape"
)]
fn cross_entropy_shapes_differ() {
    let mut t = Tape::new();
    let (z, y) = (zeros(&mut t, (2, 3)), zeros(&mut t, (2, 4)));
    t.softmax_cross_entropy(z, y);
}

/// Logits far beyond exp's range (|z| up to 1e4, exp overflows past 709.8) give the exact
/// log-softmax, which only depends on differences within a row; a one-hot cross-entropy on a
/// margin of 1e4 is 1e4 (wrong class) or 0 (right class), and its gradient stays finite.
#[test]
fn log_softmax_is_stable_for_huge_logits() {
    let base = ndarray::array![[0.5, -1.0, 2.0], [3.0, 3.0, -7.0]];
    let mut t = Tape::new();
    let b = t.constant(base.view());
    let reference = t.log_softmax(b);
    let reference = t.value(reference).to_owned();
    for shift in [1e3, -1e3, 1e4, -1e4] {
        let z = t.constant((&base + shift).view());
        let out = t.log_softmax(z);
        let out = t.value(out).to_owned();
        assert!(
            out.iter().all(|x: &f64| x.is_finite()),
            "shift {shift}: {out:?}"
        );
        // (z + c - m - c) is exact up to the rounding of z + c: 1e4 * eps ~ 2e-12.
        assert!(
            relative_error(out.view(), reference.view()) < 1e-11,
            "shift {shift}: {out:?} vs {reference:?}"
        );
    }
    let z0 = ndarray::array![[1e4, 0.0], [0.0, 1e4]];
    let mut t = Tape::new();
    let z = t.param(z0.view());
    let y = t.constant(one_hot(&[1, 1], 2).view());
    let loss = t.softmax_cross_entropy(z, y);
    assert_eq!(t.scalar(loss), 0.5e4, "row 0 misses by 1e4, row 1 is right");
    t.backward(loss);
    let g = t.grad_or_zeros(z);
    assert_eq!(g, ndarray::array![[0.5, -0.5], [0.0, 0.0]]);
}
