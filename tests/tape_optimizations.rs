//! The tape's speed rules ([`Optimizations`]), each on against off: the same losses, quantities
//! and gradients to 1e-12 in f64, on random small models and batches (MF, iMF, iMF with the
//! v-head; stop-gradient and exact; r = t rows at the end, where the row-prefix tangent stops,
//! and anywhere). And the six reference cases through the training path (every rule on, the
//! tangent on the rows with r != t only), against the independent implementation's values.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Optimizations, Tape};
use meanflow::flow::loss::{loss_and_gradients, record_loss, Batch, LossConfig, VSource};
use meanflow::flow::model::{Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::rng::Rng;
use meanflow::verify::check::{relative_error, scalar_relative_error, GOLDEN_REL_TOL};
use meanflow::verify::reference::ReferenceCase;
use ndarray::Array2;
use proptest::prelude::*;
use std::path::PathBuf;

/// Two computations of one quantity that differ only in the order of their floating-point
/// operations (a block GEMM against separate ones, a prefix against padded rows).
const OPTIMIZATION_REL_TOL: f64 = 1e-12;

const ACTIVATIONS: [Elementwise; 4] = [
    Elementwise::Silu,
    Elementwise::Tanh,
    Elementwise::GeluTanh,
    Elementwise::Softplus,
];

#[derive(Clone, Debug)]
struct Case {
    model: ModelConfig,
    loss: LossConfig,
    params: MlpParams<f64>,
    batch: Batch<f64>,
}

/// A random case: `gap` rows with r < t first, then r = t (the batch sampler's layout), or, with
/// `shuffled`, the r = t rows spread at random.
#[allow(clippy::too_many_arguments)]
fn case(
    dim: usize,
    width: usize,
    depth: usize,
    activation: usize,
    fourier: bool,
    preset: usize,
    exact: bool,
    p: f64,
    batch: usize,
    gap: usize,
    shuffled: bool,
    seed: u64,
) -> Case {
    let mut rng = Rng::seed_from_u64(seed);
    let (beta, v_source, heads) = match preset {
        0 => (0.0, VSource::Boundary, Heads::U),
        1 => (1.0, VSource::Boundary, Heads::U),
        2 => (1.0, VSource::Head, Heads::UV),
        _ => (0.4, VSource::Boundary, Heads::UV),
    };
    let model = ModelConfig {
        dim,
        width,
        depth,
        activation: ACTIVATIONS[activation],
        conditioning: if fourier {
            Conditioning::Fourier { frequencies: 2 }
        } else {
            Conditioning::Raw
        },
        heads,
        ..ModelConfig::default()
    };
    let loss = LossConfig {
        beta,
        v_source,
        exact,
        p,
        c: 0.1,
        guidance: Default::default(),
        label_dropout: 0.0,
        guidance_interval: None,
    };
    let params = MlpParams::init(&model, &mut rng);
    let gap = gap.min(batch);
    let mut normal = |shape| Array2::from_shape_simple_fn(shape, || rng.normal());
    let x = normal((batch, dim));
    let e = normal((batch, dim));
    let mut t = Array2::zeros((batch, 1));
    let mut r = Array2::zeros((batch, 1));
    let mut rng = Rng::seed_from_u64(seed ^ 7);
    for i in 0..batch {
        let has_gap = if shuffled {
            rng.uniform() < 0.5
        } else {
            i < gap
        };
        let ti = 0.1 + 0.8 * rng.uniform();
        t[[i, 0]] = ti;
        r[[i, 0]] = if has_gap { ti * rng.uniform() } else { ti };
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
    }
}

/// Loss values, u, dudt, delta and every gradient, with the given rules.
fn evaluate(c: &Case, optimizations: Optimizations) -> (Vec<f64>, Vec<Array2<f64>>) {
    let mut tape = Tape::new();
    tape.set_optimizations(optimizations);
    let (values, grads) = loss_and_gradients(&mut tape, &c.model, &c.params, &c.loss, &c.batch);
    tape.clear();
    let vars = c.params.on_tape(&mut tape);
    let nodes = record_loss(&mut tape, &c.model, &vars, &c.loss, &c.batch);
    let mut arrays: Vec<Array2<f64>> = [nodes.u, nodes.dudt, nodes.delta]
        .iter()
        .map(|&v| tape.value(v).to_owned())
        .collect();
    // dudt where the loss uses it: (t - r) dudt. Past the row prefix (r = t) it is not computed.
    let h = &c.batch.t - &c.batch.r;
    arrays[1] = &arrays[1] * &h;
    arrays.extend(grads.tensors().cloned());
    let scalars = vec![
        values.loss,
        values.loss_u,
        values.loss_v.unwrap_or(0.0),
        values.mse,
    ];
    (scalars, arrays)
}

fn all_on() -> Optimizations {
    Optimizations::default()
}

fn all_off() -> Optimizations {
    Optimizations {
        dual_dense: false,
        prune_rows: false,
        row_prefix_tangents: false,
    }
}

fn one_off(i: usize) -> Optimizations {
    let mut o = all_on();
    match i {
        0 => o.dual_dense = false,
        1 => o.prune_rows = false,
        _ => o.row_prefix_tangents = false,
    }
    o
}

fn agree(c: &Case, a: Optimizations, b: Optimizations) -> Result<(), TestCaseError> {
    let (sa, xa) = evaluate(c, a);
    let (sb, xb) = evaluate(c, b);
    for (i, (x, y)) in sa.iter().zip(&sb).enumerate() {
        let e = scalar_relative_error(*x, *y);
        prop_assert!(
            e <= OPTIMIZATION_REL_TOL,
            "scalar {i}: {x} vs {y} ({e:.2e}), {a:?} vs {b:?}"
        );
    }
    for (i, (x, y)) in xa.iter().zip(&xb).enumerate() {
        prop_assert_eq!(x.dim(), y.dim());
        let e = relative_error(x.view(), y.view());
        prop_assert!(
            e <= OPTIMIZATION_REL_TOL,
            "array {i} (u, dudt, delta, then gradients): {e:.2e}, {a:?} vs {b:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Every rule on = every rule off, and each rule off alone = every rule on.
    #[test]
    fn each_rule_on_equals_off(
        dim in 1usize..=3, width in 1usize..=6, depth in 1usize..=3, activation in 0usize..4,
        fourier: bool, preset in 0usize..4, exact: bool, p in prop::sample::select(vec![0.0, 0.5, 1.0]),
        batch in 1usize..=7, gap in 0usize..=7, shuffled: bool, seed: u64,
    ) {
        let c = case(dim, width, depth, activation, fourier, preset, exact, p, batch, gap, shuffled, seed);
        agree(&c, all_on(), all_off())?;
        for i in 0..3 {
            agree(&c, all_on(), one_off(i))?;
        }
    }
}

fn reference_case(name: &str) -> ReferenceCase {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.safetensors"));
    ReferenceCase::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The reference cases through the training path: `loss_and_gradients` on a tape with every
/// rule on (what `Trainer` runs), against the independent implementation's loss and gradients;
/// then the same case with its rows reordered so that the r != t rows come first (the batch
/// sampler's layout, where the tangent covers those rows only), against the same values.
#[test]
fn reference_cases_through_the_training_path() {
    for name in [
        "mf_silu",
        "imf_silu",
        "imf_exact_silu",
        "imf_vhead_tanh",
        "mf_exact_tanh",
        "blend_gelu",
    ] {
        let c = reference_case(name);
        let b = c.batch.len();
        let gap_first: Vec<usize> = (0..b)
            .filter(|&i| c.batch.r[[i, 0]] != c.batch.t[[i, 0]])
            .chain((0..b).filter(|&i| c.batch.r[[i, 0]] == c.batch.t[[i, 0]]))
            .collect();
        let reorder = |a: &Array2<f64>| a.select(ndarray::Axis(0), &gap_first);
        let reordered = Batch {
            x: reorder(&c.batch.x),
            e: reorder(&c.batch.e),
            t: reorder(&c.batch.t),
            r: reorder(&c.batch.r),
            labels: Vec::new(),
            scales: ndarray::Array2::zeros((0, 1)),
            intervals: ndarray::Array2::zeros((0, 2)),
        };
        let gaps = gap_first
            .iter()
            .filter(|&&i| c.batch.r[[i, 0]] != c.batch.t[[i, 0]])
            .count();
        assert!(gaps < b, "{name}: the case should have rows with r = t");
        for (layout, batch) in [("as given", &c.batch), ("r != t first", &reordered)] {
            let mut tape = Tape::new();
            let (values, grads) =
                loss_and_gradients(&mut tape, &c.model, &c.params, &c.loss, batch);
            let loss = c.expected["loss"][[0, 0]];
            let e = scalar_relative_error(values.loss, loss);
            assert!(e <= GOLDEN_REL_TOL, "{name} ({layout}): loss {e:.2e}");
            for (param, g) in grads.named_tensors() {
                let want = &c.expected[&format!("grad.{param}")];
                let want = want
                    .view()
                    .into_shape_with_order(g.dim())
                    .expect("gradient shape");
                let e = relative_error(g, want);
                assert!(
                    e <= GOLDEN_REL_TOL,
                    "{name} ({layout}): grad.{param} {e:.2e}"
                );
            }
        }
        // In the sampler's layout the JVP covers the r != t rows alone.
        let mut tape = Tape::<f64>::new();
        let vars = c.params.on_tape(&mut tape);
        let nodes = record_loss(&mut tape, &c.model, &vars, &c.loss, &reordered);
        assert_eq!(nodes.tangent_rows, gaps, "{name}");
        assert_eq!(tape.shape(nodes.tangent).0, gaps, "{name}");
    }
}
