//! Instrument 4: the MeanFlow identity on a trained model.
//!
//! A model's instantaneous velocity v(z, tau) = u(z, tau, tau) defines an ODE dz/dtau = v. The
//! average velocity of that ODE between r and t along the path through z_t is
//! u_ode(z_t, r, t) = (z_t - z_r) / (t - r), and the MeanFlow identity says u(z_t, r, t) should
//! equal it. Here u_ode comes from RK4 integration of the model's own v from t back to r, so the
//! residual measures the model's self-consistency, whatever its fit to the data.
//!
//! Grid: t = k / g (k = 1..g) and r = j / g (j = 0..g-1), cells with r < t. For each t, `points`
//! states z_t = (1 - t) x + t e (x from the training pool, e ~ N(0, I)); one RK4 path from t down
//! to 0 passes through every r of the grid (`steps_per_unit` steps per unit of time). Per cell:
//! `residual` = mean |u(z_t, r, t) - u_ode|^2 / mean |u_ode|^2.
//!
//! Integration error: the first `check_points` states are integrated again with twice the step;
//! RK4's error is about |z_h - z_2h| / 15, so `integration_error` = mean |u_h - u_2h|^2 /
//! mean |u_h|^2 / 15^2, on the scale of `residual`.
//!
//! The instrument ([`run_identity`]) measures the shared MF and iMF models of each dataset and
//! compares them ([`compare_losses`]): the claim predicts MF's model the less self-consistent.
//!
//! Samples: the t = 1 row starts from z_1 = e ~ N(0, I); its cell (r, t) = (0, 1) gives the
//! 1-step samples x = z_1 - u(z_1, 0, 1), and its path ends at the ODE endpoints z_0 of the same
//! noise. Both are compared (mean distance) and measured against held-out data (sliced W1).

use super::curves::PRESETS;
use super::dataset::StudyDataset;
use super::fixture::ModelCache;
use super::parallel_map;
use crate::flow::loss::LossPreset;
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::Evaluator;
use crate::rng::Rng;
use crate::verify::metrics::sliced_wasserstein1;
use ndarray::{s, Array2, ArrayView2, Axis};
use serde::Serialize;

const STREAM_HELD_OUT: u64 = 3;
/// Stream of the states of grid row k: STREAM_ROWS + k.
const STREAM_ROWS: u64 = 100;

/// What instrument 4 measures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IdentitySettings {
    /// Grid size g: t in {1/g, ..., 1}, r in {0, ..., (g-1)/g}.
    pub grid: usize,
    /// States z_t per grid row (and 1-step / ODE samples).
    pub points: usize,
    /// RK4 steps per unit of time (the step is at most 1 / steps_per_unit).
    pub steps_per_unit: usize,
    /// States integrated again with twice the step, for the integration error.
    pub check_points: usize,
}

impl IdentitySettings {
    /// The study's default: 8 x 8 grid, 512 states per row, RK4 with 64 steps per unit time.
    pub fn standard() -> Self {
        IdentitySettings {
            grid: 8,
            points: 512,
            steps_per_unit: 64,
            check_points: 128,
        }
    }

    /// Seconds with the quick fixture: 4 x 4 grid, 64 states, 16 steps per unit time.
    pub fn quick() -> Self {
        IdentitySettings {
            grid: 4,
            points: 64,
            steps_per_unit: 16,
            check_points: 32,
        }
    }

    fn validate(&self) {
        assert!(
            self.grid >= 1
                && self.points >= 2
                && self.steps_per_unit >= 2
                && (1..=self.points).contains(&self.check_points),
            "IdentitySettings: grid >= 1, points >= 2, steps_per_unit >= 2, 1 <= check_points <= points: {self:?}"
        );
    }

    /// The grid's t values (ascending) and r values (ascending).
    pub fn times(&self) -> (Vec<f64>, Vec<f64>) {
        let g = self.grid as f64;
        (
            (1..=self.grid).map(|k| k as f64 / g).collect(),
            (0..self.grid).map(|j| j as f64 / g).collect(),
        )
    }
}

/// Integrates dz/dtau = v(z, tau) with RK4 from tau = t down through the decreasing `stops`
/// (each < t), at most `1 / steps_per_unit` per step (segments between stops split evenly);
/// returns z at each stop.
pub fn integrate_back(
    v: &mut dyn FnMut(ArrayView2<f64>, f64) -> Array2<f64>,
    z_t: ArrayView2<f64>,
    t: f64,
    stops: &[f64],
    steps_per_unit: usize,
) -> Vec<Array2<f64>> {
    assert!(
        steps_per_unit >= 1,
        "integrate_back: steps_per_unit must be >= 1"
    );
    let mut z = z_t.to_owned();
    let mut tau = t;
    let mut out = Vec::with_capacity(stops.len());
    for &stop in stops {
        assert!(
            stop < tau,
            "integrate_back: the stops must decrease from t = {t}, got {stops:?}"
        );
        let span = tau - stop;
        let n = ((span * steps_per_unit as f64) - 1e-9).ceil().max(1.0) as usize;
        let h = span / n as f64;
        for k in 0..n {
            let a = tau - k as f64 * h;
            let (mid, end) = (a - 0.5 * h, if k + 1 == n { stop } else { a - h });
            let k1 = v(z.view(), a);
            let k2 = v((&z - &(&k1 * (0.5 * h))).view(), mid);
            let k3 = v((&z - &(&k2 * (0.5 * h))).view(), mid);
            let k4 = v((&z - &(&k3 * h)).view(), end);
            let step = (k1 + &(k2 * 2.0) + &(k3 * 2.0) + &k4) * (h / 6.0);
            z -= &step;
        }
        tau = stop;
        out.push(z.clone());
    }
    out
}

/// mean over rows of |a_i - b_i|^2.
fn mean_sq_diff(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    (&a - &b)
        .mapv(|x| x * x)
        .sum_axis(Axis(1))
        .mean()
        .unwrap_or(f64::NAN)
}

/// One grid cell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Cell {
    pub r: f64,
    pub t: f64,
    /// mean |u - u_ode|^2 / mean |u_ode|^2.
    pub residual: f64,
    /// mean |u - u_ode|^2.
    pub residual_abs: f64,
    /// mean |u_ode|^2.
    pub u_ode_sq: f64,
    /// Estimated relative squared error of u_ode (see the module doc).
    pub integration_error: f64,
}

/// Instrument 4 on one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentityResult {
    pub settings: IdentitySettings,
    /// Cells in row order: t ascending, then r ascending.
    pub cells: Vec<Cell>,
    #[serde(skip)]
    pub one_step: Array2<f64>,
    #[serde(skip)]
    pub ode: Array2<f64>,
    #[serde(skip)]
    pub held_out: Array2<f64>,
    /// Mean |x_1step - x_ode| over the samples.
    pub mean_distance: f64,
    /// Root mean square of the ODE endpoints' norms (the scale of `mean_distance`).
    pub ode_rms: f64,
    pub sw1_one_step: f64,
    pub sw1_ode: f64,
    pub sw1_floor: f64,
}

impl IdentityResult {
    /// The relative residuals as a [g, g] grid: row i is t = (i + 1) / g, column j is r = j / g;
    /// NaN where r >= t.
    pub fn residual_grid(&self) -> Array2<f64> {
        let g = self.settings.grid;
        let mut grid = Array2::from_elem((g, g), f64::NAN);
        for c in &self.cells {
            let i = (c.t * g as f64).round() as usize - 1;
            let j = (c.r * g as f64).round() as usize;
            grid[[i, j]] = c.residual;
        }
        grid
    }

    /// The largest integration error of any cell.
    pub fn max_integration_error(&self) -> f64 {
        self.cells
            .iter()
            .map(|c| c.integration_error)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The cell at (r, t) (grid values).
    pub fn cell(&self, r: f64, t: f64) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| (c.r - r).abs() < 1e-9 && (c.t - t).abs() < 1e-9)
    }

    /// (median, max) of the relative residual over the cells.
    pub fn residual_median_max(&self) -> (f64, f64) {
        let mut v: Vec<f64> = self.cells.iter().map(|c| c.residual).collect();
        v.sort_by(f64::total_cmp);
        let median = if v.is_empty() {
            f64::NAN
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
        };
        (median, v.last().copied().unwrap_or(f64::NAN))
    }
}

/// Measures the identity for the model `params`, with states drawn from the data `pool` and
/// held-out data from `dataset` ([`StudyDataset::held_out`]: a toy's `points` fresh draws, the
/// digits' 300 held-out rows).
pub fn identity_check(
    model: &ModelConfig,
    params: &MlpParams<f64>,
    pool: ArrayView2<f64>,
    dataset: &StudyDataset,
    settings: &IdentitySettings,
    seed: u64,
) -> IdentityResult {
    settings.validate();
    assert!(
        pool.nrows() > 0 && pool.ncols() == model.dim,
        "identity_check: pool {:?} for a model of dimension {}",
        pool.dim(),
        model.dim
    );
    let (n, d, nc) = (settings.points, model.dim, settings.check_points);
    let mut eval = Evaluator::new(*model, params);
    let (ts, rs) = settings.times();
    let mut cells = Vec::new();
    let (mut one_step, mut ode) = (Array2::zeros((0, d)), Array2::zeros((0, d)));
    for (k, &t) in ts.iter().enumerate() {
        let mut rng = Rng::stream(seed, STREAM_ROWS + k as u64);
        let mut z_t = Array2::zeros((n, d));
        for mut row in z_t.rows_mut() {
            let x = pool.row(rng.below(pool.nrows()));
            for (zj, &xj) in row.iter_mut().zip(x) {
                *zj = (1.0 - t) * xj + t * rng.normal();
            }
        }
        let stops: Vec<f64> = rs.iter().rev().copied().filter(|&r| r < t).collect();
        let mut v = |z: ArrayView2<f64>, tau: f64| eval.velocity(z, tau);
        let fine = integrate_back(&mut v, z_t.view(), t, &stops, settings.steps_per_unit);
        let check = z_t.slice(s![..nc, ..]);
        let coarse = integrate_back(&mut v, check, t, &stops, settings.steps_per_unit / 2);
        for ((&r, z_r), z_r_coarse) in stops.iter().zip(&fine).zip(&coarse) {
            let u_ode = (&z_t - z_r) / (t - r);
            let u_ode_coarse = (&check - z_r_coarse) / (t - r);
            let u = eval.u_at(z_t.view(), r, t);
            let residual_abs = mean_sq_diff(u.view(), u_ode.view());
            let u_ode_sq = mean_sq_diff(u_ode.view(), Array2::zeros((n, d)).view());
            let head = u_ode.slice(s![..nc, ..]);
            let head_sq = mean_sq_diff(head, Array2::zeros((nc, d)).view());
            cells.push(Cell {
                r,
                t,
                residual: residual_abs / u_ode_sq,
                residual_abs,
                u_ode_sq,
                integration_error: mean_sq_diff(head, u_ode_coarse.view()) / head_sq / 225.0,
            });
            if k + 1 == ts.len() && r == 0.0 {
                one_step = &z_t - &u;
                ode = z_r.clone();
            }
        }
    }
    cells.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.r.total_cmp(&b.r)));
    let held_out = dataset.held_out(n, &mut Rng::stream(seed, STREAM_HELD_OUT));
    let distances = (&one_step - &ode).mapv(|x| x * x).sum_axis(Axis(1));
    IdentityResult {
        settings: *settings,
        cells,
        mean_distance: distances.mapv(f64::sqrt).mean().unwrap_or(f64::NAN),
        ode_rms: mean_sq_diff(ode.view(), Array2::zeros((n, d)).view()).sqrt(),
        sw1_one_step: sliced_wasserstein1(one_step.view(), held_out.view()),
        sw1_ode: sliced_wasserstein1(ode.view(), held_out.view()),
        sw1_floor: dataset.sw1_floor(n, seed),
        one_step,
        ode,
        held_out,
    }
}

// ----- the instrument on the shared models, and what its report compares -----

/// Instrument 4 on one shared model, with the numbers the report reads from it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelIdentity {
    pub dataset: String,
    pub loss: &'static str,
    #[serde(skip)]
    pub preset: LossPreset,
    /// Median and max over the cells of the relative residual.
    pub residual_median: f64,
    pub residual_max: f64,
    /// The relative residual of the 1-step sampling cell (r, t) = (0, 1).
    pub residual_at_0_1: f64,
    pub max_integration_error: f64,
    #[serde(flatten)]
    pub result: IdentityResult,
}

impl ModelIdentity {
    /// Summarises one [`identity_check`].
    pub fn new(dataset: &StudyDataset, preset: LossPreset, result: IdentityResult) -> Self {
        let (residual_median, residual_max) = result.residual_median_max();
        ModelIdentity {
            dataset: dataset.name(),
            loss: preset.name(),
            preset,
            residual_median,
            residual_max,
            residual_at_0_1: result.cell(0.0, 1.0).map_or(f64::NAN, |c| c.residual),
            max_integration_error: result.max_integration_error(),
            result,
        }
    }

    /// The cell with the largest relative residual.
    pub fn worst_cell(&self) -> Option<&Cell> {
        self.result
            .cells
            .iter()
            .max_by(|a, b| a.residual.total_cmp(&b.residual))
    }
}

/// Instrument 4 on the trained (EMA) parameters of the shared MF and iMF models of every dataset
/// (trained now if `models` does not hold them yet), `workers` models at a time, each measured on
/// one thread; `done` is called after each model (from the worker thread). The result does not
/// depend on `workers`.
pub fn run_identity(
    datasets: &[StudyDataset],
    models: &mut ModelCache,
    settings: &IdentitySettings,
    seed: u64,
    workers: usize,
    done: &(dyn Fn(&ModelIdentity) + Sync),
) -> Vec<ModelIdentity> {
    // Owned copies: the cache cannot be borrowed across the worker threads.
    let mut jobs = Vec::new();
    for dataset in datasets {
        for preset in PRESETS {
            let m = models.get(dataset, preset);
            jobs.push((
                *dataset,
                preset,
                m.config.model,
                m.trained.clone(),
                m.data.clone(),
            ));
        }
    }
    parallel_map(&jobs, workers, |(dataset, preset, model, params, pool)| {
        let result = identity_check(model, params, pool.view(), dataset, settings, seed);
        let measured = ModelIdentity::new(dataset, *preset, result);
        done(&measured);
        measured
    })
}

/// (max over cells of `integration_error`, min over cells of `residual`), over every model: the
/// residuals say something about the models only where they stand above the integrator's error,
/// i.e. where the first is below the second.
pub fn integration_against_residuals(models: &[ModelIdentity]) -> (f64, f64) {
    let worst_integration = models
        .iter()
        .map(|m| m.max_integration_error)
        .fold(f64::NEG_INFINITY, f64::max);
    let smallest_residual = models
        .iter()
        .flat_map(|m| m.result.cells.iter().map(|c| c.residual))
        .fold(f64::INFINITY, f64::min);
    (worst_integration, smallest_residual)
}

/// MF against iMF on one dataset (one seed each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossComparison<'a> {
    pub dataset: &'a str,
    pub mf: &'a ModelIdentity,
    pub imf: &'a ModelIdentity,
    /// Median residual MF / iMF.
    pub residual_ratio: f64,
    /// Mean 1-step vs ODE endpoint distance MF / iMF.
    pub distance_ratio: f64,
    /// SW1(1-step) / SW1(ODE) of MF's and of iMF's model: < 1 when the 1-step samples are closer
    /// to the data than the model's own ODE endpoints.
    pub sw1_ratio_mf: f64,
    pub sw1_ratio_imf: f64,
}

/// [`LossComparison`] of every dataset (in the models' order) that has both an MF and an iMF model.
pub fn compare_losses(models: &[ModelIdentity]) -> Vec<LossComparison<'_>> {
    let mut datasets: Vec<&str> = models.iter().map(|m| m.dataset.as_str()).collect();
    datasets.dedup();
    datasets
        .into_iter()
        .filter_map(|ds| {
            let find = |loss: &str| models.iter().find(|m| m.dataset == ds && m.loss == loss);
            let (mf, imf) = (find("mf")?, find("imf")?);
            Some(LossComparison {
                dataset: ds,
                mf,
                imf,
                residual_ratio: mf.residual_median / imf.residual_median,
                distance_ratio: mf.result.mean_distance / imf.result.mean_distance,
                sw1_ratio_mf: mf.result.sw1_one_step / mf.result.sw1_ode,
                sw1_ratio_imf: imf.result.sw1_one_step / imf.result.sw1_ode,
            })
        })
        .collect()
}

/// How a ratio MF / iMF from one seed reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneSeedVerdict {
    /// MF / iMF > 1.25.
    MfAbove,
    /// MF / iMF < 0.8.
    MfBelow,
    /// Within 25% either way: one seed cannot tell.
    Unclear,
}

impl OneSeedVerdict {
    /// A difference is read only beyond 25% either way (above 1.25, below 0.8 = 1 / 1.25): one
    /// seed gives no spread to compare the ratio with, so a margin stands in for it.
    pub fn of(ratio: f64) -> Self {
        if ratio > 1.25 {
            OneSeedVerdict::MfAbove
        } else if ratio < 0.8 {
            OneSeedVerdict::MfBelow
        } else {
            OneSeedVerdict::Unclear
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(
        loss: LossPreset,
        residuals: [f64; 3],
        distance: f64,
        sw1: (f64, f64),
    ) -> ModelIdentity {
        let settings = IdentitySettings {
            grid: 2,
            points: 2,
            steps_per_unit: 2,
            check_points: 1,
        };
        // Cells of a 2 x 2 grid: (0, 0.5), (0, 1), (0.5, 1).
        let cells = [(0.0, 0.5), (0.0, 1.0), (0.5, 1.0)]
            .iter()
            .zip(residuals)
            .map(|(&(r, t), residual)| Cell {
                r,
                t,
                residual,
                residual_abs: residual,
                u_ode_sq: 1.0,
                integration_error: residual * 1e-6,
            })
            .collect();
        let empty = Array2::zeros((0, 1));
        let result = IdentityResult {
            settings,
            cells,
            one_step: empty.clone(),
            ode: empty.clone(),
            held_out: empty,
            mean_distance: distance,
            ode_rms: 1.0,
            sw1_one_step: sw1.0,
            sw1_ode: sw1.1,
            sw1_floor: 0.01,
        };
        ModelIdentity::new(
            &crate::data::ToyDataset::gaussian_narrow().into(),
            loss,
            result,
        )
    }

    #[test]
    fn model_identity_summarises_its_cells() {
        let m = measured(LossPreset::Mf, [0.2, 0.4, 0.1], 0.5, (0.1, 0.2));
        assert_eq!((m.dataset.as_str(), m.loss), ("gaussian_narrow", "mf"));
        assert_eq!((m.residual_median, m.residual_max), (0.2, 0.4));
        assert_eq!(m.residual_at_0_1, 0.4);
        assert_eq!(m.max_integration_error, 0.4 * 1e-6);
        assert_eq!(m.worst_cell().map(|c| (c.r, c.t)), Some((0.0, 1.0)));
    }

    #[test]
    fn losses_are_compared_per_dataset() {
        let models = [
            measured(LossPreset::Mf, [0.2, 0.4, 0.1], 0.5, (0.1, 0.2)),
            measured(LossPreset::Imf, [0.1, 0.2, 0.05], 0.25, (0.3, 0.2)),
        ];
        let (integration, residual) = integration_against_residuals(&models);
        assert_eq!((integration, residual), (0.4 * 1e-6, 0.05));
        let compared = compare_losses(&models);
        assert_eq!(compared.len(), 1);
        let c = &compared[0];
        assert_eq!(c.dataset, "gaussian_narrow");
        assert_eq!((c.residual_ratio, c.distance_ratio), (2.0, 2.0));
        assert_eq!(c.sw1_ratio_mf, 0.5);
        assert!((c.sw1_ratio_imf - 1.5).abs() < 1e-12);
        // A dataset with one loss only is not compared.
        assert!(compare_losses(&models[..1]).is_empty());
    }

    #[test]
    fn one_seed_verdict_needs_25_percent() {
        assert_eq!(OneSeedVerdict::of(1.3), OneSeedVerdict::MfAbove);
        assert_eq!(OneSeedVerdict::of(1.2), OneSeedVerdict::Unclear);
        assert_eq!(OneSeedVerdict::of(0.85), OneSeedVerdict::Unclear);
        assert_eq!(OneSeedVerdict::of(0.75), OneSeedVerdict::MfBelow);
        assert_eq!(OneSeedVerdict::of(f64::NAN), OneSeedVerdict::Unclear);
    }
}
