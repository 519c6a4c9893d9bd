//! The fused training step against the tape (the engine every other test checks) and the
//! reference cases: same loss values and gradients, to rounding.

use meanflow::check::{relative_error, GOLDEN_REL_TOL};
use meanflow::elementwise::Elementwise;
use meanflow::fused::FusedStep;
use meanflow::loss::{loss_and_gradients, Batch, LossConfig, VSource};
use meanflow::model::{Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::reference::ReferenceCase;
use meanflow::rng::Rng;
use meanflow::tape::Tape;
use ndarray::Array2;
use proptest::prelude::*;
use std::path::PathBuf;

fn compare_engines(
    model: &ModelConfig,
    loss: &LossConfig,
    params: &MlpParams<f64>,
    batch: &Batch<f64>,
    gap: usize,
) {
    let mut tape = Tape::new();
    let (want, want_grads) = loss_and_gradients(&mut tape, model, params, loss, batch);
    let mut fused = FusedStep::new(*model, *loss, batch.len());
    let mut grads = params.zeros_like();
    // Twice: the second call reuses every buffer and must give the same answer.
    for _ in 0..2 {
        let got = fused.loss_and_gradients(params, batch, gap, &mut grads);
        for (a, b) in [
            (got.loss, want.loss),
            (got.loss_u, want.loss_u),
            (got.mse, want.mse),
        ] {
            assert!(
                (a - b).abs() <= GOLDEN_REL_TOL * b.abs().max(1e-8),
                "loss {a} vs tape {b}"
            );
        }
        assert_eq!(got.loss_v.is_some(), want.loss_v.is_some());
        for ((name, g), (_, w)) in grads
            .named_tensors()
            .into_iter()
            .zip(want_grads.named_tensors())
        {
            let e = relative_error(g, w);
            assert!(
                e <= GOLDEN_REL_TOL,
                "{name}: fused vs tape relative error {e:.3e}"
            );
        }
    }
}

#[test]
fn reference_cases_through_the_fused_step() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for name in ["mf_silu", "imf_silu", "imf_vhead_tanh", "blend_gelu"] {
        let case = ReferenceCase::load(&dir.join(format!("{name}.safetensors"))).unwrap();
        let b = case.batch.len();
        let mut fused = FusedStep::new(case.model, case.loss, b);
        let mut grads = case.params.zeros_like();
        let values = fused.loss_and_gradients(&case.params, &case.batch, b, &mut grads);
        let loss = case.expected["loss"][[0, 0]];
        assert!(
            (values.loss - loss).abs() <= GOLDEN_REL_TOL * loss.abs(),
            "{name}: loss {} vs {loss}",
            values.loss
        );
        for (pname, g) in grads.named_tensors() {
            let want = &case.expected[&format!("grad.{pname}")];
            let g = g.to_owned().into_shape_with_order(want.dim()).unwrap();
            let e = relative_error(g.view(), want.view());
            assert!(
                e <= GOLDEN_REL_TOL,
                "{name}: grad.{pname} relative error {e:.3e}"
            );
        }
    }
}

fn random_batch(b: usize, d: usize, gap: usize, rng: &mut Rng) -> Batch<f64> {
    let mut n = |rows, cols| Array2::from_shape_simple_fn((rows, cols), || rng.normal());
    let x = n(b, d);
    let e = n(b, d);
    let mut t = Array2::zeros((b, 1));
    let mut r = Array2::zeros((b, 1));
    for i in 0..b {
        let (u1, u2) = (rng.uniform(), rng.uniform());
        t[[i, 0]] = u1.max(u2);
        r[[i, 0]] = if i < gap { u1.min(u2) } else { t[[i, 0]] };
    }
    Batch { x, e, t, r }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn fused_equals_tape(
        seed in any::<u64>(),
        d in 1usize..4, width in 1usize..7, depth in 1usize..4, b in 1usize..7,
        act in prop::sample::select(vec![Elementwise::Silu, Elementwise::Tanh, Elementwise::GeluTanh, Elementwise::Softplus, Elementwise::Relu]),
        fourier in any::<bool>(), uv in any::<bool>(), head_source in any::<bool>(),
        beta in prop::sample::select(vec![0.0, 0.3, 1.0]), p in prop::sample::select(vec![0.0, 0.5, 1.0]),
        gap_frac in 0.0f64..=1.0,
    ) {
        let model = ModelConfig {
            dim: d, width, depth, activation: act,
            conditioning: if fourier { Conditioning::Fourier { frequencies: 2 } } else { Conditioning::Raw },
            heads: if uv { Heads::UV } else { Heads::U },
        };
        let loss = LossConfig {
            beta, p, c: 1e-3, exact: false,
            v_source: if uv && head_source { VSource::Head } else { VSource::Boundary },
        };
        let mut rng = Rng::seed_from_u64(seed);
        let params = MlpParams::init(&model, &mut rng);
        let gap = ((b as f64) * gap_frac).round() as usize;
        let batch = random_batch(b, d, gap, &mut rng);
        compare_engines(&model, &loss, &params, &batch, gap);
    }
}
