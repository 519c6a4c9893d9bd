//! A classifier that meanflow trains itself, to measure class-conditional samples: the accuracy
//! of samples of class c under it (does the sample look like a c?), and a Fréchet distance in its
//! feature space ([`crate::verify::frechet`]).
//!
//! # The model
//! An MLP on standardised inputs, every layer one [`Tape::dense`]:
//!
//! ```text
//! x' = (x - shift) * scale                    per column: the training points' mean and
//!                                             1 / max(std, std_mean / 4), std_mean the mean
//!                                             of the columns' standard deviations
//! h_0 = x',  h_{l+1} = f(h_l W_l^T + b_l)      l = 0 .. depth-1   (hidden layers, width w)
//! z = h_depth W_out^T + b_out                 logits [n, C]
//! p(c | x) = softmax(z)_c,   predict(x) = argmax_c z_c  (the first maximum)
//! features(x) = h_depth                       the last hidden layer's activations [n, w]
//! ```
//!
//! # Training
//! The softmax cross-entropy of the logits against one-hot labels,
//!
//! ```text
//! L = (1/B) sum_i (logsumexp(z_i) - z_i[y_i])      (Tape::softmax_cross_entropy)
//! ```
//!
//! over minibatches of B rows of a fresh permutation each epoch (the last batch of an epoch may
//! be smaller), its gradient by reverse mode on the tape, and one AdamW step
//! ([`crate::train::optim::Adam`]) per batch. Initial weights are PyTorch's `nn.Linear` default
//! ([`Linear::init`]) from `Rng::stream(seed, 0)`, the permutations come from
//! `Rng::stream(seed, 1)`: training is a deterministic function of the config, the points, the
//! labels and the seed. Everything is in f64.
//!
//! The parameters are an [`MlpParams`] whose `trunk` holds the hidden layers and whose `u_head`
//! is the logit layer (no `v_head`), so that the optimiser updates them as it updates the
//! flow model's.

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::flow::model::{fill_one_hot, Architecture, Linear, MlpParams, ParamVars};
use crate::rng::Rng;
use crate::train::optim::{Adam, AdamConfig};
use ndarray::{s, Array1, Array2, ArrayView2, Axis};

/// Rows evaluated at once by [`Classifier::logits`] and [`Classifier::features`].
const EVAL_CHUNK: usize = 1024;

/// The classifier's architecture and training settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Width w of every hidden layer (the feature dimension).
    pub width: usize,
    /// Number of hidden layers (>= 1).
    pub depth: usize,
    /// f of the hidden layers.
    pub activation: Elementwise,
    /// Passes over the training points.
    pub epochs: usize,
    /// Rows per step (the last batch of an epoch may have fewer).
    pub batch_size: usize,
    /// AdamW settings.
    pub adam: AdamConfig,
}

impl Default for ClassifierConfig {
    /// 2 hidden layers of 128 silu units, 40 epochs of batches of 64, AdamW with lr 1e-3,
    /// betas (0.9, 0.999) and weight decay 1e-2 (PyTorch's `AdamW` defaults).
    fn default() -> Self {
        ClassifierConfig {
            width: 128,
            depth: 2,
            activation: Elementwise::Silu,
            epochs: 40,
            batch_size: 64,
            adam: AdamConfig {
                weight_decay: 1e-2,
                ..AdamConfig::default()
            },
        }
    }
}

impl ClassifierConfig {
    /// Checks the settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("width", self.width),
            ("depth", self.depth),
            ("batch size", self.batch_size),
        ] {
            if value == 0 {
                return Err(format!("classifier: {name} must be >= 1"));
            }
        }
        self.adam.validate().map_err(|e| format!("classifier: {e}"))
    }
}

/// A trained classifier (module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    pub config: ClassifierConfig,
    /// Number of classes C: one more than the largest training label.
    pub classes: usize,
    /// Subtracted from each input column: the training points' mean.
    pub shift: Array1<f64>,
    /// Multiplies each centred column: 1 / (the training points' standard deviation), floored
    /// at a quarter of the columns' mean standard deviation (1 if every column is constant).
    /// Without the floor a column that is nearly constant in the data (a digit's corner pixel)
    /// would multiply a generated sample's small deviation there into a huge input.
    pub scale: Array1<f64>,
    /// `trunk`: the hidden layers; `u_head`: the logit layer.
    pub params: MlpParams<f64>,
    /// The mean training cross-entropy of each epoch (the mean over its batches, weighted by
    /// their sizes, at the parameters each batch was evaluated at).
    pub epoch_losses: Vec<f64>,
}

/// Trains a classifier on labelled points (rows of `points`, `labels[i]` the class of row i; the
/// classes are 0 .. max label). Deterministic given the seed (module documentation).
///
/// # Panics
/// If the config is invalid, there are no points, the label count differs from the row count,
/// or a point is not finite.
pub fn train(
    config: &ClassifierConfig,
    points: ArrayView2<f64>,
    labels: &[usize],
    seed: u64,
) -> Classifier {
    if let Err(e) = config.validate() {
        panic!("{e}");
    }
    let (n, d) = points.dim();
    check_labelled("train", points, labels);
    assert!(
        n > 0 && d > 0,
        "classifier: nothing to train on: points of shape {:?}",
        (n, d)
    );
    assert!(
        points.iter().all(|x| x.is_finite()),
        "classifier: a training point is not finite"
    );
    let classes = labels.iter().max().expect("n > 0") + 1;
    let shift = points.mean_axis(Axis(0)).expect("n > 0");
    let stds = points.var_axis(Axis(0), 0.0).mapv(f64::sqrt);
    let floor = stds.mean().unwrap_or(0.0) / 4.0;
    let scale = stds.mapv(|std| {
        let std = std.max(floor);
        if std > 0.0 {
            1.0 / std
        } else {
            1.0
        }
    });
    let mut init = Rng::stream(seed, 0);
    let trunk = (0..config.depth)
        .map(|l| {
            Linear::init(
                config.width,
                if l == 0 { d } else { config.width },
                &mut init,
            )
        })
        .collect();
    let u_head = Linear::init(classes, config.width, &mut init);
    let mut classifier = Classifier {
        config: *config,
        classes,
        shift,
        scale,
        params: MlpParams {
            architecture: Architecture::Mlp,
            trunk,
            u_head,
            v_head: None,
            class_embed: None,
        },
        epoch_losses: Vec::with_capacity(config.epochs),
    };
    let x = classifier.standardise(points);
    let mut adam = Adam::new(config.adam, &classifier.params);
    let mut grads = classifier.params.zeros_like();
    let mut step = Step::default();
    let mut batches = Rng::stream(seed, 1);
    for _ in 0..config.epochs {
        let order = batches.permutation(n);
        let mut total = 0.0;
        for rows in order.chunks(config.batch_size) {
            let x_batch = x.select(Axis(0), rows);
            let y_batch: Vec<usize> = rows.iter().map(|&r| labels[r]).collect();
            let loss = step.run(&classifier, x_batch.view(), &y_batch, &mut grads);
            total += loss * rows.len() as f64;
            adam.update(&mut classifier.params, &mut grads);
        }
        classifier.epoch_losses.push(total / n as f64);
    }
    classifier
}

fn check_labelled(what: &str, points: ArrayView2<f64>, labels: &[usize]) {
    assert_eq!(
        points.nrows(),
        labels.len(),
        "classifier {what}: {} points but {} labels",
        points.nrows(),
        labels.len()
    );
}

/// One reusable tape for the training steps.
#[derive(Default)]
struct Step {
    tape: Tape<f64>,
    vars: ParamVars,
}

impl Step {
    /// Records the cross-entropy of the standardised rows `x` against `labels` at the
    /// classifier's parameters, back-propagates it, writes the gradients into `grads` and
    /// returns the loss.
    fn run(
        &mut self,
        classifier: &Classifier,
        x: ArrayView2<f64>,
        labels: &[usize],
        grads: &mut MlpParams<f64>,
    ) -> f64 {
        let tape = &mut self.tape;
        tape.clear();
        classifier.params.on_tape_into(tape, &mut self.vars);
        let x = tape.constant(x);
        let classes = classifier.classes;
        let y = tape.constant_from_fn((labels.len(), classes), |y| fill_one_hot(y, labels));
        let (_, logits) = record(tape, &self.vars, classifier.config.activation, x);
        let loss = tape.softmax_cross_entropy(logits, y);
        tape.backward(loss);
        grads.gradients_into(tape, &self.vars);
        tape.scalar(loss)
    }
}

/// Records the network on x: (features h_depth, logits z).
fn record(tape: &mut Tape<f64>, vars: &ParamVars, f: Elementwise, x: Var) -> (Var, Var) {
    let mut h = x;
    for &(w, b) in &vars.trunk {
        h = tape.dense(h, w, b, Some(f));
    }
    let (w, b) = vars.u_head;
    (h, tape.dense(h, w, b, None))
}

impl Classifier {
    /// The number of input columns.
    pub fn dim(&self) -> usize {
        self.shift.len()
    }

    /// (x - shift) * scale, per column.
    pub fn standardise(&self, points: ArrayView2<f64>) -> Array2<f64> {
        assert_eq!(
            points.ncols(),
            self.dim(),
            "classifier: points have {} columns, the classifier was trained on {}",
            points.ncols(),
            self.dim()
        );
        let mut x = points.to_owned();
        for mut row in x.rows_mut() {
            row -= &self.shift;
            row *= &self.scale;
        }
        x
    }

    /// (features, logits) of every row, [`EVAL_CHUNK`] rows per tape.
    fn evaluate(&self, points: ArrayView2<f64>) -> (Array2<f64>, Array2<f64>) {
        let x = self.standardise(points);
        let n = x.nrows();
        let mut features = Array2::zeros((n, self.config.width));
        let mut logits = Array2::zeros((n, self.classes));
        let mut tape = Tape::new();
        let mut start = 0;
        while start < n {
            let end = (start + EVAL_CHUNK).min(n);
            tape.clear();
            // Constants: no gradient is taken, so no layer keeps its slope.
            let mut constant =
                |l: &Linear<f64>| (tape.constant(l.weight.view()), tape.constant(l.bias.view()));
            let vars = ParamVars {
                architecture: Architecture::Mlp,
                trunk: self.params.trunk.iter().map(&mut constant).collect(),
                u_head: constant(&self.params.u_head),
                v_head: None,
                class_embed: None,
            };
            let xv = tape.constant(x.slice(s![start..end, ..]));
            let (h, z) = record(&mut tape, &vars, self.config.activation, xv);
            features
                .slice_mut(s![start..end, ..])
                .assign(&tape.value(h));
            logits.slice_mut(s![start..end, ..]).assign(&tape.value(z));
            start = end;
        }
        (features, logits)
    }

    /// The logits z [n, C] of every row.
    pub fn logits(&self, points: ArrayView2<f64>) -> Array2<f64> {
        self.evaluate(points).1
    }

    /// The last hidden layer's activations h_depth [n, width] of every row: the feature space
    /// of the Fréchet distance.
    pub fn features(&self, points: ArrayView2<f64>) -> Array2<f64> {
        self.evaluate(points).0
    }

    /// The predicted class of every row: argmax_c z_c (the first maximum; a row whose logits
    /// are not all comparable, NaN, gets class 0 unless a later logit is larger).
    pub fn predict(&self, points: ArrayView2<f64>) -> Vec<usize> {
        self.logits(points)
            .rows()
            .into_iter()
            .map(|z| {
                let mut best = 0;
                for (c, &v) in z.iter().enumerate() {
                    if v > z[best] {
                        best = c;
                    }
                }
                best
            })
            .collect()
    }

    /// The fraction of rows whose predicted class is their label (NaN for no rows).
    pub fn accuracy(&self, points: ArrayView2<f64>, labels: &[usize]) -> f64 {
        check_labelled("accuracy", points, labels);
        let predicted = self.predict(points);
        let right = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
        right as f64 / labels.len() as f64
    }

    fn check_targets(&self, points: ArrayView2<f64>, labels: &[usize]) {
        check_labelled("cross_entropy", points, labels);
        assert!(!labels.is_empty(), "classifier cross_entropy: no points");
        if let Some(&c) = labels.iter().find(|&&c| c >= self.classes) {
            panic!(
                "classifier cross_entropy: label {c} is not below {} classes",
                self.classes
            );
        }
    }

    /// The mean cross-entropy `(1/n) sum_i (logsumexp(z_i) - z_i[y_i])` on labelled points, and
    /// its gradient with respect to every parameter: the quantity each training step descends,
    /// computed the same way (one tape, reverse mode).
    ///
    /// # Panics
    /// If there are no points, the label count differs, or a label is not below C.
    pub fn cross_entropy_and_gradients(
        &self,
        points: ArrayView2<f64>,
        labels: &[usize],
    ) -> (f64, MlpParams<f64>) {
        self.check_targets(points, labels);
        let x = self.standardise(points);
        let mut grads = self.params.zeros_like();
        let loss = Step::default().run(self, x.view(), labels, &mut grads);
        (loss, grads)
    }

    /// The mean cross-entropy alone (see [`Classifier::cross_entropy_and_gradients`]), from the
    /// logits without a tape: `mean_i (m_i + ln sum_c exp(z_ic - m_i) - z_i[y_i])`, m_i = max_c z_ic.
    ///
    /// # Panics
    /// As [`Classifier::cross_entropy_and_gradients`].
    pub fn cross_entropy(&self, points: ArrayView2<f64>, labels: &[usize]) -> f64 {
        self.check_targets(points, labels);
        let z = self.logits(points);
        let total: f64 = z
            .rows()
            .into_iter()
            .zip(labels)
            .map(|(z, &y)| {
                let m = z.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - z[y]
            })
            .sum();
        total / labels.len() as f64
    }
}
