//! The class-conditional losses with guidance (flow::guidance) against the independent oracle of
//! tests/common/loss_oracle.rs: the network written out as loops over scalars, its JVP taken with
//! dual numbers (forward mode, no tape), and the loss's gradient by central differences of the
//! loss with its stop-gradient quantities frozen at the base parameters (the definition of sg).
//! Every guidance kind, MF, iMF and a blend, the boundary and the v-head as the velocity source,
//! sg and exact, dropped labels, rows with r = t, odd sizes; iMF's guidance interval as an input,
//! with rows of a class inside and outside their interval; both trunks, `mlp` and `resmlp`.

#[path = "common/loss_oracle.rs"]
mod loss_oracle;

use loss_oracle::{freeze, frozen_loss, Problem};
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::Tape;
use meanflow::flow::guidance::Guidance;
use meanflow::flow::loss::{loss_and_gradients, record_loss, Batch, LossConfig, VSource};
use meanflow::flow::model::{Architecture, Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::rng::Rng;
use meanflow::verify::check::{central_difference, fd_relative_error, FD_REL_TOL};
use ndarray::Array2;

struct Case {
    model: ModelConfig,
    loss: LossConfig,
    batch: Batch<f64>,
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

fn make_case(guidance: Guidance, beta: f64, source: VSource, exact: bool, seed: u64) -> Case {
    make_case_with(guidance, beta, source, exact, seed, false)
}

/// With `interval`, the model takes iMF's guidance interval: rows 0 and 2 (of a class) are outside
/// theirs, rows 1 (null class) and 3 (a class) inside, the rows with r = t have [0, 1].
fn make_case_with(
    guidance: Guidance,
    beta: f64,
    source: VSource,
    exact: bool,
    seed: u64,
    interval: bool,
) -> Case {
    let mut rng = Rng::seed_from_u64(seed);
    let classes = 3;
    let model = ModelConfig {
        dim: 3,
        width: 5,
        depth: 2,
        architecture: Architecture::Mlp,
        activation: Elementwise::Tanh,
        conditioning: Conditioning::Fourier { frequencies: 1 },
        heads: if source == VSource::Head {
            Heads::UV
        } else {
            Heads::U
        },
        classes,
        class_dim: 2,
        guidance_input: guidance.is_input(),
        guidance_interval_input: interval,
    };
    let loss = LossConfig {
        beta,
        v_source: source,
        exact,
        p: 0.0,
        c: 1e-3,
        guidance,
        label_dropout: if guidance == Guidance::None { 0.0 } else { 0.1 },
        guidance_interval: None,
    };
    loss.validate(&model).unwrap();
    // 7 rows: 0..4 with r < t, then r = t; labels with the null class (3) twice.
    let b = 7;
    let mut normal = |rows, cols| Array2::from_shape_simple_fn((rows, cols), || rng.normal());
    let (x, e) = (normal(b, 3), normal(b, 3));
    let t = Array2::from_shape_fn((b, 1), |(i, _)| 0.95 - 0.11 * i as f64);
    let r = Array2::from_shape_fn((b, 1), |(i, _)| {
        if i < 4 {
            t[[i, 0]] * (0.2 + 0.15 * i as f64)
        } else {
            t[[i, 0]]
        }
    });
    let mut batch = Batch::new(x, e, t, r);
    batch.labels = vec![0, 3, 2, 1, 3, 0, 2];
    if model.guidance_input {
        batch.scales = Array2::from_shape_fn((b, 1), |(i, _)| 1.3 + 0.7 * i as f64);
    }
    if interval {
        // t = 0.95, 0.84, 0.73, 0.62 on rows 0..4.
        let rows = [[0.1, 0.6], [0.3, 0.9], [0.45, 0.7], [0.2, 0.8]];
        batch.intervals =
            Array2::from_shape_fn((b, 2), |(i, j)| rows.get(i).map_or(j as f64, |row| row[j]));
    }
    Case { model, loss, batch }
}

fn cases() -> Vec<Case> {
    let mut all = vec![];
    let mut seed = 10;
    for guidance in [
        Guidance::None,
        Guidance::Target { w: 2.0, kappa: 0.0 },
        Guidance::Target { w: 1.5, kappa: 0.4 },
        Guidance::Input { w_max: 6.0 },
    ] {
        for (beta, source) in [
            (0.0, VSource::Boundary),
            (1.0, VSource::Boundary),
            (0.5, VSource::Head),
            (1.0, VSource::Head),
        ] {
            for exact in [false, true] {
                seed += 1;
                all.push(make_case(guidance, beta, source, exact, seed));
                if guidance.is_input() {
                    seed += 1;
                    all.push(make_case_with(guidance, beta, source, exact, seed, true));
                }
            }
        }
    }
    // Every other case again on the residual trunk, whose blocks each see the condition.
    let residual: Vec<Case> = all
        .iter()
        .step_by(2)
        .map(|case| Case {
            model: ModelConfig {
                architecture: Architecture::Residual,
                ..case.model
            },
            loss: case.loss,
            batch: case.batch.clone(),
        })
        .collect();
    all.extend(residual);
    all
}

fn describe(case: &Case) -> String {
    format!(
        "{} {:?} beta {} {:?} exact {} interval input {}",
        case.model.architecture,
        case.loss.guidance,
        case.loss.beta,
        case.loss.v_source,
        case.loss.exact,
        case.model.guidance_interval_input
    )
}

/// The tape's v_g, tangent, dudt and loss value equal the oracle's at the base parameters.
#[test]
fn recorded_quantities_match_the_scalar_oracle() {
    for case in cases() {
        let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(99));
        let frozen = freeze(&case.problem(), &params);
        let mut tape = Tape::<f64>::new();
        let vars = params.on_tape(&mut tape);
        let nodes = record_loss(&mut tape, &case.model, &vars, &case.loss, &case.batch);
        let v_target = tape.value(nodes.v_target).to_owned();
        let tangent = tape.value(nodes.tangent).to_owned();
        let dudt = tape.value(nodes.dudt).to_owned();
        for i in 0..case.batch.len() {
            for j in 0..case.model.dim {
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
                assert!(
                    close(v_target[[i, j]], frozen.v_target[i][j]),
                    "{}: v_target [{i}, {j}] {} vs {}",
                    describe(&case),
                    v_target[[i, j]],
                    frozen.v_target[i][j]
                );
                if i < nodes.tangent_rows {
                    assert!(
                        close(tangent[[i, j]], frozen.tangent[i][j]),
                        "{}: tangent [{i}, {j}]",
                        describe(&case)
                    );
                    assert!(
                        close(dudt[[i, j]], frozen.dudt[i][j]),
                        "{}: dudt [{i}, {j}] {} vs {}",
                        describe(&case),
                        dudt[[i, j]],
                        frozen.dudt[i][j]
                    );
                }
            }
        }
        let value = tape.value(nodes.loss)[[0, 0]];
        let want = frozen_loss(&case.problem(), &frozen, &params);
        assert!(
            (value - want).abs() <= 1e-12 * want,
            "{}: loss {value} vs {want}",
            describe(&case)
        );
        if case.loss.guidance != Guidance::None {
            // Guidance moves the target off v_c on the rows with a class inside their interval,
            // not on the others.
            let v_c = tape.value(nodes.v_c).to_owned();
            for i in 0..case.batch.len() {
                let moved = (0..case.model.dim).any(|j| v_target[[i, j]] != v_c[[i, j]]);
                assert_eq!(
                    moved,
                    case.batch.labels[i] != case.model.classes && case.batch.inside_interval(i),
                    "{}: row {i}",
                    describe(&case)
                );
            }
            if case.model.guidance_interval_input {
                assert!(!case.batch.inside_interval(0) && !case.batch.inside_interval(2));
                assert!(case.batch.inside_interval(3));
            }
        }
    }
}

/// The tape's gradient, in random directions and along the class embedding alone, equals central
/// differences of the frozen loss.
#[test]
fn gradients_match_finite_differences_of_the_frozen_loss() {
    for case in cases() {
        let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(7));
        let frozen = freeze(&case.problem(), &params);
        let mut tape = Tape::<f64>::new();
        let (values, grads) =
            loss_and_gradients(&mut tape, &case.model, &params, &case.loss, &case.batch);
        let mut rng = Rng::seed_from_u64(5);
        for direction in 0..3 {
            let mut dir = params.zeros_like();
            for (k, tensor) in dir.tensors_mut().enumerate() {
                let embedding_only = direction == 2;
                let is_embedding = k == params.tensors().count() - 1;
                if !embedding_only || is_embedding {
                    tensor.mapv_inplace(|_| rng.normal());
                }
            }
            let tape_slope: f64 = grads
                .tensors()
                .zip(dir.tensors())
                .map(|(g, d)| (g * d).sum())
                .sum();
            let fd = central_difference(|s| {
                let mut p = params.clone();
                for (x, d) in p.tensors_mut().zip(dir.tensors()) {
                    *x = &*x + &(d * s);
                }
                frozen_loss(&case.problem(), &frozen, &p)
            });
            let err = fd_relative_error(tape_slope, fd, values.loss);
            assert!(
                err < FD_REL_TOL,
                "{}: direction {direction}: tape {tape_slope} vs FD {fd} (error {err:.2e})",
                describe(&case)
            );
        }
    }
}

/// Guidance with w = 1, kappa = 0 is no guidance: the same loss and gradient, bit for bit up to
/// the extra zero terms.
#[test]
fn unit_scale_target_guidance_is_no_guidance() {
    let plain = make_case(Guidance::None, 0.0, VSource::Boundary, false, 3);
    let mut unit = make_case(
        Guidance::Target { w: 1.0, kappa: 0.0 },
        0.0,
        VSource::Boundary,
        false,
        3,
    );
    unit.batch = plain.batch.clone();
    let params = MlpParams::<f64>::init(&plain.model, &mut Rng::seed_from_u64(1));
    let mut tape = Tape::<f64>::new();
    let (a, ga) = loss_and_gradients(&mut tape, &plain.model, &params, &plain.loss, &plain.batch);
    let (b, gb) = loss_and_gradients(&mut tape, &unit.model, &params, &unit.loss, &unit.batch);
    assert!(
        (a.loss - b.loss).abs() <= 1e-15 * a.loss,
        "{} vs {}",
        a.loss,
        b.loss
    );
    for (x, y) in ga.tensors().zip(gb.tensors()) {
        let diff = (x - y).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        assert!(diff <= 1e-14, "{diff}");
    }
}

/// The library's own boundary: a batch whose labels or scales do not fit the model is refused by
/// `record_loss` with the shapes named.
#[test]
#[should_panic(expected = "Batch: 0 labels for 7 rows of a model with 3 classes")]
fn a_batch_without_labels_is_refused() {
    let mut case = make_case(Guidance::None, 0.0, VSource::Boundary, false, 3);
    case.batch.labels.clear();
    let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(1));
    let mut tape = Tape::<f64>::new();
    loss_and_gradients(&mut tape, &case.model, &params, &case.loss, &case.batch);
}

#[test]
#[should_panic(expected = "Batch: guidance scale 0.5 is below 1")]
fn a_scale_below_one_is_refused() {
    let mut case = make_case(
        Guidance::Input { w_max: 3.0 },
        1.0,
        VSource::Boundary,
        false,
        3,
    );
    case.batch.scales[[2, 0]] = 0.5;
    let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(1));
    let mut tape = Tape::<f64>::new();
    loss_and_gradients(&mut tape, &case.model, &params, &case.loss, &case.batch);
}

#[test]
#[should_panic(expected = "Batch: guidance interval [0.7, 0.2] at row 1")]
fn a_reversed_interval_is_refused() {
    let mut case = make_case_with(
        Guidance::Input { w_max: 3.0 },
        1.0,
        VSource::Boundary,
        false,
        3,
        true,
    );
    case.batch.intervals[[1, 0]] = 0.7;
    case.batch.intervals[[1, 1]] = 0.2;
    let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(1));
    let mut tape = Tape::<f64>::new();
    loss_and_gradients(&mut tape, &case.model, &params, &case.loss, &case.batch);
}

#[test]
fn loss_validation_names_what_guidance_needs() {
    let case = make_case(
        Guidance::Input { w_max: 3.0 },
        1.0,
        VSource::Boundary,
        false,
        3,
    );
    let mut loss = case.loss;
    loss.label_dropout = 0.0;
    assert!(loss
        .validate(&case.model)
        .unwrap_err()
        .contains("label dropout > 0"));
    let mut model = case.model;
    model.guidance_input = false;
    assert!(case
        .loss
        .validate(&model)
        .unwrap_err()
        .contains("needs a model with a guidance input"));
    model.classes = 0;
    model.guidance_input = true;
    assert!(case
        .loss
        .validate(&model)
        .unwrap_err()
        .contains("class-conditional"));
    // The interval input goes with guidance as an input, and MF's fixed interval not with it.
    let mut model = case.model;
    model.guidance_interval_input = true;
    assert_eq!(case.loss.validate(&model), Ok(()));
    model.guidance_input = false;
    let mut loss = case.loss;
    loss.guidance = Guidance::None;
    assert!(loss
        .validate(&model)
        .unwrap_err()
        .contains("interval as an input needs a model with a guidance input"));
    let mut loss = case.loss;
    loss.guidance_interval = Some([0.2, 0.8]);
    assert!(loss
        .validate(&case.model)
        .unwrap_err()
        .contains("--guidance-interval random"));
}

/// `record_loss` does not require validated options: a model with a guidance input trained
/// without guidance (which `LossConfig::validate` refuses) gets its v_hat from a boundary pass
/// u(z, t, t) on the rows that carry the JVP alone, and those rows keep their own classes and
/// scales there: the tangent equals the oracle's.
#[test]
fn boundary_pass_on_the_leading_rows_keeps_their_scales() {
    for interval in [false, true] {
        boundary_pass_on_the_leading_rows(interval);
    }
}

fn boundary_pass_on_the_leading_rows(interval: bool) {
    let mut case = make_case_with(
        Guidance::Input { w_max: 6.0 },
        1.0,
        VSource::Boundary,
        false,
        21,
        interval,
    );
    case.loss.guidance = Guidance::None;
    let params = MlpParams::<f64>::init(&case.model, &mut Rng::seed_from_u64(4));
    let frozen = freeze(&case.problem(), &params);
    let mut tape = Tape::<f64>::new();
    let vars = params.on_tape(&mut tape);
    let nodes = record_loss(&mut tape, &case.model, &vars, &case.loss, &case.batch);
    assert!(
        nodes.tangent_rows < case.batch.len(),
        "rows with r = t at the end"
    );
    let tangent = tape.value(nodes.tangent).to_owned();
    for i in 0..nodes.tangent_rows {
        for j in 0..case.model.dim {
            let (got, want) = (tangent[[i, j]], frozen.tangent[i][j]);
            assert!(
                (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                "tangent [{i}, {j}] {got} vs the oracle's {want}"
            );
        }
    }
}
