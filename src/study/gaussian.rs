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
//! iMF's target variance with the networks, with u* and in closed form ([`target_ratios`]).
//!
//! So MF's target has the lower variance exactly where rho < 1, i.e. where sigma_t grows between r
//! and t (the map back from t to r contracts), and the higher where sigma_t shrinks. sigma_t^2 is
//! smallest at t* = s^2 / (1 + s^2): 0.083 for s = 0.3 (narrow: sigma_t grows on almost all of
//! [0, 1]), 0.9 for s = 3 (wide: sigma_t shrinks on almost all of it).

use super::conditional_variance::{
    bin_centres, binned, estimate, mean_se, median, AverageVelocity, BetaVariances, Linearization,
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
use ndarray::{Array2, Array3, ArrayView2};
use serde::Serialize;

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

    fn parameter_gram(
        &mut self,
        _z: ArrayView2<f64>,
        _r: &[f64],
        _t: &[f64],
    ) -> Option<Array3<f64>> {
        None
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

/// MF's against iMF's target variance for one model of u: ratio = E_z tr Var[target_MF | z_t] /
/// E_z tr Var[target_iMF | z_t], in closed form E_z rho^2 V / E_z V, with rho = sigma_r / sigma_t.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioRow {
    pub dataset: String,
    /// "closed form", "u*", "mf net", "imf net", "initial net".
    pub model: &'static str,
    pub mf_target: f64,
    pub mf_target_se: f64,
    pub imf_target: f64,
    pub imf_target_se: f64,
    pub ratio: f64,
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
    let gaps: Vec<f64> = draws.t.iter().zip(&draws.r).map(|(t, r)| t - r).collect();
    let bins = settings.bins;
    let weight = LossConfig::preset(LossPreset::Mf);
    let row = |model: &'static str, mf: Vec<f64>, imf: Vec<f64>| {
        let (a, b) = (mean_se(mf.iter().copied()), mean_se(imf.iter().copied()));
        let by = |keys: &[f64]| {
            binned(&mf, keys, 0.0, 1.0, bins)
                .iter()
                .zip(binned(&imf, keys, 0.0, 1.0, bins))
                .map(|(x, y)| x.mean / y.mean)
                .collect()
        };
        RatioRow {
            dataset: dataset.name(),
            model,
            mf_target: a.mean,
            mf_target_se: a.se,
            imf_target: b.mean,
            imf_target_se: b.se,
            ratio: a.mean / b.mean,
            ratio_by_gap: by(&gaps),
            ratio_by_t: by(&draws.t),
        }
    };
    let mut rows = Vec::new();
    let cf = |beta| -> Vec<f64> {
        (0..draws.len())
            .map(|i| flow.var_target(beta, draws.r[i], draws.t[i]))
            .collect()
    };
    rows.push(row("closed form", cf(0.0), cf(1.0)));
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
    fn parameter_gram(
        &mut self,
        _z: ArrayView2<f64>,
        _r: &[f64],
        _t: &[f64],
    ) -> Option<Array3<f64>> {
        None
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
            let mf = models.get(&ds, LossPreset::Mf).clone();
            let imf = models.get(&ds, LossPreset::Imf).clone();
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
