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
//! **Angle.** On the same minibatch, g_sg (dudt stop-gradient, the losses as trained) and g_exact
//! (`exact = true`: the gradient also flows through dudt, reverse over forward):
//! cos = <g_sg, g_exact> / (|g_sg| |g_exact|), averaged over minibatches, and |g_exact| / |g_sg|.

use crate::autodiff::tape::Tape;
use crate::flow::loss::{loss_and_gradients, Batch, LossConfig};
use crate::flow::model::{MlpParams, ModelConfig};
use crate::flow::time_sampler::TimeSampler;
use crate::rng::Rng;
use crate::train::{BatchSampler, TrainConfig, Trainer};
use ndarray::Array2;

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
        time,
        rng: Rng::seed_from_u64(seed),
    };
    let d = model.dim;
    let mut rows = Batch {
        x: Array2::zeros((batch, d)),
        e: Array2::zeros((batch, d)),
        t: Array2::zeros((batch, 1)),
        r: Array2::zeros((batch, 1)),
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
