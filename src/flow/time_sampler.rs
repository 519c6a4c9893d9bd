//! Sampling the times (r, t) of a training batch.
//!
//! Two draws s1, s2 from a distribution on (0, 1) are ordered, t = max, r = min; then an exact
//! number of rows, round(fraction_equal B), is set to r = t. Those rows are the *last* ones of the
//! batch: rows are i.i.d., so the placement changes nothing in distribution, and it lets the loss
//! seed its tangent on the leading rows only (a row-prefix tangent, `loss::tangent_rows`), skipping
//! the tangent work of the block where r = t ((t - r) dudt = 0 there).
//!
//! Distributions: logit-normal, s = sigmoid(mu + sigma n) with n ~ N(0, 1), or uniform on [0, 1).
//!
//! Defaults, from the papers:
//! - `mf`: logit-normal(mu = -0.4, sigma = 1.0) with 25% of rows r != t (MeanFlow, Geng et al.
//!   2025, Table 1 ablations: the best setting).
//! - `imf`: the same distribution with 50% of rows r = t (improved MeanFlow).

use crate::flow::loss::LossPreset;
use crate::linalg::float::Float;
use crate::rng::Rng;
use ndarray::ArrayViewMut2;
use rand::Rng as _;
use rand_distr::Normal;

/// The distribution of a single time draw.
/// Stored in JSON as `{"kind": "logit-normal", "mu": .., "sigma": ..}` or `{"kind": "uniform"}`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TimeDistribution {
    /// sigmoid(mu + sigma n), n ~ N(0, 1).
    LogitNormal { mu: f64, sigma: f64 },
    /// U[0, 1).
    Uniform,
}

/// How a batch's (r, t) are drawn.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSampler {
    pub distribution: TimeDistribution,
    /// Fraction of rows with r = t, in [0, 1].
    pub fraction_equal: f64,
}

impl TimeSampler {
    /// MeanFlow's default: logit-normal(-0.4, 1.0), 75% of rows r = t.
    pub fn mf_default() -> Self {
        TimeSampler {
            distribution: TimeDistribution::LogitNormal {
                mu: -0.4,
                sigma: 1.0,
            },
            fraction_equal: 0.75,
        }
    }

    /// Improved MeanFlow's default: logit-normal(-0.4, 1.0), 50% of rows r = t.
    pub fn imf_default() -> Self {
        TimeSampler {
            fraction_equal: 0.5,
            ..Self::mf_default()
        }
    }

    /// The default of a loss preset's paper: [`Self::mf_default`] for `mf`,
    /// [`Self::imf_default`] for `imf` and `imf-head`.
    pub fn preset_default(preset: LossPreset) -> Self {
        match preset {
            LossPreset::Mf => Self::mf_default(),
            LossPreset::Imf | LossPreset::ImfHead => Self::imf_default(),
        }
    }

    /// Checks the parameters; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fraction_equal) {
            return Err(format!(
                "the fraction of rows with r = t must be in [0, 1], got {}",
                self.fraction_equal
            ));
        }
        if let TimeDistribution::LogitNormal { mu, sigma } = self.distribution {
            if !mu.is_finite() {
                return Err(format!("time sampler mu must be finite, got {mu}"));
            }
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(format!(
                    "time sampler sigma must be finite and > 0, got {sigma}"
                ));
            }
        }
        Ok(())
    }

    /// The number of rows of a batch of `batch` rows with r != t (they come first).
    pub fn rows_with_gap(&self, batch: usize) -> usize {
        batch - ((self.fraction_equal * batch as f64).round() as usize).min(batch)
    }

    fn draw(&self, rng: &mut Rng) -> f64 {
        match self.distribution {
            TimeDistribution::LogitNormal { mu, sigma } => {
                // s ~ N(mu, sigma^2); validate() has checked sigma > 0.
                let s: f64 = rng.sample(Normal::new(mu, sigma).expect("a validated sigma"));
                1.0 / (1.0 + (-s).exp())
            }
            TimeDistribution::Uniform => rng.uniform(),
        }
    }

    /// Fills t and r ([B, 1]) for one batch; rows from `rows_with_gap(B)` on have r = t.
    pub fn fill<T: Float>(&self, rng: &mut Rng, mut t: ArrayViewMut2<T>, mut r: ArrayViewMut2<T>) {
        let b = t.nrows();
        assert!(
            t.dim() == (b, 1) && r.dim() == (b, 1),
            "TimeSampler::fill: t {:?} and r {:?} must both be [B, 1]",
            t.dim(),
            r.dim()
        );
        let gap_rows = self.rows_with_gap(b);
        for i in 0..b {
            let (s1, s2) = (self.draw(rng), self.draw(rng));
            let (lo, hi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
            t[[i, 0]] = T::from_f64(hi);
            r[[i, 0]] = T::from_f64(if i < gap_rows { lo } else { hi });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ordered_and_exact_fraction_equal() {
        let s = TimeSampler::mf_default();
        let mut rng = Rng::seed_from_u64(5);
        let (mut t, mut r) = (
            Array2::<f64>::zeros((100, 1)),
            Array2::<f64>::zeros((100, 1)),
        );
        s.fill(&mut rng, t.view_mut(), r.view_mut());
        assert!(t
            .iter()
            .zip(r.iter())
            .all(|(t, r)| r <= t && *t < 1.0 && *r > 0.0));
        let equal = t.iter().zip(r.iter()).filter(|(t, r)| t == r).count();
        assert_eq!(equal, 75);
        assert!((0..25).all(|i| r[[i, 0]] < t[[i, 0]]));
    }

    #[test]
    fn logit_normal_median() {
        // The median of sigmoid(mu + sigma n) is sigmoid(mu): 0.4013 for mu = -0.4.
        let s = TimeSampler::mf_default();
        let mut rng = Rng::seed_from_u64(9);
        let mut draws: Vec<f64> = (0..20_001).map(|_| s.draw(&mut rng)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[10_000];
        assert!((median - 0.4013).abs() < 0.01, "median {median}");
    }
}
