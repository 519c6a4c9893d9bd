//! Sampling the times (r, t) of a training batch.
//!
//! Two draws s1, s2 from a distribution on (0, 1) are ordered, t = max, r = min (MeanFlow's and
//! improved MeanFlow's way); or, with a distribution of its own for r, t ~ D_t and
//! r = min(s_r, t) with s_r ~ D_r (py-meanflow's default, `time_sampler.py` v1: t ~
//! logit-normal(-0.6, 1.6), r ~ logit-normal(-4, 1.6) on CIFAR-10). Then an exact
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
    /// r's own distribution (r = min(s_r, t)); None: r and t are the ordered pair of two draws
    /// from `distribution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_distribution: Option<TimeDistribution>,
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
            r_distribution: None,
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
        for (which, distribution) in [
            ("", Some(self.distribution)),
            (" of r", self.r_distribution),
        ] {
            if let Some(TimeDistribution::LogitNormal { mu, sigma }) = distribution {
                if !mu.is_finite() {
                    return Err(format!("time sampler mu{which} must be finite, got {mu}"));
                }
                if !(sigma > 0.0 && sigma.is_finite()) {
                    return Err(format!(
                        "time sampler sigma{which} must be finite and > 0, got {sigma}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The number of rows of a batch of `batch` rows with r != t (they come first).
    pub fn rows_with_gap(&self, batch: usize) -> usize {
        batch - ((self.fraction_equal * batch as f64).round() as usize).min(batch)
    }

    fn draw(&self, rng: &mut Rng) -> f64 {
        Self::draw_from(self.distribution, rng)
    }

    fn draw_from(distribution: TimeDistribution, rng: &mut Rng) -> f64 {
        match distribution {
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
            let (s1, s2) = match self.r_distribution {
                // (t, r) in that order, so that lo = min(s_r, t) and hi = t below.
                Some(dr) => {
                    let s_t = self.draw(rng);
                    (Self::draw_from(dr, rng).min(s_t), s_t)
                }
                None => (self.draw(rng), self.draw(rng)),
            };
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

    /// With r's own logit-normal(-4, 1.6) and t's (-0.6, 1.6) (py-meanflow's CIFAR-10 setting):
    /// t's median is sigmoid(-0.6) = 0.354, r's on the rows with a gap is that of
    /// min(s_r, t), within a few hundredths of sigmoid(-4) = 0.018, and r <= t on every row.
    #[test]
    fn r_of_its_own_distribution_is_clamped_below_t() {
        let s = TimeSampler {
            distribution: TimeDistribution::LogitNormal {
                mu: -0.6,
                sigma: 1.6,
            },
            fraction_equal: 0.0,
            r_distribution: Some(TimeDistribution::LogitNormal {
                mu: -4.0,
                sigma: 1.6,
            }),
        };
        s.validate().unwrap();
        let n = 20_001;
        let (mut t, mut r) = (Array2::<f64>::zeros((n, 1)), Array2::<f64>::zeros((n, 1)));
        s.fill(&mut Rng::seed_from_u64(3), t.view_mut(), r.view_mut());
        assert!(t.iter().zip(r.iter()).all(|(t, r)| r <= t));
        let median = |a: &Array2<f64>| {
            let mut v: Vec<f64> = a.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            v[n / 2]
        };
        assert!((median(&t) - 0.354).abs() < 0.01, "t median {}", median(&t));
        assert!(
            (median(&r) - 0.018).abs() < 0.005,
            "r median {}",
            median(&r)
        );
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
