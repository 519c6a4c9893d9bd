//! The training-step benchmark behind `meanflow bench`, defined to match the peers in
//! benches/peers/ step for step:
//!
//! - u = MLP(concat(z, t, h)) with silu (configs c1-c4), or the `resmlp` trunk (r1, r2: an input
//!   layer, then `depth` residual blocks a + act([LN(a) | t, h] W1^T + b1) W2^T + b2, then LN
//!   before the head; src/flow/model/mod.rs), PyTorch-default init, f32, `raw` conditioning;
//! - x: eight Gaussians (d = 2: centres on the circle of radius 2, std 0.1) or 0.5 N(0, I) (d > 2);
//!   e ~ N(0, I); t, r uniform and ordered, r = t on 75% of the rows;
//! - mf (beta = 0) or imf (beta = 1, boundary v_hat) loss with p = 0 (plain mean squared error);
//! - Adam, lr 1e-3. One step = draw the batch, loss, JVP, gradients, Adam update.
//!
//! Timing: `warmup` untimed steps, then `repeats` steps timed one by one; median, min and max.
//! Matmul GFLOP/s counts the multiply-adds this engine actually performs (2 m n k per product):
//! see [`step_matmul_flops`].
//!
//! `gemm_backend`: the kernel the products ran on ("gemm" or "matrixmultiply",
//! [`crate::linalg::matmul::gemm_backend`]).
//!
//! The matmul work itself: during the timed steps (not the warm-up) every product is accounted
//! (`matmul::start_matmul_accounting`): its flops and its time inside the GEMM kernel, summed over
//! the threads. Per measurement:
//! - `matmul_ms` = GEMM seconds / repeats x 1e3: CPU ms per step inside GEMM, all threads together
//!   (each product runs on one thread);
//! - `gemm_gflops_per_thread` = GEMM flops / GEMM seconds / 1e9: how fast one thread multiplies
//!   while it multiplies, whatever the rest of the step costs;
//! - `fma_peak_gflops`: one core's measured f32 FMA peak ([`crate::bench::fma_peak`]), when given, and
//!   `fma_peak_unit`: the vector unit it was measured on ("avx512", "avx2" or "scalar", the widest
//!   the CPU has);
//! - `peak_fraction` = gemm_gflops_per_thread / fma_peak_gflops;
//! - `gemm_flops_per_step` = counted flops / repeats, and `flops_match_analytic`: whether that is
//!   exactly [`step_matmul_flops`], the count `matmul_gflops` is based on.

use crate::bench::fma_peak::FmaPeak;
use crate::flow::loss::{LossConfig, LossPreset};
use crate::flow::model::{Architecture, ModelConfig};
use crate::flow::time_sampler::{TimeDistribution, TimeSampler};
use crate::linalg::matmul::{start_matmul_accounting, take_matmul_accounting};
use crate::rng::Rng;
use crate::train::optim::AdamConfig;
use crate::train::{TrainConfig, Trainer};
use ndarray::Array2;
use std::time::Instant;

/// One benchmark configuration: (d, width, depth, batch) and the trunk's wiring; `depth` counts
/// hidden layers (`mlp`) or residual blocks (`resmlp`), as [`ModelConfig::depth`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    pub name: &'static str,
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
    pub batch: usize,
    pub architecture: Architecture,
}

/// The configurations of the performance targets, all `mlp`: what `meanflow bench` runs by
/// default (benches/matmul.rs lists their products, written for the `mlp` trunk).
pub const CONFIGS: [BenchConfig; 4] = [
    BenchConfig {
        name: "c1",
        dim: 2,
        width: 128,
        depth: 3,
        batch: 256,
        architecture: Architecture::Mlp,
    },
    BenchConfig {
        name: "c2",
        dim: 2,
        width: 256,
        depth: 4,
        batch: 1024,
        architecture: Architecture::Mlp,
    },
    BenchConfig {
        name: "c3",
        dim: 2,
        width: 512,
        depth: 4,
        batch: 2048,
        architecture: Architecture::Mlp,
    },
    BenchConfig {
        name: "c4",
        dim: 64,
        width: 512,
        depth: 4,
        batch: 1024,
        architecture: Architecture::Mlp,
    },
];

/// The `resmlp` configurations (`meanflow bench --config r1,r2`): r1 the digits default's trunk
/// and batch, unconditional (d = 64, the 8 x 8 images; width 256, 3 blocks, batch 256), r2 the 2-D toy at c2's width and batch with
/// 3 blocks (7 linear layers, against c2's 4 hidden ones).
pub const RESIDUAL_CONFIGS: [BenchConfig; 2] = [
    BenchConfig {
        name: "r1",
        dim: 64,
        width: 256,
        depth: 3,
        batch: 256,
        architecture: Architecture::Residual,
    },
    BenchConfig {
        name: "r2",
        dim: 2,
        width: 256,
        depth: 3,
        batch: 1024,
        architecture: Architecture::Residual,
    },
];

/// The most warm-up or timed steps of one measurement (`bench --warmup`, `--repeats`): c1 runs
/// about 1000 steps a second, so 100000 is minutes; the timed steps' durations are kept.
pub const MAX_BENCH_STEPS: usize = 100_000;

/// Fraction of rows with r = t in the benchmark step.
pub const BENCH_FRACTION_EQUAL: f64 = 0.75;

impl BenchConfig {
    /// The configuration of that name, from [`CONFIGS`] or [`RESIDUAL_CONFIGS`].
    pub fn by_name(name: &str) -> Option<BenchConfig> {
        CONFIGS
            .iter()
            .chain(&RESIDUAL_CONFIGS)
            .copied()
            .find(|c| c.name == name)
    }

    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            dim: self.dim,
            width: self.width,
            depth: self.depth,
            architecture: self.architecture,
            ..ModelConfig::default()
        }
    }

    pub fn train_config(&self, loss: LossPreset, seed: u64) -> TrainConfig {
        TrainConfig {
            model: self.model(),
            loss: LossConfig {
                p: 0.0,
                ..LossConfig::preset(loss)
            },
            time: TimeSampler {
                distribution: TimeDistribution::Uniform,
                fraction_equal: BENCH_FRACTION_EQUAL,
                r_distribution: None,
            },
            adam: AdamConfig::default(),
            batch: self.batch,
            ema_decay: None,
            seed,
            threads: 1,
        }
    }

    /// The benchmark's data pool: eight Gaussians on the circle of radius 2 with std 0.1 (d = 2),
    /// else 0.5 N(0, I).
    pub fn data(&self, points: usize, rng: &mut Rng) -> Array2<f64> {
        if self.dim == 2 {
            let mut x = Array2::zeros((points, 2));
            for mut row in x.rows_mut() {
                let angle = std::f64::consts::FRAC_PI_4 * rng.below(8) as f64;
                row[0] = 2.0 * angle.cos() + 0.1 * rng.normal();
                row[1] = 2.0 * angle.sin() + 0.1 * rng.normal();
            }
            x
        } else {
            Array2::from_shape_simple_fn((points, self.dim), || 0.5 * rng.normal())
        }
    }
}

/// Multiply-add flops (2 m n k per product) of one step: forward over B + k rows (k rows with
/// r != t carry a tangent, in the same products), the boundary pass over k rows for iMF, backward
/// over B rows (the first layer needs no input gradient; every other layer one over its whole
/// input, for `resmlp`'s fc1 the columns of c too). `exact` (no stop-gradient on dudt): backward
/// over B + k rows, and each layer with an activation (every `mlp` hidden layer, `resmlp`'s fc1;
/// not `resmlp`'s input layer or fc2) recomputes its pre-activation and its tangent for the k
/// tangent rows (two k-row products) for the second-order term. Layer norm multiplies nothing.
pub fn step_matmul_flops(config: &BenchConfig, loss: LossPreset, exact: bool) -> f64 {
    let b = config.batch as f64;
    let k = TimeSampler {
        distribution: TimeDistribution::Uniform,
        fraction_equal: BENCH_FRACTION_EQUAL,
        r_distribution: None,
    }
    .rows_with_gap(config.batch) as f64;
    let model = config.model();
    let layers: Vec<(f64, f64)> = model
        .layer_shapes()
        .iter()
        .map(|(_, (o, i))| (*o as f64, *i as f64))
        .collect();
    let forward_per_row: f64 = layers.iter().map(|(o, i)| 2.0 * o * i).sum();
    let first = layers[0];
    let backward_per_row = 2.0 * forward_per_row - 2.0 * first.0 * first.1;
    let boundary_rows = if loss == LossPreset::Mf { 0.0 } else { k };
    let forward = forward_per_row * (b + k + boundary_rows);
    if exact {
        let activated = |i: &usize| match model.architecture {
            Architecture::Mlp => *i < model.depth,
            Architecture::Residual => *i % 2 == 1 && *i < 2 * model.depth,
        };
        let hidden: f64 = (0..layers.len())
            .filter(activated)
            .map(|i| 2.0 * layers[i].0 * layers[i].1)
            .sum();
        forward + backward_per_row * (b + k) + 2.0 * hidden * k
    } else {
        forward + backward_per_row * b
    }
}

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub config: BenchConfig,
    pub loss: LossPreset,
    /// The exact variant (gradient through dudt) instead of the stop-gradient one.
    pub exact: bool,
    pub threads: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub samples_per_s: f64,
    /// Whole-step rate: [`step_matmul_flops`] / median step time / 1e9.
    pub matmul_gflops: f64,
    /// Time inside GEMM per step (mean over the timed steps), summed over threads: CPU ms.
    pub matmul_ms: f64,
    /// Flops the products of one step performed, counted (mean over the timed steps).
    pub gemm_flops_per_step: f64,
    /// Counted GEMM flops / GEMM seconds / 1e9: the speed of the matmul work on one thread.
    pub gemm_gflops_per_thread: f64,
    /// One core's measured f32 FMA peak and its vector unit, if it was measured.
    pub fma_peak: Option<FmaPeak>,
}

impl Measurement {
    /// gemm_gflops_per_thread / fma_peak_gflops, if the peak was measured.
    pub fn peak_fraction(&self) -> Option<f64> {
        self.fma_peak
            .map(|peak| self.gemm_gflops_per_thread / peak.gflops)
    }

    /// Whether the counted flops per step are exactly [`step_matmul_flops`] (both are integers,
    /// exact in f64).
    pub fn flops_match_analytic(&self) -> bool {
        self.gemm_flops_per_step == step_matmul_flops(&self.config, self.loss, self.exact)
    }

    /// The JSON line `meanflow bench` prints (`null` for the peak, its unit and its fraction when
    /// the peak was not measured); `architecture` is the trunk's ("mlp" or "resmlp").
    pub fn json(&self) -> String {
        let or_null = |x: Option<f64>, digits: usize| {
            x.map_or_else(|| "null".to_string(), |x| format!("{x:.digits$}"))
        };
        format!(
            "{{\"config\":\"{}\",\"architecture\":\"{}\",\"d\":{},\"width\":{},\"depth\":{},\"batch\":{},\"loss\":\"{}\",\"exact\":{},\"threads\":{},\"gemm_backend\":\"{}\",\"median_ms\":{:.4},\"min_ms\":{:.4},\"max_ms\":{:.4},\"samples_per_s\":{:.1},\"matmul_gflops\":{:.1},\"matmul_ms\":{:.4},\"gemm_flops_per_step\":{},\"flops_match_analytic\":{},\"gemm_gflops_per_thread\":{:.1},\"fma_peak_gflops\":{},\"fma_peak_unit\":{},\"peak_fraction\":{}}}",
            self.config.name,
            self.config.architecture.name(),
            self.config.dim,
            self.config.width,
            self.config.depth,
            self.config.batch,
            self.loss.name(),
            self.exact,
            self.threads,
            crate::linalg::matmul::gemm_backend().name(),
            self.median_ms,
            self.min_ms,
            self.max_ms,
            self.samples_per_s,
            self.matmul_gflops,
            self.matmul_ms,
            self.gemm_flops_per_step,
            self.flops_match_analytic(),
            self.gemm_gflops_per_thread,
            or_null(self.fma_peak.map(|p| p.gflops), 1),
            self.fma_peak
                .map_or_else(|| "null".to_string(), |p| format!("\"{}\"", p.unit.name())),
            or_null(self.peak_fraction(), 3)
        )
    }
}

/// Times `repeats` steps after `warmup` steps, in this process (whose matmul thread count is
/// whatever `MATMUL_NUM_THREADS` said at the first product); `threads` data-parallel shards.
/// Accounts the products of the timed steps, which takes over the process-wide matmul accounting
/// (see the module doc); `fma_peak` is one core's peak, if measured. `exact`: the loss without
/// the stop-gradient on dudt (reverse over forward).
///
/// # Panics
/// If `warmup` or `repeats` is above [`MAX_BENCH_STEPS`] (`meanflow bench` refuses such flags).
#[allow(clippy::too_many_arguments)]
pub fn measure(
    config: &BenchConfig,
    loss: LossPreset,
    exact: bool,
    threads: usize,
    warmup: usize,
    repeats: usize,
    fma_peak: Option<FmaPeak>,
) -> Measurement {
    assert!(
        warmup <= MAX_BENCH_STEPS && repeats <= MAX_BENCH_STEPS,
        "measure: {warmup} warm-up and {repeats} timed steps, at most {MAX_BENCH_STEPS} each"
    );
    let mut train = TrainConfig {
        threads,
        ..config.train_config(loss, 0)
    };
    train.loss.exact = exact;
    let mut rng = Rng::seed_from_u64(12345);
    let data = config.data(crate::train::builtin_pool_points(config.dim), &mut rng);
    let mut trainer = Trainer::<f32>::new(train, data);
    for _ in 0..warmup {
        trainer.step().expect("benchmark step is finite");
    }
    let repeats = repeats.max(1);
    start_matmul_accounting();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            trainer.step().expect("benchmark step is finite");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let gemm = take_matmul_accounting();
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    Measurement {
        config: *config,
        loss,
        exact,
        threads,
        median_ms,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        samples_per_s: config.batch as f64 / (median_ms / 1e3),
        matmul_gflops: step_matmul_flops(config, loss, exact) / (median_ms / 1e3) / 1e9,
        matmul_ms: gemm.seconds / repeats as f64 * 1e3,
        gemm_flops_per_step: gemm.flops as f64 / repeats as f64,
        gemm_gflops_per_thread: gemm.gflops(),
        fma_peak,
    }
}

/// The human-readable table of measurements; the last column names the vector unit of the peak
/// ("% of avx512 peak").
pub fn table(measurements: &[Measurement]) -> String {
    let unit = measurements
        .iter()
        .find_map(|m| m.fma_peak)
        .map_or("FMA", |p| p.unit.name());
    let mut s = format!(
        "config (d, width, depth, batch)   loss       threads  median ms    min ms    max ms   samples/s  matmul GFLOP/s  in-GEMM GFLOP/s {:>17}\n",
        format!("% of {unit} peak")
    );
    for m in measurements {
        let c = m.config;
        s.push_str(&format!(
            "{:<4}({:>3}, {:>4}, {}, {:>5})          {:<10} {:>7} {:>10.3} {:>9.3} {:>9.3} {:>11.0} {:>15.1} {:>16.1} {:>17}\n",
            c.name,
            c.dim,
            c.width,
            c.depth,
            c.batch,
            if m.exact {
                format!("{}-exact", m.loss.name())
            } else {
                m.loss.name().to_string()
            },
            m.threads,
            m.median_ms,
            m.min_ms,
            m.max_ms,
            m.samples_per_s,
            m.matmul_gflops,
            m.gemm_gflops_per_thread,
            m.peak_fraction()
                .map_or_else(|| "-".to_string(), |f| format!("{:.0}%", 100.0 * f))
        ));
    }
    s
}

/// Warm-up and timed steps for a configuration: enough to settle, about 1-3 s per measurement.
pub fn default_counts(config: &BenchConfig) -> (usize, usize) {
    match config.name {
        "c1" => (200, 1000),
        "c2" | "r1" => (20, 100),
        _ => (5, 30),
    }
}
