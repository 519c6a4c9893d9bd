//! The classifier of src/verify/classifier.rs:
//!
//! - on well-separated Gaussian blobs (10 classes in 32 dimensions) it reaches > 95% accuracy on
//!   held-out points, and its training loss falls;
//! - the gradient of its cross-entropy on the tape (the one each training step descends) against
//!   central finite differences of the loss computed without a tape, tensor by tensor, in f64;
//! - logits, features and predictions against a forward pass written out with ndarray;
//! - the same seed gives the same classifier, another seed another;
//! - bad input panics with a message naming the problem.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::flow::model::one_hot;
use meanflow::flow::model::MlpParams;
use meanflow::rng::Rng;
use meanflow::train::optim::AdamConfig;
use meanflow::verify::check::*;
use meanflow::verify::classifier::{train, Classifier, ClassifierConfig};
use ndarray::{array, Array2, ArrayView2, Axis};

/// `per_class` points of each of `classes` Gaussian blobs N(m_c, I) in `dim` dimensions, the
/// means m_c ~ N(0, spread^2 I) drawn from `means_seed` (so that a training and a held-out set
/// share them), the points from `rng`; labels 0, 1, ..., classes - 1, 0, 1, ...
fn blobs(
    classes: usize,
    dim: usize,
    per_class: usize,
    spread: f64,
    means_seed: u64,
    rng: &mut Rng,
) -> (Array2<f64>, Vec<usize>) {
    let mut means_rng = Rng::seed_from_u64(means_seed);
    let means = Array2::from_shape_simple_fn((classes, dim), || spread * means_rng.normal());
    let n = classes * per_class;
    let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let points = Array2::from_shape_fn((n, dim), |(i, j)| means[[labels[i], j]] + rng.normal());
    (points, labels)
}

fn small_config(epochs: usize) -> ClassifierConfig {
    ClassifierConfig {
        width: 32,
        depth: 2,
        epochs,
        batch_size: 32,
        ..ClassifierConfig::default()
    }
}

/// Pairwise distances between blob means of spread 1 in 32-D are about sqrt(64) = 8, so the
/// Bayes error is far below 1%; chance is 10%.
#[test]
fn separates_gaussian_blobs() {
    let mut rng = Rng::seed_from_u64(1);
    let (train_x, train_y) = blobs(10, 32, 60, 1.0, 42, &mut rng);
    let (test_x, test_y) = blobs(10, 32, 100, 1.0, 42, &mut rng);
    let classifier = train(&small_config(15), train_x.view(), &train_y, 7);
    assert_eq!(classifier.classes, 10);
    let accuracy = classifier.accuracy(test_x.view(), &test_y);
    assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
    let losses = &classifier.epoch_losses;
    assert_eq!(losses.len(), 15);
    // The first epoch starts near ln 10 = 2.3.
    assert!(
        losses[14] < 0.1 * losses[0],
        "training loss did not fall: {losses:?}"
    );
    let train_accuracy = classifier.accuracy(train_x.view(), &train_y);
    assert!(train_accuracy > 0.99, "training accuracy {train_accuracy}");
}

/// The gradient on the tape of L(theta) = mean cross-entropy, against central differences of
/// `Classifier::cross_entropy` (logits without a tape, logsumexp by hand), along a random
/// direction in each tensor alone, at parameters after two epochs of training. Also a
/// classifier with one hidden layer and tanh, and one class missing from the batch.
#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let mut rng = Rng::seed_from_u64(2);
    let (x, y) = blobs(4, 6, 10, 0.7, 3, &mut rng);
    let configs = [
        small_config(2),
        ClassifierConfig {
            width: 5,
            depth: 1,
            activation: Elementwise::Tanh,
            epochs: 2,
            batch_size: 8,
            ..ClassifierConfig::default()
        },
    ];
    for config in configs {
        let classifier = train(&config, x.view(), &y, 11);
        // 13 rows, none of class 3 (whose logit then only enters through logsumexp).
        let rows: Vec<usize> = (0..40).filter(|i| i % 4 != 3).take(13).collect();
        let (xb, yb) = (
            x.select(Axis(0), &rows),
            rows.iter().map(|&r| y[r]).collect::<Vec<_>>(),
        );
        let (loss, grads) = classifier.cross_entropy_and_gradients(xb.view(), &yb);
        let direct = classifier.cross_entropy(xb.view(), &yb);
        assert!(
            scalar_relative_error(loss, direct) < REWRITE_REL_TOL,
            "tape loss {loss} vs direct {direct}"
        );
        let tensors = classifier.params.tensors().count();
        for k in 0..tensors {
            let mut direction = classifier.params.zeros_like();
            let d = direction.tensors_mut().nth(k).expect("k < tensors");
            d.mapv_inplace(|_| rng.normal());
            let exact: f64 = grads
                .tensors()
                .zip(direction.tensors())
                .map(|(g, d)| inner(g.view(), d.view()))
                .sum();
            let terms: f64 = grads
                .tensors()
                .zip(direction.tensors())
                .map(|(g, d)| (g * d).mapv(f64::abs).sum())
                .sum();
            let fd = central_difference(|s| {
                let mut moved = classifier.clone();
                moved.params = add_scaled(&classifier.params, &direction, s);
                moved.cross_entropy(xb.view(), &yb)
            });
            let rel = (exact - fd).abs() / fd.abs().max(terms).max(ABS_FLOOR);
            assert!(
                rel < FD_REL_TOL,
                "{config:?} tensor {k}: exact {exact} vs fd {fd}: rel {rel:e}"
            );
        }
    }
}

fn add_scaled(p: &MlpParams<f64>, d: &MlpParams<f64>, s: f64) -> MlpParams<f64> {
    let mut out = p.clone();
    for (o, d) in out.tensors_mut().zip(d.tensors()) {
        o.scaled_add(s, d);
    }
    out
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Features, logits, predictions and accuracy against the forward pass by hand.
#[test]
fn forward_pass_by_hand() {
    let mut rng = Rng::seed_from_u64(4);
    let (x, y) = blobs(3, 5, 20, 1.0, 9, &mut rng);
    let classifier = train(&small_config(3), x.view(), &y, 5);
    // Standardised with the training points' mean and standard deviation.
    let mean = x.mean_axis(Axis(0)).unwrap();
    let std = x.std_axis(Axis(0), 0.0);
    let mut h = (&x - &mean) / &std;
    for layer in &classifier.params.trunk {
        h = (h.dot(&layer.weight.t()) + &layer.bias).mapv(silu);
    }
    let head = &classifier.params.u_head;
    let logits = h.dot(&head.weight.t()) + &head.bias;
    let features = classifier.features(x.view());
    assert_eq!(features.dim(), (60, 32));
    assert!(relative_error(features.view(), h.view()) < REWRITE_REL_TOL);
    assert!(relative_error(classifier.logits(x.view()).view(), logits.view()) < REWRITE_REL_TOL);
    let argmax = |z: ArrayView2<f64>| -> Vec<usize> {
        z.rows()
            .into_iter()
            .map(|r| (0..r.len()).fold(0, |b, c| if r[c] > r[b] { c } else { b }))
            .collect()
    };
    let predicted = classifier.predict(x.view());
    assert_eq!(predicted, argmax(logits.view()));
    let right = predicted.iter().zip(&y).filter(|(p, y)| p == y).count();
    assert_eq!(classifier.accuracy(x.view(), &y), right as f64 / 60.0);
    // More rows than one evaluation chunk (1024), in pieces or whole: the same rows.
    let many = Array2::from_shape_fn((2500, 5), |(i, j)| x[[i % 60, j]]);
    let f = classifier.features(many.view());
    assert_eq!(f.row(2499), features.row(2499 % 60));
    assert_eq!(f.row(1030), features.row(1030 % 60));
}

/// A constant input column is centred to 0 and scaled by 1 / (a quarter of the columns' mean
/// standard deviation), the floor (no division by 0); the other columns by 1 / their own.
#[test]
fn constant_column_is_harmless() {
    let mut rng = Rng::seed_from_u64(6);
    let (mut x, y) = blobs(2, 3, 20, 3.0, 1, &mut rng);
    x.column_mut(1).fill(5.0);
    let classifier = train(&small_config(30), x.view(), &y, 0);
    let stds = x.var_axis(ndarray::Axis(0), 0.0).mapv(f64::sqrt);
    let floor = stds.mean().unwrap() / 4.0;
    assert_eq!(classifier.shift[1], 5.0);
    assert!((classifier.scale[1] - 1.0 / floor).abs() <= 1e-12 / floor);
    for j in [0, 2] {
        assert!(
            (classifier.scale[j] - 1.0 / stds[j].max(floor)).abs() <= 1e-12 * classifier.scale[j]
        );
    }
    assert!(classifier.features(x.view()).iter().all(|v| v.is_finite()));
    let accuracy = classifier.accuracy(x.view(), &y);
    assert!(accuracy > 0.9, "training accuracy {accuracy}");
}

#[test]
fn same_seed_same_classifier() {
    let mut rng = Rng::seed_from_u64(8);
    let (x, y) = blobs(3, 4, 15, 1.0, 2, &mut rng);
    let config = small_config(3);
    let a = train(&config, x.view(), &y, 21);
    let b = train(&config, x.view(), &y, 21);
    assert_eq!(a, b);
    let c = train(&config, x.view(), &y, 22);
    assert_ne!(a.params, c.params);
}

#[test]
fn one_hot_rows() {
    assert_eq!(
        one_hot::<f64>(&[2, 0, 1], 3),
        array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    );
}

#[test]
#[should_panic(expected = "one_hot: label 3 at row 1 is not below 3 columns")]
fn one_hot_label_out_of_range() {
    one_hot::<f64>(&[0, 3], 3);
}

#[test]
#[should_panic(expected = "classifier train: 3 points but 2 labels")]
fn labels_must_match_points() {
    train(&small_config(1), Array2::zeros((3, 2)).view(), &[0, 1], 0);
}

#[test]
#[should_panic(expected = "classifier: width must be >= 1")]
fn config_is_validated() {
    let config = ClassifierConfig {
        width: 0,
        ..ClassifierConfig::default()
    };
    train(&config, Array2::zeros((3, 2)).view(), &[0, 1, 0], 0);
}

#[test]
fn config_validation_messages() {
    let bad_lr = ClassifierConfig {
        adam: AdamConfig {
            lr: 0.0,
            ..AdamConfig::default()
        },
        ..ClassifierConfig::default()
    };
    assert_eq!(
        bad_lr.validate().unwrap_err(),
        "classifier: learning rate must be finite and > 0, got 0"
    );
    assert!(ClassifierConfig::default().validate().is_ok());
}

#[test]
#[should_panic(expected = "classifier: a training point is not finite")]
fn training_points_must_be_finite() {
    let x = array![[0.0, 1.0], [f64::NAN, 0.0]];
    train(&small_config(1), x.view(), &[0, 1], 0);
}

#[test]
#[should_panic(expected = "classifier cross_entropy: label 5 is not below 2 classes")]
fn cross_entropy_label_out_of_range() {
    let x = array![[0.0, 1.0], [1.0, 0.0]];
    let classifier: Classifier = train(&small_config(1), x.view(), &[0, 1], 0);
    classifier.cross_entropy_and_gradients(x.view(), &[0, 5]);
}
