//! The quality of generated digits, three numbers against the fixed split of
//! [`crate::data::digits_split`] (1497 training, 300 held-out digits), all in pixels (0..16):
//!
//! ```text
//! accuracy     = mean_i [classifier(x_i) = c_i]            samples x_i asked for class c_i
//! fréchet      = FD(features(samples), features(held-out))  the classifier's last hidden layer
//! floor        = FD(features(n training digits), features(held-out))   the same n as the samples
//! memorisation = median_i min_j |x_i - train_j| / median_k min_j |held_k - train_j|
//! ```
//!
//! The classifier is meanflow's own ([`crate::verify::classifier`]), trained once on the training
//! digits with [`ClassifierConfig::default`] and seed [`JUDGE_SEED`]. The Fréchet distance of 128-D
//! features from a few hundred points is biased upwards by the sample sizes, so it is only compared
//! with the floor computed at the same sizes. Memorisation near 0 means the samples are copies of
//! training digits; near 1, they are as far from the training set as new digits are.

use crate::data::{digits_split, LabelledData};
use crate::verify::classifier::{self, Classifier, ClassifierConfig};
use crate::verify::frechet::frechet_distance;
use crate::verify::metrics::median;
use ndarray::{ArrayView2, Axis};

/// The classifier's seed.
pub const JUDGE_SEED: u64 = 0;

/// The scores of one set of samples ([`DigitsJudge::score`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DigitsScore {
    /// Points scored.
    pub n: usize,
    /// The fraction classified as the class asked for (None for unconditional samples).
    pub accuracy: Option<f64>,
    pub frechet: f64,
    /// The Fréchet distance of n training digits to the held-out digits.
    pub frechet_floor: f64,
    pub memorisation: f64,
}

/// The classifier and the data that scores are measured against.
pub struct DigitsJudge {
    classifier: Classifier,
    train: LabelledData,
    held_out: LabelledData,
    /// median_k min_j |held_k - train_j|: how far a new digit is from the training set.
    novelty_scale: f64,
}

/// min_j |x - train_j| for each row x of `points`.
fn nearest_distances(points: ArrayView2<f64>, train: ArrayView2<f64>) -> Vec<f64> {
    points
        .rows()
        .into_iter()
        .map(|x| {
            train
                .rows()
                .into_iter()
                .map(|y| {
                    x.iter()
                        .zip(y.iter())
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect()
}

impl DigitsJudge {
    /// Trains the classifier on the training digits (about half a second).
    pub fn new() -> Self {
        let (train, held_out) = digits_split();
        let classifier = classifier::train(
            &ClassifierConfig::default(),
            train.points.view(),
            &train.labels,
            JUDGE_SEED,
        );
        let novelty_scale = median(nearest_distances(
            held_out.points.view(),
            train.points.view(),
        ));
        DigitsJudge {
            classifier,
            train,
            held_out,
            novelty_scale,
        }
    }

    /// The classifier's accuracy on the held-out digits.
    pub fn held_out_accuracy(&self) -> f64 {
        self.classifier
            .accuracy(self.held_out.points.view(), &self.held_out.labels)
    }

    /// The scores of `samples` (pixels, [n, 64]), asked for classes `labels` (None: unconditional).
    ///
    /// # Panics
    /// If the samples are not 64-D, there are fewer than 2, or the label count differs.
    pub fn score(&self, samples: ArrayView2<f64>, labels: Option<&[usize]>) -> DigitsScore {
        let n = samples.nrows();
        assert!(
            samples.ncols() == self.train.dim() && n >= 2,
            "DigitsJudge::score: samples {:?}, need [n >= 2, {}]",
            samples.dim(),
            self.train.dim()
        );
        let accuracy = labels.map(|l| self.classifier.accuracy(samples, l));
        let held_features = self.classifier.features(self.held_out.points.view());
        let frechet = frechet_distance(
            self.classifier.features(samples).view(),
            held_features.view(),
        );
        // The floor at the samples' size: the first n training digits (all when n is larger).
        let m = n.min(self.train.len());
        let train_n = self.train.points.slice_axis(Axis(0), (0..m).into());
        let frechet_floor = frechet_distance(
            self.classifier.features(train_n).view(),
            held_features.view(),
        );
        let memorisation =
            median(nearest_distances(samples, self.train.points.view())) / self.novelty_scale;
        DigitsScore {
            n,
            accuracy,
            frechet,
            frechet_floor,
            memorisation,
        }
    }
}

impl Default for DigitsJudge {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Training digits score as copies (memorisation 0) of the right class; held-out digits as new
    /// digits (memorisation 1) near the floor; noise scores far off on every number.
    #[test]
    fn real_digits_score_as_data_and_noise_does_not() {
        let judge = DigitsJudge::new();
        assert!(
            judge.held_out_accuracy() > 0.9,
            "{}",
            judge.held_out_accuracy()
        );
        let (train, held_out) = digits_split();
        let copies = judge.score(train.points.view(), Some(&train.labels));
        assert_eq!(copies.memorisation, 0.0);
        assert!(copies.accuracy.unwrap() > 0.97);
        let fresh = judge.score(held_out.points.view(), Some(&held_out.labels));
        assert!((fresh.memorisation - 1.0).abs() < 1e-12);
        assert!(fresh.frechet < 1e-9, "{}", fresh.frechet);
        let mut rng = crate::rng::Rng::seed_from_u64(1);
        let noise = ndarray::Array2::from_shape_simple_fn((300, 64), || 16.0 * rng.uniform());
        let bad = judge.score(noise.view(), Some(&held_out.labels));
        assert!(bad.accuracy.unwrap() < 0.5);
        assert!(bad.frechet > 10.0 * fresh.frechet_floor, "{bad:?}");
        assert!(bad.memorisation > 1.5, "{bad:?}");
    }
}
