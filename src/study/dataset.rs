//! The datasets of the study: the built-in toy generators ([`ToyDataset`], drawn as needed) and
//! the 8x8 handwritten digits (64-D), a finite set used unconditionally (labels ignored).
//!
//! A generator gives as many points as asked: its training pool is `builtin_pool_points(dim)`
//! draws with the seed's stream 2 (as `meanflow train` draws it), its held-out points fresh draws
//! from the caller's stream. The digits are what they are: the pool is the 1497 rows of the
//! training split of [`digits_split`], the held-out points are its 300 held-out rows, both in
//! model units ([`digits_units`]: pixels 0..16 to [-1, 1]). The posterior x | z_t of the study
//! ([`super::posterior`]) is over the pool, so on the digits it is exact for the training set.

use crate::data::{digits_split, digits_units, ParseDatasetError, ToyDataset, DIGITS_DIM};
use crate::rng::Rng;
use crate::train::builtin_pool_points;
use crate::verify::metrics::{sliced_wasserstein1, toy_floor, Metric};
use ndarray::{Array2, Axis};
use std::fmt;
use std::str::FromStr;

/// The name `--datasets` gives the digits.
pub const DIGITS_NAME: &str = "digits";

/// One dataset of the study.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StudyDataset {
    /// A built-in generator.
    Toy(ToyDataset),
    /// The 8x8 digits, 64-D, in model units, labels ignored.
    Digits,
}

impl From<ToyDataset> for StudyDataset {
    fn from(toy: ToyDataset) -> Self {
        StudyDataset::Toy(toy)
    }
}

impl StudyDataset {
    /// The name (`digits`, or the toy's canonical name): the key of the dataset's models and of
    /// its random streams ([`super::stream_index`]).
    pub fn name(&self) -> String {
        match self {
            StudyDataset::Toy(toy) => toy.name(),
            StudyDataset::Digits => DIGITS_NAME.into(),
        }
    }

    /// The number of columns of a point.
    pub fn dim(&self) -> usize {
        match self {
            StudyDataset::Toy(toy) => toy.dim(),
            StudyDataset::Digits => DIGITS_DIM,
        }
    }

    /// The generator, if this is one.
    pub fn toy(&self) -> Option<ToyDataset> {
        match self {
            StudyDataset::Toy(toy) => Some(*toy),
            StudyDataset::Digits => None,
        }
    }

    /// The training pool the shared models train on and the posterior is taken over, in model
    /// units: a toy's `builtin_pool_points(dim)` draws with `Rng::stream(seed, 2)`; the digits'
    /// 1497 training rows (whatever the seed).
    pub fn pool(&self, seed: u64) -> Array2<f64> {
        match self {
            StudyDataset::Toy(toy) => {
                toy.sample(builtin_pool_points(toy.dim()), &mut Rng::stream(seed, 2))
            }
            StudyDataset::Digits => digits_units().to_model(digits_split().0.points.view()),
        }
    }

    /// Held-out points, in model units: a toy's `n` fresh draws from `rng`; the digits' 300
    /// held-out rows (all of them, whatever `n`; `rng` unused).
    pub fn held_out(&self, n: usize, rng: &mut Rng) -> Array2<f64> {
        match self {
            StudyDataset::Toy(toy) => toy.sample(n, rng),
            StudyDataset::Digits => digits_units().to_model(digits_split().1.points.view()),
        }
    }

    /// What sliced W1 between `n` samples and [`Self::held_out`] would be for perfect samples: a
    /// toy's [`toy_floor`] (two independent sets of `n` draws); for the digits, SW1 between `n`
    /// rows of the training pool (drawn with replacement when `n` exceeds it, `Rng::stream(seed,
    /// 4)`) and the held-out rows (the train / held-out gap at the same sizes).
    pub fn sw1_floor(&self, n: usize, seed: u64) -> f64 {
        match self {
            StudyDataset::Toy(toy) => toy_floor(Metric::SlicedW1, toy, n, 1, seed),
            StudyDataset::Digits => {
                let pool = self.pool(seed);
                let mut rng = Rng::stream(seed, 4);
                let rows: Vec<usize> = if n <= pool.nrows() {
                    rng.permutation(pool.nrows())[..n].to_vec()
                } else {
                    (0..n).map(|_| rng.below(pool.nrows())).collect()
                };
                let held_out = self.held_out(n, &mut rng);
                sliced_wasserstein1(pool.select(Axis(0), &rows).view(), held_out.view())
            }
        }
    }
}

impl fmt::Display for StudyDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for StudyDataset {
    type Err = ParseDatasetError;

    /// `digits` (any case), or a [`ToyDataset`] name; the error of an unknown name is the toy
    /// parser's, which lists the toys (`digits` is named by the callers' help).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case(DIGITS_NAME) {
            return Ok(StudyDataset::Digits);
        }
        s.parse::<ToyDataset>().map(StudyDataset::Toy)
    }
}

/// `datasets` with each name once, in first-seen order: the instruments that share models may
/// list a dataset twice (a Gaussian in `--datasets` is also one of instrument 5's), and each model
/// is trained once.
pub fn distinct(datasets: impl IntoIterator<Item = StudyDataset>) -> Vec<StudyDataset> {
    let mut seen = std::collections::BTreeSet::new();
    datasets
        .into_iter()
        .filter(|d| seen.insert(d.name()))
        .collect()
}

/// The generators among `datasets`, in order (the instruments that need a generator, curves and
/// gaussian, skip the digits).
pub fn toys(datasets: &[StudyDataset]) -> Vec<ToyDataset> {
    datasets.iter().filter_map(StudyDataset::toy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for name in ["digits", "two_moons", "gaussian_narrow", "gaussian_wide:8"] {
            let ds: StudyDataset = name.parse().unwrap();
            assert_eq!(ds.name(), name);
        }
        assert_eq!("Digits".parse::<StudyDataset>(), Ok(StudyDataset::Digits));
        assert!("digit".parse::<StudyDataset>().is_err());
        let toy: ToyDataset = "two_moons".parse().unwrap();
        assert_eq!(StudyDataset::from(toy).toy(), Some(toy));
        assert_eq!(StudyDataset::Digits.toy(), None);
    }

    #[test]
    fn the_digits_pool_and_held_out_are_the_split_in_model_units() {
        let ds = StudyDataset::Digits;
        assert_eq!(ds.dim(), 64);
        let pool = ds.pool(0);
        assert_eq!(pool.dim(), (1497, 64));
        // The seed does not choose the rows of a fixed split.
        assert_eq!(pool, ds.pool(7));
        let held = ds.held_out(10, &mut Rng::seed_from_u64(0));
        assert_eq!(held.dim(), (300, 64));
        for v in pool.iter().chain(held.iter()) {
            assert!((-1.0..=1.0).contains(v), "{v} not in model units");
        }
        // Pixels are integers 0..16: model units are multiples of 1/8.
        assert!(pool.iter().all(|v| (v * 8.0).fract() == 0.0));
        let floor = ds.sw1_floor(200, 3);
        assert!(floor > 0.0 && floor.is_finite(), "{floor}");
    }

    #[test]
    fn a_toy_pool_is_the_train_pool() {
        let toy: ToyDataset = "two_moons".parse().unwrap();
        let want = toy.sample(builtin_pool_points(2), &mut Rng::stream(5, 2));
        assert_eq!(StudyDataset::Toy(toy).pool(5), want);
    }

    #[test]
    fn distinct_keeps_the_first_of_each_name() {
        let narrow = StudyDataset::Toy(ToyDataset::gaussian_narrow());
        let moons: StudyDataset = "two_moons".parse().unwrap();
        let digits = StudyDataset::Digits;
        assert_eq!(
            distinct([narrow, digits, moons, narrow, digits]),
            vec![narrow, digits, moons]
        );
        assert_eq!(
            toys(&[narrow, digits, moons]),
            vec![ToyDataset::gaussian_narrow(), ToyDataset::TwoMoons]
        );
    }
}
