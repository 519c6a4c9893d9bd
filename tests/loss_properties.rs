//! Properties of the MeanFlow losses on random small models and batches, each against an oracle
//! that does not go through `record_loss`:
//!
//! - exact variants: the gradient is the derivative of the loss value (beta = 0, p = 0: nothing
//!   is stopped, plain central differences), and in general the derivative of the loss with its
//!   stop-gradient quantities (tangent, w) frozen at their values at the base parameters;
//! - stop-gradient variants: the gradient is the derivative of the loss with tangent, dudt and w
//!   frozen, L(s) = mean_i w_i |u_{params + s dir}(z, r, t) + (t - r) dudt_i - v_c|^2 (+ v-head);
//! - dudt is the directional derivative of u along (tangent, 0, 1) on (z, r, t);
//! - beta = 0 is the classic MF u-form |u - sg(v_c - (t - r) dudt)|^2: same value and gradient;
//! - iMF (boundary source): rows with r == t have delta = u - v_c exactly, whatever dudt is.
//!
//! Derivatives are compared along one random unit direction in parameter space, with central
//! differences and the tolerances of `meanflow::verify::check` (FD_REL_TOL against the scale of
//! `fd_relative_error`; REWRITE_REL_TOL between the two forms of MF). The number of cases per
//! property is 24; set the environment variable `LOSS_PROPERTY_CASES` to run more (20000 pass).

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Tape, Var};
use meanflow::flow::loss::{loss_and_gradients, record_loss, Batch, LossConfig, VSource};
use meanflow::flow::model::{Conditioning, Heads, MlpParams, ModelConfig, TapeModel};
use meanflow::rng::Rng;
use meanflow::verify::check::{
    central_difference, central_difference_array, fd_relative_error, fd_relative_error_array,
    inner, relative_error, scalar_relative_error, FD_REL_TOL, REWRITE_REL_TOL,
};
use ndarray::{s, Array2, Axis};
use proptest::prelude::*;
use rand::RngCore;

// ----- random cases -------------------------------------------------------------------------------

/// A model, its parameters, a batch, and a loss configuration.
#[derive(Clone, Debug)]
struct Case {
    model: ModelConfig,
    loss: LossConfig,
    params: MlpParams<f64>,
    batch: Batch<f64>,
    /// Seed of the random direction in parameter space.
    direction_seed: u64,
}

/// What the strategy draws; everything random beyond it comes from `seed`.
#[derive(Clone, Copy, Debug)]
struct Spec {
    dim: usize,
    width: usize,
    depth: usize,
    activation: Elementwise,
    conditioning: Conditioning,
    heads: Heads,
    batch: usize,
    /// The first `equal_rows` rows (at most `batch`) have r == t.
    equal_rows: usize,
    beta: f64,
    p: f64,
    c: f64,
    /// v_source = head, when the model has a v-head.
    head_source: bool,
    exact: bool,
    seed: u64,
}

fn cases() -> u32 {
    std::env::var("LOSS_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn spec() -> impl Strategy<Value = Spec> {
    let activation = prop_oneof![
        Just(Elementwise::Silu),
        Just(Elementwise::Tanh),
        Just(Elementwise::GeluTanh),
        Just(Elementwise::Softplus),
    ];
    let conditioning = prop_oneof![
        Just(Conditioning::Raw),
        Just(Conditioning::Fourier { frequencies: 2 })
    ];
    let heads = prop_oneof![Just(Heads::U), Just(Heads::UV)];
    let beta = prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0..=1.0];
    let p = prop_oneof![Just(0.0), Just(0.5), Just(1.0)];
    let c = prop_oneof![Just(1e-3), 1e-3..1.0];
    let shape = (
        1usize..=3,
        1usize..=6,
        0usize..=3,
        activation,
        conditioning,
        heads,
    );
    let rows = (1usize..=5, 0usize..=5);
    let options = (beta, p, c, any::<bool>(), any::<bool>(), any::<u64>());
    (shape, rows, options).prop_map(
        |(
            (dim, width, depth, activation, conditioning, heads),
            (batch, equal_rows),
            (beta, p, c, head_source, exact, seed),
        )| Spec {
            dim,
            width,
            depth,
            activation,
            conditioning,
            heads,
            batch,
            equal_rows: equal_rows.min(batch),
            beta,
            p,
            c,
            head_source,
            exact,
            seed,
        },
    )
}

impl Spec {
    /// Parameters by `MlpParams::init`, then x, e ~ N(0, 1), t ~ U(0.05, 0.95), r ~ U(0, t) or r = t.
    fn build(self) -> Case {
        let model = ModelConfig {
            dim: self.dim,
            width: self.width,
            depth: self.depth,
            activation: self.activation,
            conditioning: self.conditioning,
            heads: self.heads,
            classes: 0,
            class_dim: 0,
            guidance_input: false,
        };
        let v_source = if self.head_source && self.heads == Heads::UV {
            VSource::Head
        } else {
            VSource::Boundary
        };
        let loss = LossConfig {
            beta: self.beta,
            v_source,
            exact: self.exact,
            p: self.p,
            c: self.c,
            guidance: Default::default(),
            label_dropout: 0.0,
        };
        loss.validate(&model).expect("valid loss options");
        let mut rng = Rng::seed_from_u64(self.seed);
        let params = MlpParams::init(&model, &mut rng);
        let (b, d) = (self.batch, self.dim);
        let x = Array2::from_shape_simple_fn((b, d), || rng.normal());
        let e = Array2::from_shape_simple_fn((b, d), || rng.normal());
        let t = Array2::from_shape_simple_fn((b, 1), || rng.uniform_range(0.05, 0.95));
        let mut r = t.clone();
        for i in self.equal_rows..b {
            r[[i, 0]] = rng.uniform_range(0.0, t[[i, 0]]);
        }
        Case {
            model,
            loss,
            params,
            batch: Batch {
                x,
                e,
                t,
                r,
                labels: Vec::new(),
                scales: ndarray::Array2::zeros((0, 1)),
            },
            direction_seed: rng.next_u64(),
        }
    }
}

// ----- helpers ------------------------------------------------------------------------------------

/// A random direction in parameter space with unit Euclidean norm.
fn unit_direction(params: &MlpParams<f64>, seed: u64) -> MlpParams<f64> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut dir = params.zeros_like();
    for l in dir.layers_mut() {
        l.weight.mapv_inplace(|_| rng.normal());
        l.bias.mapv_inplace(|_| rng.normal());
    }
    let norm = dot(&dir, &dir).sqrt();
    for l in dir.layers_mut() {
        l.weight /= norm;
        l.bias /= norm;
    }
    dir
}

/// <a, b> summed over every parameter tensor.
fn dot(a: &MlpParams<f64>, b: &MlpParams<f64>) -> f64 {
    a.named_tensors()
        .iter()
        .zip(b.named_tensors())
        .map(|((_, x), (_, y))| inner(x.view(), y.view()))
        .sum()
}

/// params + s dir.
fn shifted(params: &MlpParams<f64>, dir: &MlpParams<f64>, s: f64) -> MlpParams<f64> {
    let mut out = params.clone();
    for (l, d) in out.layers_mut().into_iter().zip(dir.layers()) {
        l.weight.scaled_add(s, &d.1.weight);
        l.bias.scaled_add(s, &d.1.bias);
    }
    out
}

/// The loss's intermediate values at the given parameters, from `record_loss`.
struct Recorded {
    /// Rows 0..tangent_rows (the rows that carry the JVP).
    tangent: Array2<f64>,
    tangent_rows: usize,
    u: Array2<f64>,
    dudt: Array2<f64>,
    delta: Array2<f64>,
    w: Array2<f64>,
    w_v: Option<Array2<f64>>,
    loss: f64,
}

fn record(case: &Case) -> Recorded {
    let mut tape = Tape::new();
    let vars = case.params.on_tape(&mut tape);
    let n = record_loss(&mut tape, &case.model, &vars, &case.loss, &case.batch);
    let get = |v: Var| tape.value(v).to_owned();
    Recorded {
        tangent: get(n.tangent),
        tangent_rows: n.tangent_rows,
        u: get(n.u),
        dudt: get(n.dudt),
        delta: get(n.delta),
        w: get(n.w),
        w_v: n.v_head.map(|v| get(v.w_v)),
        loss: tape.scalar(n.loss),
    }
}

/// u(z, r, t) and, when `tangent` is given, its JVP along (tangent, 0, 1), on a fresh tape
/// (`TapeModel::u` directly, not `record_loss`). Also v(z, t) when the model has a v-head.
fn network(
    model: &ModelConfig,
    params: &MlpParams<f64>,
    z: &Array2<f64>,
    r: &Array2<f64>,
    t: &Array2<f64>,
    tangent: Option<&Array2<f64>>,
) -> (Array2<f64>, Option<Array2<f64>>, Option<Array2<f64>>) {
    let mut tape = Tape::new();
    let vars = params.on_tape(&mut tape);
    let net = TapeModel::new(*model, &vars);
    let (zv, rv, tv) = (
        tape.constant(z.view()),
        tape.constant(r.view()),
        tape.constant(t.view()),
    );
    let v = (model.heads == Heads::UV).then(|| net.v_head(&mut tape, zv, tv));
    if let Some(tangent) = tangent {
        let tangent = tape.constant(tangent.view());
        let ones = tape.full(t.dim(), 1.0);
        tape.set_tangent(zv, tangent);
        tape.set_tangent(tv, ones);
    }
    let u = net.u(&mut tape, zv, rv, tv);
    let dudt = tangent.map(|_| {
        let d = tape.tangent_or_zeros(u);
        tape.value(d).to_owned()
    });
    (
        tape.value(u).to_owned(),
        dudt,
        v.map(|v| tape.value(v).to_owned()),
    )
}

/// mean_i w_i sum_j delta_ij^2, in plain f64 arithmetic.
fn weighted_mean_square(delta: &Array2<f64>, w: &Array2<f64>) -> f64 {
    let ell = delta.mapv(|x| x * x).sum_axis(Axis(1));
    ell.iter().zip(w.iter()).map(|(l, w)| l * w).sum::<f64>() / delta.nrows() as f64
}

/// The loss at `params` with the stop-gradient quantities frozen at the base point's values
/// `base`: the tangent and w, w_v always; dudt too unless the variant is exact (then dudt is the
/// JVP at `params` along the frozen tangent).
fn frozen_loss(case: &Case, base: &Recorded, params: &MlpParams<f64>) -> f64 {
    let b = &case.batch;
    let (z, v_c) = (b.z(), b.v_c());
    let tangent = case.loss.exact.then_some(&base.tangent);
    let (u, dudt, v) = network(&case.model, params, &z, &b.r, &b.t, tangent);
    let dudt = dudt.unwrap_or_else(|| base.dudt.clone());
    let h = &b.t - &b.r;
    let delta = &u + &(&h * &dudt) - &v_c;
    let mut loss = weighted_mean_square(&delta, &base.w);
    if let Some(v) = v {
        loss += weighted_mean_square(&(&v - &v_c), base.w_v.as_ref().expect("w_v"));
    }
    loss
}

/// <d loss / d params, dir> from `loss_and_gradients`.
fn directional_gradient(case: &Case, dir: &MlpParams<f64>) -> f64 {
    let mut tape = Tape::new();
    let (_, grads) = loss_and_gradients(
        &mut tape,
        &case.model,
        &case.params,
        &case.loss,
        &case.batch,
    );
    dot(&grads, dir)
}

/// The gradient against central differences of the frozen loss (see [`frozen_loss`]).
fn check_against_frozen_loss(case: &Case) -> Result<(), TestCaseError> {
    let base = record(case);
    let at_base = frozen_loss(case, &base, &case.params);
    prop_assert!(
        scalar_relative_error(at_base, base.loss) <= REWRITE_REL_TOL,
        "frozen loss {at_base} differs from the loss {} at the base point",
        base.loss
    );
    let dir = unit_direction(&case.params, case.direction_seed);
    let analytic = directional_gradient(case, &dir);
    let fd = central_difference(|s| frozen_loss(case, &base, &shifted(&case.params, &dir, s)));
    let err = fd_relative_error(analytic, fd, base.loss);
    prop_assert!(
        err <= FD_REL_TOL,
        "<grad, dir> = {analytic:.12e}, FD of the frozen loss {fd:.12e}: relative error {err:.2e}"
    );
    Ok(())
}

// ----- the properties ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Exact MF with p = 0 stops nothing that depends on the parameters (tangent = v_c, w = 1):
    /// the gradient is the derivative of the loss value itself.
    #[test]
    fn exact_mf_gradient_is_the_derivative_of_the_loss(spec in spec()) {
        let case = Spec { beta: 0.0, p: 0.0, exact: true, ..spec }.build();
        let dir = unit_direction(&case.params, case.direction_seed);
        let analytic = directional_gradient(&case, &dir);
        let loss_at = |s: f64| {
            let mut tape = Tape::new();
            let params = shifted(&case.params, &dir, s);
            loss_and_gradients(&mut tape, &case.model, &params, &case.loss, &case.batch).0.loss
        };
        let fd = central_difference(loss_at);
        let err = fd_relative_error(analytic, fd, loss_at(0.0));
        prop_assert!(err <= FD_REL_TOL, "<grad, dir> = {analytic:.12e}, FD {fd:.12e}: {err:.2e}");
    }

    /// Exact variants, any beta and p: the gradient (through dudt, reverse over forward) is the
    /// derivative of the loss with the tangent and the weights frozen.
    #[test]
    fn exact_gradient_is_the_derivative_of_the_frozen_loss(spec in spec()) {
        check_against_frozen_loss(&Spec { exact: true, ..spec }.build())?;
    }

    /// Stop-gradient variants: the gradient is the derivative of the loss with the tangent, dudt
    /// and the weights frozen.
    #[test]
    fn stop_gradient_is_the_derivative_of_the_frozen_loss(spec in spec()) {
        check_against_frozen_loss(&Spec { exact: false, ..spec }.build())?;
    }

    /// dudt is the derivative of s -> u(z + s tangent, r, t + s) at s = 0, on the rows that carry
    /// the JVP; past them (rows with r = t at the end of the batch) it is exactly zero.
    #[test]
    fn dudt_is_the_directional_derivative_of_u(spec in spec()) {
        let case = spec.build();
        let rec = record(&case);
        let k = rec.tangent_rows;
        let b = &case.batch;
        let (z, r, t) = (b.z(), b.r.slice(s![..k, ..]).to_owned(), b.t.slice(s![..k, ..]).to_owned());
        let z = z.slice(s![..k, ..]).to_owned();
        let fd = central_difference_array(|s| {
            let zs = &z + &(s * &rec.tangent);
            let ts = t.mapv(|t| t + s);
            network(&case.model, &case.params, &zs, &r, &ts, None).0
        });
        prop_assert!(rec.dudt.slice(s![k.., ..]).iter().all(|&x| x == 0.0));
        for i in k..b.len() {
            prop_assert_eq!(b.r[[i, 0]], b.t[[i, 0]]);
        }
        let u_scale = rec.u.iter().fold(0.0f64, |m, u| m.max(u.abs()));
        let err = fd_relative_error_array(rec.dudt.slice(s![..k, ..]), fd.view(), u_scale);
        prop_assert!(err <= FD_REL_TOL, "dudt vs FD: relative error {err:.2e}\n{}\n{fd}", rec.dudt);
    }

    /// beta = 0 (MF) in velocity form equals the classic u-form
    /// mean_i w_i |u - sg(v_c - (t - r) dudt)|^2, w from the u-form's own ell, in value and gradient.
    #[test]
    fn mf_equals_the_classic_u_form(spec in spec()) {
        let case = Spec { beta: 0.0, exact: false, ..spec }.build();
        let mut tape = Tape::new();
        let (values, grads) =
            loss_and_gradients(&mut tape, &case.model, &case.params, &case.loss, &case.batch);

        let (classic_loss, classic_grads) = classic_mf(&case);
        let err = scalar_relative_error(classic_loss, values.loss);
        prop_assert!(err <= REWRITE_REL_TOL, "loss {} vs classic {classic_loss}: {err:.2e}", values.loss);
        for ((name, g), (_, g_classic)) in grads.named_tensors().into_iter().zip(classic_grads.named_tensors()) {
            let err = relative_error(g, g_classic);
            prop_assert!(err <= REWRITE_REL_TOL, "grad {name}: relative error {err:.2e}");
        }
    }

    /// iMF with v_source = boundary: where r == t, delta = u - v_c exactly (h = 0 multiplies dudt),
    /// and u there is v_hat itself, so those rows are v_hat - v_c, in the exact variant too.
    #[test]
    fn imf_rows_with_r_equal_t_ignore_dudt(spec in spec()) {
        let spec = Spec { beta: 1.0, head_source: false, equal_rows: spec.equal_rows.max(1), ..spec };
        let case = spec.build();
        let rec = record(&case);
        let v_c = case.batch.v_c();
        for i in 0..spec.equal_rows {
            prop_assert_eq!(case.batch.r[[i, 0]], case.batch.t[[i, 0]]);
            let expected = &rec.u.row(i) - &v_c.row(i);
            prop_assert_eq!(rec.delta.row(i), expected.view(), "row {}", i);
            // beta = 1, boundary source: the tangent is v_hat = u(z, t, t), and u at r = t is it
            // (on the rows that carry the JVP).
            if i < rec.tangent_rows {
                prop_assert_eq!(rec.tangent.row(i), rec.u.row(i), "row {}", i);
            }
        }
    }
}

/// The classic MF loss, recorded by hand on a tape: the v-head term as in `record_loss`, then
/// u with its JVP along (v_c, 0, 1), the target sg(v_c - (t - r) dudt), and the weights
/// w = sg((ell + c)^-p) of ell = |u - target|^2. Returns the loss and its gradients.
fn classic_mf(case: &Case) -> (f64, MlpParams<f64>) {
    let (model, loss, b) = (&case.model, &case.loss, &case.batch);
    let mut tape = Tape::new();
    let vars = case.params.on_tape(&mut tape);
    let net = TapeModel::new(*model, &vars);
    let z = tape.constant(b.z().view());
    let v_c = tape.constant(b.v_c().view());
    let t = tape.constant(b.t.view());
    let r = tape.constant(b.r.view());
    let weighted = |tape: &mut Tape<f64>, diff: Var| {
        let sq = tape.square(diff);
        let ell = tape.sum_cols(sq);
        let shifted = tape.add_scalar(ell, loss.c);
        let w = tape.map(shifted, Elementwise::Pow(-loss.p));
        let w = tape.stop_gradient(w);
        let wl = tape.mul(w, ell);
        tape.mean(wl)
    };
    let loss_v = (model.heads == Heads::UV).then(|| {
        let v = net.v_head(&mut tape, z, t);
        let diff = tape.sub(v, v_c);
        weighted(&mut tape, diff)
    });

    let ones = tape.full(b.t.dim(), 1.0);
    tape.set_tangent(z, v_c);
    tape.set_tangent(t, ones);
    let u = net.u(&mut tape, z, r, t);
    let dudt = tape.tangent_or_zeros(u);
    let h = tape.sub(t, r);
    let correction = tape.mul(h, dudt);
    let target = tape.sub(v_c, correction);
    let target = tape.stop_gradient(target);
    let diff = tape.sub(u, target);
    let mut total = weighted(&mut tape, diff);
    if let Some(loss_v) = loss_v {
        total = tape.add(total, loss_v);
    }
    tape.backward(total);
    (tape.scalar(total), MlpParams::gradients_from(&tape, &vars))
}
