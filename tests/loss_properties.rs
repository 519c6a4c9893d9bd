//! Properties of the MeanFlow losses on random small models and batches, each against the
//! independent oracle of tests/common/loss_oracle.rs (the network as loops over scalars, its JVP
//! by dual numbers, no tape and no code of `record_loss`):
//!
//! - exact variants: the gradient is the derivative of the loss value (beta = 0, p = 0: nothing
//!   is stopped, plain central differences), and in general the derivative of the oracle's loss
//!   with its stop-gradient quantities (tangent, w) frozen at their values at the base parameters;
//! - stop-gradient variants: the gradient is the derivative of the oracle's loss with tangent,
//!   dudt and w frozen, L(s) = mean_i w_i |u_{params + s dir}(z, r, t) + (t - r) dudt_i - v_c|^2
//!   (+ v-head); at the base point that loss equals `record_loss`'s value;
//! - the recorded tangent is the oracle's, and dudt is the directional derivative of the oracle's
//!   u along (tangent, 0, 1) on (z, r, t);
//! - beta = 0 is the classic MF u-form |u - sg(v_c - (t - r) dudt)|^2, written out on scalars:
//!   same value and gradient;
//! - iMF (boundary source): rows with r == t have delta = u - v_c exactly, whatever dudt is.
//!
//! Derivatives are compared along one random unit direction in parameter space, with central
//! differences and the tolerances of `meanflow::verify::check` (FD_REL_TOL against the scale of
//! `fd_relative_error`; REWRITE_REL_TOL between two evaluations of one value in different
//! arithmetic orders). The number of cases per property is 24; set the environment variable
//! `LOSS_PROPERTY_CASES` to run more.

#[path = "common/loss_oracle.rs"]
mod loss_oracle;

use loss_oracle::{freeze, frozen_loss, Problem};
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Tape, Var};
use meanflow::flow::loss::{loss_and_gradients, record_loss, Batch, LossConfig, VSource};
use meanflow::flow::model::{Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::rng::Rng;
use meanflow::verify::check::{
    central_difference, fd_relative_error, inner, scalar_relative_error, FD_REL_TOL,
    REWRITE_REL_TOL,
};
use ndarray::{s, Array2};
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
        Just(Conditioning::Fourier { frequencies: 2 }),
        Just(Conditioning::RawH),
        Just(Conditioning::FourierH { frequencies: 1 })
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
            ..ModelConfig::default()
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
            guidance_interval: None,
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
                intervals: ndarray::Array2::zeros((0, 2)),
            },
            direction_seed: rng.next_u64(),
        }
    }
}

// ----- helpers ------------------------------------------------------------------------------------

/// A random direction in parameter space (every tensor, the class table included) with unit
/// Euclidean norm.
fn unit_direction(params: &MlpParams<f64>, seed: u64) -> MlpParams<f64> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut dir = params.zeros_like();
    for a in dir.tensors_mut() {
        a.mapv_inplace(|_| rng.normal());
    }
    let norm = dot(&dir, &dir).sqrt();
    for a in dir.tensors_mut() {
        *a /= norm;
    }
    // A zero direction would make every directional check pass with 0 = 0.
    assert!(
        (dot(&dir, &dir) - 1.0).abs() < 1e-12,
        "direction of norm {norm}"
    );
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
    for (a, d) in out.tensors_mut().zip(dir.tensors()) {
        a.scaled_add(s, d);
    }
    out
}

impl Case {
    fn problem(&self) -> Problem<'_> {
        Problem {
            model: &self.model,
            loss: &self.loss,
            batch: &self.batch,
        }
    }
}

/// The loss's intermediate values at the case's parameters, from `record_loss`.
struct Recorded {
    /// Rows 0..tangent_rows (the rows that carry the JVP).
    tangent: Array2<f64>,
    tangent_rows: usize,
    u: Array2<f64>,
    dudt: Array2<f64>,
    delta: Array2<f64>,
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
        loss: tape.scalar(n.loss),
    }
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

/// The gradient against central differences of the oracle's frozen loss (see
/// [`loss_oracle::frozen_loss`]), which at the base point is the recorded loss.
fn check_against_frozen_loss(case: &Case) -> Result<(), TestCaseError> {
    let problem = case.problem();
    let frozen = freeze(&problem, &case.params);
    let at_base = frozen_loss(&problem, &frozen, &case.params);
    let recorded = record(case).loss;
    prop_assert!(
        scalar_relative_error(recorded, at_base) <= REWRITE_REL_TOL,
        "record_loss gives {recorded}, the oracle {at_base}"
    );
    let dir = unit_direction(&case.params, case.direction_seed);
    let analytic = directional_gradient(case, &dir);
    let fd =
        central_difference(|s| frozen_loss(&problem, &frozen, &shifted(&case.params, &dir, s)));
    let err = fd_relative_error(analytic, fd, at_base);
    prop_assert!(
        err <= FD_REL_TOL,
        "<grad, dir> = {analytic:.12e}, FD of the frozen loss {fd:.12e}: relative error {err:.2e}"
    );
    Ok(())
}

/// |a - b| <= REWRITE_REL_TOL (1 + |b|) for every entry of a row: two evaluations of one
/// quantity in different arithmetic orders, of size O(1) (random models at PyTorch's init).
fn rows_agree(a: ndarray::ArrayView1<f64>, b: &[f64]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= REWRITE_REL_TOL * (1.0 + y.abs()))
}

/// The classic MF loss on scalars: dudt along (v_c, 0, 1) at the base parameters, the target
/// u_tgt = v_c - (t - r) dudt and the weights w = (|u - u_tgt|^2 + c)^-p frozen there, then
/// mean_i w_i |u_i(params) - u_tgt,i|^2, plus the v-head's mean_i w_v,i |v_i(params) - v_c,i|^2.
struct ClassicMf {
    target: Vec<Vec<f64>>,
    w: Vec<f64>,
    w_v: Vec<f64>,
}

impl ClassicMf {
    fn at(case: &Case) -> ClassicMf {
        let (b, loss) = (&case.batch, &case.loss);
        let mut classic = ClassicMf {
            target: vec![],
            w: vec![],
            w_v: vec![],
        };
        for i in 0..b.len() {
            let (z, v_c) = (loss_oracle::z_row(b, i), loss_oracle::v_c_row(b, i));
            let (r, t) = (b.r[[i, 0]], b.t[[i, 0]]);
            let (u, dudt) = loss_oracle::jvp(&case.model, &case.params, &z, &v_c, r, t, 0, 1.0);
            let target: Vec<f64> = (0..v_c.len()).map(|j| v_c[j] - (t - r) * dudt[j]).collect();
            let ell: f64 = u.iter().zip(&target).map(|(u, g)| (u - g) * (u - g)).sum();
            classic.w.push((ell + loss.c).powf(-loss.p));
            if let (_, Some(v)) = loss_oracle::net(&case.model, &case.params, &z, t, t, 0, 1.0) {
                let ell_v: f64 = v.iter().zip(&v_c).map(|(v, g)| (v - g) * (v - g)).sum();
                classic.w_v.push((ell_v + loss.c).powf(-loss.p));
            }
            classic.target.push(target);
        }
        classic
    }

    fn loss(&self, case: &Case, params: &MlpParams<f64>) -> f64 {
        let b = &case.batch;
        let mut total = 0.0;
        for i in 0..b.len() {
            let (z, v_c) = (loss_oracle::z_row(b, i), loss_oracle::v_c_row(b, i));
            let (r, t) = (b.r[[i, 0]], b.t[[i, 0]]);
            let (u, _) = loss_oracle::net(&case.model, params, &z, r, t, 0, 1.0);
            let ell: f64 = u
                .iter()
                .zip(&self.target[i])
                .map(|(u, g)| (u - g) * (u - g))
                .sum();
            total += self.w[i] * ell;
            if let (_, Some(v)) = loss_oracle::net(&case.model, params, &z, t, t, 0, 1.0) {
                let ell_v: f64 = v.iter().zip(&v_c).map(|(v, g)| (v - g) * (v - g)).sum();
                total += self.w_v[i] * ell_v;
            }
        }
        total / b.len() as f64
    }
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

    /// The recorded tangent is the oracle's, and dudt is the derivative of
    /// s -> u(z + s tangent, r, t + s) at s = 0 (the oracle's u, by central differences) on the
    /// rows that carry the JVP; past them (rows with r = t at the end of the batch) it is exactly
    /// zero.
    #[test]
    fn dudt_is_the_directional_derivative_of_u(spec in spec()) {
        let case = spec.build();
        let rec = record(&case);
        let frozen = freeze(&case.problem(), &case.params);
        let k = rec.tangent_rows;
        let b = &case.batch;
        prop_assert!(rec.dudt.slice(s![k.., ..]).iter().all(|&x| x == 0.0));
        for i in k..b.len() {
            prop_assert_eq!(b.r[[i, 0]], b.t[[i, 0]]);
        }
        let u_scale = rec.u.iter().fold(0.0f64, |m, u| m.max(u.abs()));
        for i in 0..k {
            prop_assert!(rows_agree(rec.tangent.row(i), &frozen.tangent[i]),
                "row {i}: tangent {} vs the oracle's {:?}", rec.tangent.row(i), frozen.tangent[i]);
            prop_assert!(rows_agree(rec.dudt.row(i), &frozen.dudt[i]),
                "row {i}: dudt {} vs the oracle's dual numbers {:?}", rec.dudt.row(i), frozen.dudt[i]);
            let (z, r, t) = (loss_oracle::z_row(b, i), b.r[[i, 0]], b.t[[i, 0]]);
            let tangent = &frozen.tangent[i];
            for j in 0..case.model.dim {
                let fd = central_difference(|s| {
                    let zs: Vec<f64> = z.iter().zip(tangent).map(|(z, d)| z + s * d).collect();
                    loss_oracle::net(&case.model, &case.params, &zs, r, t + s, 0, 1.0).0[j]
                });
                let err = fd_relative_error(rec.dudt[[i, j]], fd, u_scale);
                prop_assert!(err <= FD_REL_TOL,
                    "dudt [{i}, {j}] = {} vs FD {fd}: relative error {err:.2e}", rec.dudt[[i, j]]);
            }
        }
    }

    /// beta = 0 (MF) in velocity form equals the classic u-form
    /// mean_i w_i |u - sg(v_c - (t - r) dudt)|^2, w from the u-form's own ell, in value and gradient.
    #[test]
    fn mf_equals_the_classic_u_form(spec in spec()) {
        let case = Spec { beta: 0.0, exact: false, ..spec }.build();
        let mut tape = Tape::new();
        let (values, grads) =
            loss_and_gradients(&mut tape, &case.model, &case.params, &case.loss, &case.batch);

        let classic = ClassicMf::at(&case);
        let classic_loss = classic.loss(&case, &case.params);
        let err = scalar_relative_error(values.loss, classic_loss);
        prop_assert!(err <= REWRITE_REL_TOL, "loss {} vs classic {classic_loss}: {err:.2e}", values.loss);
        let dir = unit_direction(&case.params, case.direction_seed);
        let analytic = dot(&grads, &dir);
        let fd = central_difference(|s| classic.loss(&case, &shifted(&case.params, &dir, s)));
        let err = fd_relative_error(analytic, fd, classic_loss);
        prop_assert!(err <= FD_REL_TOL, "<grad, dir> = {analytic:.12e}, FD of the classic loss {fd:.12e}: {err:.2e}");
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

/// The presets by name (both ways), with every option they set (the papers' beta and velocity source, with
/// p = 0: plain squared error), and a name that is not a preset refused.
#[test]
fn presets_by_name_give_their_documented_options() {
    use meanflow::flow::guidance::Guidance;
    use meanflow::flow::loss::LossPreset;
    for (name, preset, beta, v_source) in [
        ("mf", LossPreset::Mf, 0.0, VSource::Boundary),
        ("imf", LossPreset::Imf, 1.0, VSource::Boundary),
        ("imf-head", LossPreset::ImfHead, 1.0, VSource::Head),
    ] {
        assert_eq!(name.parse::<LossPreset>(), Ok(preset), "{name}");
        assert_eq!(preset.name(), name);
        let want = LossConfig {
            beta,
            v_source,
            exact: false,
            p: 0.0,
            c: 1e-3,
            guidance: Guidance::None,
            label_dropout: 0.0,
            guidance_interval: None,
        };
        assert_eq!(LossConfig::preset(preset), want, "{name}");
    }
    assert!("imff".parse::<LossPreset>().is_err());
}

/// A batch's length is its rows; only a batch of no rows is empty; `Batch::zeros` fits its model
/// (labels of the null class, scales 1 where the model takes them).
#[test]
fn batch_length_emptiness_and_zeros() {
    let mut model = Spec {
        dim: 3,
        width: 2,
        depth: 1,
        activation: Elementwise::Tanh,
        conditioning: Conditioning::Raw,
        heads: Heads::U,
        batch: 1,
        equal_rows: 0,
        beta: 0.0,
        p: 0.0,
        c: 1e-3,
        head_source: false,
        exact: false,
        seed: 1,
    }
    .build()
    .model;
    for rows in [0, 1, 5] {
        let batch = Batch::<f64>::zeros(rows, &model);
        assert_eq!((batch.len(), batch.is_empty()), (rows, rows == 0));
        assert_eq!(batch.x.dim(), (rows, 3));
        batch.check(&model);
    }
    model.classes = 4;
    model.class_dim = 2;
    model.guidance_input = true;
    let batch = Batch::<f32>::zeros(3, &model);
    assert_eq!(batch.labels, vec![4; 3]);
    assert_eq!(batch.scales, Array2::<f32>::ones((3, 1)));
    batch.check(&model);
}

/// `tangent_rows`: with row-prefix tangents on (the default), one past the last row with r != t
/// (at least 1, so that the tangent nodes are never empty); off, every row.
#[test]
fn tangent_rows_end_after_the_last_row_with_a_gap() {
    use meanflow::autodiff::tape::Optimizations;
    use meanflow::flow::loss::tangent_rows;
    let batch_with = |r_equals_t: &[bool]| {
        let b = r_equals_t.len();
        let t = Array2::from_elem((b, 1), 0.8);
        let r = Array2::from_shape_fn((b, 1), |(i, _)| if r_equals_t[i] { 0.8 } else { 0.3 });
        Batch::new(Array2::zeros((b, 2)), Array2::zeros((b, 2)), t, r)
    };
    let on = Tape::<f64>::new();
    let mut off = Tape::<f64>::new();
    off.set_optimizations(Optimizations {
        row_prefix_tangents: false,
        ..Optimizations::default()
    });
    for (rows, want) in [
        (vec![false, false, true, true, true], 2),
        (vec![false, true, false, true], 3),
        (vec![false; 4], 4),
        (vec![true; 3], 1),
        (vec![true, true, false], 3),
    ] {
        let batch = batch_with(&rows);
        assert_eq!(tangent_rows(&on, &batch), want, "{rows:?}");
        assert_eq!(tangent_rows(&off, &batch), rows.len(), "{rows:?}");
    }
}

/// MF (beta = 0) does not compute v_hat (`LossNodes::v_hat` is None: the tangent does not use
/// it); any beta > 0 does, on the rows that carry the JVP.
#[test]
fn v_hat_is_recorded_only_when_the_tangent_uses_it() {
    for beta in [0.0, 1e-9, 0.5, 1.0] {
        let case = Spec {
            dim: 2,
            width: 3,
            depth: 1,
            activation: Elementwise::Tanh,
            conditioning: Conditioning::Raw,
            heads: Heads::U,
            batch: 4,
            equal_rows: 0,
            beta,
            p: 0.0,
            c: 1e-3,
            head_source: false,
            exact: false,
            seed: 3,
        }
        .build();
        let mut tape = Tape::new();
        let vars = case.params.on_tape(&mut tape);
        let nodes = record_loss(&mut tape, &case.model, &vars, &case.loss, &case.batch);
        match nodes.v_hat {
            None => assert_eq!(beta, 0.0, "beta {beta} without v_hat"),
            Some(v_hat) => {
                assert!(beta > 0.0, "v_hat recorded for MF");
                assert_eq!(tape.shape(v_hat), (nodes.tangent_rows, 2));
            }
        }
    }
}
