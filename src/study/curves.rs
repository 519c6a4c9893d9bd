//! Instrument 3: training curves of MF and iMF over several seeds.
//!
//! For each dataset, loss preset (mf, imf) and seed, one training run with the study's model
//! settings ([`FixtureSettings`]: width, depth, batch; the preset's own time sampler), logging
//! every `log_every` steps the means over those steps of
//!
//! - `mse`: the v-form error |V - v_c|^2 of the training batches, V = u + (t - r) sg(dudt) with the
//!   loss's own tangent (MF: v_c, iMF: the network's u(z, t, t)). Rows with r = t have V = u(z, t, t)
//!   in both losses. Comparable across losses up to two differences: MF draws 25% of its rows with
//!   r != t, iMF 50% (the presets' time samplers), and MF's V contains v_c itself through its
//!   tangent, so MF's mse is not bounded below by the floor;
//! - `loss`: the weighted loss (equal to `mse` with the presets' p = 0; with p = 1 it sits near 1
//!   and is not comparable across losses).
//!
//! At `checkpoints` evenly spaced steps the EMA parameters are measured on fixed sets shared by
//! every run of the dataset:
//!
//! - `sw1`: sliced W1 of 1-step samples (`eval_samples` of them, fixed noise) against as many
//!   held-out data points; `sw1_floor` is the data-vs-data value at that n;
//! - on a fixed evaluation batch whose rows all have r < t (times from the logit-normal of the
//!   presets): `fm` = mean |u(z, t, t) - v_c|^2 (the flow-matching error of the boundary, trained
//!   by both losses); `v_mf` and `v_imf` = mean |u + (t - r) dudt - v_c|^2 with the MF tangent v_c
//!   and with the iMF tangent u(z, t, t). `fm` and `v_imf` are errors of functions of z_t alone,
//!   so they are >= E tr Var[v_c | z_t]: `floor` estimates that, with the posterior of x given
//!   z_t over `posterior_points` data points (an estimate biased low at small t, where the finite
//!   posterior collapses onto the nearest point).
//!
//! With `identity` set, instrument 4's check ([`identity_check`], on a small grid) also measures
//! each run's final EMA parameters, so its key numbers get a spread over seeds.
//!
//! [`DatasetCurves`] compares MF's numbers with iMF's over the seeds ([`Comparison`]: a difference
//! only beyond the two spreads added) and reads the slopes as a [`Trend`].
//!
//! The slope of ln(mse) over the second half of training (least squares, per 1000 steps, and
//! against ln(step)) says whether a curve still goes down. Runs are independent and each is
//! single-threaded; `workers` OS threads take them in turn, and each run depends only on its own
//! seed, so the results do not depend on the scheduling.

use crate::autodiff::tape::Tape;
use crate::data::ToyDataset;
use crate::flow::loss::{record_loss, Batch, LossConfig, LossPreset};
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::sampling::{noise, sample_mean_flow, Evaluator};
use crate::flow::time_sampler::TimeSampler;
use crate::rng::Rng;
use crate::study::fixture::FixtureSettings;
use crate::study::identity::{identity_check, IdentitySettings};
use crate::study::parallel_map;
use crate::study::posterior::{pool_weights_into, PoolWeights};
use crate::train::{builtin_pool_points, Trainer};
use crate::verify::metrics::{sliced_wasserstein1, toy_floor, Metric};
use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use std::time::Instant;

/// The losses compared.
pub const PRESETS: [LossPreset; 2] = [LossPreset::Mf, LossPreset::Imf];

/// Random streams (of the study seed) of the sets shared by every run of a dataset.
const STREAM_HELD_OUT: u64 = 3;
const STREAM_EVAL_NOISE: u64 = 4;
const STREAM_EVAL_BATCH: u64 = 5;
const STREAM_POSTERIOR: u64 = 6;

/// What instrument 3 runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurveSettings {
    /// Seeds per (dataset, loss): the study seed + 0, 1, ...
    pub seeds: usize,
    pub steps: u64,
    /// Steps per logged point (means over these steps).
    pub log_every: u64,
    /// Evenly spaced measuring points of the EMA parameters (the last at `steps`).
    pub checkpoints: usize,
    /// 1-step samples and held-out points for SW1.
    pub eval_samples: usize,
    /// Rows of the fixed evaluation batch (all with r < t).
    pub eval_rows: usize,
    /// Data points of the posterior x | z_t for the floor.
    pub posterior_points: usize,
    /// OS threads running independent runs.
    pub workers: usize,
    /// Instrument 4's identity check on each run's final EMA parameters (a seed spread for it).
    pub identity: Option<IdentitySettings>,
}

impl CurveSettings {
    /// The study's default: 3 seeds, 5000 steps, logged every 100, 5 checkpoints, 2 workers.
    pub fn standard() -> Self {
        CurveSettings {
            seeds: 3,
            steps: 5_000,
            log_every: 100,
            checkpoints: 5,
            eval_samples: 2_000,
            eval_rows: 2_048,
            posterior_points: 16_384,
            workers: 2,
            identity: Some(IdentitySettings {
                grid: 4,
                points: 256,
                steps_per_unit: 32,
                check_points: 64,
            }),
        }
    }

    /// Seconds: 2 seeds, 200 steps (with the quick fixture's tiny model).
    pub fn quick() -> Self {
        CurveSettings {
            seeds: 2,
            steps: 200,
            log_every: 20,
            checkpoints: 2,
            eval_samples: 256,
            eval_rows: 256,
            posterior_points: 1_024,
            workers: 2,
            identity: Some(IdentitySettings {
                grid: 2,
                points: 32,
                steps_per_unit: 8,
                check_points: 8,
            }),
        }
    }

    fn validate(&self) {
        assert!(
            self.seeds >= 1
                && self.log_every >= 1
                && self.steps >= self.log_every
                && self.checkpoints >= 1
                && self.eval_samples >= 2
                && self.eval_rows >= 1
                && self.posterior_points >= 1
                && self.workers >= 1,
            "CurveSettings: every count must be >= 1 (and steps >= log_every, eval_samples >= 2): {self:?}"
        );
    }

    /// The steps at which the EMA parameters are measured.
    pub fn checkpoint_steps(&self) -> Vec<u64> {
        let k = self.checkpoints as u64;
        let mut steps: Vec<u64> = (1..=k).map(|c| c * self.steps / k).collect();
        steps.dedup();
        steps.retain(|&s| s > 0);
        steps
    }
}

/// The sets every run of one dataset is measured on.
#[derive(Clone, Debug)]
pub struct EvalSet {
    pub dataset: ToyDataset,
    /// Held-out data (`eval_samples` points).
    pub held_out: Array2<f64>,
    /// The noise z_1 of the 1-step samples.
    pub noise: Array2<f64>,
    /// The evaluation batch: every row r < t.
    pub batch: Batch<f64>,
    /// Mean over the batch's rows of tr Var[v_c | z_t] (posterior over `posterior_points` points).
    pub floor: f64,
    /// SW1 between two independent data draws of `eval_samples` points.
    pub sw1_floor: f64,
}

impl EvalSet {
    pub fn new(dataset: &ToyDataset, settings: &CurveSettings, seed: u64) -> Self {
        let n = settings.eval_samples;
        let d = dataset.dim();
        let held_out = dataset.sample(n, &mut Rng::stream(seed, STREAM_HELD_OUT));
        let noise = noise(n, d, &mut Rng::stream(seed, STREAM_EVAL_NOISE));
        let rows = settings.eval_rows;
        let mut rng = Rng::stream(seed, STREAM_EVAL_BATCH);
        let mut batch = Batch {
            x: dataset.sample(rows, &mut rng),
            e: Array2::zeros((rows, d)),
            t: Array2::zeros((rows, 1)),
            r: Array2::zeros((rows, 1)),
            labels: Vec::new(),
            scales: ndarray::Array2::zeros((0, 1)),
            intervals: ndarray::Array2::zeros((0, 2)),
        };
        batch.e.iter_mut().for_each(|e| *e = rng.normal());
        let all_gaps = TimeSampler {
            fraction_equal: 0.0,
            ..TimeSampler::mf_default()
        };
        all_gaps.fill(&mut rng, batch.t.view_mut(), batch.r.view_mut());
        let pool = dataset.sample(
            settings.posterior_points,
            &mut Rng::stream(seed, STREAM_POSTERIOR),
        );
        let z = batch.z();
        let t: Vec<f64> = batch.t.column(0).to_vec();
        let per_row = conditional_velocity_variance(z.view(), &t, pool.view());
        let floor = per_row.iter().sum::<f64>() / per_row.len() as f64;
        let sw1_floor = toy_floor(Metric::SlicedW1, dataset, n, 1, seed);
        EvalSet {
            dataset: *dataset,
            held_out,
            noise,
            batch,
            floor,
            sw1_floor,
        }
    }
}

/// Per row i, tr Var[v_c | z_t = z_i] for data given by the points `pool` (equal weights):
/// v_c = (z_t - x) / t given z_t, so it is tr Var[x | z_t] / t^2, with the posterior weights of
/// [`pool_weights_into`] (w_j proportional to exp(-|z - (1 - t) x_j|^2 / (2 t^2))).
pub fn conditional_velocity_variance(
    z: ArrayView2<f64>,
    t: &[f64],
    pool: ArrayView2<f64>,
) -> Vec<f64> {
    assert_eq!(
        z.nrows(),
        t.len(),
        "conditional_velocity_variance: z {:?} but {} times",
        z.dim(),
        t.len()
    );
    // One weight buffer for every row.
    let mut posterior = PoolWeights {
        weights: Vec::with_capacity(pool.nrows()),
        ess: 0.0,
    };
    z.rows()
        .into_iter()
        .zip(t)
        .map(|(zi, &ti)| {
            posterior.ess = pool_weights_into(pool, zi, ti, &mut posterior.weights);
            let (_, var) = posterior.mean_and_variance(pool);
            var.iter().sum::<f64>() / (ti * ti)
        })
        .collect()
}

/// Errors of one model on a batch (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BatchErrors {
    /// mean |u(z, t, t) - v_c|^2.
    pub fm: f64,
    /// mean |u + (t - r) dudt - v_c|^2, tangent v_c (MF).
    pub v_mf: f64,
    /// The same with the tangent u(z, t, t) (iMF).
    pub v_imf: f64,
}

/// [`BatchErrors`] of the model `params` on `batch` (f64, no gradient).
pub fn batch_errors(
    model: &ModelConfig,
    params: &MlpParams<f64>,
    batch: &Batch<f64>,
) -> BatchErrors {
    let v_c = batch.v_c();
    let boundary =
        Evaluator::new(*model, params).u(batch.z().view(), batch.t.view(), batch.t.view());
    let fm = (&boundary - &v_c).mapv(|x| x * x).sum() / batch.len() as f64;
    let mut tape = Tape::new();
    let mut v_form = |preset: LossPreset| {
        tape.clear();
        let vars = params.on_tape(&mut tape);
        let nodes = record_loss(&mut tape, model, &vars, &LossConfig::preset(preset), batch);
        tape.scalar(nodes.mse)
    };
    BatchErrors {
        fm,
        v_mf: v_form(LossPreset::Mf),
        v_imf: v_form(LossPreset::Imf),
    }
}

/// One logged point: means over the `log_every` steps ending at `step`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LogPoint {
    pub step: u64,
    pub mse: f64,
    pub loss: f64,
}

/// The EMA parameters measured at one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CheckpointPoint {
    pub step: u64,
    /// SW1 of 1-step samples against the held-out set.
    pub sw1: f64,
    pub errors: BatchErrors,
}

/// One training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunCurve {
    pub dataset: String,
    pub loss: &'static str,
    pub seed: u64,
    pub log: Vec<LogPoint>,
    pub checkpoints: Vec<CheckpointPoint>,
    /// Mean mse over the last 10% of steps (at least one logged point).
    pub final_mse: f64,
    /// Mean weighted loss over the same steps.
    pub final_loss: f64,
    /// Least-squares slope of ln(mse) against step / 1000 over the second half.
    pub slope_per_1k: f64,
    /// Least-squares slope of ln(mse) against ln(step) over the second half.
    pub slope_log_log: f64,
    /// The identity check of the final EMA parameters, when the settings ask for it.
    pub identity: Option<RunIdentity>,
    /// Wall time of the run (training and measurements).
    pub seconds: f64,
}

/// The key numbers of instrument 4 on one run's final EMA parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RunIdentity {
    /// Median over the grid cells of mean |u - u_ode|^2 / mean |u_ode|^2.
    pub residual_median: f64,
    /// The same at (r, t) = (0, 1), the 1-step sampling cell.
    pub residual_0_1: f64,
    /// Mean |x_1step - x_ode| from the same noise.
    pub mean_distance: f64,
}

/// Least-squares slope of y against x (NaN with fewer than two distinct x).
pub fn least_squares_slope(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "least_squares_slope: lengths differ");
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        f64::NAN
    }
}

/// (mean, sample standard deviation); the deviation is 0 for one value, both NaN for none.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// Trains one run and measures it.
pub fn train_run(
    model: &FixtureSettings,
    settings: &CurveSettings,
    eval: &EvalSet,
    preset: LossPreset,
    seed: u64,
) -> RunCurve {
    settings.validate();
    let started = Instant::now();
    let dataset = eval.dataset;
    let run_settings = FixtureSettings {
        steps: settings.steps,
        seed,
        threads: 1,
        ..*model
    };
    let config = run_settings.train_config(&dataset.into(), preset);
    let pool = dataset.sample(
        builtin_pool_points(dataset.dim()),
        &mut Rng::stream(seed, 2),
    );
    let mut trainer = Trainer::<f32>::new(config, pool);
    let checkpoint_steps = settings.checkpoint_steps();
    let (mut log, mut checkpoints, mut identity) = (Vec::new(), Vec::new(), None);
    let (mut mse_sum, mut loss_sum) = (0.0, 0.0);
    for step in 1..=settings.steps {
        let stats = trainer.step().unwrap_or_else(|e| {
            panic!(
                "study curves {}/{} seed {seed}: {e}",
                dataset.name(),
                preset.name()
            )
        });
        mse_sum += stats.loss.mse;
        loss_sum += stats.loss.loss;
        if step % settings.log_every == 0 {
            let k = settings.log_every as f64;
            log.push(LogPoint {
                step,
                mse: mse_sum / k,
                loss: loss_sum / k,
            });
            (mse_sum, loss_sum) = (0.0, 0.0);
        }
        if checkpoint_steps.contains(&step) {
            let ema = trainer
                .ema
                .as_ref()
                .unwrap_or(&trainer.params)
                .cast::<f64>();
            let samples = sample_mean_flow(config.model, &ema, eval.noise.view(), &[1.0, 0.0]);
            checkpoints.push(CheckpointPoint {
                step,
                sw1: sliced_wasserstein1(samples.view(), eval.held_out.view()),
                errors: batch_errors(&config.model, &ema, &eval.batch),
            });
            if let (Some(id), true) = (&settings.identity, step == settings.steps) {
                let r = identity_check(
                    &config.model,
                    &ema,
                    trainer.sampler.data.view(),
                    &dataset.into(),
                    id,
                    seed,
                );
                identity = Some(RunIdentity {
                    residual_median: r.residual_median_max().0,
                    residual_0_1: r.cell(0.0, 1.0).map_or(f64::NAN, |c| c.residual),
                    mean_distance: r.mean_distance,
                });
            }
        }
    }
    let tail = (log.len() / 10).max(1);
    let tail_mean =
        |f: fn(&LogPoint) -> f64| log[log.len() - tail..].iter().map(f).sum::<f64>() / tail as f64;
    let half: Vec<&LogPoint> = log.iter().filter(|p| 2 * p.step > settings.steps).collect();
    let ln_mse: Vec<f64> = half.iter().map(|p| p.mse.ln()).collect();
    let per_1k: Vec<f64> = half.iter().map(|p| p.step as f64 / 1000.0).collect();
    let ln_step: Vec<f64> = half.iter().map(|p| (p.step as f64).ln()).collect();
    RunCurve {
        dataset: dataset.name(),
        loss: preset.name(),
        seed,
        final_mse: tail_mean(|p| p.mse),
        final_loss: tail_mean(|p| p.loss),
        slope_per_1k: least_squares_slope(&per_1k, &ln_mse),
        slope_log_log: least_squares_slope(&ln_step, &ln_mse),
        log,
        checkpoints,
        identity,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Mean and spread over seeds of one (dataset, loss).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossSummary {
    pub loss: &'static str,
    pub seeds: usize,
    /// (mean, sd) over seeds of each run's value.
    pub final_mse: (f64, f64),
    pub final_loss: (f64, f64),
    pub slope_per_1k: (f64, f64),
    pub slope_log_log: (f64, f64),
    /// At the last checkpoint.
    pub sw1: (f64, f64),
    pub fm: (f64, f64),
    pub v_mf: (f64, f64),
    pub v_imf: (f64, f64),
    /// Of the runs' identity checks (NaN without them).
    pub identity_residual: (f64, f64),
    pub identity_residual_0_1: (f64, f64),
    pub identity_distance: (f64, f64),
}

impl LossSummary {
    /// One summary per loss preset, over the runs trained with it.
    fn per_preset(runs: &[RunCurve]) -> Vec<Self> {
        PRESETS
            .iter()
            .map(|&p| {
                let of: Vec<&RunCurve> = runs.iter().filter(|r| r.loss == p.name()).collect();
                LossSummary::of(p, &of)
            })
            .collect()
    }

    fn of(preset: LossPreset, runs: &[&RunCurve]) -> Self {
        let over =
            |f: &dyn Fn(&RunCurve) -> f64| mean_sd(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let last = |r: &RunCurve| *r.checkpoints.last().expect("at least one checkpoint");
        LossSummary {
            loss: preset.name(),
            seeds: runs.len(),
            final_mse: over(&|r| r.final_mse),
            final_loss: over(&|r| r.final_loss),
            slope_per_1k: over(&|r| r.slope_per_1k),
            slope_log_log: over(&|r| r.slope_log_log),
            sw1: over(&|r| last(r).sw1),
            fm: over(&|r| last(r).errors.fm),
            v_mf: over(&|r| last(r).errors.v_mf),
            v_imf: over(&|r| last(r).errors.v_imf),
            identity_residual: over(&|r| r.identity.map_or(f64::NAN, |i| i.residual_median)),
            identity_residual_0_1: over(&|r| r.identity.map_or(f64::NAN, |i| i.residual_0_1)),
            identity_distance: over(&|r| r.identity.map_or(f64::NAN, |i| i.mean_distance)),
        }
    }
}

/// Every run of one dataset, with its shared floors and the per-loss summaries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetCurves {
    pub dataset: String,
    /// E tr Var[v_c | z_t] over the evaluation batch.
    pub floor: f64,
    pub sw1_floor: f64,
    pub runs: Vec<RunCurve>,
    pub summaries: Vec<LossSummary>,
}

impl DatasetCurves {
    /// The summary of one loss.
    pub fn summary(&self, preset: LossPreset) -> &LossSummary {
        self.summaries
            .iter()
            .find(|s| s.loss == preset.name())
            .expect("every preset is summarised")
    }

    /// The runs of one loss, by seed.
    pub fn runs_of(&self, preset: LossPreset) -> Vec<&RunCurve> {
        self.runs
            .iter()
            .filter(|r| r.loss == preset.name())
            .collect()
    }
}

/// Instrument 3's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvesResult {
    pub settings: CurveSettings,
    pub width: usize,
    pub depth: usize,
    pub batch: usize,
    pub seed: u64,
    pub datasets: Vec<DatasetCurves>,
}

/// Runs every (dataset, loss, seed) on `settings.workers` threads; `done` is called after each run
/// (from the worker thread). The result does not depend on the number of workers.
pub fn run_curves(
    datasets: &[ToyDataset],
    model: &FixtureSettings,
    settings: &CurveSettings,
    seed: u64,
    done: &(dyn Fn(&RunCurve) + Sync),
) -> CurvesResult {
    settings.validate();
    let evals: Vec<EvalSet> = datasets
        .iter()
        .map(|ds| EvalSet::new(ds, settings, seed))
        .collect();
    let jobs: Vec<(usize, LossPreset, u64)> = (0..datasets.len())
        .flat_map(|i| {
            PRESETS.into_iter().flat_map(move |p| {
                (0..settings.seeds as u64).map(move |s| (i, p, seed.wrapping_add(s)))
            })
        })
        .collect();
    let mut runs = parallel_map(&jobs, settings.workers, |&(i, preset, run_seed)| {
        let run = train_run(model, settings, &evals[i], preset, run_seed);
        done(&run);
        run
    })
    .into_iter();
    let per_dataset = PRESETS.len() * settings.seeds;
    let datasets = evals
        .iter()
        .map(|eval| {
            let runs: Vec<RunCurve> = runs.by_ref().take(per_dataset).collect();
            let summaries = LossSummary::per_preset(&runs);
            DatasetCurves {
                dataset: eval.dataset.name(),
                floor: eval.floor,
                sw1_floor: eval.sw1_floor,
                runs,
                summaries,
            }
        })
        .collect();
    CurvesResult {
        settings: *settings,
        width: model.width,
        depth: model.depth,
        batch: model.batch,
        seed,
        datasets,
    }
}

/// The mean over runs of a per-step series (runs of equal length), with the min and max:
/// `(x, mean, lo, hi)` per point.
pub fn spread(series: &[Vec<(f64, f64)>]) -> Vec<(f64, f64, f64, f64)> {
    let Some(first) = series.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|k| {
            let ys: Vec<f64> = series
                .iter()
                .filter_map(|s| s.get(k).map(|p| p.1))
                .collect();
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (first[k].0, mean, lo, hi)
        })
        .collect()
}

impl RunCurve {
    /// (step, f) at every logged point.
    pub fn logged(&self, f: impl Fn(&LogPoint) -> f64) -> Vec<(f64, f64)> {
        self.log.iter().map(|p| (p.step as f64, f(p))).collect()
    }

    /// (step, f) at every checkpoint of the EMA parameters.
    pub fn at_checkpoints(&self, f: impl Fn(&CheckpointPoint) -> f64) -> Vec<(f64, f64)> {
        self.checkpoints
            .iter()
            .map(|c| (c.step as f64, f(c)))
            .collect()
    }
}

impl DatasetCurves {
    /// [`spread`] over the seeds of one loss of the per-run series `f`: (x, mean, min, max).
    pub fn band(
        &self,
        preset: LossPreset,
        f: impl Fn(&RunCurve) -> Vec<(f64, f64)>,
    ) -> Vec<(f64, f64, f64, f64)> {
        let per_seed: Vec<Vec<(f64, f64)>> = self.runs_of(preset).into_iter().map(f).collect();
        spread(&per_seed)
    }

    /// MF's against iMF's (mean, sd over seeds) of one number of their [`LossSummary`].
    pub fn compare(&self, f: impl Fn(&LossSummary) -> (f64, f64)) -> Comparison {
        Comparison::of(
            f(self.summary(LossPreset::Mf)),
            f(self.summary(LossPreset::Imf)),
        )
    }

    /// Each loss's v-form error with its own tangent over the floor E tr Var[v_c | z_t]: (MF's
    /// with v_c, iMF's with u(z, t, t)), means over seeds. 1 is the least a function of z_t can
    /// reach; MF's may go below, since its V contains v_c through the tangent.
    pub fn own_tangent_over_floor(&self) -> (f64, f64) {
        (
            self.summary(LossPreset::Mf).v_mf.0 / self.floor,
            self.summary(LossPreset::Imf).v_imf.0 / self.floor,
        )
    }

    /// What the noisy tangent adds to the MF-trained model's error: mean v_mf - mean v_imf over
    /// its seeds, the same parameters measured with the tangent v_c and with u(z, t, t). Positive
    /// where the JVP term (t - r) J v_c magnifies the noise of v_c, negative where it damps it.
    pub fn noisy_tangent_excess(&self) -> f64 {
        let mf = self.summary(LossPreset::Mf);
        mf.v_mf.0 - mf.v_imf.0
    }

    /// The numbers on which the claim (a noisier tangent makes a worse model) predicts MF above
    /// iMF, each with its [`Comparison`]: the training mse, the flow-matching error, the v-form
    /// error with the iMF tangent, the 1-step SW1, and the identity residual when it was measured.
    pub fn claim_checks(&self) -> Vec<(&'static str, Comparison)> {
        let mut checks = vec![
            ("training mse", self.compare(|s| s.final_mse)),
            ("fm", self.compare(|s| s.fm)),
            ("v-form with the iMF tangent", self.compare(|s| s.v_imf)),
            ("1-step SW1", self.compare(|s| s.sw1)),
        ];
        if !self.summary(LossPreset::Mf).identity_residual.0.is_nan() {
            checks.push(("identity residual", self.compare(|s| s.identity_residual)));
        }
        checks
    }
}

/// How two (mean, sd over seeds) pairs a and b compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// mean_a - mean_b > sd_a + sd_b.
    Above,
    /// mean_b - mean_a > sd_a + sd_b.
    Below,
    /// |mean_a - mean_b| <= sd_a + sd_b.
    WithinSpread,
    /// A mean is not finite.
    NotComparable,
}

impl Comparison {
    /// A difference counts only beyond the two spreads added: with a few seeds, a gap smaller than
    /// that is what reseeding alone produces.
    pub fn of(a: (f64, f64), b: (f64, f64)) -> Self {
        let gap = a.0 - b.0;
        if !gap.is_finite() {
            Comparison::NotComparable
        } else if gap > a.1 + b.1 {
            Comparison::Above
        } else if -gap > a.1 + b.1 {
            Comparison::Below
        } else {
            Comparison::WithinSpread
        }
    }

    /// "above", "below", "within spread", "not comparable".
    pub fn name(self) -> &'static str {
        match self {
            Comparison::Above => "above",
            Comparison::Below => "below",
            Comparison::WithinSpread => "within spread",
            Comparison::NotComparable => "not comparable",
        }
    }
}

/// Where a curve goes, from the slope s of ln(mse) per 1000 steps (mean, sd over seeds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    pub direction: Direction,
    /// The change per 1000 steps, 100 (e^s - 1) %, of the mean slope.
    pub percent_per_1k: f64,
}

/// The sign of a slope, when it stands out of its seed spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// mean > sd.
    Rises,
    /// -mean > sd.
    Falls,
    /// |mean| <= sd: within one sd of 0.
    Flat,
}

impl Trend {
    /// The trend of a slope (mean, sd) of ln(mse) per 1000 steps.
    pub fn of(slope: (f64, f64)) -> Self {
        let direction = if slope.0 > slope.1 {
            Direction::Rises
        } else if -slope.0 > slope.1 {
            Direction::Falls
        } else {
            Direction::Flat
        };
        Trend {
            direction,
            percent_per_1k: 100.0 * (slope.0.exp() - 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_needs_the_gap_beyond_both_spreads() {
        assert_eq!(Comparison::of((3.0, 0.5), (1.0, 0.5)), Comparison::Above);
        assert_eq!(Comparison::of((1.0, 0.5), (3.0, 0.5)), Comparison::Below);
        assert_eq!(
            Comparison::of((2.0, 0.5), (1.0, 0.5)),
            Comparison::WithinSpread
        );
        assert_eq!(
            Comparison::of((f64::NAN, 0.0), (1.0, 0.0)),
            Comparison::NotComparable
        );
        assert_eq!(Comparison::WithinSpread.name(), "within spread");
    }

    /// One run with two logged points and one checkpoint; its errors are scaled by `scale`.
    fn run(preset: LossPreset, seed: u64, scale: f64, identity: bool) -> RunCurve {
        let errors = BatchErrors {
            fm: scale,
            v_mf: 3.0 * scale,
            v_imf: 2.0 * scale,
        };
        RunCurve {
            dataset: "toy".into(),
            loss: preset.name(),
            seed,
            log: vec![
                LogPoint {
                    step: 10,
                    mse: 4.0 * scale,
                    loss: 1.0,
                },
                LogPoint {
                    step: 20,
                    mse: 2.0 * scale,
                    loss: 1.0,
                },
            ],
            checkpoints: vec![CheckpointPoint {
                step: 20,
                sw1: 0.1 * scale,
                errors,
            }],
            final_mse: 2.0 * scale,
            final_loss: 1.0,
            slope_per_1k: -1.0,
            slope_log_log: -1.0,
            identity: identity.then_some(RunIdentity {
                residual_median: 0.01 * scale,
                residual_0_1: 0.02 * scale,
                mean_distance: 0.1 * scale,
            }),
            seconds: 0.0,
        }
    }

    /// MF's runs at scales 3 and 5, iMF's at 1 and 1.5.
    fn dataset(identity: bool) -> DatasetCurves {
        let runs = vec![
            run(LossPreset::Mf, 0, 3.0, identity),
            run(LossPreset::Mf, 1, 5.0, identity),
            run(LossPreset::Imf, 0, 1.0, identity),
            run(LossPreset::Imf, 1, 1.5, identity),
        ];
        let summaries = LossSummary::per_preset(&runs);
        DatasetCurves {
            dataset: "toy".into(),
            floor: 2.0,
            sw1_floor: 0.05,
            runs,
            summaries,
        }
    }

    #[test]
    fn dataset_curves_compare_the_losses_over_seeds() {
        let data = dataset(true);
        let mf = &data.runs[0];
        assert_eq!(mf.logged(|p| p.mse), vec![(10.0, 12.0), (20.0, 6.0)]);
        assert_eq!(mf.at_checkpoints(|c| c.errors.fm), vec![(20.0, 3.0)]);
        assert_eq!(
            data.band(LossPreset::Mf, |r| r.logged(|p| p.mse)),
            vec![(10.0, 16.0, 12.0, 20.0), (20.0, 8.0, 6.0, 10.0)]
        );
        // MF's final mse 8 +- 2.83 against iMF's 2.5 +- 0.71: above.
        assert_eq!(data.compare(|s| s.final_mse), Comparison::Above);
        let checks = data.claim_checks();
        let names: Vec<&str> = checks.iter().map(|c| c.0).collect();
        assert_eq!(
            names,
            vec![
                "training mse",
                "fm",
                "v-form with the iMF tangent",
                "1-step SW1",
                "identity residual"
            ]
        );
        // v_mf: MF 3 x 4 = 12 over the floor 2; v_imf: iMF 2 x 1.25 = 2.5 over 2.
        assert_eq!(data.own_tangent_over_floor(), (6.0, 1.25));
        // MF's model: v_mf 12 - v_imf 8.
        assert_eq!(data.noisy_tangent_excess(), 4.0);
        // Without the identity check there is no identity verdict.
        assert_eq!(dataset(false).claim_checks().len(), 4);
    }

    #[test]
    fn trend_reads_the_slope_against_its_spread() {
        let rising = Trend::of((0.1, 0.05));
        assert_eq!(rising.direction, Direction::Rises);
        assert!((rising.percent_per_1k - 100.0 * (0.1f64.exp() - 1.0)).abs() < 1e-12);
        assert_eq!(Trend::of((-0.1, 0.05)).direction, Direction::Falls);
        assert_eq!(Trend::of((0.01, 0.05)).direction, Direction::Flat);
    }
}
