//! The optimiser against an independent one: the trajectories in tests/data/optim were made by
//! PyTorch (`torch.optim.AdamW` with a `LambdaLR` warm-up, the global norm of
//! `clip_grad_norm_`, an EMA in a few lines; scripts/pytorch/export_optimizer.py). Each file's
//! gradients are replayed through meanflow's `Adam` and `ema_update` in f64, and every parameter,
//! first and second moment, clipped gradient and EMA after every step, the global norm and the
//! learning rate of every step, must equal PyTorch's within `OPTIMIZER_REL_TOL`.
//!
//! Mutants of src/train/optim.rs this test was seen to catch (each fails at step 1 or 2 of the
//! first file): p - step -> p + step; 1 - b1^k -> 1 + b1^k and the same for b2; the warm-up's
//! k / warmup -> k * warmup and min(1) -> max(1); the EMA's + (1 - d) p -> - (1 - d) p;
//! lr * wd -> lr + wd and - lr wd p -> + lr wd p; the clip guard n > clip -> n < clip or dropped;
//! clip / n -> n / clip; 1 / sqrt(1 - b2^k) -> 1 / (1 - b2^k); b1 and b2 swapped in the moments;
//! eps moved inside the square root; the global norm without its square root.

use meanflow::flow::model::{Architecture, Linear, MlpParams};
use meanflow::io::tensor_file::TensorFile;
use meanflow::train::optim::{ema_update, Adam, AdamConfig};
use meanflow::verify::check::{compare, scalar_relative_error, OPTIMIZER_REL_TOL};
use ndarray::Array2;
use std::path::PathBuf;

/// Every file: (name, warm-up on, weight decay on, clipping on).
const FILES: [(&str, bool, bool, bool); 4] = [
    ("adamw_warmup_clip", true, true, true),
    ("adam_plain", false, false, false),
    ("adamw_clip_nowarmup", false, true, true),
    ("adam_warmup_noclip", true, false, false),
];

#[derive(serde::Deserialize)]
struct Meta {
    format: String,
    dtype: String,
    steps: usize,
    ema_decay: f64,
    depth: usize,
    tensors: Vec<String>,
    adam: AdamConfig,
}

struct Case {
    meta: Meta,
    file: TensorFile,
}

impl Case {
    fn load(name: &str) -> Case {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/optim")
            .join(format!("{name}.safetensors"));
        let file = TensorFile::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let meta: Meta = serde_json::from_str(&file.metadata["config"]).unwrap();
        assert_eq!(meta.format, "meanflow-optim-v1", "{name}");
        assert_eq!(meta.dtype, "f64", "{name}");
        meta.adam.validate().unwrap();
        Case { meta, file }
    }

    fn tensor(&self, key: &str) -> Array2<f64> {
        let t = self
            .file
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("no tensor {key}"));
        assert!(!t.was_f32, "{key} stored as f32");
        t.values.clone()
    }

    /// A per-step record (`grad_norm`, `lr`, `clipped`) as a vector of length K.
    fn per_step(&self, key: &str) -> Vec<f64> {
        let v: Vec<f64> = self.tensor(key).iter().copied().collect();
        assert_eq!(v.len(), self.meta.steps, "{key}");
        v
    }

    /// The parameters stored under `prefix` (`init`, `step3.param`, ...) as an `MlpParams`.
    fn params(&self, prefix: &str) -> MlpParams<f64> {
        let t = |name: &str| self.tensor(&format!("{prefix}.{name}"));
        let layer = |name: &str| Linear {
            weight: t(&format!("{name}.weight")),
            bias: t(&format!("{name}.bias")),
        };
        let has = |name: &str| self.meta.tensors.iter().any(|n| n == name);
        let params = MlpParams {
            architecture: Architecture::Mlp,
            trunk: (0..self.meta.depth)
                .map(|i| layer(&format!("trunk.{i}")))
                .collect(),
            u_head: layer("u_head"),
            v_head: has("v_head.weight").then(|| layer("v_head")),
            class_embed: has("class_embed.weight").then(|| t("class_embed.weight")),
        };
        let names: Vec<String> = params.named_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, self.meta.tensors, "{prefix}: canonical order");
        params
    }
}

/// The largest relative error of any tensor of `actual` against `expected`.
fn max_error(actual: &MlpParams<f64>, expected: &MlpParams<f64>) -> f64 {
    actual
        .tensors()
        .zip(expected.tensors())
        .map(|(a, b)| compare(a.view(), b.view()).1)
        .fold(
            0.0,
            |worst: f64, e| {
                if e.is_nan() {
                    f64::NAN
                } else {
                    worst.max(e)
                }
            },
        )
}

/// Replays a file and returns the worst relative error of each quantity and the per-step
/// clipping decisions meanflow made.
fn replay(name: &str) -> (Vec<(&'static str, f64)>, Vec<bool>) {
    let case = Case::load(name);
    let config = case.meta.adam;
    let mut params = case.params("init");
    let mut ema = params.clone();
    let mut adam = Adam::new(config, &params);
    let (norms, lrs) = (case.per_step("grad_norm"), case.per_step("lr"));
    let mut worst = [
        ("param", 0.0f64),
        ("exp_avg", 0.0),
        ("exp_avg_sq", 0.0),
        ("ema", 0.0),
        ("grad_clipped", 0.0),
        ("grad_norm", 0.0),
        ("lr", 0.0),
    ];
    let mut clipped = Vec::new();
    for k in 1..=case.meta.steps {
        let mut grads = case.params(&format!("step{k}.grad"));
        let stats = adam.update(&mut params, &mut grads);
        ema_update(&mut ema, &params, case.meta.ema_decay);
        assert_eq!(adam.step, k as u64, "{name}");
        clipped.push(config.clip_norm.is_some_and(|c| stats.grad_norm > c));
        let errors = [
            max_error(&params, &case.params(&format!("step{k}.param"))),
            max_error(&adam.m, &case.params(&format!("step{k}.exp_avg"))),
            max_error(&adam.v, &case.params(&format!("step{k}.exp_avg_sq"))),
            max_error(&ema, &case.params(&format!("step{k}.ema"))),
            max_error(&grads, &case.params(&format!("step{k}.grad_clipped"))),
            scalar_relative_error(stats.grad_norm, norms[k - 1]),
            scalar_relative_error(stats.lr, lrs[k - 1]),
        ];
        for ((quantity, w), e) in worst.iter_mut().zip(errors) {
            assert!(
                e <= OPTIMIZER_REL_TOL,
                "{name}, step {k}: {quantity} relative error {e:.3e} (PyTorch's AdamW)"
            );
            *w = w.max(e);
        }
    }
    let stored: Vec<bool> = case.per_step("clipped").iter().map(|&c| c == 1.0).collect();
    assert_eq!(clipped, stored, "{name}: clipped on different steps");
    (worst.to_vec(), clipped)
}

#[test]
fn adam_and_ema_match_pytorch_step_by_step() {
    for (name, warmup, decay, clip) in FILES {
        let (worst, clipped) = replay(name);
        let report: Vec<String> = worst.iter().map(|(q, e)| format!("{q} {e:.1e}")).collect();
        println!("{name}: worst relative errors {}", report.join(", "));
        let c = Case::load(name).meta.adam;
        assert_eq!(c.warmup_steps > 0, warmup, "{name}");
        assert_eq!(c.weight_decay > 0.0, decay, "{name}");
        assert_eq!(c.clip_norm.is_some(), clip, "{name}");
        if clip {
            // Both branches of the clip: some steps scaled, some not.
            assert!(
                clipped.iter().any(|&c| c) && clipped.iter().any(|&c| !c),
                "{name}: clipped {clipped:?}"
            );
        }
    }
}

/// The files cover non-default betas and each feature both on and off, and the warm-up is still
/// ramping on the first steps (so its formula is exercised, not just its end).
#[test]
fn the_files_cover_each_setting_on_and_off() {
    for on in [false, true] {
        assert!(FILES.iter().any(|f| f.1 == on), "warm-up {on}");
        assert!(FILES.iter().any(|f| f.2 == on), "weight decay {on}");
        assert!(FILES.iter().any(|f| f.3 == on), "clipping {on}");
    }
    let defaults = AdamConfig::default();
    let mut non_default_betas = false;
    for (name, ..) in FILES {
        let case = Case::load(name);
        let c = case.meta.adam;
        non_default_betas |= c.beta1 != defaults.beta1 && c.beta2 != defaults.beta2;
        assert!(
            (6..=10).contains(&case.meta.steps),
            "{name}: {}",
            case.meta.steps
        );
        if c.warmup_steps > 0 {
            assert!((c.warmup_steps as usize) < case.meta.steps, "{name}");
            let lrs = case.per_step("lr");
            assert!(lrs[0] < c.lr && lrs[case.meta.steps - 1] == c.lr, "{name}");
        }
    }
    assert!(non_default_betas);
}

/// `global_norm` on tensors that are not contiguous in memory (every other column of a wider
/// array: `as_slice_memory_order` is None, so its fallback branch runs), mixed with contiguous
/// ones, equals the naive sqrt(sum of squares) over every entry. The sums run in other orders, so
/// they agree to rounding (about 1e-16 of the sum of squares), checked at OPTIMIZER_REL_TOL.
#[test]
fn global_norm_of_strided_tensors_is_the_naive_norm() {
    use meanflow::rng::Rng;
    use meanflow::train::optim::global_norm;
    let mut rng = Rng::seed_from_u64(8);
    let mut contiguous = |rows, cols| Array2::from_shape_simple_fn((rows, cols), || rng.normal());
    let layers = [(5, 3), (4, 5), (2, 4)];
    let mut tensors: Vec<Array2<f64>> = Vec::new();
    for (i, &(out, fan_in)) in layers.iter().enumerate() {
        let strided = contiguous(out, 2 * fan_in).slice_move(ndarray::s![.., ..;2]);
        assert!(strided.as_slice_memory_order().is_none());
        tensors.push(strided);
        // Biases alternate between contiguous and strided.
        let bias = contiguous(1, 2 * out);
        tensors.push(if i % 2 == 0 {
            bias.slice_move(ndarray::s![.., ..;2])
        } else {
            bias.slice_move(ndarray::s![.., ..out])
        });
    }
    let layer = |k: usize| Linear {
        weight: tensors[2 * k].clone(),
        bias: tensors[2 * k + 1].clone(),
    };
    let grads = MlpParams {
        architecture: Architecture::Mlp,
        trunk: vec![layer(0), layer(1)],
        u_head: layer(2),
        v_head: None,
        class_embed: None,
    };
    assert_eq!(
        grads
            .tensors()
            .filter(|t| t.as_slice_memory_order().is_none())
            .count(),
        5,
        "three strided weights and two strided biases"
    );
    let naive = tensors
        .iter()
        .flat_map(|t| t.iter())
        .map(|g| g * g)
        .sum::<f64>()
        .sqrt();
    let norm = global_norm(&grads);
    assert!(
        scalar_relative_error(norm, naive) <= OPTIMIZER_REL_TOL,
        "global_norm {norm} vs naive {naive}"
    );
}

/// The trainer's EMA against a naive loop: with d_k = min(d, k / (k + 9)) (diffusers' warm-up),
/// ema_k = d_k ema_{k-1} + (1 - d_k) p_k from ema_0 = p_0, replayed over the trainer's own
/// parameters after each step, element by element. Step 1 weights the initial parameters by 0.1,
/// so the average leaves them at once; the configured decay takes over from k = 9 d / (1 - d).
#[test]
fn the_trainers_ema_warms_up_as_the_naive_recurrence() {
    use meanflow::flow::loss::{LossConfig, LossPreset};
    use meanflow::flow::model::ModelConfig;
    use meanflow::flow::time_sampler::TimeSampler;
    use meanflow::train::{TrainConfig, Trainer};

    let decay = 0.5;
    let config = TrainConfig {
        model: ModelConfig {
            width: 5,
            depth: 2,
            ..ModelConfig::default()
        },
        loss: LossConfig::preset(LossPreset::Imf),
        time: TimeSampler::imf_default(),
        adam: AdamConfig::default(),
        batch: 6,
        ema_decay: Some(decay),
        seed: 7,
        threads: 1,
    };
    let data = Array2::from_shape_fn((16, 2), |(i, j)| ((i * 3 + j * 5) % 7) as f64 / 3.0 - 1.0);
    let mut trainer = Trainer::<f64>::new(config, data);
    let flat =
        |p: &MlpParams<f64>| -> Vec<f64> { p.tensors().flat_map(|t| t.iter().copied()).collect() };
    let mut naive = flat(&trainer.params);
    assert_eq!(flat(trainer.ema.as_ref().unwrap()), naive, "ema_0 = p_0");
    for k in 1..=12u64 {
        trainer.step().unwrap();
        let d = decay.min(k as f64 / (k as f64 + 9.0));
        for (e, p) in naive.iter_mut().zip(flat(&trainer.params)) {
            *e = d * *e + (1.0 - d) * p;
        }
        let got = flat(trainer.ema.as_ref().unwrap());
        let worst = got
            .iter()
            .zip(&naive)
            .map(|(a, b)| scalar_relative_error(*a, *b))
            .fold(0.0f64, f64::max);
        assert!(
            worst <= OPTIMIZER_REL_TOL,
            "step {k}: EMA relative error {worst:.3e}"
        );
    }
}
