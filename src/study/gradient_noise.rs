//! Instrument 2: the noise of minibatch gradients at fixed parameters, and the angle between the
//! stop-gradient gradient and the exact one.
//!
//! **Noise.** With g_m the gradient of the loss on minibatch m (rows drawn as in training: data
//! uniformly with replacement from the pool, e ~ N(0, I), (r, t) from the time sampler), the
//! estimate over M independent minibatches of batch size B is
//!
//! ```text
//! tr Cov[g] = 1/(M - 1) sum_m |g_m - mean_m g_m|^2          (summed over every parameter)
//! ```
//!
//! and its standard error sd_m(|g_m - mean g|^2) / sqrt(M). For i.i.d. rows tr Cov\[g\] = tr Cov\[g_1\] / B,
//! so B tr Cov\[g\] (the per-sample noise) should not depend on B; the time sampler's exact count of
//! r = t rows per batch (stratification) makes it slightly smaller than that.
//!
//! **The instrument** ([`run_gradient_noise`]) measures both at the shared models' initial,
//! MF-trained and iMF-trained parameters, for MF with its own time sampler and for a beta grid
//! with iMF's, with the same rows for every loss.
//!
//! **Angle.** On the same minibatch, g_sg (dudt stop-gradient, the losses as trained) and g_exact
//! (`exact = true`: the gradient also flows through dudt, reverse over forward):
//! cos = <g_sg, g_exact> / (|g_sg| |g_exact|), averaged over minibatches, and |g_exact| / |g_sg|.

use super::dataset::StudyDataset;
use super::fixture::{ModelCache, TrainedModel};
use super::{parallel_map, stream_index};
use crate::autodiff::tape::Tape;
use crate::flow::loss::{loss_and_gradients, Batch, LossConfig, LossPreset};
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::time_sampler::TimeSampler;
use crate::rng::Rng;
use crate::train::{BatchSampler, TrainConfig, Trainer};
use ndarray::Array2;
use rand::RngCore;
use serde::Serialize;

/// tr Cov of the minibatch gradient at one batch size.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct NoiseEstimate {
    pub batch: usize,
    pub minibatches: usize,
    /// tr Cov\[g\] over all parameters.
    pub trace_cov: f64,
    /// Standard error of `trace_cov`.
    pub trace_cov_se: f64,
    /// B tr Cov\[g\]: the per-sample noise.
    pub per_sample: f64,
    /// |mean_m g_m|^2: the squared norm of the mean gradient (the signal).
    pub mean_norm2: f64,
    /// Mean weighted loss over the minibatches.
    pub loss: f64,
}

/// Every parameter's gradient as one vector (canonical order).
fn flatten(g: &MlpParams<f64>) -> Vec<f64> {
    g.tensors().flat_map(|t| t.iter().copied()).collect()
}

/// tr Cov, its standard error, and |mean|^2 of a set of vectors.
fn trace_covariance(vectors: &[Vec<f64>]) -> (f64, f64, f64) {
    let m = vectors.len();
    let p = vectors[0].len();
    let mut mean = vec![0.0; p];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(a, b)| *a += b / m as f64);
    }
    let sq: Vec<f64> = vectors
        .iter()
        .map(|v| v.iter().zip(&mean).map(|(a, b)| (a - b).powi(2)).sum())
        .collect();
    let trace = sq.iter().sum::<f64>() / (m - 1) as f64;
    let mean_sq = sq.iter().sum::<f64>() / m as f64;
    let sd = (sq.iter().map(|s| (s - mean_sq).powi(2)).sum::<f64>() / (m - 1) as f64).sqrt();
    let mean_norm2 = mean.iter().map(|a| a * a).sum();
    (
        trace,
        sd / (m as f64).sqrt() * m as f64 / (m - 1) as f64,
        mean_norm2,
    )
}

/// tr Cov of the gradient of `config`'s loss over `minibatches` minibatches of `batch` rows of
/// `data`, at fixed `params` (the training step's own engine, f64, one thread; nothing is
/// updated). `config.batch` and `config.threads` are replaced.
///
/// With g_m the flattened gradient of minibatch m and gbar their mean over the M minibatches:
/// tr Cov = 1/(M - 1) sum_m |g_m - gbar|^2, SE = sd_m(|g_m - gbar|^2) / sqrt(M) * M / (M - 1),
/// per-sample noise = B tr Cov, signal = |gbar|^2. Minibatch m draws its rows from
/// `Rng::seed_from_u64(seed)` in order, so equal seeds give equal rows whatever the loss.
pub fn minibatch_noise(
    config: &TrainConfig,
    data: &Array2<f64>,
    params: &MlpParams<f64>,
    batch: usize,
    minibatches: usize,
    seed: u64,
) -> NoiseEstimate {
    assert!(
        minibatches >= 2,
        "minibatch_noise: need at least 2 minibatches"
    );
    let config = TrainConfig {
        batch,
        threads: 1,
        ema_decay: None,
        ..*config
    };
    let mut trainer = Trainer::<f64>::from_parts(
        config,
        data.clone(),
        params.clone(),
        None,
        Rng::seed_from_u64(seed),
    );
    let mut grads = Vec::with_capacity(minibatches);
    let mut loss = 0.0;
    for _ in 0..minibatches {
        let (values, g) = trainer.evaluate_batch();
        loss += values.loss / minibatches as f64;
        grads.push(flatten(g));
    }
    let (trace_cov, trace_cov_se, mean_norm2) = trace_covariance(&grads);
    NoiseEstimate {
        batch,
        minibatches,
        trace_cov,
        trace_cov_se,
        per_sample: batch as f64 * trace_cov,
        mean_norm2,
        loss,
    }
}

/// The angle between the stop-gradient and the exact gradient, over several minibatches.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct AngleEstimate {
    pub batch: usize,
    pub minibatches: usize,
    /// Mean over minibatches of cos(g_sg, g_exact).
    pub cos_mean: f64,
    pub cos_se: f64,
    pub cos_min: f64,
    /// Mean over minibatches of |g_exact| / |g_sg|.
    pub norm_ratio: f64,
    /// cos between the minibatch means of g_sg and g_exact (the angle of the expected gradients,
    /// up to the noise that is left after averaging `minibatches` batches).
    pub cos_of_means: f64,
    /// |mean g_sg|^2 / (tr Cov\[g_sg\] / M): how far the mean stochastic-gradient direction stands
    /// above its own noise (about 1 or less: `cos_of_means` is noise).
    pub snr_sg: f64,
    /// The same for g_exact.
    pub snr_exact: f64,
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// cos(g_sg, g_exact) on `minibatches` minibatches of `batch` rows (the tape, f64): `loss` with
/// `exact` false and true on the same rows.
///
/// cos = <g_sg, g_exact> / (|g_sg| |g_exact|) per minibatch (mean, SE, min over minibatches), the
/// norm ratio |g_exact| / |g_sg|, the cosine between sum_m g_sg,m and sum_m g_exact,m, and for each
/// gradient the signal-to-noise ratio of its mean, |gbar|^2 / (tr Cov\[g\] / M).
/// g_exact differs from g_sg only through d(dudt)/d theta, which enters multiplied by t - r: rows
/// with r = t contribute equally to both.
#[allow(clippy::too_many_arguments)]
pub fn exact_angle(
    model: &ModelConfig,
    loss: &LossConfig,
    time: TimeSampler,
    data: &Array2<f64>,
    params: &MlpParams<f64>,
    batch: usize,
    minibatches: usize,
    seed: u64,
) -> AngleEstimate {
    let mut sampler = BatchSampler {
        data: data.clone(),
        labels: Vec::new(),
        time,
        conditions: crate::train::ConditionSampler::NONE,
        rng: Rng::seed_from_u64(seed),
    };
    let d = model.dim;
    let mut rows = Batch {
        x: Array2::zeros((batch, d)),
        e: Array2::zeros((batch, d)),
        t: Array2::zeros((batch, 1)),
        r: Array2::zeros((batch, 1)),
        labels: Vec::new(),
        scales: ndarray::Array2::zeros((0, 1)),
        intervals: ndarray::Array2::zeros((0, 2)),
    };
    let mut tape = Tape::new();
    let (sg_loss, exact_loss) = (
        LossConfig {
            exact: false,
            ..*loss
        },
        LossConfig {
            exact: true,
            ..*loss
        },
    );
    let (mut cosines, mut ratios) = (Vec::new(), Vec::new());
    let p = model.parameter_count();
    let (mut all_sg, mut all_exact) = (Vec::new(), Vec::new());
    for _ in 0..minibatches {
        sampler.fill(&mut rows);
        let (_, g_sg) = loss_and_gradients(&mut tape, model, params, &sg_loss, &rows);
        let (_, g_ex) = loss_and_gradients(&mut tape, model, params, &exact_loss, &rows);
        let (a, b) = (flatten(&g_sg), flatten(&g_ex));
        cosines.push(cosine(&a, &b));
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        ratios.push(norm(&b) / norm(&a));
        all_sg.push(a);
        all_exact.push(b);
    }
    let sum = |all: &[Vec<f64>]| {
        let mut total = vec![0.0; p];
        for v in all {
            total.iter_mut().zip(v).for_each(|(s, x)| *s += x);
        }
        total
    };
    let snr = |all: &[Vec<f64>]| {
        let (trace, _, mean_norm2) = trace_covariance(all);
        mean_norm2 / (trace / all.len() as f64)
    };
    let stats = super::conditional_variance::mean_se(cosines.iter().copied());
    AngleEstimate {
        batch,
        minibatches,
        cos_mean: stats.mean,
        cos_se: stats.se,
        cos_min: cosines.iter().copied().fold(f64::INFINITY, f64::min),
        norm_ratio: ratios.iter().sum::<f64>() / ratios.len() as f64,
        cos_of_means: cosine(&sum(&all_sg), &sum(&all_exact)),
        snr_sg: snr(&all_sg),
        snr_exact: snr(&all_exact),
    }
}

// ----- the instrument: settings, the losses compared, the runs on the shared models -----

/// How much instrument 2 computes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseSettings {
    /// The batch sizes B of the noise estimate.
    pub batches: Vec<usize>,
    /// Minibatches M per batch size.
    pub minibatches: usize,
    /// The tangent blends of the beta grid (iMF's time sampler).
    pub betas: Vec<f64>,
    /// The batch sizes and minibatches of the stop-gradient vs exact angle.
    pub angle_batches: Vec<usize>,
    pub angle_minibatches: usize,
}

impl NoiseSettings {
    /// The study's default: B = 16, 64, 256 with 64 minibatches each, betas 0, 1/2, 1.
    pub fn standard() -> Self {
        NoiseSettings {
            batches: vec![16, 64, 256],
            minibatches: 64,
            betas: vec![0.0, 0.5, 1.0],
            angle_batches: vec![16, 64, 256],
            angle_minibatches: 16,
        }
    }

    /// Seconds: B = 8, 32 with 8 minibatches, betas 0 and 1.
    pub fn quick() -> Self {
        NoiseSettings {
            batches: vec![8, 32],
            minibatches: 8,
            betas: vec![0.0, 1.0],
            angle_batches: vec![16],
            angle_minibatches: 3,
        }
    }

    /// The largest batch size of the noise estimate (the report's).
    pub fn largest_batch(&self) -> usize {
        *self.batches.last().expect("a batch size")
    }

    /// The largest batch size of the angle estimate (the report's).
    pub fn largest_angle_batch(&self) -> usize {
        *self.angle_batches.last().expect("an angle batch size")
    }
}

/// One loss of the noise table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossRow {
    /// "mf" (beta 0, MF's time sampler), "imf" (beta 1, iMF's sampler), or "beta=b" (iMF's sampler).
    pub label: String,
    pub beta: f64,
    /// Fraction of rows with r = t.
    pub fraction_equal: f64,
    #[serde(skip)]
    pub time: TimeSampler,
}

/// The losses of the noise table: MF as its preset trains it (its own time sampler, 75% of rows
/// r = t), then each beta of the grid with iMF's sampler (50%), where beta = 1 is iMF.
pub fn loss_rows(betas: &[f64]) -> Vec<LossRow> {
    let mf = TimeSampler::mf_default();
    let imf = TimeSampler::imf_default();
    let mut rows = vec![LossRow {
        label: "mf".into(),
        beta: 0.0,
        fraction_equal: mf.fraction_equal,
        time: mf,
    }];
    for &b in betas {
        let label = if b == 1.0 {
            "imf".to_string()
        } else {
            format!("beta={b}")
        };
        rows.push(LossRow {
            label,
            beta: b,
            fraction_equal: imf.fraction_equal,
            time: imf,
        });
    }
    rows
}

/// The noise of one loss at one batch size and parameter set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseRow {
    pub dataset: String,
    /// "initial", "mf" or "imf": the parameters measured.
    pub params: &'static str,
    pub loss: LossRow,
    pub estimate: NoiseEstimate,
}

/// The stop-gradient vs exact angle of one loss at one batch size and parameter set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AngleRow {
    pub dataset: String,
    pub params: &'static str,
    /// "mf" or "imf" (the presets, each with its own time sampler).
    pub loss: &'static str,
    pub estimate: AngleEstimate,
}

/// The parameter sets instrument 2 measures at.
pub const PARAMS: [&str; 3] = ["initial", "mf", "imf"];

/// What one dataset's measurements share.
#[derive(Clone, Copy)]
struct Job<'a> {
    name: &'a str,
    model: &'a TrainedModel,
    losses: &'a [LossRow],
    settings: &'a NoiseSettings,
    seeds: &'a [u64],
    angle_seeds: &'a [u64],
}

impl Job<'_> {
    /// The noise of every loss and batch size, and the angles, at one parameter set.
    fn measure(
        &self,
        label: &'static str,
        params: &MlpParams<f64>,
    ) -> (Vec<NoiseRow>, Vec<AngleRow>) {
        let (mut noise, mut angles) = (Vec::new(), Vec::new());
        let settings = self.settings;
        for loss in self.losses {
            let mut config = self.model.config;
            config.loss = LossConfig {
                beta: loss.beta,
                ..LossConfig::preset(LossPreset::Mf)
            };
            config.time = loss.time;
            for (&b, &seed) in settings.batches.iter().zip(self.seeds) {
                noise.push(NoiseRow {
                    dataset: self.name.to_string(),
                    params: label,
                    loss: loss.clone(),
                    estimate: minibatch_noise(
                        &config,
                        &self.model.data,
                        params,
                        b,
                        settings.minibatches,
                        seed,
                    ),
                });
            }
        }
        for (loss_label, preset, time) in [
            ("mf", LossPreset::Mf, TimeSampler::mf_default()),
            ("imf", LossPreset::Imf, TimeSampler::imf_default()),
        ] {
            for (&b, &seed) in settings.angle_batches.iter().zip(self.angle_seeds) {
                angles.push(AngleRow {
                    dataset: self.name.to_string(),
                    params: label,
                    loss: loss_label,
                    estimate: exact_angle(
                        &self.model.config.model,
                        &LossConfig::preset(preset),
                        time,
                        &self.model.data,
                        params,
                        b,
                        settings.angle_minibatches,
                        seed,
                    ),
                });
            }
        }
        (noise, angles)
    }
}

/// Instrument 2's result: every noise and angle row, by dataset, then parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientNoiseResult {
    pub noise: Vec<NoiseRow>,
    pub angles: Vec<AngleRow>,
}

/// Instrument 2 on every dataset at the [`PARAMS`] of the shared models (trained now if `models`
/// does not hold them yet), `threads` parameter sets at a time.
///
/// One seed per batch size, shared by every loss and parameter set: common random numbers (the
/// same rows, noise and times), so that the differences between losses are not sampling noise.
pub fn run_gradient_noise(
    datasets: &[StudyDataset],
    models: &mut ModelCache,
    settings: &NoiseSettings,
    seed: u64,
    threads: usize,
) -> GradientNoiseResult {
    let losses = loss_rows(&settings.betas);
    let (mut noise, mut angles) = (Vec::new(), Vec::new());
    for ds in datasets {
        let name = ds.name();
        let mf = models.get(ds, LossPreset::Mf).clone();
        let imf = models.get(ds, LossPreset::Imf).clone();
        let sets: [(&'static str, &MlpParams<f64>); 3] = [
            (PARAMS[0], &mf.initial),
            (PARAMS[1], &mf.trained),
            (PARAMS[2], &imf.trained),
        ];
        let mut rng = Rng::stream(seed, stream_index(2, &name));
        let seeds: Vec<u64> = settings.batches.iter().map(|_| rng.next_u64()).collect();
        let angle_seeds: Vec<u64> = settings
            .angle_batches
            .iter()
            .map(|_| rng.next_u64())
            .collect();
        let job = Job {
            name: &name,
            model: &mf,
            losses: &losses,
            settings,
            seeds: &seeds,
            angle_seeds: &angle_seeds,
        };
        let done = parallel_map(&sets, threads, |&(label, params)| {
            job.measure(label, params)
        });
        for (n, a) in done {
            noise.extend(n);
            angles.extend(a);
        }
    }
    GradientNoiseResult { noise, angles }
}

impl GradientNoiseResult {
    /// The noise estimate of (dataset, parameter set, loss label, batch size), if measured.
    pub fn noise_at(
        &self,
        dataset: &str,
        params: &str,
        loss: &str,
        batch: usize,
    ) -> Option<NoiseEstimate> {
        self.noise
            .iter()
            .find(|r| {
                r.dataset == dataset
                    && r.params == params
                    && r.loss.label == loss
                    && r.estimate.batch == batch
            })
            .map(|r| r.estimate)
    }

    /// Per-sample noise MF / iMF, B tr Cov\[g_MF\] / B tr Cov\[g_iMF\] (each loss with its own time
    /// sampler) at batch size `batch`, for every
    /// (dataset, parameter set) with both, as ("dataset/params", ratio).
    pub fn mf_imf_ratios(&self, datasets: &[StudyDataset], batch: usize) -> Vec<(String, f64)> {
        let mut ratios = Vec::new();
        for ds in datasets {
            let name = ds.name();
            for p in PARAMS {
                if let (Some(a), Some(b)) = (
                    self.noise_at(&name, p, "mf", batch),
                    self.noise_at(&name, p, "imf", batch),
                ) {
                    ratios.push((format!("{name}/{p}"), a.per_sample / b.per_sample));
                }
            }
        }
        ratios
    }

    /// B tr Cov at `batch` against beta, for one dataset and parameter set: the beta grid (iMF's
    /// time sampler) with `mf_preset` false, MF's own row with it true.
    pub fn per_sample_by_beta(
        &self,
        dataset: &str,
        params: &str,
        batch: usize,
        mf_preset: bool,
    ) -> Vec<(f64, f64)> {
        self.noise
            .iter()
            .filter(|r| r.dataset == dataset && r.params == params && r.estimate.batch == batch)
            .filter(|r| (r.loss.label == "mf") == mf_preset)
            .map(|r| (r.loss.beta, r.estimate.per_sample))
            .collect()
    }

    /// (log2 B, B tr Cov) over the batch sizes, for one dataset, parameter set and loss label.
    pub fn per_sample_by_batch(&self, dataset: &str, params: &str, loss: &str) -> Vec<(f64, f64)> {
        self.noise
            .iter()
            .filter(|r| r.dataset == dataset && r.params == params && r.loss.label == loss)
            .map(|r| ((r.estimate.batch as f64).log2(), r.estimate.per_sample))
            .collect()
    }

    /// The angle estimates of one dataset, parameter set and loss, by batch size.
    pub fn angles_of(&self, dataset: &str, params: &str, loss: &str) -> Vec<&AngleEstimate> {
        self.angles
            .iter()
            .filter(|r| r.dataset == dataset && r.params == params && r.loss == loss)
            .map(|r| &r.estimate)
            .collect()
    }

    /// The angle rows at trained parameters (not "initial") with batch size `batch`.
    fn trained_angles(&self, batch: usize) -> impl Iterator<Item = &AngleRow> {
        self.angles
            .iter()
            .filter(move |r| r.estimate.batch == batch && r.params != "initial")
    }

    /// (min, max) over the trained parameter sets of the mean per-minibatch cos(g_sg, g_exact).
    pub fn trained_cos_range(&self, batch: usize) -> (f64, f64) {
        let cos = || self.trained_angles(batch).map(|r| r.estimate.cos_mean);
        (
            cos().fold(f64::INFINITY, f64::min),
            cos().fold(f64::NEG_INFINITY, f64::max),
        )
    }

    /// The trained angle rows whose mean gradients both stand above their noise (SNR > `snr`):
    /// only there does the cos of the summed gradients measure the angle of the expected ones.
    pub fn resolved_angles(&self, batch: usize, snr: f64) -> Vec<&AngleRow> {
        self.trained_angles(batch)
            .filter(|r| r.estimate.snr_sg > snr && r.estimate.snr_exact > snr)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(params: &'static str, loss: &LossRow, batch: usize, per_sample: f64) -> NoiseRow {
        NoiseRow {
            dataset: "toy".into(),
            params,
            loss: loss.clone(),
            estimate: NoiseEstimate {
                batch,
                minibatches: 4,
                trace_cov: per_sample / batch as f64,
                trace_cov_se: 0.0,
                per_sample,
                mean_norm2: 1.0,
                loss: 1.0,
            },
        }
    }

    fn angle(params: &'static str, loss: &'static str, cos: f64, snr: f64) -> AngleRow {
        AngleRow {
            dataset: "toy".into(),
            params,
            loss,
            estimate: AngleEstimate {
                batch: 16,
                minibatches: 3,
                cos_mean: cos,
                cos_se: 0.01,
                cos_min: cos,
                norm_ratio: 1.0,
                cos_of_means: cos,
                snr_sg: snr,
                snr_exact: snr,
            },
        }
    }

    #[test]
    fn loss_rows_are_mf_then_the_beta_grid() {
        let rows = loss_rows(&[0.0, 0.5, 1.0]);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, vec!["mf", "beta=0", "beta=0.5", "imf"]);
        assert_eq!(rows[0].time, TimeSampler::mf_default());
        assert!(rows[1..]
            .iter()
            .all(|r| r.time == TimeSampler::imf_default()));
        assert_eq!(NoiseSettings::quick().largest_batch(), 32);
        assert_eq!(NoiseSettings::standard().largest_angle_batch(), 256);
    }

    #[test]
    fn results_are_read_by_dataset_params_loss_and_batch() {
        let rows = loss_rows(&[0.0, 1.0]);
        let (mf, beta0, imf) = (&rows[0], &rows[1], &rows[2]);
        let result = GradientNoiseResult {
            noise: vec![
                noise("initial", mf, 8, 1.0),
                noise("initial", mf, 32, 2.0),
                noise("initial", beta0, 32, 3.0),
                noise("initial", imf, 32, 4.0),
                noise("mf", mf, 32, 6.0),
                noise("mf", imf, 32, 3.0),
            ],
            angles: vec![
                angle("initial", "mf", 0.99, 10.0),
                angle("mf", "mf", 0.3, 1.0),
                angle("imf", "imf", 0.8, 5.0),
            ],
        };
        assert_eq!(
            result
                .noise_at("toy", "initial", "mf", 8)
                .map(|e| e.per_sample),
            Some(1.0)
        );
        assert!(result.noise_at("toy", "imf", "mf", 8).is_none());
        let toy = StudyDataset::Toy(crate::data::ToyDataset::Gaussian { sigma: 1.0, dim: 1 });
        // The rows say "toy"; only the name matters.
        assert!(result.mf_imf_ratios(&[toy], 32).is_empty());
        let named = GradientNoiseResult {
            noise: result
                .noise
                .iter()
                .cloned()
                .map(|mut r| {
                    r.dataset = toy.name();
                    r
                })
                .collect(),
            angles: Vec::new(),
        };
        assert_eq!(
            named.mf_imf_ratios(&[toy], 32),
            vec![
                (format!("{}/initial", toy.name()), 0.5),
                (format!("{}/mf", toy.name()), 2.0)
            ]
        );
        assert_eq!(
            result.per_sample_by_beta("toy", "initial", 32, false),
            vec![(0.0, 3.0), (1.0, 4.0)]
        );
        assert_eq!(
            result.per_sample_by_beta("toy", "initial", 32, true),
            vec![(0.0, 2.0)]
        );
        assert_eq!(
            result.per_sample_by_batch("toy", "initial", "mf"),
            vec![(3.0, 1.0), (5.0, 2.0)]
        );
        assert_eq!(result.angles_of("toy", "mf", "mf").len(), 1);
        // Initial parameters are left out of the trained range and of the resolved cases.
        assert_eq!(result.trained_cos_range(16), (0.3, 0.8));
        let resolved = result.resolved_angles(16, 4.0);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].params, "imf");
    }
}
