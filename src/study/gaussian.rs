//! Instrument 5: isotropic Gaussian data x ~ N(0, s^2 I_d), where the flow is linear and the average
//! velocity and the conditional variances are known in closed form.
//!
//! ```text
//! z_t = (1 - t) x + t e ~ N(0, sigma_t^2 I),     sigma_t^2 = (1 - t)^2 s^2 + t^2
//! v(z, t) = E[v_c | z] = k(t) z,                 k(t) = d ln sigma_t / dt = (t - (1 - t) s^2) / sigma_t^2
//! flow map z_r = (sigma_r / sigma_t) z_t,        rho = sigma_r / sigma_t
//! u*(z, r, t) = (z_t - z_r) / (t - r) = a(r, t) z,   a = (1 - rho) / (t - r)   (r -> t: a -> k(t))
//! J_z u* = a I,   d_t u* = a_t z,   a_t = (rho k(t) (t - r) - (1 - rho)) / (t - r)^2   (r -> t: (k' - k^2) / 2)
//! x | z ~ N((1 - t) s^2 z / sigma_t^2, s^2 t^2 / sigma_t^2 I)  =>  Var[v_c | z] = s^2 / sigma_t^2 per coordinate
//! ```
//!
//! With u = u*, the conditional variances of instrument 1 ([`super::conditional_variance`]) are, with
//! V = d s^2 / sigma_t^2 = tr Cov[v_c | z] (independent of z) and (t - r) a = 1 - rho:
//!
//! ```text
//! tangent:   (1 - beta)^2 V
//! JVP term:  (1 - beta)^2 (1 - rho)^2 V
//! target:    alpha^2 V,   alpha = 1 - (1 - beta)(1 - rho)     (MF: rho^2 V, iMF: V)
//! ell:       2 d alpha^4 (s^2 / sigma_t^2)^2                  (delta = u* - target ~ N(0, alpha^2 s^2/sigma_t^2 I): E[target | z] = u* by the MeanFlow identity)
//! ```
//!
//! The instrument ([`run_gaussian`]) checks the estimator with u* against these closed forms
//! ([`closed_form_check`]), the trained networks against u* ([`model_error`]), and MF's against
//! iMF's target variance with the networks, with u* and in closed form ([`target_ratios`]). The
//! closed-form ratio there is a Monte Carlo average over the sampled (r, t); its exact value, the
//! same ratio integrated over the study's (r, t) distribution by Gauss-Legendre quadrature, is
//! [`exact_target_ratio`]:
//!
//! ```text
//! R(s) = E[rho^2 V] / E[V] = ∫_0^1 ∫_0^t sigma_r^2 / sigma_t^4 dr dt / ∫_0^1 t / sigma_t^2 dt
//!      = 0.601324 (s = 0.3),  3.429074 (s = 3)      ((r, t) uniform on 0 < r < t <= 1; d cancels)
//! ```
//!
//! So MF's target has the lower variance exactly where rho < 1, i.e. where sigma_t grows between r
//! and t (the map back from t to r contracts), and the higher where sigma_t shrinks. sigma_t^2 is
//! smallest at t* = s^2 / (1 + s^2): 0.083 for s = 0.3 (narrow: sigma_t grows on almost all of
//! [0, 1]), 0.9 for s = 3 (wide: sigma_t shrinks on almost all of it).

use super::conditional_variance::{
    bin_centres, binned, estimate, mean_se, AverageVelocity, BetaVariances, Linearization, MeanSe,
    MlpVelocity, Quantity, VarianceSettings,
};
use super::fixture::{ModelCache, TrainedModel};
use super::posterior::{draw_points, DataSource, PosteriorDraws};
use super::stream_index;
use crate::data::toy::{GAUSSIAN_NARROW_SIGMA, GAUSSIAN_WIDE_SIGMA};
use crate::data::ToyDataset;
use crate::flow::loss::{LossConfig, LossPreset};
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::Evaluator;
use crate::rng::Rng;
use crate::train::builtin_pool_points;
use crate::verify::metrics::median;
use ndarray::{Array2, Array3, ArrayView2};
use serde::Serialize;
use std::f64::consts::PI;

/// Below this gap t - r the closed forms use their limits r -> t (avoids 0/0).
const GAP_LIMIT: f64 = 1e-9;

/// The exact flow of N(0, s^2 I_dim) data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianFlow {
    pub sigma: f64,
    pub dim: usize,
}

impl GaussianFlow {
    pub fn new(sigma: f64, dim: usize) -> Self {
        assert!(sigma > 0.0 && sigma.is_finite() && dim >= 1);
        GaussianFlow { sigma, dim }
    }

    /// sigma_t^2 = (1 - t)^2 s^2 + t^2, the variance per coordinate of z_t.
    pub fn sigma_t2(&self, t: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        (1.0 - t) * (1.0 - t) * s2 + t * t
    }

    /// sigma_t.
    pub fn sigma_t(&self, t: f64) -> f64 {
        self.sigma_t2(t).sqrt()
    }

    /// The velocity coefficient k(t) = (t - (1 - t) s^2) / sigma_t^2: v(z, t) = k(t) z.
    pub fn velocity_coef(&self, t: f64) -> f64 {
        (t - (1.0 - t) * self.sigma * self.sigma) / self.sigma_t2(t)
    }

    /// k'(t) = ((1 + s^2) sigma_t^2 - 2 (t - (1 - t) s^2)^2) / sigma_t^4.
    fn velocity_coef_dt(&self, t: f64) -> f64 {
        let s2 = self.sigma * self.sigma;
        let q = t - (1.0 - t) * s2;
        let st2 = self.sigma_t2(t);
        ((1.0 + s2) * st2 - 2.0 * q * q) / (st2 * st2)
    }

    /// rho = sigma_r / sigma_t: the flow map from t back to r is z_r = rho z_t.
    pub fn rho(&self, r: f64, t: f64) -> f64 {
        self.sigma_t(r) / self.sigma_t(t)
    }

    /// a(r, t) = (1 - rho) / (t - r), u*(z, r, t) = a z; k(t) at r = t.
    pub fn u_coef(&self, r: f64, t: f64) -> f64 {
        let h = t - r;
        if h.abs() < GAP_LIMIT {
            self.velocity_coef(t)
        } else {
            (1.0 - self.rho(r, t)) / h
        }
    }

    /// d a / d t at fixed r: (rho k(t) h - (1 - rho)) / h^2, h = t - r, using d rho / dt = -rho k(t);
    /// at r = t the limit (k'(t) - k(t)^2) / 2.
    pub fn u_coef_dt(&self, r: f64, t: f64) -> f64 {
        let h = t - r;
        if h.abs() < GAP_LIMIT {
            let k = self.velocity_coef(t);
            (self.velocity_coef_dt(t) - k * k) / 2.0
        } else {
            let rho = self.rho(r, t);
            (rho * self.velocity_coef(t) * h - (1.0 - rho)) / (h * h)
        }
    }

    /// V = tr Cov[v_c | z_t] = d s^2 / sigma_t^2 (the same at every z).
    pub fn var_vc(&self, t: f64) -> f64 {
        self.dim as f64 * self.sigma * self.sigma / self.sigma_t2(t)
    }

    /// tr Cov[tangent | z] = (1 - beta)^2 V.
    pub fn var_tangent(&self, beta: f64, t: f64) -> f64 {
        (1.0 - beta).powi(2) * self.var_vc(t)
    }

    /// tr Cov[(t - r) dudt | z] with u = u*: (1 - beta)^2 (1 - rho)^2 V.
    pub fn var_jvp_term(&self, beta: f64, r: f64, t: f64) -> f64 {
        ((1.0 - beta) * (1.0 - self.rho(r, t))).powi(2) * self.var_vc(t)
    }

    /// alpha = 1 - (1 - beta)(1 - rho): target = alpha v_c + (deterministic) with u = u*.
    pub fn target_coef(&self, beta: f64, r: f64, t: f64) -> f64 {
        1.0 - (1.0 - beta) * (1.0 - self.rho(r, t))
    }

    /// tr Cov[target | z] with u = u*: alpha^2 V (MF: rho^2 V; iMF: V).
    pub fn var_target(&self, beta: f64, r: f64, t: f64) -> f64 {
        self.target_coef(beta, r, t).powi(2) * self.var_vc(t)
    }

    /// The study's average of [`Self::var_target`]: E over (r, t) uniform on the triangle
    /// 0 < r < t <= 1 (the study's [`uniform_time_pair`](super::posterior::uniform_time_pair)) and
    /// over z_t of tr Var[target | z_t] with u = u*,
    ///
    /// ```text
    /// E[alpha^2 V] = ∫_0^1 ∫_0^t 2 alpha(beta, r, t)^2 d s^2 / sigma_t^2 dr dt,
    /// ```
    ///
    /// by [`triangle_mean`] with `nodes` Gauss-Legendre nodes per axis. z needs no integral: the
    /// closed form is the same at every z_t.
    pub fn mean_var_target(&self, beta: f64, nodes: usize) -> f64 {
        triangle_mean(|r, t| self.var_target(beta, r, t), nodes)
    }

    /// Var[ell | z] with u = u*: delta ~ N(0, alpha^2 s^2 / sigma_t^2 I_d), so ell is that
    /// variance times a chi-square with d degrees of freedom: 2 d (alpha^2 s^2 / sigma_t^2)^2.
    pub fn var_ell(&self, beta: f64, r: f64, t: f64) -> f64 {
        let per = self.target_coef(beta, r, t).powi(2) * self.sigma * self.sigma / self.sigma_t2(t);
        2.0 * self.dim as f64 * per * per
    }

    /// The closed form of instrument 1's `quantity` at (r, t) with u = u*, where there is one: not
    /// for the weighted loss (no simple form) nor the gradient (u* has no parameters).
    pub fn closed_form(&self, quantity: Quantity, beta: f64, r: f64, t: f64) -> Option<f64> {
        match quantity {
            Quantity::Tangent => Some(self.var_tangent(beta, t)),
            Quantity::JvpTerm => Some(self.var_jvp_term(beta, r, t)),
            Quantity::Target => Some(self.var_target(beta, r, t)),
            Quantity::Ell => Some(self.var_ell(beta, r, t)),
            Quantity::Loss | Quantity::Gradient => None,
        }
    }

    /// u*(z, r, t) = a(r, t) z for rows z, with r and t per row.
    pub fn u(&self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Array2<f64> {
        let mut out = z.to_owned();
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let a = self.u_coef(r[i], t[i]);
            row.iter_mut().for_each(|v| *v *= a);
        }
        out
    }
}

impl AverageVelocity for GaussianFlow {
    fn dim(&self) -> usize {
        self.dim
    }

    fn linearize(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Linearization {
        let (n, d) = z.dim();
        let mut jac = Array3::zeros((n, d, d));
        let mut dt = z.to_owned();
        for i in 0..n {
            let a = self.u_coef(r[i], t[i]);
            for j in 0..d {
                jac[[i, j, j]] = a;
            }
            let at = self.u_coef_dt(r[i], t[i]);
            dt.row_mut(i).iter_mut().for_each(|v| *v *= at);
        }
        Linearization {
            u: self.u(z, r, t),
            v_hat: self.u(z, t, t),
            jac,
            dt,
        }
    }
}

// ----- the exact expectation over (r, t): Gauss-Legendre quadrature on the triangle -----

/// The n-point Gauss-Legendre rule on [0, 1], as (node, weight) pairs with ascending nodes:
/// ∫_0^1 f ≈ sum_i w_i f(x_i), exact for polynomials of degree <= 2n - 1.
///
/// The nodes are the roots of the Legendre polynomial P_n mapped from [-1, 1] by x -> (1 - x) / 2,
/// each found by Newton's method from the estimate cos(pi (i + 3/4) / (n + 1/2)), which lies within
/// Newton's basin of the i-th largest root; the weights are 1 / ((1 - x^2) P_n'(x)^2), i.e. the
/// usual 2 / ((1 - x^2) P_n'(x)^2) on [-1, 1] halved with the interval.
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    assert!(n >= 1, "gauss_legendre: need at least one node");
    (0..n)
        .map(|i| {
            let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            // Newton converges quadratically from there; the cap only guards against a cycle of
            // the last bit, where |dx| stays at rounding level and the root is already exact.
            for _ in 0..100 {
                let (p, dp) = legendre(n, x);
                let dx = p / dp;
                x -= dx;
                if dx.abs() <= 4.0 * f64::EPSILON {
                    break;
                }
            }
            let (_, dp) = legendre(n, x);
            ((1.0 - x) / 2.0, 1.0 / ((1.0 - x * x) * dp * dp))
        })
        .collect()
}

/// P_n(x) and P_n'(x), by the recurrence (k + 1) P_{k+1} = (2k + 1) x P_k - k P_{k-1} and
/// P_n' = n (x P_n - P_{n-1}) / (x^2 - 1) (|x| < 1: the roots are interior).
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    for k in 1..n {
        let k = k as f64;
        let next = ((2.0 * k + 1.0) * x * current - k * previous) / (k + 1.0);
        previous = current;
        current = next;
    }
    (current, n as f64 * (x * current - previous) / (x * x - 1.0))
}

/// E f(r, t) for (r, t) uniform on the triangle 0 <= r <= t <= 1 (density 2, the law of the
/// study's [`uniform_time_pair`](super::posterior::uniform_time_pair)), by the `nodes` x `nodes`
/// Gauss-Legendre product rule after the substitution r = t u, which maps the triangle onto the
/// unit square:
///
/// ```text
/// E f = ∫_0^1 ∫_0^t 2 f(r, t) dr dt = ∫_0^1 ∫_0^1 2 t f(t u, t) du dt.
/// ```
///
/// For f analytic on the closed triangle (the Gaussian closed forms are: sigma_t^2 >= s^2 / (1 + s^2)
/// > 0) the error falls geometrically with `nodes`.
pub fn triangle_mean(f: impl Fn(f64, f64) -> f64, nodes: usize) -> f64 {
    let rule = gauss_legendre(nodes);
    rule.iter()
        .map(|&(t, wt)| {
            let inner: f64 = rule.iter().map(|&(u, wu)| wu * f(t * u, t)).sum();
            wt * 2.0 * t * inner
        })
        .sum()
}

/// The first rule of [`exact_target_ratio`], per axis.
const QUADRATURE_FIRST_NODES: usize = 16;
/// [`exact_target_ratio`] doubles its rule until two successive ratios agree to this (relative).
const QUADRATURE_TOLERANCE: f64 = 1e-10;
/// ... or this many nodes per axis. For s in [0.001, 1000] 1024 suffice (the zeros of sigma_t^2,
/// s / (1 + s^2) off the real t axis, come closer the further s is from 1, and slow the rule).
const QUADRATURE_MAX_NODES: usize = 2048;

/// The exact MF/iMF target-variance ratio of one Gaussian ([`exact_target_ratio`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ExactRatio {
    pub sigma: f64,
    pub dim: usize,
    /// E tr Var[target_MF | z_t] = E\[rho^2 V\] over (r, t) and z.
    pub mf_target: f64,
    /// E tr Var[target_iMF | z_t] = E\[V\].
    pub imf_target: f64,
    /// mf_target / imf_target.
    pub ratio: f64,
    /// Gauss-Legendre nodes per axis of the rule that gave `ratio`.
    pub nodes: usize,
    /// The ratio from the rule with half as many nodes: the convergence evidence.
    pub ratio_half_nodes: f64,
}

impl ExactRatio {
    /// |ratio - ratio_half_nodes| / ratio: an upper bound on the error of `ratio` as long as the
    /// rule converges geometrically, as it does here.
    pub fn relative_change(&self) -> f64 {
        ((self.ratio - self.ratio_half_nodes) / self.ratio).abs()
    }
}

/// MF's and iMF's mean target variance, (E\[rho^2 V\], E\[V\]) ([`GaussianFlow::mean_var_target`]
/// at beta 0 and 1), with `nodes` Gauss-Legendre nodes per axis.
pub fn target_means(flow: &GaussianFlow, nodes: usize) -> (f64, f64) {
    (
        flow.mean_var_target(0.0, nodes),
        flow.mean_var_target(1.0, nodes),
    )
}

/// The exact value of the "closed form" ratio of [`target_ratios`]. That row is a ratio of means
/// over the study's sampled points, mean_i rho_i^2 V(t_i) / mean_i V(t_i); this is the ratio of
/// the expectations it estimates, over (r, t) uniform on the triangle and z (which drops out):
///
/// ```text
/// R(s) = E[rho^2 V] / E[V] = ∫_0^1 ∫_0^t sigma_r^2 / sigma_t^4 dr dt / ∫_0^1 t / sigma_t^2 dt
/// ```
///
/// (d s^2 and the density 2 cancel; the denominator is (pi s / 2 - ln s) / (1 + s^2)). Computed
/// by [`triangle_mean`] with 16 nodes per axis, doubled until two successive rules agree to
/// 1e-10 relative (32 / 64 nodes at s = 0.3 and 3); the last two are kept as evidence.
pub fn exact_target_ratio(flow: &GaussianFlow) -> ExactRatio {
    let ratio_at = |n| {
        let (mf, imf) = target_means(flow, n);
        (mf, imf, mf / imf)
    };
    let mut nodes = QUADRATURE_FIRST_NODES;
    let (_, _, mut half) = ratio_at(nodes);
    loop {
        nodes *= 2;
        let (mf_target, imf_target, ratio) = ratio_at(nodes);
        if ((ratio - half) / ratio).abs() <= QUADRATURE_TOLERANCE || nodes >= QUADRATURE_MAX_NODES {
            return ExactRatio {
                sigma: flow.sigma,
                dim: flow.dim,
                mf_target,
                imf_target,
                ratio,
                nodes,
                ratio_half_nodes: half,
            };
        }
        half = ratio;
    }
}

/// The ratio of means of paired values, R = mean_i a_i / mean_i b_i over the pairs where both are
/// finite, and its delta-method standard error
///
/// ```text
/// SE(R) = sd_i(a_i - R b_i) / (sqrt(n) |mean_i b_i|)
/// ```
///
/// (R - E a / E b = mean_i (a_i - (E a / E b) b_i) / mean_i b_i, a mean of i.i.d. terms over a
/// consistent denominator). NaN SE below 2 pairs.
pub fn ratio_of_means(a: &[f64], b: &[f64]) -> MeanSe {
    assert_eq!(a.len(), b.len(), "ratio_of_means: unpaired values");
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = pairs.len();
    let mean_a = pairs.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let mean_b = pairs.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let ratio = mean_a / mean_b;
    let residual = mean_se(pairs.iter().map(|(x, y)| x - ratio * y));
    MeanSe {
        mean: ratio,
        se: residual.se / mean_b.abs(),
        n,
    }
}

/// The error of a model's u against u* at one (r, t), over z from the marginal N(0, sigma_t^2 I).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct UError {
    pub r: f64,
    pub t: f64,
    /// sqrt(mean |u - u*|^2) (per point, summed over coordinates).
    pub rms_error: f64,
    /// sqrt(mean |u*|^2).
    pub rms_exact: f64,
    /// rms_error / rms_exact (infinite where u* = 0, i.e. k(t) = 0 at r = t).
    pub relative: f64,
    /// rms_error / sqrt(mean |v(z, t)|^2 + V): error relative to the scale of the regression
    /// target E|v_c|^2 = |v|^2 + tr Cov[v_c | z] (never 0).
    pub relative_to_target: f64,
}

/// u of an MLP against u* at each (r, t) of `pairs`, with `n_z` points z ~ N(0, sigma_t^2 I) per pair.
pub fn u_errors(
    config: ModelConfig,
    params: &MlpParams<f64>,
    flow: &GaussianFlow,
    pairs: &[(f64, f64)],
    n_z: usize,
    rng: &mut Rng,
) -> Vec<UError> {
    let mut eval = Evaluator::new(config, params);
    pairs
        .iter()
        .map(|&(r, t)| {
            let sd = flow.sigma_t(t);
            let z = Array2::from_shape_simple_fn((n_z, flow.dim), || sd * rng.normal());
            let u = eval.u_at(z.view(), r, t);
            let exact = z.mapv(|v| v * flow.u_coef(r, t));
            let err = (&u - &exact).mapv(|v| v * v).sum() / n_z as f64;
            let ex = exact.mapv(|v| v * v).sum() / n_z as f64;
            let v2 = z.mapv(|v| (v * flow.velocity_coef(t)).powi(2)).sum() / n_z as f64;
            UError {
                r,
                t,
                rms_error: err.sqrt(),
                rms_exact: ex.sqrt(),
                relative: err.sqrt() / ex.sqrt(),
                relative_to_target: err.sqrt() / (v2 + flow.var_vc(t)).sqrt(),
            }
        })
        .collect()
}

// ----- the instrument: the estimator against the closed forms, the trained nets against u* -----

/// How much instrument 5 computes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GaussianSettings {
    /// Points and redraws of the closed-form check.
    pub check_points: usize,
    pub check_draws: usize,
    /// The dimensions d of the closed-form check (each at sigma 0.3 and 3).
    pub check_dims: Vec<usize>,
    /// The (r, t) grid of the error of u: `grid` values per axis, `grid_z` points z per cell.
    pub grid: usize,
    pub grid_z: usize,
    /// Points and redraws of the MF / iMF target comparison with the trained networks.
    pub variance: VarianceSettings,
}

impl GaussianSettings {
    /// The study's default: 2048 x 64 draws at d = 1 and 8, a 20 x 20 grid with 512 z per cell.
    pub fn standard() -> Self {
        GaussianSettings {
            check_points: 2048,
            check_draws: 64,
            check_dims: vec![1, 8],
            grid: 20,
            grid_z: 512,
            variance: VarianceSettings::standard(),
        }
    }

    /// Seconds: 128 x 16 draws at d = 1 and 2, a 6 x 6 grid with 64 z per cell.
    pub fn quick() -> Self {
        GaussianSettings {
            check_points: 128,
            check_draws: 16,
            check_dims: vec![1, 2],
            grid: 6,
            grid_z: 64,
            variance: VarianceSettings::quick(),
        }
    }
}

/// One comparison of the estimator (with u = u*) against a closed form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRow {
    pub sigma: f64,
    pub dim: usize,
    /// "pool" (the posterior of a finite pool) or "exact" (draws from the Gaussian posterior).
    pub posterior: &'static str,
    pub beta: f64,
    pub quantity: &'static str,
    /// E_z of the estimated variance.
    pub estimate: f64,
    /// E_z of the closed form at the same (r, t).
    pub closed_form: f64,
    /// (estimate - closed form) / SE, SE from the per-point differences.
    pub z_score: f64,
    pub ess_median: f64,
}

/// Part 1: instrument 1's estimator with the exact u* against the closed forms of [`GaussianFlow`],
/// at sigma 0.3 and 3, each `check_dims`, betas 0, 1/2, 1, and every quantity that has one.
///
/// z = mean_i (est_i - cf_i) / SE_i(est - cf): the closed form is evaluated at each point's own
/// (r, t), so the difference's spread over points is the Monte Carlo noise alone, and |z| well
/// above 3 means a bias. Both posteriors share the draws' stream; the pool is drawn as
/// `meanflow train` draws its training pool.
pub fn closed_form_check(settings: &GaussianSettings, seed: u64) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    for sigma in [GAUSSIAN_NARROW_SIGMA, GAUSSIAN_WIDE_SIGMA] {
        for &dim in &settings.check_dims {
            let ds = ToyDataset::Gaussian { sigma, dim };
            let pool = ds.sample(builtin_pool_points(dim), &mut Rng::stream(seed, 2));
            let mut rng = Rng::stream(seed, stream_index(5, &ds.name()));
            let flow = GaussianFlow::new(sigma, dim);
            for (posterior, source) in [
                ("pool", DataSource::Pool(pool.view())),
                ("exact", DataSource::Gaussian { sigma, dim }),
            ] {
                let draws = draw_points(
                    source,
                    settings.check_points,
                    settings.check_draws,
                    &mut rng,
                );
                let ess = median(draws.ess.iter().copied());
                let betas = [0.0, 0.5, 1.0];
                let got = estimate(&mut flow.clone(), &draws, &betas, 1.0, 1e-3);
                for bv in &got {
                    let b = bv.beta;
                    for q in Quantity::ALL {
                        let Some(cf) = (0..draws.len())
                            .map(|i| flow.closed_form(q, b, draws.r[i], draws.t[i]))
                            .collect::<Option<Vec<f64>>>()
                        else {
                            continue;
                        };
                        let diff = mean_se((0..draws.len()).map(|i| q.of(&bv.points[i]) - cf[i]));
                        let est = mean_se(bv.points.iter().map(|p| q.of(p)));
                        rows.push(CheckRow {
                            sigma,
                            dim,
                            posterior,
                            beta: b,
                            quantity: q.name(),
                            estimate: est.mean,
                            closed_form: mean_se(cf.iter().copied()).mean,
                            z_score: if diff.se > 0.0 {
                                diff.mean / diff.se
                            } else {
                                0.0
                            },
                            ess_median: ess,
                        });
                    }
                }
            }
        }
    }
    rows
}

/// The largest |z| of the checks against a positive closed form with this posterior ("pool" or
/// "exact"); 0 if there are none. A zero closed form (iMF's tangent) has no z worth reading.
pub fn worst_z(checks: &[CheckRow], posterior: &str) -> f64 {
    checks
        .iter()
        .filter(|c| c.closed_form > 0.0 && c.posterior == posterior)
        .map(|c| c.z_score.abs())
        .fold(0.0, f64::max)
}

/// The checks against a positive closed form with this posterior whose |z| exceeds `limit`.
pub fn flagged<'c>(checks: &'c [CheckRow], posterior: &str, limit: f64) -> Vec<&'c CheckRow> {
    checks
        .iter()
        .filter(|c| c.closed_form > 0.0 && c.posterior == posterior && c.z_score.abs() > limit)
        .collect()
}

/// The target checks of MF (beta 0) paired with iMF's (beta 1) at the same sigma, d and posterior.
pub fn target_pairs(checks: &[CheckRow]) -> Vec<(&CheckRow, &CheckRow)> {
    checks
        .iter()
        .filter(|c| c.quantity == "target" && c.beta == 0.0)
        .filter_map(|c| {
            checks
                .iter()
                .find(|o| {
                    o.quantity == "target"
                        && o.beta == 1.0
                        && o.sigma == c.sigma
                        && o.dim == c.dim
                        && o.posterior == c.posterior
                })
                .map(|i| (c, i))
        })
        .collect()
}

/// A trained model's u against u* ([`u_errors`]) and its one-step samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelError {
    pub dataset: String,
    pub sigma: f64,
    pub loss: &'static str,
    /// The cells of the (r, t) grid, r <= t, both at bin centres.
    pub cells: Vec<UError>,
    /// One-step samples x = z_1 - u(z_1, 0, 1): their standard deviation per coordinate vs sigma.
    pub one_step_std: f64,
    /// Relative RMS error of u(., 0, 1) against u*.
    pub one_step_relative: f64,
}

impl ModelError {
    /// The median over the grid of RMS |u - u*| / RMS |u*|.
    pub fn median_relative(&self) -> f64 {
        median(self.cells.iter().map(|c| c.relative))
    }

    /// The median over the grid of RMS |u - u*| / target scale.
    pub fn median_relative_to_target(&self) -> f64 {
        median(self.cells.iter().map(|c| c.relative_to_target))
    }

    /// log10 of the error relative to the target scale as a [grid, grid] array: [i, j] is the cell
    /// with r in bin i and t in bin j (NaN where r > t).
    pub fn log10_relative_grid(&self, grid: usize) -> Array2<f64> {
        let mut cells = Array2::from_elem((grid, grid), f64::NAN);
        let width = 1.0 / grid as f64;
        for c in &self.cells {
            let (i, j) = ((c.r / width) as usize, (c.t / width) as usize);
            if i < grid && j < grid {
                cells[[i, j]] = c.relative_to_target.log10();
            }
        }
        cells
    }

    /// (t, error / target scale) along r = t: the error of the velocity u(z, t, t).
    pub fn along_diagonal(&self) -> Vec<(f64, f64)> {
        self.cells
            .iter()
            .filter(|c| c.r == c.t)
            .map(|c| (c.t, c.relative_to_target))
            .collect()
    }

    /// The grid's smallest r, and (t, error / target scale) along it: the longest jumps.
    pub fn along_smallest_r(&self) -> (f64, Vec<(f64, f64)>) {
        let r_min = self.cells.iter().map(|c| c.r).fold(f64::INFINITY, f64::min);
        let line = self
            .cells
            .iter()
            .filter(|c| c.r == r_min)
            .map(|c| (c.t, c.relative_to_target))
            .collect();
        (r_min, line)
    }
}

/// Part 2: a trained model's u against u* on the `grid` x `grid` (r, t) grid (r <= t, both at bin
/// centres, `grid_z` points z ~ N(0, sigma_t^2 I) per cell), and its one-step map from 4 `grid_z`
/// noise draws: the relative error of u(., 0, 1) and the per-coordinate standard deviation of
/// x = z_1 - u(z_1, 0, 1), sqrt(mean x^2 - (mean x)^2) over every coordinate, against sigma.
pub fn model_error(
    dataset: &ToyDataset,
    loss: &'static str,
    model: &TrainedModel,
    flow: &GaussianFlow,
    settings: &GaussianSettings,
    rng: &mut Rng,
) -> ModelError {
    let g = settings.grid;
    let centres = bin_centres(0.0, 1.0, g);
    let mut pairs = Vec::new();
    for (j, &t) in centres.iter().enumerate() {
        for &r in &centres[..=j] {
            pairs.push((r, t));
        }
    }
    let cells = u_errors(
        model.config.model,
        &model.trained,
        flow,
        &pairs,
        settings.grid_z,
        rng,
    );
    let one = u_errors(
        model.config.model,
        &model.trained,
        flow,
        &[(0.0, 1.0)],
        4 * settings.grid_z,
        rng,
    );
    let n = 4 * settings.grid_z;
    let z1 = Array2::from_shape_simple_fn((n, flow.dim), || rng.normal());
    let mut eval = Evaluator::new(model.config.model, &model.trained);
    let x = &z1 - &eval.u_at(z1.view(), 0.0, 1.0);
    let var =
        x.mapv(|v| v * v).sum() / (n * flow.dim) as f64 - (x.sum() / (n * flow.dim) as f64).powi(2);
    ModelError {
        dataset: dataset.name(),
        sigma: flow.sigma,
        loss,
        cells,
        one_step_std: var.sqrt(),
        one_step_relative: one[0].relative,
    }
}

/// MF's against iMF's target variance for one model of u over the sampled points i (each a
/// (r_i, t_i, z_i)): the ratio of means ratio = mean_i tr Var[target_MF | z_i] /
/// mean_i tr Var[target_iMF | z_i], in closed form mean_i rho_i^2 V(t_i) / mean_i V(t_i), with
/// rho = sigma_r / sigma_t; the closed form's expectation is [`exact_target_ratio`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioRow {
    pub dataset: String,
    /// "closed form", "u*", "mf net", "imf net", "initial net".
    pub model: &'static str,
    pub mf_target: f64,
    pub mf_target_se: f64,
    pub imf_target: f64,
    pub imf_target_se: f64,
    /// [`ratio_of_means`] of the per-point MF and iMF values.
    pub ratio: f64,
    /// Its delta-method standard error over the points (the (r, t) sample included).
    pub ratio_se: f64,
    /// The points with both values finite, over which `ratio` is taken.
    pub points: usize,
    /// MF/iMF per bin of t - r.
    pub ratio_by_gap: Vec<f64>,
    /// MF/iMF per bin of t.
    pub ratio_by_t: Vec<f64>,
}

/// Part 3: MF vs iMF target variance on one set of pool-posterior draws, from the closed forms
/// (rho^2 V against V), from the estimator with u*, and with the MF-trained, iMF-trained and
/// initial networks (their own Jacobians). Returns the rows and the draws.
pub fn target_ratios(
    dataset: &ToyDataset,
    flow: &GaussianFlow,
    mf: &TrainedModel,
    imf: &TrainedModel,
    settings: &VarianceSettings,
    seed: u64,
) -> (Vec<RatioRow>, PosteriorDraws) {
    let pool = &mf.data;
    let mut rng = Rng::stream(seed, stream_index(6, &dataset.name()));
    let draws = draw_points(
        DataSource::Pool(pool.view()),
        settings.points,
        settings.draws,
        &mut rng,
    );
    let bins = settings.bins;
    let weight = LossConfig::preset(LossPreset::Mf);
    let name = dataset.name();
    let row = |model, mf: Vec<f64>, imf: Vec<f64>| ratio_row(&name, model, &mf, &imf, &draws, bins);
    let mut rows = vec![closed_form_row(&name, flow, &draws, bins)];
    let targets = |est: Vec<BetaVariances>| {
        let pick = |k: usize| est[k].points.iter().map(|p| p.target).collect::<Vec<_>>();
        (pick(0), pick(1))
    };
    let (a, b) = targets(estimate(
        &mut flow.clone(),
        &draws,
        &[0.0, 1.0],
        weight.p,
        weight.c,
    ));
    rows.push(row("u*", a, b));
    for (label, params) in [
        ("mf net", &mf.trained),
        ("imf net", &imf.trained),
        ("initial net", &mf.initial),
    ] {
        let mut net = MlpVelocity::new(mf.config.model, params);
        let (a, b) = targets(estimate(
            &mut TargetOnly(&mut net),
            &draws,
            &[0.0, 1.0],
            weight.p,
            weight.c,
        ));
        rows.push(row(label, a, b));
    }
    (rows, draws)
}

/// The row of one model from its per-point MF and iMF values at the points of `draws`, with the
/// ratio per `bins` bins of t - r and of t.
fn ratio_row(
    dataset: &str,
    model: &'static str,
    mf: &[f64],
    imf: &[f64],
    draws: &PosteriorDraws,
    bins: usize,
) -> RatioRow {
    let (a, b) = (mean_se(mf.iter().copied()), mean_se(imf.iter().copied()));
    let ratio = ratio_of_means(mf, imf);
    let gaps: Vec<f64> = draws.t.iter().zip(&draws.r).map(|(t, r)| t - r).collect();
    let by = |keys: &[f64]| {
        binned(mf, keys, 0.0, 1.0, bins)
            .iter()
            .zip(binned(imf, keys, 0.0, 1.0, bins))
            .map(|(x, y)| x.mean / y.mean)
            .collect()
    };
    RatioRow {
        dataset: dataset.to_string(),
        model,
        mf_target: a.mean,
        mf_target_se: a.se,
        imf_target: b.mean,
        imf_target_se: b.se,
        ratio: ratio.mean,
        ratio_se: ratio.se,
        points: ratio.n,
        ratio_by_gap: by(&gaps),
        ratio_by_t: by(&draws.t),
    }
}

/// The "closed form" row of [`target_ratios`]: the closed forms rho^2 V (MF) and V (iMF) at each
/// point's (r, t), averaged over the points, the study's Monte Carlo estimate of
/// [`exact_target_ratio`] (only (r, t) enters; z and the posterior draws do not).
pub fn closed_form_row(
    dataset: &str,
    flow: &GaussianFlow,
    draws: &PosteriorDraws,
    bins: usize,
) -> RatioRow {
    let cf = |beta| -> Vec<f64> {
        (0..draws.len())
            .map(|i| flow.var_target(beta, draws.r[i], draws.t[i]))
            .collect()
    };
    ratio_row(dataset, "closed form", &cf(0.0), &cf(1.0), draws, bins)
}

/// The ratio of `model` ("closed form", "u*", "mf net", ...) on `dataset` (NaN if absent).
pub fn ratio_of(ratios: &[&RatioRow], dataset: &str, model: &str) -> f64 {
    ratios
        .iter()
        .find(|r| r.dataset == dataset && r.model == model)
        .map(|r| r.ratio)
        .unwrap_or(f64::NAN)
}

/// A model without its parameter Gram matrices: only the target variance is needed, and the
/// Gram matrices (d backward passes per point) are most of the estimator's cost; the gradient
/// variance becomes NaN.
struct TargetOnly<'m, 'a>(&'m mut MlpVelocity<'a>);

impl AverageVelocity for TargetOnly<'_, '_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn linearize(&mut self, z: ArrayView2<f64>, r: &[f64], t: &[f64]) -> Linearization {
        self.0.linearize(z, r, t)
    }
}

/// The Gaussians of a run: those among `datasets`, or narrow and wide (1-D) if there are none, so
/// that the instrument always has a ground truth to compare with.
pub fn gaussians(datasets: &[ToyDataset]) -> Vec<ToyDataset> {
    let listed: Vec<ToyDataset> = datasets
        .iter()
        .copied()
        .filter(|d| d.gaussian_sigma().is_some())
        .collect();
    if listed.is_empty() {
        vec![ToyDataset::gaussian_narrow(), ToyDataset::gaussian_wide()]
    } else {
        listed
    }
}

/// Instrument 5 on one Gaussian.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianDataset {
    pub name: String,
    /// Part 2: MF's model, then iMF's.
    pub errors: Vec<ModelError>,
    /// Part 3: the rows of [`target_ratios`].
    pub ratios: Vec<RatioRow>,
    /// The exact value of the "closed form" row's ratio ([`exact_target_ratio`]).
    pub exact: ExactRatio,
}

/// Instrument 5's result.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianResult {
    /// Part 1 (the datasets do not enter: sigma 0.3 and 3 at each `check_dims`).
    pub checks: Vec<CheckRow>,
    /// Parts 2 and 3, per Gaussian of [`gaussians`].
    pub datasets: Vec<GaussianDataset>,
}

impl GaussianResult {
    /// Every model's error, dataset by dataset.
    pub fn errors(&self) -> Vec<&ModelError> {
        self.datasets.iter().flat_map(|d| &d.errors).collect()
    }

    /// Every ratio row, dataset by dataset.
    pub fn ratios(&self) -> Vec<&RatioRow> {
        self.datasets.iter().flat_map(|d| &d.ratios).collect()
    }
}

/// Instrument 5 on the [`gaussians`] of `datasets`, with their shared MF and iMF models (trained
/// now if `models` does not hold them yet).
pub fn run_gaussian(
    datasets: &[ToyDataset],
    models: &mut ModelCache,
    settings: &GaussianSettings,
    seed: u64,
) -> GaussianResult {
    let checks = closed_form_check(settings, seed);
    let datasets = gaussians(datasets)
        .into_iter()
        .map(|ds| {
            let (sigma, dim) = match ds {
                ToyDataset::Gaussian { sigma, dim } => (sigma, dim),
                _ => unreachable!("filtered to Gaussians"),
            };
            let flow = GaussianFlow::new(sigma, dim);
            let mf = models.get(&ds.into(), LossPreset::Mf).clone();
            let imf = models.get(&ds.into(), LossPreset::Imf).clone();
            let mut rng = Rng::stream(seed, stream_index(7, &ds.name()));
            let errors = [("mf", &mf), ("imf", &imf)]
                .into_iter()
                .map(|(loss, model)| model_error(&ds, loss, model, &flow, settings, &mut rng))
                .collect();
            let (ratios, _) = target_ratios(&ds, &flow, &mf, &imf, &settings.variance, seed);
            GaussianDataset {
                name: ds.name(),
                errors,
                ratios,
                exact: exact_target_ratio(&flow),
            }
        })
        .collect();
    GaussianResult { checks, datasets }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::fixture::FixtureSettings;
    use crate::verify::check::{central_difference, FD_REL_TOL};

    fn check(posterior: &'static str, beta: f64, quantity: &'static str, z: f64) -> CheckRow {
        CheckRow {
            sigma: 0.3,
            dim: 1,
            posterior,
            beta,
            quantity,
            estimate: 1.0,
            closed_form: if quantity == "tangent" && beta == 1.0 {
                0.0
            } else {
                1.0
            },
            z_score: z,
            ess_median: 100.0,
        }
    }

    #[test]
    fn check_rows_are_read_by_posterior_and_positive_closed_form() {
        let checks = vec![
            check("exact", 0.0, "target", -1.5),
            check("exact", 1.0, "target", 0.5),
            check("exact", 1.0, "tangent", 9.0),
            check("pool", 0.0, "target", -5.0),
            check("pool", 1.0, "target", 2.0),
        ];
        // iMF's tangent has closed form 0: its z is not read.
        assert_eq!(worst_z(&checks, "exact"), 1.5);
        assert_eq!(worst_z(&checks, "pool"), 5.0);
        assert!(flagged(&checks, "exact", 4.0).is_empty());
        assert_eq!(flagged(&checks, "pool", 4.0), vec![&checks[3]]);
        let pairs = target_pairs(&checks);
        assert_eq!(
            pairs,
            vec![(&checks[0], &checks[1]), (&checks[3], &checks[4])]
        );
    }

    #[test]
    fn closed_form_check_with_the_exact_posterior_is_within_its_noise() {
        let settings = GaussianSettings {
            check_points: 256,
            check_draws: 16,
            check_dims: vec![1],
            ..GaussianSettings::quick()
        };
        let checks = closed_form_check(&settings, 5);
        // 2 sigmas x 1 dim x 2 posteriors x 3 betas x 4 quantities with a closed form.
        assert_eq!(checks.len(), 48);
        let worst = worst_z(&checks, "exact");
        assert!(worst > 0.0 && worst < 5.0, "largest |z| {worst}");
    }

    fn cell(r: f64, t: f64, relative_to_target: f64) -> UError {
        UError {
            r,
            t,
            rms_error: relative_to_target,
            rms_exact: 1.0,
            relative: 2.0 * relative_to_target,
            relative_to_target,
        }
    }

    #[test]
    fn model_error_reads_its_grid() {
        // A 2 x 2 grid: bin centres 0.25 and 0.75, cells with r <= t.
        let e = ModelError {
            dataset: "gaussian_narrow".into(),
            sigma: 0.3,
            loss: "mf",
            cells: vec![
                cell(0.25, 0.25, 0.1),
                cell(0.25, 0.75, 0.01),
                cell(0.75, 0.75, 1.0),
            ],
            one_step_std: 0.3,
            one_step_relative: 0.1,
        };
        assert_eq!(e.median_relative_to_target(), 0.1);
        assert_eq!(e.median_relative(), 0.2);
        let grid = e.log10_relative_grid(2);
        assert!((grid[[0, 0]] + 1.0).abs() < 1e-12);
        assert!((grid[[0, 1]] + 2.0).abs() < 1e-12);
        assert!(grid[[1, 1]].abs() < 1e-12);
        assert!(grid[[1, 0]].is_nan(), "r > t has no cell");
        assert_eq!(e.along_diagonal(), vec![(0.25, 0.1), (0.75, 1.0)]);
        assert_eq!(
            e.along_smallest_r(),
            (0.25, vec![(0.25, 0.1), (0.75, 0.01)])
        );
    }

    #[test]
    fn gaussians_default_to_narrow_and_wide() {
        let moons: ToyDataset = "two_moons".parse().unwrap();
        assert_eq!(
            gaussians(&[moons]),
            vec![ToyDataset::gaussian_narrow(), ToyDataset::gaussian_wide()]
        );
        let own = ToyDataset::Gaussian { sigma: 0.5, dim: 2 };
        assert_eq!(gaussians(&[moons, own]), vec![own]);
    }

    /// On the quick fixture: the closed form says MF's target is the less noisy on the narrow
    /// Gaussian (the map back in time contracts), and the estimator with u* agrees with it.
    #[test]
    fn quick_run_on_the_narrow_gaussian() {
        let mut settings = GaussianSettings::quick();
        settings.check_points = 32;
        settings.check_dims = vec![1];
        settings.grid = 3;
        settings.grid_z = 16;
        settings.variance.points = 64;
        let mut models = ModelCache::new(FixtureSettings::quick(6));
        let narrow = ToyDataset::gaussian_narrow();
        let result = run_gaussian(&[narrow], &mut models, &settings, 6);
        assert_eq!(result.datasets.len(), 1);
        let g = &result.datasets[0];
        assert_eq!(g.name, "gaussian_narrow");
        assert_eq!(
            g.errors.iter().map(|e| e.loss).collect::<Vec<_>>(),
            vec!["mf", "imf"]
        );
        // 3 x 3 grid, r <= t: 6 cells.
        assert_eq!(g.errors[0].cells.len(), 6);
        let models_of: Vec<&str> = g.ratios.iter().map(|r| r.model).collect();
        assert_eq!(
            models_of,
            vec!["closed form", "u*", "mf net", "imf net", "initial net"]
        );
        let ratios = result.ratios();
        let theory = ratio_of(&ratios, "gaussian_narrow", "closed form");
        let exact = ratio_of(&ratios, "gaussian_narrow", "u*");
        assert!(theory < 1.0, "closed form MF/iMF {theory}");
        assert!(
            (exact - theory).abs() < 0.1 * theory,
            "u* {exact} vs {theory}"
        );
        assert!(ratio_of(&ratios, "gaussian_narrow", "none").is_nan());
        assert_eq!(result.errors().len(), 2);
    }

    #[test]
    fn gauss_legendre_is_the_legendre_rule() {
        // The 3-point rule is known exactly: nodes (1 -+ sqrt(3/5)) / 2 and 1/2, weights 5/18,
        // 8/18, 5/18.
        let rule = gauss_legendre(3);
        let h = (0.6f64).sqrt() / 2.0;
        let want = [
            (0.5 - h, 5.0 / 18.0),
            (0.5, 8.0 / 18.0),
            (0.5 + h, 5.0 / 18.0),
        ];
        for (&(x, w), &(xe, we)) in rule.iter().zip(&want) {
            assert!((x - xe).abs() < 1e-15 && (w - we).abs() < 1e-15, "{x} {w}");
        }
        // n nodes integrate t^k exactly up to k = 2n - 1, and not t^(2n).
        for n in [1, 2, 5, 16, 64] {
            let rule = gauss_legendre(n);
            let integral = |k: i32| rule.iter().map(|&(x, w)| w * x.powi(k)).sum::<f64>();
            for k in 0..2 * n as i32 {
                let exact = 1.0 / (k + 1) as f64;
                assert!(
                    (integral(k) - exact).abs() < 1e-13 * exact.max(1e-3),
                    "n {n} t^{k}: {} vs {exact}",
                    integral(k)
                );
            }
            // The first degree it misses, t^(2n), by exactly the rule's error term on [0, 1],
            // (n!)^4 / ((2n + 1) ((2n)!)^2) (f^(2n) = (2n)! here); checked where that term is
            // above rounding.
            if n <= 5 {
                let k = 2 * n as i32;
                let factorial = |m: usize| (1..=m).map(|i| i as f64).product::<f64>();
                let error_term =
                    factorial(n).powi(4) / ((2 * n + 1) as f64 * factorial(2 * n).powi(2));
                let error = 1.0 / (k + 1) as f64 - integral(k);
                assert!(
                    (error / error_term - 1.0).abs() < 1e-6,
                    "n {n}: t^{k} missed by {error}, not {error_term}"
                );
            }
            assert!(
                rule.windows(2).all(|p| p[0].0 < p[1].0),
                "n {n}: nodes ascend"
            );
        }
        // Rounding alone: the nodes of a large rule are still distinct and the weights sum to 1.
        let big = gauss_legendre(1024);
        assert!(big.windows(2).all(|p| p[0].0 < p[1].0));
        assert!((big.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-13);
    }

    /// E\[rho^2 V\] / (d s^2) in closed form: ∫_0^1 ∫_0^t 2 sigma_r^2 / sigma_t^4 dr dt =
    /// 2 ∫_0^1 S(t) / sigma_t^4 dt, S(t) = ∫_0^t sigma_r^2 dr = s^2 (1 - (1 - t)^3) / 3 + t^3 / 3
    /// (the factor 2 is the density). With A = 1 + s^2,
    /// m = s^2 / A, b = s / A and w = t - m, sigma_t^2 = A (w^2 + b^2); write the cubic S in powers
    /// of w, S = a3 w^3 + a2 w^2 + a1 w + a0 (Taylor at m), and divide by w^2 + b^2:
    /// S / (w^2 + b^2)^2 = (a3 w + a2) / (w^2 + b^2) + (c1 w + c0) / (w^2 + b^2)^2 with
    /// c1 = a1 - a3 b^2, c0 = a0 - a2 b^2, each term an elementary antiderivative.
    fn mf_mean_closed_form(s: f64) -> f64 {
        let s2 = s * s;
        let a = 1.0 + s2;
        let (m, b) = (s2 / a, s / a);
        let a0 = s2 * (1.0 - (1.0 - m).powi(3)) / 3.0 + m.powi(3) / 3.0;
        let a1 = s2 * (1.0 - m).powi(2) + m * m;
        let a2 = -s2 * (1.0 - m) + m;
        let a3 = a / 3.0;
        let (c1, c0) = (a1 - a3 * b * b, a0 - a2 * b * b);
        let antiderivative = |w: f64| {
            let q = w * w + b * b;
            let atan = (w / b).atan();
            a3 * q.ln() / 2.0 + a2 * atan / b - c1 / (2.0 * q)
                + c0 * (w / (2.0 * b * b * q) + atan / (2.0 * b.powi(3)))
        };
        2.0 * (antiderivative(1.0 - m) - antiderivative(-m)) / (a * a)
    }

    /// E\[V\] / (d s^2) = 2 ∫_0^1 t / sigma_t^2 dt = 2 (pi s / 2 - ln s) / (1 + s^2).
    fn imf_mean_closed_form(s: f64) -> f64 {
        2.0 * (PI * s / 2.0 - s.ln()) / (1.0 + s * s)
    }

    #[test]
    fn triangle_quadrature_against_closed_form_integrals() {
        // A polynomial: E[r^2 t] = ∫_0^1 ∫_0^t 2 r^2 t dr dt = 2/15; after r = t u the integrand
        // 2 t^4 u^2 has degree 4, exact from 3 nodes on.
        for n in [3, 4, 10] {
            let got = triangle_mean(|r, t| r * r * t, n);
            assert!((got - 2.0 / 15.0).abs() < 1e-15, "n {n}: {got}");
        }
        // The sampled density is uniform on the triangle: E[t] = 2/3, E[r] = 1/3.
        assert!((triangle_mean(|_, t| t, 8) - 2.0 / 3.0).abs() < 1e-15);
        assert!((triangle_mean(|r, _| r, 8) - 1.0 / 3.0).abs() < 1e-15);
        // The Gaussian means, at the study's sigmas, in between and at a very narrow one, against
        // their closed forms, and the exact ratio against the closed-form ratio.
        for (s, dim) in [(0.3, 1), (3.0, 1), (1.0, 4), (0.05, 2)] {
            let flow = GaussianFlow::new(s, dim);
            let scale = dim as f64 * s * s;
            let (mf, imf) = target_means(&flow, 128);
            let (mf_cf, imf_cf) = (
                scale * mf_mean_closed_form(s),
                scale * imf_mean_closed_form(s),
            );
            assert!(
                (mf / mf_cf - 1.0).abs() < 1e-12,
                "s {s}: MF {mf} vs {mf_cf}"
            );
            assert!(
                (imf / imf_cf - 1.0).abs() < 1e-12,
                "s {s}: iMF {imf} vs {imf_cf}"
            );
            let exact = exact_target_ratio(&flow);
            let cf = mf_cf / imf_cf;
            assert!(
                (exact.ratio / cf - 1.0).abs() < 1e-12,
                "s {s}: {exact:?} vs {cf}"
            );
            assert!((exact.mf_target / mf_cf - 1.0).abs() < 1e-12);
        }
        // The values docs/math.md quotes (also from mpmath at 30 digits: 0.601324377396609539,
        // 3.42907386233478904).
        let narrow = exact_target_ratio(&GaussianFlow::new(GAUSSIAN_NARROW_SIGMA, 1)).ratio;
        let wide = exact_target_ratio(&GaussianFlow::new(GAUSSIAN_WIDE_SIGMA, 1)).ratio;
        assert!((narrow - 0.601_324_377_396_609_5).abs() < 1e-13, "{narrow}");
        assert!((wide - 3.429_073_862_334_789).abs() < 1e-12, "{wide}");
    }

    #[test]
    fn quadrature_converges_geometrically_and_n_agrees_with_2n() {
        for s in [GAUSSIAN_NARROW_SIGMA, GAUSSIAN_WIDE_SIGMA] {
            let flow = GaussianFlow::new(s, 1);
            let cf = mf_mean_closed_form(s) / imf_mean_closed_form(s);
            let ratio = |n| {
                let (mf, imf) = target_means(&flow, n);
                mf / imf
            };
            // Geometric convergence (the integrand's nearest complex singularity, a zero of
            // sigma_t^2, lies s / (1 + s^2) off the real axis): doubling the nodes about squares
            // the error; asserted as at least the power 1.5 from 4 to 8 to 16 nodes.
            let errors: Vec<f64> = [4, 8, 16]
                .iter()
                .map(|&n| (ratio(n) / cf - 1.0).abs())
                .collect();
            assert!(
                errors[1] < errors[0].powf(1.5) && errors[2] < errors[1].powf(1.5),
                "s {s}: {errors:?}"
            );
            // 32 against 64 nodes: agreement at rounding level, which is also the error.
            let (r32, r64) = (ratio(32), ratio(64));
            assert!(((r32 - r64) / r64).abs() < 1e-13, "s {s}: {r32} vs {r64}");
            // The converged result carries its own evidence, and stopped at 64 nodes.
            let exact = exact_target_ratio(&flow);
            assert_eq!(exact.nodes, 64, "s {s}");
            assert!(exact.relative_change() < QUADRATURE_TOLERANCE);
            assert!((exact.ratio / cf - 1.0).abs() < 1e-13);
        }
    }

    #[test]
    fn ratio_of_means_and_its_standard_error() {
        // Exact pairs b = 2 a: the ratio is 1/2 and there is no noise in it.
        let a = [1.0, 2.0, 4.0, 8.0];
        let b = a.map(|x| 2.0 * x);
        let r = ratio_of_means(&a, &b);
        assert_eq!((r.mean, r.se, r.n), (0.5, 0.0, 4));
        // A pair with a NaN is dropped whole; the SE is sd(a - R b) / (sqrt(n) mean b).
        let a = [1.0, 3.0, f64::NAN, 2.0];
        let b = [1.0, 1.0, 1.0, 2.0];
        let r = ratio_of_means(&a, &b);
        assert_eq!(r.n, 3);
        assert!((r.mean - 1.5).abs() < 1e-15);
        let residual = [1.0 - 1.5, 3.0 - 1.5, 2.0 - 3.0];
        let sd = (residual.iter().map(|x| x * x).sum::<f64>() / 2.0).sqrt();
        assert!((r.se - sd / 3f64.sqrt() / (4.0 / 3.0)).abs() < 1e-14);
    }

    /// The study's estimator (the "closed form" row on points from `draw_points`) against the exact
    /// value: one large sample within 4 of its standard errors, with the SE small enough to see a
    /// 1% bias; then 60 study-sized samples whose z-scores are standard normal (mean and spread),
    /// i.e. the SE printed beside the estimate is honest.
    #[test]
    fn the_study_estimator_of_the_ratio_converges_to_the_exact_value() {
        for (s, seed) in [(GAUSSIAN_NARROW_SIGMA, 31), (GAUSSIAN_WIDE_SIGMA, 32)] {
            let flow = GaussianFlow::new(s, 1);
            let exact = exact_target_ratio(&flow).ratio;
            let mut rng = Rng::seed_from_u64(seed);
            let source = DataSource::Gaussian { sigma: s, dim: 1 };
            let draws = draw_points(source, 200_000, 2, &mut rng);
            let row = closed_form_row("g", &flow, &draws, 4);
            let z = (row.ratio - exact) / row.ratio_se;
            assert!(
                z.abs() < 4.0,
                "s {s}: {} +- {} vs {exact}",
                row.ratio,
                row.ratio_se
            );
            assert!(
                4.0 * row.ratio_se < 0.01 * exact,
                "s {s}: no power, SE {}",
                row.ratio_se
            );

            let zs: Vec<f64> = (0..60)
                .map(|_| {
                    let draws = draw_points(source, 2048, 2, &mut rng);
                    let row = closed_form_row("g", &flow, &draws, 4);
                    (row.ratio - exact) / row.ratio_se
                })
                .collect();
            let m = mean_se(zs.iter().copied());
            let sd = m.se * (zs.len() as f64).sqrt();
            // Under N(0, 1): the mean's SE is 0.13, the sd's about 0.09.
            assert!(m.mean.abs() < 0.55, "s {s}: mean z {}", m.mean);
            assert!((0.65..1.35).contains(&sd), "s {s}: sd of z {sd}");
        }
    }

    #[test]
    fn u_star_is_the_flow_and_its_derivatives_match_differences() {
        for &s in &[0.3, 3.0] {
            let f = GaussianFlow::new(s, 1);
            for &(r, t) in &[
                (0.0, 1.0),
                (0.2, 0.7),
                (0.5, 0.5),
                (0.05, 0.06),
                (0.9, 0.95),
            ] {
                // d sigma_t / dt / sigma_t = k(t).
                let k_fd = central_difference(|e| f.sigma_t(t + e).ln());
                assert!((k_fd - f.velocity_coef(t)).abs() < FD_REL_TOL * (1.0 + k_fd.abs()));
                let a_fd = central_difference(|e| f.u_coef(r, t + e));
                let a_t = f.u_coef_dt(r, t);
                if t > r {
                    assert!(
                        (a_fd - a_t).abs() < 1e-5 * (1.0 + a_t.abs()),
                        "s {s} r {r} t {t}: {a_fd} vs {a_t}"
                    );
                }
                // The flow: z_r = z_t - (t - r) u*(z_t, r, t) = rho z_t.
                let z = 1.7;
                let zr = z - (t - r) * f.u_coef(r, t) * z;
                assert!((zr - f.rho(r, t) * z).abs() < 1e-12);
            }
            // The limit r -> t of a_t, against the formula just off the diagonal.
            let (t, h) = (0.6, 1e-4);
            let near = f.u_coef_dt(t - h, t);
            let at = f.u_coef_dt(t, t);
            assert!(
                (near - at).abs() < 1e-3 * (1.0 + at.abs()),
                "{near} vs {at}"
            );
        }
    }
}
