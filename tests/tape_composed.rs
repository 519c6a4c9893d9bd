//! Random small MLPs (1-3 hidden layers, widths 1-6, silu / tanh / gelu_tanh / softplus) on the
//! tape, as functions of their input x and parameters theta:
//!
//! - forward-mode JVP along an input direction, and along a parameter direction, vs central FD;
//! - reverse over forward: the gradient (w.r.t. theta and x) of a loss of the exact JVP, vs central
//!   FD of that exact JVP (forward mode at theta + s dtheta);
//! - a tape reused after `clear` (with a different computation in between) gives bit-identical
//!   results, equal to those of a fresh tape;
//! - the same MLP in f32 agrees with f64 within F32_REL_TOL.
//!
//! Directional derivatives (scalars) are compared against the scale of their terms,
//! max(|fd|, sum_l <|g_l|, |d_l|>), so that cancellation does not inflate a relative error.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Tape, Var};
use meanflow::linalg::float::Float;
use meanflow::rng::Rng;
use meanflow::verify::check::*;
use ndarray::{Array2, ArrayView2, Zip};
use proptest::prelude::*;

const CASES: u32 = 48;
const ACTIVATIONS: [Elementwise; 4] = [
    Elementwise::Silu,
    Elementwise::Tanh,
    Elementwise::GeluTanh,
    Elementwise::Softplus,
];

fn normal(rng: &mut Rng, shape: (usize, usize), std: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || std * rng.normal())
}

/// max |a|: the size of a function's values, the floor of a finite difference's resolution.
fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// <|a|, |b|>: the scale of the inner product <a, b>.
fn abs_inner(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let mut s = 0.0;
    Zip::from(&a).and(&b).for_each(|&x, &y| s += (x * y).abs());
    s
}

/// Weights [out, in] and biases [1, out] per layer; an activation after every layer but the last.
#[derive(Clone, Debug)]
struct Mlp {
    params: Vec<Array2<f64>>,
    activations: Vec<Elementwise>,
}

impl Mlp {
    fn random(dims: &[usize], activations: Vec<Elementwise>, rng: &mut Rng) -> Mlp {
        assert_eq!(activations.len() + 2, dims.len());
        let mut params = Vec::new();
        for io in dims.windows(2) {
            params.push(normal(rng, (io[1], io[0]), 1.0 / (io[0] as f64).sqrt()));
            params.push(normal(rng, (1, io[1]), 0.3));
        }
        Mlp {
            params,
            activations,
        }
    }

    /// The same architecture with parameters theta + s d.
    fn moved(&self, d: &[Array2<f64>], s: f64) -> Mlp {
        Mlp {
            params: self
                .params
                .iter()
                .zip(d)
                .map(|(p, d)| p + &(s * d))
                .collect(),
            activations: self.activations.clone(),
        }
    }

    fn directions(&self, rng: &mut Rng) -> Vec<Array2<f64>> {
        self.params
            .iter()
            .map(|p| normal(rng, p.dim(), 1.0))
            .collect()
    }

    /// Records the parameters on the tape, as parameters.
    fn load<T: Float>(&self, t: &mut Tape<T>) -> Vec<Var> {
        self.params
            .iter()
            .map(|p| t.param(p.mapv(T::from_f64).view()))
            .collect()
    }

    fn forward<T: Float>(&self, t: &mut Tape<T>, x: Var, params: &[Var]) -> Var {
        let mut h = x;
        for (l, wb) in params.chunks(2).enumerate() {
            h = t.dense(h, wb[0], wb[1], self.activations.get(l).copied());
        }
        h
    }

    /// The scale of the terms that the output (biases on) or the JVP (biases off) of `input` is
    /// summed from: s_0 = |input|, s_{l+1} = s_l |W_l|^T (+ |b_l|), through activations whose
    /// slopes are at most about 1. Rounding is relative to this, not to a result that cancels.
    fn abs_chain(&self, input: &Array2<f64>, biases: bool) -> Array2<f64> {
        let mut s = input.mapv(f64::abs);
        for wb in self.params.chunks(2) {
            s = s.dot(&wb[0].mapv(f64::abs).t());
            if biases {
                s = &s + &wb[1].mapv(f64::abs);
            }
        }
        s
    }

    /// The largest |pre-activation| of the hidden layers at input x (naive loops of f64).
    fn largest_pre_activation(&self, x: &Array2<f64>) -> f64 {
        let mut h = x.clone();
        let mut largest = 0.0f64;
        for (wb, f) in self.params.chunks(2).zip(&self.activations) {
            let a = h.dot(&wb[0].t()) + &wb[1];
            largest = a.iter().fold(largest, |m, z| m.max(z.abs()));
            h = a.mapv(|z| f.eval(z));
        }
        largest
    }

    /// f(x; theta) on a fresh tape.
    fn eval(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut t = Tape::new();
        let xv = t.constant(x.view());
        let p = self.load(&mut t);
        let out = self.forward(&mut t, xv, &p);
        t.value(out).to_owned()
    }

    /// The exact JVP J_x f(x; theta) v, by forward mode on a fresh tape.
    fn jvp_input(&self, x: &Array2<f64>, v: &Array2<f64>) -> Array2<f64> {
        let mut t = Tape::new();
        let xv = t.constant(x.view());
        let vv = t.constant(v.view());
        t.set_tangent(xv, vv);
        let p = self.load(&mut t);
        let out = self.forward(&mut t, xv, &p);
        t.value(t.tangent(out).expect("x carries a tangent"))
            .to_owned()
    }
}

/// A random MLP and input from proptest's draws.
fn setup(
    depth: usize,
    widths: &[usize],
    batch: usize,
    acts: &[usize],
    seed: u64,
) -> (Mlp, Array2<f64>, Rng) {
    let mut rng = Rng::seed_from_u64(seed);
    let dims = &widths[..depth + 2];
    let activations = acts[..depth].iter().map(|&i| ACTIVATIONS[i]).collect();
    let mlp = Mlp::random(dims, activations, &mut rng);
    let x = normal(&mut rng, (batch, dims[0]), 1.0);
    (mlp, x, rng)
}

/// Everything one step computes, read back from the tape.
#[derive(Debug, PartialEq)]
struct StepResult<T> {
    out: Array2<T>,
    jvp: Array2<T>,
    /// d sum(out^2) / d theta.
    grads: Vec<Array2<T>>,
    /// d <c, jvp> / d theta (reverse over forward).
    jvp_grads: Vec<Array2<T>>,
}

/// clear; parameters; forward with a tangent v on x; backward of sum(out^2); backward of <c, jvp>.
fn step<T: Float>(
    t: &mut Tape<T>,
    mlp: &Mlp,
    x: &Array2<f64>,
    v: &Array2<f64>,
    c: &Array2<f64>,
) -> StepResult<T> {
    t.clear();
    let p = mlp.load(t);
    let xv = t.constant(x.mapv(T::from_f64).view());
    let vv = t.constant(v.mapv(T::from_f64).view());
    let cv = t.constant(c.mapv(T::from_f64).view());
    t.set_tangent(xv, vv);
    let out = mlp.forward(t, xv, &p);
    let jvp = t.tangent(out).expect("x carries a tangent");
    let sq = t.square(out);
    let loss = t.sum(sq);
    t.backward(loss);
    let grads = p.iter().map(|&q| t.grad_or_zeros(q)).collect();
    let cj = t.mul(cv, jvp);
    let jvp_loss = t.sum(cj);
    t.backward(jvp_loss);
    let jvp_grads = p.iter().map(|&q| t.grad_or_zeros(q)).collect();
    StepResult {
        out: t.value(out).to_owned(),
        jvp: t.value(jvp).to_owned(),
        grads,
        jvp_grads,
    }
}

/// |actual - fd| relative to max(|fd|, scale of the terms of actual).
fn directional_error(actual: f64, fd: f64, terms_scale: f64) -> f64 {
    (actual - fd).abs() / fd.abs().max(terms_scale).max(ABS_FLOOR)
}

fn mlp_strategy() -> impl Strategy<Value = (usize, Vec<usize>, usize, Vec<usize>, u64)> {
    (
        1usize..=3,
        prop::collection::vec(1usize..=6, 5),
        1usize..=5,
        prop::collection::vec(0usize..ACTIVATIONS.len(), 3),
        any::<u64>(),
    )
}

/// As [`mlp_strategy`], every layer at least 2 wide.
fn well_conditioned_mlp_strategy(
) -> impl Strategy<Value = (usize, Vec<usize>, usize, Vec<usize>, u64)> {
    (
        1usize..=3,
        prop::collection::vec(2usize..=6, 5),
        1usize..=5,
        prop::collection::vec(0usize..ACTIVATIONS.len(), 3),
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// J_x f v from forward mode vs central FD of f(x + s v).
    #[test]
    fn jvp_wrt_input((depth, widths, batch, acts, seed) in mlp_strategy()) {
        let (mlp, x, mut rng) = setup(depth, &widths, batch, &acts, seed);
        let v = normal(&mut rng, x.dim(), 1.0);
        let exact = mlp.jvp_input(&x, &v);
        let fd = central_difference_array(|s| mlp.eval(&(&x + &(s * &v))));
        // Against the size of f too: a JVP far smaller than f (a width-1 layer in saturation
        // gave |J v| ~ 1e-7 beside |f| ~ 0.2) is below what a central difference resolves
        // relatively (its rounding is ~ eps |f| / h ~ 2e-12 here, 1e-5 of that JVP).
        let rel = fd_relative_error_array(exact.view(), fd.view(), max_abs(&mlp.eval(&x)));
        prop_assert!(rel < FD_REL_TOL, "{:?}: rel {:e}", mlp.activations, rel);
    }

    /// J_theta f dtheta from forward mode vs central FD of f(x; theta + s dtheta); then with
    /// tangents on x and theta at once.
    #[test]
    fn jvp_wrt_params((depth, widths, batch, acts, seed) in mlp_strategy()) {
        let (mlp, x, mut rng) = setup(depth, &widths, batch, &acts, seed);
        let d = mlp.directions(&mut rng);
        let v = normal(&mut rng, x.dim(), 1.0);
        for with_input in [false, true] {
            let mut t = Tape::new();
            let xv = t.constant(x.view());
            if with_input {
                let vv = t.constant(v.view());
                t.set_tangent(xv, vv);
            }
            let p = mlp.load(&mut t);
            for (&q, dq) in p.iter().zip(&d) {
                let dv = t.constant(dq.view());
                t.set_tangent(q, dv);
            }
            let out = mlp.forward(&mut t, xv, &p);
            let exact = t.value(t.tangent(out).expect("seeded")).to_owned();
            let fd = central_difference_array(|s| {
                let xs = if with_input { &x + &(s * &v) } else { x.clone() };
                mlp.moved(&d, s).eval(&xs)
            });
            let rel = fd_relative_error_array(exact.view(), fd.view(), max_abs(&mlp.eval(&x)));
            prop_assert!(rel < FD_REL_TOL, "with_input {}: rel {:e}", with_input, rel);
        }
    }

    /// Reverse over forward: the gradient w.r.t. theta and x of <c, J_x f v> and of
    /// sum((J_x f v)^2), against central FD (in theta and x) of the exact JVP.
    #[test]
    fn gradient_of_jvp((depth, widths, batch, acts, seed) in mlp_strategy()) {
        let (mlp, x, mut rng) = setup(depth, &widths, batch, &acts, seed);
        let v = normal(&mut rng, x.dim(), 1.0);
        let out_dim = *widths[..depth + 2].last().unwrap();
        let c = normal(&mut rng, (batch, out_dim), 1.0);
        let d = mlp.directions(&mut rng);
        let dx = normal(&mut rng, x.dim(), 1.0);
        for squared in [false, true] {
            let loss_of = |jvp: &Array2<f64>| {
                if squared { jvp.mapv(|a| a * a).sum() } else { inner(c.view(), jvp.view()) }
            };
            let mut t = Tape::new();
            let xv = t.param(x.view());
            let vv = t.constant(v.view());
            t.set_tangent(xv, vv);
            let p = mlp.load(&mut t);
            let out = mlp.forward(&mut t, xv, &p);
            let jvp = t.tangent(out).expect("x carries a tangent");
            let loss = if squared {
                let s = t.square(jvp);
                t.sum(s)
            } else {
                let cv = t.constant(c.view());
                let cj = t.mul(cv, jvp);
                t.sum(cj)
            };
            prop_assert!((t.scalar(loss) - loss_of(&t.value(jvp).to_owned())).abs() < 1e-12);
            t.backward(loss);
            let mut directional = 0.0;
            let mut terms = 0.0;
            for (&q, dq) in p.iter().zip(&d).chain([(&xv, &dx)]) {
                let g = t.grad_or_zeros(q);
                directional += inner(g.view(), dq.view());
                terms += abs_inner(g.view(), dq.view());
            }
            let fd = central_difference(|s| {
                loss_of(&mlp.moved(&d, s).jvp_input(&(&x + &(s * &dx)), &v))
            });
            let rel = directional_error(directional, fd, terms);
            prop_assert!(rel < FD_REL_TOL,
                "squared {}: exact {} vs fd {}: rel {:e}", squared, directional, fd, rel);
        }
    }

    /// A tape cleared and reused (with another computation in between, leaving stale values in
    /// its pooled buffers) reproduces a fresh tape's results bit for bit, and after each `clear`
    /// holds exactly the nodes a fresh tape records for the same step (a `clear` that kept old
    /// nodes, or a reuse that recorded extra ones, shows in the count).
    #[test]
    fn tape_reuse_after_clear((depth, widths, batch, acts, seed) in mlp_strategy()) {
        let (mlp, x, mut rng) = setup(depth, &widths, batch, &acts, seed);
        let v = normal(&mut rng, x.dim(), 1.0);
        let out_dim = *widths[..depth + 2].last().unwrap();
        let c = normal(&mut rng, (batch, out_dim), 1.0);
        let (other, x2, mut rng2) = setup(3, &[5, 6, 6, 6, 5], 4, &[0, 1, 2], seed ^ 1);
        let v2 = normal(&mut rng2, x2.dim(), 1.0);
        let c2 = normal(&mut rng2, (4, 5), 1.0);

        let mut fresh_tape = Tape::new();
        let fresh = step::<f64>(&mut fresh_tape, &mlp, &x, &v, &c);
        let mut other_tape = Tape::new();
        step::<f64>(&mut other_tape, &other, &x2, &v2, &c2);
        let mut t = Tape::new();
        let first = step(&mut t, &mlp, &x, &v, &c);
        prop_assert_eq!(t.len(), fresh_tape.len());
        step(&mut t, &other, &x2, &v2, &c2);
        prop_assert_eq!(t.len(), other_tape.len());
        let again = step(&mut t, &mlp, &x, &v, &c);
        prop_assert_eq!(t.len(), fresh_tape.len());
        prop_assert_eq!(&first, &fresh);
        prop_assert_eq!(&again, &fresh);
        t.clear();
        prop_assert!(t.is_empty());
    }

    /// The same step in f32 and in f64 agree within F32_REL_TOL: output, JVP, gradients and
    /// gradients of the JVP.
    ///
    /// Each quantity is measured against the scale its rounding is relative to, not against a
    /// value that cancels: the output and the JVP against the sums of absolute terms they are
    /// made of ([`Mlp::abs_chain`]), a gradient tensor against the largest entry of its whole
    /// gradient (as the optimiser sees it). The nets are drawn well conditioned: every layer at
    /// least 2 wide, since a width-1 bottleneck whose one unit sits at a zero of f' (or a
    /// saturated tanh, where f32's 1 - tanh^2 keeps no relative digits) leaves a whole gradient
    /// at 1e-5 of its terms, and then f32 keeps 2 digits of it whatever the engine does. For the
    /// same reason no hidden unit may sit deep in saturation, |pre-activation| > 4: there f32's
    /// 1 + tanh u of GELU (u = -5.5 at x = -4) or 1 - tanh^2 is below 4e-5 and keeps 3 digits
    /// or fewer, and the f'' of reverse over forward, which multiplies it by |x| u'^2 ~ 50, put
    /// 1.2e-4 of the whole gradient into one unit at x = -5 (seed 16169498721986368126, a
    /// 1-in-70 draw).
    #[test]
    fn f32_matches_f64((depth, widths, batch, acts, seed) in well_conditioned_mlp_strategy()) {
        let (mlp, x, mut rng) = setup(depth, &widths, batch, &acts, seed);
        prop_assume!(mlp.largest_pre_activation(&x) <= 4.0);
        let v = normal(&mut rng, x.dim(), 1.0);
        let out_dim = *widths[..depth + 2].last().unwrap();
        let c = normal(&mut rng, (batch, out_dim), 1.0);
        // Both paths start from the same f32-representable numbers, so only the arithmetic's
        // rounding separates them.
        let to_f32 = |a: &Array2<f64>| a.mapv(|x| x as f32 as f64);
        let mlp = Mlp { params: mlp.params.iter().map(to_f32).collect(), ..mlp };
        let (x, v, c) = (to_f32(&x), to_f32(&v), to_f32(&c));
        let r64 = step::<f64>(&mut Tape::new(), &mlp, &x, &v, &c);
        let r32 = step::<f32>(&mut Tape::new(), &mlp, &x, &v, &c);
        let quantities = |r: &StepResult<f64>| -> Vec<Array2<f64>> {
            [r.out.clone(), r.jvp.clone()]
                .into_iter()
                .chain(r.grads.iter().cloned())
                .chain(r.jvp_grads.iter().cloned())
                .collect()
        };
        let want = quantities(&r64);
        let got = quantities(&StepResult {
            out: r32.out.mapv(f64::from),
            jvp: r32.jvp.mapv(f64::from),
            grads: r32.grads.iter().map(|g| g.mapv(f64::from)).collect(),
            jvp_grads: r32.jvp_grads.iter().map(|g| g.mapv(f64::from)).collect(),
        });
        // A gradient is judged as a whole, as the optimiser sees it: each tensor against the
        // largest entry of its gradient (a bias gradient that cancels to 1e-4 carries the
        // absolute rounding of the O(1) sums it came from).
        let n = r64.grads.len();
        let family_scale = |range: std::ops::Range<usize>| {
            want[range].iter().map(max_abs).fold(ABS_FLOOR, f64::max)
        };
        let (grads_scale, jvp_grads_scale) = (family_scale(2..2 + n), family_scale(2 + n..2 + 2 * n));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = match i {
                0 => max_abs(w).max(max_abs(&mlp.abs_chain(&x, true))),
                1 => max_abs(w).max(max_abs(&mlp.abs_chain(&v, false))),
                i if i < 2 + n => grads_scale,
                _ => jvp_grads_scale,
            };
            let rel = max_abs_difference(g, w) / scale;
            prop_assert!(rel < F32_REL_TOL, "quantity {}: f32 vs f64 rel {:e} (scale {:e})", i, rel, scale);
        }
    }
}

/// max_ij |a_ij - b_ij|.
fn max_abs_difference(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let mut m = 0.0f64;
    Zip::from(a)
        .and(b)
        .for_each(|&x, &y| m = m.max((x - y).abs()));
    m
}
