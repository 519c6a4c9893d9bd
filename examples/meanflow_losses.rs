//! The MeanFlow losses side by side on one batch, then a reference case checked quantity by
//! quantity.
//!
//! All variants share one definition (src/flow/loss.rs, `record_loss`):
//!     z = (1 - t) x + t e,  v_c = e - x,  tangent = (1 - beta) v_c + beta sg(v_hat)
//!     (u, dudt) = jvp(u, (z, r, t), (tangent, 0, 1))
//!     delta = u + (t - r) sg(dudt) - v_c      (exact: no sg on dudt)
//!     loss  = mean_i w_i |delta_i|^2,  w_i = sg((|delta_i|^2 + c)^-p)   (+ the v-head's term)
//! MF is beta = 0 (the noisy v_c as tangent); iMF is beta = 1 with v_hat = u(z, t, t) (or the
//! v-head). The exact variants keep the gradient through dudt: reverse mode over forward mode.
//!
//! Run with `cargo run --example meanflow_losses`.

use meanflow::autodiff::tape::Tape;
use meanflow::data::ToyDataset;
use meanflow::flow::loss::{loss_and_gradients, Batch, LossConfig, LossPreset};
use meanflow::flow::model::{Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::rng::Rng;
use meanflow::verify::check::GOLDEN_REL_TOL;
use meanflow::verify::reference::ReferenceCase;
use ndarray::Array2;
use std::path::PathBuf;

fn main() {
    // --- A model with both heads (so that every variant, imf-head included, applies).
    let model = ModelConfig {
        width: 32,
        depth: 2,
        conditioning: Conditioning::Fourier { frequencies: 4 },
        heads: Heads::UV,
        ..ModelConfig::default()
    };
    let mut rng = Rng::seed_from_u64(0);
    let params: MlpParams<f64> = MlpParams::init(&model, &mut rng);

    // --- One batch: data from two moons, Gaussian noise, times with r <= t and a quarter r == t.
    let n = 64;
    let data: ToyDataset = "two_moons".parse().expect("a built-in dataset");
    let x = data.sample(n, &mut rng);
    let e = Array2::from_shape_simple_fn((n, 2), || rng.normal());
    let t = Array2::from_shape_simple_fn((n, 1), || rng.uniform());
    let r = Array2::from_shape_fn((n, 1), |(i, _)| {
        if i < n / 4 {
            t[[i, 0]]
        } else {
            rng.uniform_range(0.0, t[[i, 0]])
        }
    });
    let batch = Batch::new(x, e, t, r);

    // --- The variants: the three presets, and the exact versions of MF and iMF.
    let exact = |preset| LossConfig {
        exact: true,
        ..LossConfig::preset(preset)
    };
    let variants = [
        ("mf", LossConfig::preset(LossPreset::Mf)),
        ("mf exact", exact(LossPreset::Mf)),
        ("imf", LossConfig::preset(LossPreset::Imf)),
        ("imf exact", exact(LossPreset::Imf)),
        ("imf-head", LossConfig::preset(LossPreset::ImfHead)),
    ];
    println!(
        "model: d = 2, width 32, depth 2, silu, fourier4, heads uv; batch of {n} from two_moons"
    );
    println!("adaptive weight p = 1, c = 1e-3 (so the weighted loss sits near 1 per head)\n");
    println!(
        "{:<10} {:>4} {:>8} {:>5} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "variant",
        "beta",
        "v_source",
        "exact",
        "loss",
        "loss_u",
        "loss_v",
        "mse",
        "|grad|",
        "|grad u_h|"
    );
    let mut tape = Tape::new(); // one tape, cleared and reused by every evaluation
    for (name, loss) in variants {
        loss.validate(&model).expect("valid options");
        let (values, grads) = loss_and_gradients(&mut tape, &model, &params, &loss, &batch);
        // The gradient norm over every parameter, and over the u-head alone.
        let norm = |tensors: &[(String, ndarray::ArrayView2<f64>)]| {
            tensors
                .iter()
                .map(|(_, g)| g.iter().map(|x| x * x).sum::<f64>())
                .sum::<f64>()
                .sqrt()
        };
        let all = grads.named_tensors();
        let u_head: Vec<_> = all
            .iter()
            .filter(|(n, _)| n.starts_with("u_head"))
            .cloned()
            .collect();
        println!(
            "{name:<10} {:>4} {:>8} {:>5} {:>10.5} {:>10.5} {:>10.5} {:>10.5} {:>11.5} {:>11.5}",
            loss.beta,
            loss.v_source.name(),
            loss.exact,
            values.loss,
            values.loss_u,
            values.loss_v.unwrap_or(f64::NAN),
            values.mse,
            norm(&all),
            norm(&u_head)
        );
    }
    println!(
        "\n(MF and iMF differ in the tangent only; exact and non-exact share the loss value and"
    );
    println!(" differ in the gradient, which the exact variant takes through dudt too.)\n");

    // --- A reference case from tests/data: an independent PyTorch implementation's every
    // intermediate quantity and gradient, recomputed here from the parameters and the batch.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/imf_silu.safetensors");
    let case = ReferenceCase::load(&path).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "reference case '{}': beta = {}, v_source = {}, exact = {}, batch {}",
        case.name,
        case.loss.beta,
        case.loss.v_source,
        case.loss.exact,
        case.batch.len()
    );
    println!("{:<26} {:>12} {:>12}", "quantity", "max abs", "max rel");
    let errors = case.compare();
    let mut worst = 0.0f64;
    for q in &errors {
        println!("{:<26} {:>12.2e} {:>12.2e}", q.name, q.max_abs, q.max_rel);
        worst = worst.max(q.max_rel);
    }
    println!(
        "{} quantities, worst relative error {worst:.2e} (tolerance GOLDEN_REL_TOL = {GOLDEN_REL_TOL:.0e})",
        errors.len()
    );
    if worst > GOLDEN_REL_TOL {
        eprintln!("reference case not reproduced");
        std::process::exit(1);
    }
}
