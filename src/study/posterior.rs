//! x | z_t for a dataset given by a finite sample (a pool), and the points z_t the instruments
//! condition on.
//!
//! With z_t = (1 - t) x + t e, e ~ N(0, I), and x uniform on a pool {x_i}, Bayes gives
//!
//! ```text
//! P(x = x_i | z_t = z) = w_i / sum_j w_j,   w_i = N(z; (1 - t) x_i, t^2 I) ∝ exp(-|z - (1 - t) x_i|^2 / (2 t^2))
//! ```
//!
//! so that, holding z fixed, a redraw x' from the weighted pool gives e' = (z - (1 - t) x') / t and
//! v_c' = e' - x' = (z - x') / t: the conditional velocity redrawn at the same z.
//!
//! This is the posterior of the *empirical* distribution of the pool, which is exactly what a model
//! trained on that pool sees. Its effective sample size ESS = (sum w)^2 / sum w^2 collapses to 1
//! as t -> 0 (the Gaussian kernel of width t / (1 - t) becomes narrower than the spacing of the
//! pool), where the population posterior (of the density the pool was drawn from) is still wide:
//! there the two differ and the conditional variances of the pool are near zero. The instruments
//! record the ESS of every point and report where it is small.
//!
//! For isotropic Gaussian data x ~ N(0, s^2 I) the posterior is Gaussian, [`gaussian_posterior`]:
//! x | z ~ N((1 - t) s^2 z / sigma_t^2, s^2 t^2 / sigma_t^2 I), sigma_t^2 = (1 - t)^2 s^2 + t^2.

use crate::rng::Rng;
use ndarray::{Array2, Array3, ArrayView1, ArrayView2};

/// The normalised posterior weights of the pool rows at one (z, t), and their effective sample size.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolWeights {
    /// w_i / sum_j w_j, one per pool row.
    pub weights: Vec<f64>,
    /// (sum w)^2 / sum w^2, in [1, pool size].
    pub ess: f64,
}

/// Below this log weight (relative to the largest, whose weight is 1) a weight is set to 0 without
/// computing its exp: e^-50 = 2e-22, so even 2^17 such rows together change the normalised
/// probabilities by less than 3e-17, below f64 resolution next to the largest weight.
const LOG_WEIGHT_FLOOR: f64 = -50.0;

/// The posterior weights of the pool given z_t = z:
/// w_i ∝ exp(-|z - (1 - t) x_i|^2 / (2 t^2)), computed in log space with the maximum subtracted
/// (so the largest weight is exp(0) = 1 before normalising and nothing underflows to all zeros;
/// weights below e^-50 of the largest are set to 0). ESS = (sum w)^2 / sum w^2.
///
/// Panics unless 0 < t <= 1 and z has the pool's dimension.
pub fn pool_weights(pool: ArrayView2<f64>, z: ArrayView1<f64>, t: f64) -> PoolWeights {
    let mut weights = Vec::new();
    let ess = pool_weights_into(pool, z, t, &mut weights);
    PoolWeights { weights, ess }
}

/// [`pool_weights`] into a reusable buffer (normalised weights); returns the ESS.
pub fn pool_weights_into(
    pool: ArrayView2<f64>,
    z: ArrayView1<f64>,
    t: f64,
    weights: &mut Vec<f64>,
) -> f64 {
    assert!(
        t > 0.0 && t <= 1.0,
        "pool_weights: t must be in (0, 1], got {t}"
    );
    assert_eq!(
        pool.ncols(),
        z.len(),
        "pool_weights: pool rows have {} columns, z has {}",
        pool.ncols(),
        z.len()
    );
    assert!(pool.nrows() > 0, "pool_weights: the pool is empty");
    let scale = 1.0 - t;
    let inv = 1.0 / (2.0 * t * t);
    let z: Vec<f64> = z.iter().copied().collect();
    weights.clear();
    weights.extend(pool.rows().into_iter().map(|x| {
        let sq: f64 = x
            .iter()
            .zip(&z)
            .map(|(&xi, &zi)| {
                let d = zi - scale * xi;
                d * d
            })
            .sum();
        -sq * inv
    }));
    let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for l in weights.iter_mut() {
        let rel = *l - max;
        let w = if rel < LOG_WEIGHT_FLOOR {
            0.0
        } else {
            rel.exp()
        };
        *l = w;
        sum += w;
        sum_sq += w * w;
    }
    let inv_sum = 1.0 / sum;
    weights.iter_mut().for_each(|w| *w *= inv_sum);
    sum * sum / sum_sq
}

/// `k` independent draws of indices with probabilities `weights` (normalised; with replacement),
/// by binary search in the cumulative weights (`cumulative` is a reusable buffer).
pub fn sample_indices(
    weights: &[f64],
    k: usize,
    rng: &mut Rng,
    cumulative: &mut Vec<f64>,
) -> Vec<usize> {
    cumulative.clear();
    let mut acc = 0.0;
    cumulative.extend(weights.iter().map(|&w| {
        acc += w;
        acc
    }));
    let total = acc;
    (0..k)
        .map(|_| {
            let u = rng.uniform() * total;
            cumulative
                .partition_point(|&c| c <= u)
                .min(weights.len() - 1)
        })
        .collect()
}

impl PoolWeights {
    /// `k` independent draws of pool rows with probabilities `weights` (with replacement).
    pub fn sample(&self, k: usize, rng: &mut Rng) -> Vec<usize> {
        sample_indices(&self.weights, k, rng, &mut Vec::new())
    }

    /// The posterior mean sum_i w_i x_i and per-coordinate variance sum_i w_i (x_i - mean)^2
    /// (exact sums over the pool).
    pub fn mean_and_variance(&self, pool: ArrayView2<f64>) -> (Vec<f64>, Vec<f64>) {
        let d = pool.ncols();
        let mut mean = vec![0.0; d];
        for (x, &w) in pool.rows().into_iter().zip(&self.weights) {
            for (m, &xi) in mean.iter_mut().zip(x.iter()) {
                *m += w * xi;
            }
        }
        let mut var = vec![0.0; d];
        for (x, &w) in pool.rows().into_iter().zip(&self.weights) {
            for ((v, &xi), &m) in var.iter_mut().zip(x.iter()).zip(&mean) {
                *v += w * (xi - m) * (xi - m);
            }
        }
        (mean, var)
    }
}

/// The posterior of x given z_t = z for data N(0, s^2 I): mean (1 - t) s^2 z / sigma_t^2 and
/// per-coordinate variance s^2 t^2 / sigma_t^2, sigma_t^2 = (1 - t)^2 s^2 + t^2.
///
/// (Product of the prior N(0, s^2) and the likelihood N(z; (1 - t) x, t^2): precision
/// 1/s^2 + (1 - t)^2/t^2 = sigma_t^2 / (s^2 t^2), mean = variance (1 - t) z / t^2.)
pub fn gaussian_posterior(sigma: f64, z: ArrayView1<f64>, t: f64) -> (Vec<f64>, f64) {
    let s2 = sigma * sigma;
    let sigma_t2 = (1.0 - t) * (1.0 - t) * s2 + t * t;
    let mean = z.iter().map(|&zi| (1.0 - t) * s2 * zi / sigma_t2).collect();
    (mean, s2 * t * t / sigma_t2)
}

/// Where the data (and so the posterior) come from.
#[derive(Clone, Copy, Debug)]
pub enum DataSource<'a> {
    /// A finite pool: x0 uniform on its rows, the posterior weights of [`pool_weights`].
    Pool(ArrayView2<'a, f64>),
    /// N(0, sigma^2 I_dim): x0 and the posterior draws exact, from [`gaussian_posterior`].
    Gaussian { sigma: f64, dim: usize },
}

impl DataSource<'_> {
    pub fn dim(&self) -> usize {
        match self {
            DataSource::Pool(p) => p.ncols(),
            DataSource::Gaussian { dim, .. } => *dim,
        }
    }
}

/// Points z_t with their times and, for each, `K` redraws of x from the posterior x | z_t.
#[derive(Clone, Debug)]
pub struct PosteriorDraws {
    /// The points z_t, [n, d].
    pub z: Array2<f64>,
    /// r per point (r < t).
    pub r: Vec<f64>,
    /// t per point, in (0, 1].
    pub t: Vec<f64>,
    /// x redraws, [n, K, d]: x[i, k, :] ~ x | z_t = z\[i\].
    pub x: Array3<f64>,
    /// The effective sample size of each point's posterior (infinite for the exact Gaussian one).
    pub ess: Vec<f64>,
}

impl PosteriorDraws {
    pub fn len(&self) -> usize {
        self.z.nrows()
    }
    pub fn is_empty(&self) -> bool {
        self.z.nrows() == 0
    }
    pub fn draws(&self) -> usize {
        self.x.shape()[1]
    }
    pub fn dim(&self) -> usize {
        self.z.ncols()
    }
}

/// A time pair uniform on the triangle 0 < r < t <= 1: the larger and smaller of two draws of
/// 1 - U[0, 1) (so t > 0 always).
pub fn uniform_time_pair(rng: &mut Rng) -> (f64, f64) {
    let a = 1.0 - rng.uniform();
    let b = 1.0 - rng.uniform();
    (a.min(b), a.max(b))
}

/// `n` points z_t = (1 - t) x0 + t e0 from the marginal (x0 from the data, e0 ~ N(0, I), (r, t)
/// uniform on the triangle 0 < r < t <= 1), each with `k` posterior redraws of x.
///
/// Random order: for each point, (r, t), then x0 (a pool index, or d normals times sigma), then
/// d normals e0, then its k redraws; one stream for everything.
pub fn draw_points(source: DataSource, n: usize, k: usize, rng: &mut Rng) -> PosteriorDraws {
    assert!(
        k >= 2,
        "draw_points: need at least 2 redraws per point, got {k}"
    );
    let d = source.dim();
    let mut z = Array2::zeros((n, d));
    let mut x = Array3::zeros((n, k, d));
    let (mut rs, mut ts, mut ess) = (Vec::new(), Vec::new(), Vec::new());
    let (mut weights, mut cumulative) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (r, t) = uniform_time_pair(rng);
        let x0: Vec<f64> = match source {
            DataSource::Pool(pool) => pool.row(rng.below(pool.nrows())).to_vec(),
            DataSource::Gaussian { sigma, .. } => (0..d).map(|_| sigma * rng.normal()).collect(),
        };
        for j in 0..d {
            z[[i, j]] = (1.0 - t) * x0[j] + t * rng.normal();
        }
        match source {
            DataSource::Pool(pool) => {
                let e = pool_weights_into(pool, z.row(i), t, &mut weights);
                let picks = sample_indices(&weights, k, rng, &mut cumulative);
                for (kk, idx) in picks.into_iter().enumerate() {
                    for j in 0..d {
                        x[[i, kk, j]] = pool[[idx, j]];
                    }
                }
                ess.push(e);
            }
            DataSource::Gaussian { sigma, .. } => {
                let (mean, var) = gaussian_posterior(sigma, z.row(i), t);
                let sd = var.sqrt();
                for kk in 0..k {
                    for j in 0..d {
                        x[[i, kk, j]] = mean[j] + sd * rng.normal();
                    }
                }
                ess.push(f64::INFINITY);
            }
        }
        rs.push(r);
        ts.push(t);
    }
    PosteriorDraws {
        z,
        r: rs,
        t: ts,
        x,
        ess,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn weights_normalised_and_ess_bounds() {
        let pool = array![[0.0], [1.0], [2.0], [10.0]];
        let w = pool_weights(pool.view(), array![1.0].view(), 0.5);
        let total: f64 = w.weights.iter().sum();
        assert!((total - 1.0).abs() < 1e-15);
        assert!(w.ess >= 1.0 && w.ess <= 4.0);
        // z = 0.5 x_i exactly for x_i = 2: that row has the largest weight.
        let best = (0..4)
            .max_by(|&a, &b| w.weights[a].total_cmp(&w.weights[b]))
            .unwrap();
        assert_eq!(best, 2);
        // At t = 1 every row has the same weight: ESS = pool size.
        let flat = pool_weights(pool.view(), array![0.3].view(), 1.0);
        assert!((flat.ess - 4.0).abs() < 1e-12);
        // At tiny t, one row takes all the weight.
        let sharp = pool_weights(pool.view(), array![0.999].view(), 1e-3);
        assert!((sharp.ess - 1.0).abs() < 1e-9);
        assert_eq!(sharp.sample(5, &mut Rng::seed_from_u64(1)), vec![1; 5]);
    }

    #[test]
    fn sampling_follows_the_weights() {
        let w = PoolWeights {
            weights: vec![0.1, 0.0, 0.6, 0.3],
            ess: 0.0,
        };
        let mut counts = [0usize; 4];
        for i in w.sample(100_000, &mut Rng::seed_from_u64(2)) {
            counts[i] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, p) in counts.iter().zip(&w.weights) {
            let f = *c as f64 / 1e5;
            // Binomial standard error <= 0.0016.
            assert!((f - p).abs() < 0.008, "{counts:?}");
        }
    }
}
