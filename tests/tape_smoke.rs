//! A first end-to-end check of the tape on y = sum(tanh(x W^T + b)^2).
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Optimizations, Tape};
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

/// Backward from a node that is not the last: nodes recorded after it (here a second output that
/// also reads w) contribute nothing, and the gradient is the first output's alone, checked
/// against central differences of that output; then a backward from the last node gives the
/// second output's gradient, not a sum of both.
#[test]
fn backward_from_an_earlier_node_ignores_later_ones() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let second = |w: &Array2<f64>| (w * w).sum() * 3.0;
    let mut t = Tape::new();
    let (xv, wv, bv) = (t.constant(x.view()), t.param(w.view()), t.param(b.view()));
    let h = t.linear(xv, wv, bv);
    let a = t.map(h, Elementwise::Tanh);
    let s = t.square(a);
    let y1 = t.sum(s);
    // Recorded after y1, also a function of w.
    let w2 = t.square(wv);
    let summed = t.sum(w2);
    let y2 = t.scale(summed, 3.0);
    assert!(y2.index() > y1.index());

    t.backward(y1);
    let g1 = t.grad(wv).unwrap().to_owned();
    for (i, j) in [(0, 0), (1, 2), (0, 1)] {
        let fd = central_difference(|e| {
            let mut wp = w.clone();
            wp[[i, j]] += e;
            f(&x, &wp, &b)
        });
        assert!(
            scalar_relative_error(g1[[i, j]], fd) < FD_REL_TOL,
            "dy1/dw[{i}, {j}]: {} vs {fd}",
            g1[[i, j]]
        );
    }
    t.backward(y2);
    let g2 = t.grad(wv).unwrap().to_owned();
    let want = w.mapv(|v| 6.0 * v);
    assert!(
        relative_error(g2.view(), want.view()) < CLOSED_FORM_REL_TOL,
        "dy2/dw {g2} vs {want} (y2 = {})",
        second(&w)
    );
    assert!(t.grad(bv).is_none_or(|g| g.iter().all(|&v| v == 0.0)));
}

/// The JVP-recording guard: the ops a JVP rule records compute no tangents of their own, so a
/// forward pass with a seeded tangent records a first-order JVP only. Every tangent node has no
/// tangent, and the pass costs a bounded number of extra nodes per op. Without the guard the
/// rules' ops read primal nodes that carry tangents (tanh' = 1 - y^2 reads y) and would record
/// second-order terms.
#[test]
fn a_jvp_records_no_second_order_terms() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let record = |seed: bool| {
        let mut t = Tape::<f64>::new();
        let (xv, wv, bv) = (t.constant(x.view()), t.param(w.view()), t.param(b.view()));
        if seed {
            let x_dot = t.constant(x.mapv(|v| 0.5 - v).view());
            t.set_tangent(xv, x_dot);
        }
        let h = t.linear(xv, wv, bv);
        let a = t.map(h, Elementwise::Tanh);
        let s = t.square(a);
        let m = t.mul(s, a);
        let y = t.sum(m);
        (t, [h, a, s, m, y])
    };
    let (plain, _) = record(false);
    let (t, outputs) = record(true);
    for v in outputs {
        let v_dot = t
            .tangent(v)
            .expect("every op downstream of x has a tangent");
        assert!(
            t.tangent(v_dot).is_none(),
            "the tangent of {v:?} has a tangent of its own: a second-order term was recorded"
        );
    }
    // Each of the 5 ops adds at most a few rule nodes; a second-order recording would add rules
    // of its rules.
    let extra = t.len() - plain.len();
    assert!(
        extra <= 4 * outputs.len() + 1,
        "{extra} extra nodes for the JVP of {} ops",
        outputs.len()
    );
}

/// `len` counts exactly the nodes recorded, `is_empty` says whether there are any, and the speed
/// rules a tape is given are the ones it reports and records with: a dense layer whose input has a
/// tangent is one block with `dual_dense` (value and tangent rows together) and more nodes without.
/// (Mutants of `len`, `is_empty` and `set_optimizations` passed every tape test before.)
#[test]
fn node_count_emptiness_and_speed_rules_are_what_was_recorded() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let record = |optimizations: Optimizations| {
        let mut t = Tape::<f64>::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        t.set_optimizations(optimizations);
        assert_eq!(t.optimizations(), optimizations);
        let (xv, wv, bv) = (t.constant(x.view()), t.param(w.view()), t.param(b.view()));
        let x_dot = t.constant(x.mapv(|v| 0.5 - v).view());
        // Four leaves, four nodes.
        assert_eq!(t.len(), 4);
        assert!(!t.is_empty());
        t.set_tangent(xv, x_dot);
        let a = t.dense(xv, wv, bv, Some(Elementwise::Tanh));
        assert!(t.tangent(a).is_some());
        let nodes = t.len();
        t.clear();
        assert!(t.is_empty());
        nodes
    };
    let dual = record(Optimizations::default());
    let plain = record(Optimizations {
        dual_dense: false,
        ..Optimizations::default()
    });
    assert!(
        plain > dual,
        "without dual_dense the layer's tangent should take more nodes: {plain} against {dual}"
    );
}

/// The JVP of an activated dense layer when nothing on the tape needs a gradient (sampling,
/// `verify`'s forward checks): the dual block [x; x_dot] -> [y; y_dot] still needs f'(pre) to
/// scale its tangent rows, so the layer must keep that slope even though no backward pass will
/// read it. Checked against central differences of the layer's value along x_dot, for every
/// activation. (A mutant that kept the slope only for a gradient panicked nowhere in the tape
/// tests before: each of them had a parameter.)
#[test]
fn a_jvp_through_a_dense_layer_without_gradients_matches_finite_differences() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4], [-0.7, 0.9, 0.2]];
    let x_dot = array![[0.2, 0.5, -1.0], [-0.3, 0.8, 0.1]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let value = |x: &Array2<f64>, f: Elementwise| {
        let mut t = Tape::<f64>::new();
        let (xv, wv, bv) = (
            t.constant(x.view()),
            t.constant(w.view()),
            t.constant(b.view()),
        );
        let y = t.dense(xv, wv, bv, Some(f));
        t.value(y).to_owned()
    };
    for f in Elementwise::ACTIVATIONS {
        for optimizations in [
            Optimizations::default(),
            Optimizations {
                dual_dense: false,
                ..Optimizations::default()
            },
        ] {
            let mut t = Tape::<f64>::new();
            t.set_optimizations(optimizations);
            let (xv, wv, bv) = (
                t.constant(x.view()),
                t.constant(w.view()),
                t.constant(b.view()),
            );
            let xd = t.constant(x_dot.view());
            t.set_tangent(xv, xd);
            let y = t.dense(xv, wv, bv, Some(f));
            assert!(!t.requires_grad(y));
            let y_dot = t.value(t.tangent(y).expect("y has a tangent")).to_owned();
            assert_eq!(y_dot.dim(), (2, 2), "{f}: one tangent row per row of x_dot");
            // Tangent row i belongs to row i of x; the rows beyond x_dot's have a zero tangent.
            let mut direction = Array2::zeros(x.dim());
            direction.slice_mut(ndarray::s![..2, ..]).assign(&x_dot);
            for i in 0..2 {
                for j in 0..2 {
                    let fd = central_difference(|e| value(&(&x + &(e * &direction)), f)[[i, j]]);
                    assert!(
                        scalar_relative_error(y_dot[[i, j]], fd) < FD_REL_TOL,
                        "{f} ({optimizations:?}): y_dot[{i}, {j}] = {} vs {fd}",
                        y_dot[[i, j]]
                    );
                }
            }
        }
    }
}

/// A cotangent that reaches only some rows of a view of a view: y = rows 4..6 of
/// s = [a; rows 2..6 of O], so d sum(c * y) / dO is c in O's rows 4..6 and zero elsewhere, and
/// nothing reaches a. Row pruning claims rows 2..4 of the view, rows 4..6 of its owner; the
/// offsets of view and range add (a mutant that subtracted them wrote into rows 0..4 and no test
/// saw it). Checked with each speed rule on and all off.
#[test]
fn a_cotangent_on_part_of_a_view_lands_in_its_owners_rows() {
    let o = Array2::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f64 * 0.1 - 0.7);
    let a = array![[0.5, -0.5, 1.5], [2.0, 0.25, -1.0]];
    let c = array![[1.0, -2.0, 0.5], [0.3, 4.0, -1.5]];
    for optimizations in [
        Optimizations::default(),
        Optimizations {
            prune_rows: false,
            ..Optimizations::default()
        },
    ] {
        let mut t = Tape::<f64>::new();
        t.set_optimizations(optimizations);
        let (ov, av, cv) = (t.param(o.view()), t.param(a.view()), t.constant(c.view()));
        let b = t.rows(ov, 2, 6);
        let s = t.stack_rows(av, b);
        let y = t.rows(s, 4, 6);
        assert_eq!(t.value(y), o.slice(ndarray::s![4..6, ..]));
        let cy = t.mul(cv, y);
        let loss = t.sum(cy);
        t.backward(loss);
        let mut want = Array2::zeros((6, 3));
        want.slice_mut(ndarray::s![4..6, ..]).assign(&c);
        assert_eq!(t.grad_or_zeros(ov), want, "{optimizations:?}");
        assert!(t.grad_or_zeros(av).iter().all(|&g| g == 0.0));
    }
}

/// A node whose cotangent reaches only some of its rows (through a row view) and whose VJP reads
/// all of them: the rows no cotangent reached must count as zero, although the tape's buffers
/// hold old values after `clear`. y = sum(rows start..end of tanh(x)) has gradient 1 - tanh^2
/// in those rows of x and exactly 0 elsewhere. Each case runs on a tape that first computed
/// sum(100 tanh(x)) (every cotangent buffer then holds 100s) and was cleared. (With the zeroing
/// in `Cotangents::prepare` removed, or its row test changed, every tape test passed before.)
#[test]
fn rows_no_cotangent_reached_count_as_zero_on_a_reused_tape() {
    let x = array![[0.3, -1.2], [1.0, 0.1], [-0.4, 0.8], [2.0, -0.6]];
    for (start, end) in [(0, 2), (2, 4), (1, 3), (0, 4), (3, 4)] {
        on_a_reused_tape(|t, prune_rows, reused| {
            let xv = t.param(x.view());
            let m = t.map(xv, Elementwise::Tanh);
            let y = if reused {
                let rows = t.rows(m, start, end);
                t.sum(rows)
            } else {
                let big = t.scale(m, 100.0);
                t.sum(big)
            };
            t.backward(y);
            if reused {
                let g = t.grad_or_zeros(xv);
                for ((i, j), &gij) in g.indexed_iter() {
                    let want = if (start..end).contains(&i) {
                        1.0 - x[[i, j]].tanh().powi(2)
                    } else {
                        0.0
                    };
                    assert!(
                        (gij - want).abs() <= 1e-15,
                        "rows {start}..{end}, prune_rows {prune_rows}: dy/dx[{i}, {j}] = {gij}, want {want}"
                    );
                }
            }
        });
    }
}

/// Runs `case` twice on one tape per row-pruning setting, with `clear` before each run: first
/// with `reused` false (the case writes every cotangent buffer), then with `reused` true, when
/// the tape's pooled buffers hold the first run's values.
fn on_a_reused_tape(mut case: impl FnMut(&mut Tape<f64>, bool, bool)) {
    for prune_rows in [true, false] {
        let mut t = Tape::<f64>::new();
        t.set_optimizations(Optimizations {
            prune_rows,
            ..Optimizations::default()
        });
        for reused in [false, true] {
            t.clear();
            case(&mut t, prune_rows, reused);
        }
    }
}

/// A tangent of zero rows (k = 0: no row of the batch needs the JVP, as in a shard whose rows
/// all have r = t) on a one-row input: every op keeps it zero rows, and nothing is broadcast up
/// to the output's one row.
#[test]
fn a_zero_row_tangent_of_a_one_row_input_stays_zero_rows() {
    let mut t = Tape::<f64>::new();
    let x = t.param(array![[0.3, -1.2, 0.5]].view());
    let b = t.param(array![[0.1, 0.2, -0.3]].view());
    let x_dot = t.constant(Array2::<f64>::zeros((0, 3)).view());
    t.set_tangent(x, x_dot);
    let sum = t.add(x, b);
    let product = t.mul(sum, b);
    let difference = t.sub(product, x);
    let activated = t.map(difference, Elementwise::Tanh);
    for v in [sum, product, difference, activated] {
        let v_dot = t.tangent(v).expect("downstream of x");
        assert_eq!(t.shape(v_dot), (0, 3), "{:?}", t.op(v));
    }
}

/// The dual form reuses the previous layer's block [x; x_dot] only when x and x_dot are exactly
/// its two row ranges. Here they are not: (a) x and x_dot are rows 0..3 and 3..5 of an owner
/// with a sixth row; (b) x is rows 0..3 of a five-row owner but x_dot is another node. Each JVP
/// must still match central differences of the layer along x_dot (mutants of the check reused
/// the owner and treated the wrong rows as tangent rows).
#[test]
fn a_dense_jvp_reuses_a_block_only_when_it_is_exactly_value_and_tangent() {
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let other = array![[0.9, -0.4, 0.2], [-0.3, 0.6, 1.1]];
    for (rows, tangent_from_owner) in [(6, true), (5, false)] {
        let o = Array2::from_shape_fn((rows, 3), |(i, j)| ((i * 3 + j) as f64 * 0.37).sin());
        let x = o.slice(ndarray::s![0..3, ..]).to_owned();
        let x_dot = if tangent_from_owner {
            o.slice(ndarray::s![3..5, ..]).to_owned()
        } else {
            other.clone()
        };
        let mut t = Tape::<f64>::new();
        let ov = t.constant(o.view());
        let xv = t.rows(ov, 0, 3);
        let xd = if tangent_from_owner {
            t.rows(ov, 3, 5)
        } else {
            t.constant(other.view())
        };
        t.set_tangent(xv, xd);
        let (wv, bv) = (t.param(w.view()), t.param(b.view()));
        let y = t.dense(xv, wv, bv, Some(Elementwise::Tanh));
        let y_dot = t.value(t.tangent(y).expect("seeded")).to_owned();
        assert_eq!(y_dot.dim(), (2, 2));
        // Tangent row i belongs to row i of x; row 2 of x has none.
        let mut direction = Array2::zeros((3, 3));
        direction.slice_mut(ndarray::s![0..2, ..]).assign(&x_dot);
        let value = |x: &Array2<f64>| (x.dot(&w.t()) + &b).mapv(f64::tanh);
        for i in 0..2 {
            for j in 0..2 {
                let fd = central_difference(|e| value(&(&x + &(e * &direction)))[[i, j]]);
                assert!(
                    scalar_relative_error(y_dot[[i, j]], fd) < FD_REL_TOL,
                    "owner of {rows} rows, tangent from the owner {tangent_from_owner}: y_dot[{i}, {j}] = {} vs {fd}",
                    y_dot[[i, j]]
                );
            }
        }
    }
}

/// A dense layer in dual form, one block [y; y_dot] of 3 value rows and 2 tangent rows, whose
/// cotangent reaches only some rows of the block: L = sum(rows(y, ..)) + sum(rows(y_dot, ..))
/// over chosen windows. With pre = x W^T + b, f = tanh, and g_i = x_dot_i W^T, by hand:
/// dL/dW_jl = sum over chosen value rows i of f'(pre_ij) x_il, plus over chosen tangent rows i of
/// f''(pre_ij) g_ij x_il + f'(pre_ij) x_dot_il; dL/db_j the same without x_il and x_dot_il
/// (f' g for the tangent rows' f'' g term, nothing for their f' x_dot term). The rows no cotangent
/// reached must count as zero although the tape's buffers hold old values after `clear` (the first
/// pass took the gradient of 100 (sum(y) + sum(y_dot)), which wrote every row). Mutants that
/// counted the tangent rows as reached when only value rows were, or zeroed fewer rows than the
/// layer's VJP reads (`Op::cotangent_rows_read`), read those stale rows.
#[test]
fn dense_block_rows_no_cotangent_reached_count_as_zero_on_a_reused_tape() {
    let x = array![[0.3, -1.2, 0.5], [1.0, 0.1, -0.4], [-0.7, 0.9, 0.2]];
    let x_dot = array![[1.0, 0.5, -0.3], [0.2, -0.7, 0.4]];
    let w = array![[0.2, -0.1, 0.7], [0.5, 0.3, -0.6]];
    let b = array![[0.1, -0.2]];
    let pre = x.dot(&w.t()) + &b;
    let slope = pre.mapv(|p: f64| 1.0 - p.tanh().powi(2));
    let curvature = pre.mapv(|p: f64| -2.0 * p.tanh() * (1.0 - p.tanh().powi(2)));
    let g = x_dot.dot(&w.t());
    // (value rows, tangent rows) that the loss sums.
    let windows = [
        (0..3, 0..0),
        (0..1, 0..0),
        (1..3, 0..0),
        (0..0, 0..1),
        (0..0, 1..2),
        (2..3, 0..1),
        (0..3, 0..2),
    ];
    for (value_rows, tangent_rows) in windows {
        let mut want_w = Array2::<f64>::zeros((2, 3));
        let mut want_b = Array2::<f64>::zeros((1, 2));
        for i in value_rows.clone() {
            for j in 0..2 {
                want_b[[0, j]] += slope[[i, j]];
                for l in 0..3 {
                    want_w[[j, l]] += slope[[i, j]] * x[[i, l]];
                }
            }
        }
        for i in tangent_rows.clone() {
            for j in 0..2 {
                want_b[[0, j]] += curvature[[i, j]] * g[[i, j]];
                for l in 0..3 {
                    want_w[[j, l]] +=
                        curvature[[i, j]] * g[[i, j]] * x[[i, l]] + slope[[i, j]] * x_dot[[i, l]];
                }
            }
        }
        on_a_reused_tape(|t, prune_rows, reused| {
            let (xv, xd) = (t.constant(x.view()), t.constant(x_dot.view()));
            t.set_tangent(xv, xd);
            let (wv, bv) = (t.param(w.view()), t.param(b.view()));
            let y = t.dense(xv, wv, bv, Some(Elementwise::Tanh));
            let y_dot = t.tangent(y).expect("seeded");
            let loss = if reused {
                let mut terms = Vec::new();
                if !value_rows.is_empty() {
                    let rows = t.rows(y, value_rows.start, value_rows.end);
                    terms.push(t.sum(rows));
                }
                if !tangent_rows.is_empty() {
                    let rows = t.rows(y_dot, tangent_rows.start, tangent_rows.end);
                    terms.push(t.sum(rows));
                }
                match terms[..] {
                    [one] => one,
                    [a, b] => t.add(a, b),
                    _ => unreachable!("every window sums some rows"),
                }
            } else {
                let y_sum = t.sum(y);
                let y_dot_sum = t.sum(y_dot);
                let both = t.add(y_sum, y_dot_sum);
                t.scale(both, 100.0)
            };
            t.backward(loss);
            if reused {
                for (got, want, name) in [(t.grad(wv), &want_w, "W"), (t.grad(bv), &want_b, "b")] {
                    let got = got.expect("a parameter");
                    let error = (&got - want)
                        .iter()
                        .fold(0.0, |m: f64, &e: &f64| m.max(e.abs()));
                    assert!(
                        error <= 1e-14,
                        "rows {value_rows:?} of y and {tangent_rows:?} of y_dot, prune_rows {prune_rows}: dL/d{name} = {got} want {want}"
                    );
                }
            }
        });
    }
}

/// Reverse over forward through a map whose tangent covers a row prefix (k of the rows, as the
/// loss's rows with r != t): y = sum(c * tanh'(x[..k]) * v) = <c, d/de tanh(x + e [v; 0])>, so
/// dy/dx = c * tanh''(x) * v on rows ..k (tanh'' = -2 tanh (1 - tanh^2)) and 0 below, by hand.
/// The slope node the JVP rule records must read rows ..k of x (a mutant that let it name all
/// of x computed the same tangent, and its VJP then met a cotangent of k rows).
#[test]
fn gradient_of_a_row_prefix_jvp_through_a_map() {
    let x = array![[0.3, -1.2], [1.0, 0.1], [-0.4, 0.8], [2.0, -0.6]];
    let v = array![[0.5, -0.7], [1.1, 0.2], [-0.3, 0.9]];
    let c = array![[0.2, -1.0], [0.6, 0.4], [-0.8, 1.5]];
    for k in 1..=3 {
        let mut t = Tape::<f64>::new();
        let xv = t.param(x.view());
        let vv = t.constant(v.slice(ndarray::s![..k, ..]));
        let cv = t.constant(c.slice(ndarray::s![..k, ..]));
        t.set_tangent(xv, vv);
        let m = t.map(xv, Elementwise::Tanh);
        let m_dot = t.tangent(m).expect("seeded");
        assert_eq!(t.shape(m_dot), (k, 2));
        let weighted = t.mul(cv, m_dot);
        let y = t.sum(weighted);
        t.backward(y);
        let g = t.grad_or_zeros(xv);
        for ((i, j), &gij) in g.indexed_iter() {
            let want = if i < k {
                let th = x[[i, j]].tanh();
                c[[i, j]] * (-2.0 * th * (1.0 - th * th)) * v[[i, j]]
            } else {
                0.0
            };
            assert!(
                (gij - want).abs() <= 1e-15,
                "k = {k}: dy/dx[{i}, {j}] = {gij}, want {want}"
            );
        }
    }
}

/// A row range outside its input is refused when recorded, naming the range and the shape. The
/// range is checked against the input, not its owner's buffer: rows 1..3 of a two-row view of a
/// four-row node would otherwise read row 2 of the owner, a row the view does not have.
#[test]
fn a_row_range_outside_its_input_is_refused() {
    for (start, end, within_view) in [(1, 3, true), (2, 1, false), (0, 5, false)] {
        let refused = std::panic::catch_unwind(|| {
            let mut t = Tape::<f64>::new();
            let o = t.param(Array2::zeros((4, 2)).view());
            let x = if within_view { t.rows(o, 0, 2) } else { o };
            t.rows(x, start, end);
        })
        .expect_err("an out-of-range row view was recorded");
        let message = refused
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        let rows = if within_view { 2 } else { 4 };
        let want = format!("rows: rows {start}..{end} out of range for shape ({rows}, 2)");
        assert_eq!(message, &want);
    }
}
