//! The library's own refusals of input that does not fit the model, at its public entry points
//! (not through the command line, which tests/bad_input.rs covers): a batch handed to the loss
//! (`Batch::check`, which `record_loss` calls), the data handed to a trainer, a checkpoint's
//! tensors, the data a checkpoint resumes on, and the rows an evaluator samples. Each refusal
//! names the shapes or values at fault. Refusals already tested elsewhere at this level: a batch's
//! x / e / t / r shapes (src/flow/loss.rs), its label count and scales below 1
//! (tests/conditional_loss.rs), a checkpoint's missing or unexpected tensors, its precision and
//! the data's column count (src/train/checkpoint.rs).
//! The settings of the optimiser, the time sampler and the loss (guidance's included) are
//! refused by name with their value, and the edges of their valid ranges accepted.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::flow::guidance::Guidance;
use meanflow::flow::loss::{Batch, LossConfig, LossPreset};
use meanflow::flow::model::{Architecture, Heads, MlpParams, ModelConfig};
use meanflow::flow::sampling::{Conditions, Evaluator};
use meanflow::flow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::io::tensor_file::TensorFile;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::{Checkpoint, CheckpointError};
use meanflow::train::optim::AdamConfig;
use meanflow::train::{TrainConfig, Trainer, TrainingData};
use ndarray::Array2;
use std::path::Path;

fn model(classes: usize) -> ModelConfig {
    ModelConfig {
        width: 4,
        depth: 1,
        activation: Elementwise::Tanh,
        classes,
        class_dim: if classes > 0 { 2 } else { 0 },
        ..ModelConfig::default()
    }
}

fn config(classes: usize) -> TrainConfig {
    TrainConfig {
        model: model(classes),
        loss: LossConfig::preset(LossPreset::Mf),
        time: TimeSampler::mf_default(),
        adam: AdamConfig::default(),
        batch: 4,
        ema_decay: None,
        seed: 1,
        threads: 1,
    }
}

fn points(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| (i + 2 * j) as f64 / 10.0)
}

fn labelled(rows: usize, labels: Vec<usize>) -> TrainingData {
    TrainingData {
        points: points(rows, 2),
        labels,
    }
}

// ----- the model's configuration --------------------------------------------------------------------

/// An unconditional model has no class embedding: its width counts for nothing in a_0 or the
/// parameters, and a config that gives one anyway (the CLI refuses `--class-dim` without
/// `--classes`; a checkpoint's config.json can say anything) is refused by name.
#[test]
fn a_class_embedding_width_without_classes_counts_for_nothing_and_is_refused() {
    let plain = model(0);
    let stray = ModelConfig {
        class_dim: 3,
        ..plain
    };
    assert_eq!(stray.class_embedding_width(), 0);
    assert_eq!(stray.class_embedding_shape(), None);
    assert_eq!(stray.input_width(), plain.input_width());
    assert_eq!(stray.parameter_count(), plain.parameter_count());
    assert_eq!(model(2).class_embedding_width(), 2);
    let err = TrainConfig {
        model: stray,
        ..config(0)
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        err,
        "class embedding width 3 given for an unconditional model (classes = 0)"
    );
    assert!(config(0).validate().is_ok() && config(3).validate().is_ok());
}

// ----- a batch handed to the loss ------------------------------------------------------------------

#[test]
#[should_panic(expected = "Batch: label 4 at row 1 is beyond the null class 3")]
fn a_batch_label_beyond_the_null_class_is_refused() {
    let m = model(3);
    let mut batch = Batch::<f64>::zeros(3, &m);
    batch.labels[1] = 4;
    batch.check(&m);
}

#[test]
#[should_panic(expected = "Batch: scales (3, 1) for 3 rows: need [0, 1]")]
fn scales_for_a_model_without_a_guidance_input_are_refused() {
    let m = model(0);
    let mut batch = Batch::<f64>::zeros(3, &m);
    batch.scales = Array2::ones((3, 1));
    batch.check(&m);
}

#[test]
#[should_panic(expected = "Batch: scales (2, 1) for 3 rows: need [3, 1]")]
fn too_few_scales_for_a_guidance_input_are_refused() {
    let mut m = model(3);
    m.guidance_input = true;
    let mut batch = Batch::<f64>::zeros(3, &m);
    batch.scales = Array2::ones((2, 1));
    batch.check(&m);
}

#[test]
#[should_panic(expected = "Batch: 2 labels for 3 rows of a model with 0 classes: need 0")]
fn labels_for_an_unconditional_model_are_refused() {
    let m = model(0);
    let mut batch = Batch::<f64>::zeros(3, &m);
    batch.labels = vec![0, 0];
    batch.check(&m);
}

// ----- the data handed to a trainer ---------------------------------------------------------------

#[test]
#[should_panic(expected = "Trainer: data has 3 columns but the model's dimension is 2")]
fn trainer_refuses_data_of_another_dimension() {
    Trainer::<f64>::new(config(0), points(8, 3));
}

#[test]
#[should_panic(expected = "Trainer: 7 labels for 8 points of a model with 3 classes")]
fn trainer_refuses_a_label_count_other_than_the_points() {
    Trainer::<f64>::new(config(3), labelled(8, vec![0; 7]));
}

#[test]
#[should_panic(expected = "Trainer: label 3 is not below the model's 3 classes")]
fn trainer_refuses_a_label_beyond_the_classes() {
    let mut labels = vec![0; 8];
    labels[5] = 3;
    Trainer::<f64>::new(config(3), labelled(8, labels));
}

#[test]
#[should_panic(expected = "Trainer: 8 labels for an unconditional model")]
fn trainer_refuses_labels_for_an_unconditional_model() {
    Trainer::<f64>::new(config(0), labelled(8, vec![0; 8]));
}

// ----- a checkpoint's tensors and the data it resumes on -------------------------------------------

/// A checkpoint of a fresh f64 trainer, as the tensor file it is written as.
fn checkpoint_file(classes: usize) -> TensorFile {
    let data = if classes > 0 {
        labelled(8, (0..8).map(|i| i % classes).collect())
    } else {
        points(8, 2).into()
    };
    let trainer = Trainer::<f64>::new(config(classes), data);
    Checkpoint::from_trainer(&trainer).to_tensor_file()
}

#[test]
fn a_checkpoint_tensor_of_the_wrong_shape_is_refused_naming_both_shapes() {
    let mut file = checkpoint_file(0);
    // trunk.0.weight is [4, 2 + 2] (width x (dim + the raw t and t - r)).
    let wrong = file.tensors["u_head.weight"].clone();
    assert_eq!(wrong.shape, vec![2, 4]);
    file.tensors.insert("trunk.0.weight".into(), wrong);
    let e = Checkpoint::from_tensor_file(file, Path::new("c.safetensors")).unwrap_err();
    assert!(
        matches!(e, CheckpointError::Shape { .. }),
        "{e} is not a shape error"
    );
    assert_eq!(
        e.to_string(),
        "c.safetensors: tensor 'trunk.0.weight' has shape [2, 4], expected [4, 4]"
    );
}

#[test]
fn a_class_table_of_the_wrong_shape_is_refused() {
    let mut file = checkpoint_file(3);
    let table = file.tensors.get_mut("class_embed.weight").unwrap();
    // [C + 1, class_dim] = [4, 2]; one row short.
    table.shape = vec![3, 2];
    table.values = Array2::zeros((3, 2));
    let e = Checkpoint::from_tensor_file(file, Path::new("c.safetensors")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.safetensors: tensor 'class_embed.weight' has shape [3, 2], expected [4, 2]"
    );
}

#[test]
fn an_f32_tensor_in_an_f64_checkpoint_is_refused() {
    let mut file = checkpoint_file(0);
    file.tensors.get_mut("u_head.bias").unwrap().was_f32 = true;
    let e = Checkpoint::from_tensor_file(file, Path::new("c.safetensors")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "c.safetensors: tensor 'u_head.bias' is stored as f32, but the checkpoint's precision is f64"
    );
}

fn checkpoint(classes: usize) -> Checkpoint {
    Checkpoint::from_tensor_file(checkpoint_file(classes), Path::new("c.safetensors")).unwrap()
}

#[test]
fn resuming_on_labels_that_do_not_fit_is_refused_naming_the_counts() {
    let ck = checkpoint(3);
    let e = ck
        .trainer::<f64>(labelled(8, vec![0; 6]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the data have 6 labels (classes up to 0) for 8 points, but the checkpoint's model has 3 classes"
    );
    let mut labels = vec![0; 8];
    labels[2] = 5;
    let e = ck.trainer::<f64>(labelled(8, labels)).unwrap_err();
    assert!(
        e.to_string().contains("classes up to 5) for 8 points"),
        "{e}"
    );
    // An unconditional model takes no labels.
    let e = checkpoint(0)
        .trainer::<f64>(labelled(8, vec![0; 8]))
        .unwrap_err();
    assert!(matches!(e, CheckpointError::ClassMismatch { .. }), "{e}");
}

#[test]
fn resuming_without_optimizer_state_is_refused() {
    let mut ck = checkpoint(0);
    ck.adam = None;
    let e = ck.trainer::<f64>(points(8, 2)).unwrap_err();
    assert!(matches!(e, CheckpointError::NoOptimizerState), "{e}");
    assert!(e.to_string().contains("no Adam moments"), "{e}");
}

// ----- the rows an evaluator samples -----------------------------------------------------------------

#[test]
#[should_panic(expected = "Evaluator: class 3 of a model with 3 classes")]
fn an_evaluator_refuses_a_class_beyond_the_model() {
    let m = model(3);
    let params = MlpParams::<f64>::init(&m, &mut Rng::seed_from_u64(1));
    Evaluator::conditioned(m, &params, Conditions::classes(vec![0, 3], 1.0));
}

#[test]
#[should_panic(expected = "Evaluator: 2 labels for 3 rows")]
fn an_evaluator_refuses_labels_for_other_rows() {
    let m = model(3);
    let params = MlpParams::<f64>::init(&m, &mut Rng::seed_from_u64(1));
    let mut evaluator = Evaluator::conditioned(m, &params, Conditions::classes(vec![0, 1], 1.0));
    let z = Array2::zeros((3, 2));
    let t = Array2::ones((3, 1));
    evaluator.u(z.view(), t.view(), t.view());
}

// ----- settings ---------------------------------------------------------------------------------------

/// Each bad setting is refused with a message naming it and its value; the edges of the valid
/// ranges are accepted.
#[test]
fn optimizer_settings_out_of_range_are_refused_by_name() {
    let ok = AdamConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let refused = |config: AdamConfig, want: &str| {
        let e = config.validate().unwrap_err();
        assert!(e.contains(want), "{e} does not say {want}");
    };
    for lr in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        refused(
            AdamConfig { lr, ..ok },
            "learning rate must be finite and > 0",
        );
    }
    for eps in [0.0, -1e-8, f64::INFINITY] {
        refused(AdamConfig { eps, ..ok }, "eps must be finite and > 0");
    }
    for b in [1.0, -0.1, f64::NAN] {
        refused(AdamConfig { beta1: b, ..ok }, "beta1 must be in [0, 1)");
        refused(AdamConfig { beta2: b, ..ok }, "beta2 must be in [0, 1)");
    }
    for weight_decay in [-1e-4, f64::NAN, f64::INFINITY] {
        refused(
            AdamConfig { weight_decay, ..ok },
            "weight decay must be finite and >= 0",
        );
    }
    for clip in [0.0, -1.0, f64::INFINITY] {
        refused(
            AdamConfig {
                clip_norm: Some(clip),
                ..ok
            },
            "gradient clip norm must be finite and > 0",
        );
    }
    refused(AdamConfig { lr: -2.5, ..ok }, "got -2.5");
    // The edges that are valid.
    let edges = AdamConfig {
        beta1: 0.0,
        beta2: 0.0,
        weight_decay: 0.0,
        lr: f64::MIN_POSITIVE,
        eps: f64::MIN_POSITIVE,
        clip_norm: Some(f64::MIN_POSITIVE),
        warmup_steps: 0,
    };
    assert_eq!(edges.validate(), Ok(()));
}

/// The defaults are PyTorch's AdamW defaults except weight decay (0, Adam's), with no warm-up and
/// no clipping, as documented on `AdamConfig::default`.
#[test]
fn optimizer_defaults_are_the_documented_ones() {
    assert_eq!(
        AdamConfig::default(),
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            clip_norm: None,
        }
    );
}

#[test]
fn time_sampler_settings_out_of_range_are_refused_by_name() {
    let ok = TimeSampler::mf_default();
    assert_eq!(ok.validate(), Ok(()));
    for fraction_equal in [-0.01, 1.01, f64::NAN] {
        let e = TimeSampler {
            fraction_equal,
            ..ok
        }
        .validate()
        .unwrap_err();
        assert!(
            e.contains("the fraction of rows with r = t must be in [0, 1]"),
            "{e}"
        );
    }
    for fraction_equal in [0.0, 1.0] {
        assert_eq!(
            TimeSampler {
                fraction_equal,
                ..ok
            }
            .validate(),
            Ok(())
        );
    }
    let logit_normal = |mu, sigma| TimeSampler {
        distribution: TimeDistribution::LogitNormal { mu, sigma },
        ..ok
    };
    for mu in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = logit_normal(mu, 1.0).validate().unwrap_err();
        assert!(e.contains("time sampler mu must be finite"), "{e}");
    }
    for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = logit_normal(0.0, sigma).validate().unwrap_err();
        assert!(
            e.contains("time sampler sigma must be finite and > 0"),
            "{e}"
        );
    }
    assert_eq!(logit_normal(-3.0, 1e-300).validate(), Ok(()));
    // The uniform distribution has no parameters to refuse.
    let uniform = TimeSampler {
        distribution: TimeDistribution::Uniform,
        ..ok
    };
    assert_eq!(uniform.validate(), Ok(()));
}

#[test]
fn loss_settings_out_of_range_are_refused_by_name() {
    let m = model(0);
    let ok = LossConfig::preset(LossPreset::Mf);
    assert_eq!(ok.validate(&m), Ok(()));
    let refused = |loss: LossConfig, model: &ModelConfig, want: &str| {
        let e = loss.validate(model).unwrap_err();
        assert!(e.contains(want), "{e} does not say {want}");
    };
    for beta in [-0.1, 1.1, f64::NAN] {
        refused(LossConfig { beta, ..ok }, &m, "beta must be in [0, 1]");
    }
    for p in [-0.5, f64::NAN, f64::INFINITY] {
        refused(LossConfig { p, ..ok }, &m, "p must be finite and >= 0");
    }
    for c in [0.0, -1.0, f64::INFINITY] {
        refused(LossConfig { c, ..ok }, &m, "c must be finite and > 0");
    }
    let head = LossConfig::preset(LossPreset::ImfHead);
    refused(head, &m, "v-source 'head' needs a model with heads = uv");
    assert_eq!(
        head.validate(&ModelConfig {
            heads: Heads::UV,
            ..m
        }),
        Ok(())
    );
    refused(
        LossConfig {
            label_dropout: 1.5,
            ..ok
        },
        &model(3),
        "label dropout must be in [0, 1]",
    );
    refused(
        LossConfig {
            label_dropout: 0.1,
            ..ok
        },
        &m,
        "label dropout needs a class-conditional model",
    );
    // The edges that are valid.
    for (beta, p) in [(0.0, 0.0), (1.0, 0.0), (0.5, 2.0)] {
        assert_eq!(LossConfig { beta, p, ..ok }.validate(&m), Ok(()));
    }
    for label_dropout in [0.0, 1.0] {
        let loss = LossConfig {
            label_dropout,
            ..ok
        };
        assert_eq!(loss.validate(&model(3)), Ok(()));
    }
    // Guidance's numbers, on a model it fits (classes, label dropout, a guidance input for iMF's).
    let conditional = model(3);
    let with_input = ModelConfig {
        guidance_input: true,
        guidance_interval_input: false,
        ..conditional
    };
    let guided = |guidance: Guidance| LossConfig {
        guidance,
        label_dropout: 0.1,
        ..ok
    };
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let loss = guided(Guidance::Target { w, kappa: 0.0 });
        refused(
            loss,
            &conditional,
            "is out of range (0, 1e6]: the guided target",
        );
    }
    for kappa in [-0.1, 1.0, f64::NAN] {
        let loss = guided(Guidance::Target { w: 2.0, kappa });
        refused(loss, &conditional, "is out of range [0, 1)");
    }
    for w_max in [0.0, -1.0, 2e6, f64::NAN, f64::INFINITY] {
        let loss = guided(Guidance::Input { w_max });
        refused(loss, &with_input, "is out of range (0, 1e6]");
    }
    for (guidance, model) in [
        (
            Guidance::Target {
                w: 1e-9,
                kappa: 0.0,
            },
            &conditional,
        ),
        (
            Guidance::Target {
                w: 2.0,
                kappa: 0.999,
            },
            &conditional,
        ),
        (Guidance::Input { w_max: 1e6 }, &with_input),
        (Guidance::Input { w_max: 1e-9 }, &with_input),
    ] {
        assert_eq!(guided(guidance).validate(model), Ok(()), "{guidance:?}");
    }
}

/// A residual block's first layer reads [LN(a) | c] and the trunk has 2 depth + 1 layers, so
/// the activation bound counts them: a batch an MLP of the same width and depth may take is
/// refused for the residual trunk, with the layers named.
#[test]
fn the_activation_bound_counts_a_residual_trunks_layers() {
    let (width, depth) = (64, 4);
    let mlp = TrainConfig {
        model: ModelConfig {
            width,
            depth,
            ..model(0)
        },
        // batch x 64 x (4 + 1) just under 2^26.
        batch: (1 << 26) / (width * (depth + 1)),
        ..config(0)
    };
    assert_eq!(mlp.validate(), Ok(()));
    let residual = TrainConfig {
        model: ModelConfig {
            architecture: Architecture::Residual,
            ..mlp.model
        },
        ..mlp
    };
    let err = residual.validate().unwrap_err();
    assert!(err.contains("(layers 9 + 1)"), "{err}");
    assert!(err.contains("values per activation buffer"), "{err}");
}
