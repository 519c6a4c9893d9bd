//! `meanflow train`: a training run in a run folder, resumable bit for bit.
//!
//! Run folder: `config.json` (every setting, [`RunConfig`]), `metrics.jsonl` (one line per logged
//! step), `checkpoint.safetensors` ([`meanflow::train::checkpoint`], plus the metrics accumulator under the
//! metadata key `train_log` and the run config under `run`), and at the end `samples.png` and
//! `loss.png`; `.lock` holds the lock of the process that owns the folder ([`run_lock`]).
//!
//! Random streams (all from `--seed` through `Rng::stream(seed, k)`): 0 initial parameters and
//! 1 training batches (both [`Trainer`]), 2 the training pool (a built-in dataset's
//! `builtin_pool_points` draws, or the permutation that splits a file), 3 the held-out points of a
//! built-in dataset, 4 the noise of the evaluation samples. So the held-out set and the evaluation
//! noise are the same at every evaluation and after a resume.

use super::common::{
    check_builtin_magnitude, check_output_size, fingerprint, format_duration, load_data_file,
    parse_dataset, utc_timestamp, DataSource,
};
use super::output::errln;
use super::output::outln;
use super::pictures::{self, Cloud, Curve};
use super::progress::{Progress, Snapshot};
use super::run_lock::{self, LockError, RunLock, LOCK_FILE};
use super::{exit_code_for_signal, signal_name, CliError, CliResult, EXIT_FAILED};
use clap::Args;
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::data::ToyDataset;
use meanflow::flow::loss::{LossConfig, LossPreset, VSource};
use meanflow::flow::model::{Conditioning, Heads, MlpParams, ModelConfig};
use meanflow::flow::sampling::{noise, sample_mean_flow, uniform_schedule};
use meanflow::flow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::io::atomic::{temporary_name, temporary_prefix, write_atomically};
use meanflow::io::tensor_file::TensorFileError;
use meanflow::linalg::float::Float;
use meanflow::linalg::matmul::set_matmul_threads;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::{
    Checkpoint, CheckpointError, Precision, TrainConfigJson, MAX_STEPS,
};
use meanflow::train::optim::AdamConfig;
use meanflow::train::run_config::{DatasetJson, RunConfig, RUN_FORMAT};
use meanflow::train::{builtin_pool_points, StepStats, TrainConfig, Trainer};
use meanflow::verify::metrics::{pool_floor, sliced_wasserstein1, toy_floor, Metric};
use ndarray::{s, Array2, Axis};
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CONFIG_FILE: &str = "config.json";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const SAMPLES_PNG: &str = "samples.png";
pub const LOSS_PNG: &str = "loss.png";

/// Default number of steps: the default run took 97 s (311 steps/s, 1 thread) on the 2-core
/// development machine, under the two-minute budget (see docs/cli.md).
pub const DEFAULT_STEPS: u64 = 30_000;
const DEFAULT_DATASET: &str = "two_moons";
const DEFAULT_LOSS: LossPreset = LossPreset::Imf;
const DEFAULT_WIDTH: usize = 128;
const DEFAULT_DEPTH: usize = 3;
const DEFAULT_BATCH: usize = 256;
const DEFAULT_EMA: f64 = 0.999;
const DEFAULT_CHECKPOINT_EVERY: u64 = 5_000;
const DEFAULT_EVAL_EVERY: u64 = 5_000;
const DEFAULT_EVAL_SAMPLES: usize = 2_000;
const DEFAULT_LOG_EVERY: u64 = 100;
/// A run with `--skip-nonfinite` still stops after this many non-finite steps in a row.
const MAX_CONSECUTIVE_SKIPS: u64 = 100;

const STREAM_POOL: u64 = 2;
const STREAM_HELD_OUT: u64 = 3;
const STREAM_EVAL_NOISE: u64 = 4;

/// Options of `meanflow train`. Some defaults depend on --loss.
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// Built-in dataset name, or a CSV / NPY file of points [default: two_moons]
    #[arg(long, value_name = "NAME|FILE")]
    pub dataset: Option<String>,
    /// Loss preset: mf, imf or imf-head [default: imf]
    #[arg(long, value_name = "mf|imf|imf-head")]
    pub loss: Option<String>,
    /// Tangent blend in [0, 1]: 0 = MF, 1 = iMF [default: mf 0, imf 1]
    #[arg(long, allow_hyphen_values = true)]
    pub beta: Option<f64>,
    /// Source of the iMF velocity: boundary (u(z, t, t)) or head (the v-head) [default: head for imf-head, else boundary]
    #[arg(long, value_name = "boundary|head")]
    pub v_source: Option<String>,
    /// Keep the gradient through dudt (reverse over forward; slower, tape engine)
    #[arg(long)]
    pub exact: bool,
    /// Adaptive-weight power p >= 0; 0 is plain squared error [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub p: Option<f64>,
    /// Adaptive-weight offset c > 0 [default: 1e-3]
    #[arg(long, allow_hyphen_values = true)]
    pub c: Option<f64>,
    /// Distribution of the times [default: logit-normal]
    #[arg(long, value_name = "logit-normal|uniform")]
    pub time_dist: Option<String>,
    /// Logit-normal mean [default: -0.4]
    #[arg(long, allow_hyphen_values = true)]
    pub time_mu: Option<f64>,
    /// Logit-normal standard deviation > 0 [default: 1.0]
    #[arg(long, allow_hyphen_values = true)]
    pub time_sigma: Option<f64>,
    /// Fraction of rows with r = t, in [0, 1] [default: mf 0.75, imf 0.5]
    #[arg(long, allow_hyphen_values = true)]
    pub frac_equal: Option<f64>,
    /// Hidden width [default: 128]
    #[arg(long, allow_negative_numbers = true)]
    pub width: Option<usize>,
    /// Number of hidden layers [default: 3]
    #[arg(long, allow_negative_numbers = true)]
    pub depth: Option<usize>,
    /// silu, tanh, gelu_tanh, relu, softplus or sigmoid [default: silu]
    #[arg(long)]
    pub activation: Option<String>,
    /// Time conditioning: raw, or fourierK (K frequencies) [default: raw]
    #[arg(long)]
    pub conditioning: Option<String>,
    /// Heads: u, or uv (adds the v-head) [default: uv with --v-source head, else u]
    #[arg(long, value_name = "u|uv")]
    pub heads: Option<String>,
    /// Batch size [default: 256]
    #[arg(long, allow_negative_numbers = true)]
    pub batch: Option<usize>,
    /// Total optimizer steps of the run [default: 30000]
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<u64>,
    /// Learning rate [default: 1e-3]
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Linear warm-up steps [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub warmup: Option<u64>,
    /// Adam beta1 [default: 0.9]
    #[arg(long, allow_hyphen_values = true)]
    pub beta1: Option<f64>,
    /// Adam beta2 [default: 0.999]
    #[arg(long, allow_hyphen_values = true)]
    pub beta2: Option<f64>,
    /// Decoupled weight decay [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm to this [default: none]
    #[arg(long, allow_hyphen_values = true, value_name = "NORM")]
    pub clip: Option<f64>,
    /// EMA decay of the weights, or 0 / none to disable [default: 0.999]
    #[arg(long, allow_hyphen_values = true, value_name = "DECAY|none")]
    pub ema: Option<String>,
    /// Seed of every random stream [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Threads: the batch is split into this many shards computed in parallel [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Storage precision [default: f32]
    #[arg(long, value_name = "f32|f64")]
    pub precision: Option<String>,
    /// Run folder [default: runs/<dataset>-<loss>-<UTC time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the checkpoint every this many steps (0: only at the end and on interruption) [default: 5000]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS")]
    pub checkpoint_every: Option<u64>,
    /// Continue the run in this folder up to --steps
    #[arg(long, value_name = "RUN_FOLDER")]
    pub resume: Option<PathBuf>,
    /// Sliced W1 of 1-step samples vs held-out data every this many steps (0: never) [default: 5000]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS")]
    pub eval_every: Option<u64>,
    /// Points per evaluation (samples and held-out data) [default: 2000]
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub eval_samples: Option<usize>,
    /// Write a metrics line every this many steps [default: 100]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS")]
    pub log_every: Option<u64>,
    /// Skip steps with a non-finite loss or gradient instead of stopping
    #[arg(long)]
    pub skip_nonfinite: bool,
}

/// One line of metrics.jsonl: means over the steps since the previous line.
#[derive(Clone, Debug, Serialize)]
struct MetricsLine {
    step: u64,
    loss: f64,
    loss_u: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss_v: Option<f64>,
    mse: f64,
    grad_norm: f64,
    lr: f64,
    steps_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sw1: Option<f64>,
    #[serde(skip_serializing_if = "is_zero")]
    skipped: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// Sums since the last metrics line; stored in the checkpoint (`train_log`) so that a resumed run
/// writes the same lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogAccumulator {
    steps: u64,
    skipped: u64,
    loss: f64,
    loss_u: f64,
    loss_v: f64,
    mse: f64,
    grad_norm: f64,
    /// The line of the checkpoint's step is still to be written: a signal stopped the run during
    /// that line's evaluation, and the resumed run writes the line first. (Stored only when true,
    /// so other checkpoints keep their bytes.)
    #[serde(default, skip_serializing_if = "is_false")]
    pending_line: bool,
}

fn is_false(x: &bool) -> bool {
    !*x
}

impl LogAccumulator {
    /// Refuses sums no run can have at checkpoint step `step`: more steps than taken, negative or
    /// non-finite sums of losses and norms (all are sums of non-negative numbers).
    fn check(&self, step: u64) -> Result<(), String> {
        if self.steps.saturating_add(self.skipped) > step {
            return Err(format!(
                "{} steps and {} skipped since the last line, more than the checkpoint's {step}",
                self.steps, self.skipped
            ));
        }
        for (name, sum) in [
            ("loss", self.loss),
            ("loss_u", self.loss_u),
            ("loss_v", self.loss_v),
            ("mse", self.mse),
            ("grad_norm", self.grad_norm),
        ] {
            if !(sum.is_finite() && sum >= 0.0) {
                return Err(format!(
                    "'{name}' is {sum}, but it is a sum of non-negative numbers"
                ));
            }
        }
        Ok(())
    }

    fn add(&mut self, s: &StepStats) {
        self.steps += 1;
        self.loss += s.loss.loss;
        self.loss_u += s.loss.loss_u;
        self.loss_v += s.loss.loss_v.unwrap_or(0.0);
        self.mse += s.loss.mse;
        self.grad_norm += s.update.grad_norm;
    }

    /// The line of the sums since the last line, which start again from zero.
    fn take_line(
        &mut self,
        step: u64,
        has_v: bool,
        lr: f64,
        steps_per_s: f64,
        sw1: Option<f64>,
    ) -> MetricsLine {
        let line = self.peek_line(step, has_v, lr, steps_per_s, sw1);
        *self = LogAccumulator::default();
        line
    }

    /// The line of the sums since the last line, which go on.
    fn peek_line(
        &self,
        step: u64,
        has_v: bool,
        lr: f64,
        steps_per_s: f64,
        sw1: Option<f64>,
    ) -> MetricsLine {
        let n = self.steps as f64;
        MetricsLine {
            step,
            loss: self.loss / n,
            loss_u: self.loss_u / n,
            loss_v: has_v.then(|| self.loss_v / n),
            mse: self.mse / n,
            grad_norm: self.grad_norm / n,
            lr,
            steps_per_s,
            sw1,
            skipped: self.skipped,
        }
    }
}

/// Training pool and held-out points.
struct DataSplit {
    pool: Array2<f64>,
    held_out: Array2<f64>,
}

fn split_data(source: &DataSource, seed: u64, eval_samples: usize) -> DataSplit {
    match source {
        DataSource::Builtin(ds) => DataSplit {
            pool: ds.sample(
                builtin_pool_points(ds.dim()),
                &mut Rng::stream(seed, STREAM_POOL),
            ),
            held_out: ds.sample(eval_samples, &mut Rng::stream(seed, STREAM_HELD_OUT)),
        },
        DataSource::File { data, .. } => {
            let rows = data.nrows();
            let held = eval_samples.min(rows / 5);
            let perm = Rng::stream(seed, STREAM_POOL).permutation(rows);
            DataSplit {
                held_out: data.select(Axis(0), &perm[..held]),
                pool: data.select(Axis(0), &perm[held..]),
            }
        }
    }
}

/// Everything decided before anything is written.
struct Plan {
    run: RunConfig,
    config: TrainConfig,
    source: DataSource,
    folder: PathBuf,
    resume: Option<Checkpoint>,
    /// metrics.jsonl lines to keep (resume: those up to the checkpoint's step).
    kept_metrics: Vec<String>,
    /// The metrics sums since the last line (resume: from the checkpoint).
    accumulator: LogAccumulator,
    /// The run folder's lock (resume: taken before reading the run; fresh: taken in the staging
    /// folder by [`stage_fresh_folder`]).
    lock: Option<RunLock>,
    /// The folder is the default `runs/<dataset>-<loss>-<time>`, not one the user named: when
    /// another run takes that name first, this one takes the next free name instead.
    default_folder: bool,
}

fn usage(e: impl Display) -> CliError {
    CliError::usage(e.to_string())
}

/// What a dataset is loaded for, in messages about values out of range.
const FOR_A_RUN: &str = "a run";

fn parse_ema(text: &str) -> CliResult<Option<f64>> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" => Ok(None),
        t => match t.parse::<f64>() {
            Ok(0.0) => Ok(None),
            Ok(d) if (0.0..1.0).contains(&d) => Ok(Some(d)),
            _ => Err(CliError::usage(format!(
                "--ema {text}: expected a decay in [0, 1) or 'none'"
            ))),
        },
    }
}

fn parse_time_dist(text: &str) -> CliResult<&'static str> {
    match text.to_ascii_lowercase().replace('_', "-").as_str() {
        "logit-normal" | "logitnormal" => Ok("logit-normal"),
        "uniform" => Ok("uniform"),
        _ => Err(CliError::usage(format!(
            "--time-dist {text}: expected 'logit-normal' or 'uniform'"
        ))),
    }
}

fn parse_activation(text: &str) -> CliResult<Elementwise> {
    text.parse::<Elementwise>().map_err(usage)
}

fn dataset_json(source: &DataSource) -> CliResult<DatasetJson> {
    Ok(match source {
        DataSource::Builtin(ds) => DatasetJson::Builtin { name: ds.name() },
        DataSource::File { path, data } => {
            let abs = std::fs::canonicalize(path).map_err(|e| {
                CliError::usage(format!("{}: cannot resolve the path: {e}", path.display()))
            })?;
            DatasetJson::File {
                path: abs.to_string_lossy().into_owned(),
                rows: data.nrows(),
                cols: data.ncols(),
                fingerprint: fingerprint(data.view()),
            }
        }
    })
}

/// The data of a run from its config.json; a data file must hold the same values as when the run
/// started (rows, columns and fingerprint).
fn source_from_json(
    d: &DatasetJson,
    config_path: &Path,
    precision: Precision,
) -> CliResult<DataSource> {
    match d {
        DatasetJson::Builtin { name } => name
            .parse::<ToyDataset>()
            .map(DataSource::Builtin)
            .map_err(|e| CliError::usage(format!("{}: {e}", config_path.display()))),
        DatasetJson::File {
            path,
            rows,
            cols,
            fingerprint: fp,
        } => {
            if !Path::new(path).exists() {
                return Err(CliError::usage(format!(
                    "{path}: the run's data file is not there any more; if it moved, give its new path with --dataset"
                )));
            }
            let data = load_data_file(Path::new(path), precision, FOR_A_RUN)?;
            if data.nrows() != *rows || data.ncols() != *cols || fingerprint(data.view()) != *fp {
                return Err(CliError::usage(format!(
                    "{path}: the data file changed since the run started (now {} x {}, was {rows} x {cols}, or different values); a resumed run needs the same data",
                    data.nrows(),
                    data.ncols()
                )));
            }
            Ok(DataSource::File {
                path: PathBuf::from(path),
                data,
            })
        }
    }
}

/// Refuses a setting that the run computes with in its precision but that precision cannot hold
/// (`--lr 1e39` is infinite in f32); the message names the flag.
fn check_fits_precision(config: &TrainConfig, precision: Precision) -> CliResult<()> {
    if precision != Precision::F32 {
        return Ok(());
    }
    let (mu, sigma) = match config.time.distribution {
        TimeDistribution::LogitNormal { mu, sigma } => (Some(mu), Some(sigma)),
        TimeDistribution::Uniform => (None, None),
    };
    let settings = [
        ("--lr", Some(config.adam.lr)),
        ("--weight-decay", Some(config.adam.weight_decay)),
        ("--clip", config.adam.clip_norm),
        ("--p", Some(config.loss.p)),
        ("--c", Some(config.loss.c)),
        ("--time-mu", mu),
        ("--time-sigma", sigma),
    ];
    for (flag, value) in settings {
        if let Some(v) = value.filter(|v| v.abs() > f64::from(f32::MAX)) {
            return Err(CliError::usage(format!(
                "{flag} {v:e} is beyond the range of f32 (3.4e38), this run's precision; use --precision f64"
            )));
        }
    }
    Ok(())
}

/// Checks of the run options (periods, threads, evaluation size); the message names the flag.
fn check_run_options(run: &RunConfig, config: &TrainConfig) -> CliResult<()> {
    if run.steps == 0 {
        return Err(CliError::usage("--steps must be at least 1"));
    }
    if run.steps > MAX_STEPS {
        return Err(CliError::usage(format!(
            "--steps must be at most 2^53 = {MAX_STEPS}, got {}",
            run.steps
        )));
    }
    if run.threads == 0 || run.threads > 256 {
        return Err(CliError::usage(format!(
            "--threads must be between 1 and 256, got {}",
            run.threads
        )));
    }
    if run.log_every == 0 {
        return Err(CliError::usage("--log-every must be at least 1"));
    }
    if run.eval_every > 0 && run.eval_samples < 2 {
        return Err(CliError::usage(format!(
            "--eval-samples must be at least 2 when evaluating, got {}",
            run.eval_samples
        )));
    }
    check_fits_precision(config, run.precision)?;
    let model = &config.model;
    check_output_size(
        "--eval-samples",
        run.eval_samples,
        model.width.max(model.input_width()),
        "the model's widest layer",
    )
}

fn resolve_fresh(args: &TrainArgs) -> CliResult<Plan> {
    let precision = match &args.precision {
        Some(p) => p.parse::<Precision>().map_err(usage)?,
        None => Precision::F32,
    };
    let spec = args.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
    let source = parse_dataset(spec, precision, FOR_A_RUN)?;
    let preset = match &args.loss {
        Some(l) => l.parse::<LossPreset>().map_err(usage)?,
        None => DEFAULT_LOSS,
    };
    let mut loss = LossConfig::preset(preset);
    if let Some(b) = args.beta {
        loss.beta = b;
    }
    if let Some(v) = &args.v_source {
        loss.v_source = v.parse::<VSource>().map_err(usage)?;
    }
    loss.exact = args.exact;
    if let Some(p) = args.p {
        loss.p = p;
    }
    if let Some(c) = args.c {
        loss.c = c;
    }
    let mut time = match preset {
        LossPreset::Mf => TimeSampler::mf_default(),
        LossPreset::Imf | LossPreset::ImfHead => TimeSampler::imf_default(),
    };
    let dist = match &args.time_dist {
        Some(t) => parse_time_dist(t)?,
        None => "logit-normal",
    };
    time.distribution = if dist == "uniform" {
        if args.time_mu.is_some() || args.time_sigma.is_some() {
            return Err(CliError::usage(
                "--time-mu and --time-sigma apply to --time-dist logit-normal, not uniform",
            ));
        }
        TimeDistribution::Uniform
    } else {
        let TimeDistribution::LogitNormal { mu, sigma } = time.distribution else {
            unreachable!("the presets are logit-normal")
        };
        TimeDistribution::LogitNormal {
            mu: args.time_mu.unwrap_or(mu),
            sigma: args.time_sigma.unwrap_or(sigma),
        }
    };
    if let Some(f) = args.frac_equal {
        time.fraction_equal = f;
    }
    let heads = match &args.heads {
        Some(h) => h.parse::<Heads>().map_err(usage)?,
        None if loss.v_source == VSource::Head => Heads::UV,
        None => Heads::U,
    };
    let model = ModelConfig {
        dim: source.dim(),
        width: args.width.unwrap_or(DEFAULT_WIDTH),
        depth: args.depth.unwrap_or(DEFAULT_DEPTH),
        activation: match &args.activation {
            Some(a) => parse_activation(a)?,
            None => Elementwise::Silu,
        },
        conditioning: match &args.conditioning {
            Some(c) => c.parse::<Conditioning>().map_err(usage)?,
            None => Conditioning::Raw,
        },
        heads,
    };
    let defaults = AdamConfig::default();
    let adam = AdamConfig {
        lr: args.lr.unwrap_or(defaults.lr),
        beta1: args.beta1.unwrap_or(defaults.beta1),
        beta2: args.beta2.unwrap_or(defaults.beta2),
        eps: defaults.eps,
        weight_decay: args.weight_decay.unwrap_or(defaults.weight_decay),
        warmup_steps: args.warmup.unwrap_or(defaults.warmup_steps),
        clip_norm: args.clip,
    };
    let ema_decay = match &args.ema {
        Some(e) => parse_ema(e)?,
        None => Some(DEFAULT_EMA),
    };
    let config = TrainConfig {
        model,
        loss,
        time,
        adam,
        batch: args.batch.unwrap_or(DEFAULT_BATCH),
        ema_decay,
        seed: args.seed.unwrap_or(0),
        threads: args.threads.unwrap_or(1),
    };
    config.validate().map_err(usage)?;
    let eval_samples = args.eval_samples.unwrap_or(DEFAULT_EVAL_SAMPLES);
    let (pool_points, held_out_points) = match &source {
        DataSource::Builtin(ds) => (builtin_pool_points(ds.dim()), eval_samples),
        DataSource::File { data, .. } => {
            let held = eval_samples.min(data.nrows() / 5);
            (data.nrows() - held, held)
        }
    };
    let run = RunConfig {
        format: RUN_FORMAT.into(),
        dataset: dataset_json(&source)?,
        loss_preset: preset.name().into(),
        train: TrainConfigJson::from(&config),
        precision,
        steps: args.steps.unwrap_or(DEFAULT_STEPS),
        threads: args.threads.unwrap_or(1),
        checkpoint_every: args.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY),
        eval_every: args.eval_every.unwrap_or(DEFAULT_EVAL_EVERY),
        eval_samples,
        log_every: args.log_every.unwrap_or(DEFAULT_LOG_EVERY),
        skip_nonfinite: args.skip_nonfinite,
        pool_points,
        held_out_points,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    check_run_options(&run, &config)?;
    let folder = match &args.out {
        Some(out) => {
            let non_empty = out.is_dir()
                && std::fs::read_dir(out)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true);
            if non_empty {
                if let Some(pid) = run_lock::holder(out) {
                    return Err(CliError::usage(LockError::InUse { pid }.message(out)));
                }
                return Err(CliError::usage(format!(
                    "--out {}: the folder exists and is not empty; choose another, or continue that run with --resume {}",
                    out.display(),
                    out.display()
                )));
            }
            if out.exists() && !out.is_dir() {
                return Err(CliError::usage(format!(
                    "--out {}: exists and is not a folder",
                    out.display()
                )));
            }
            out.clone()
        }
        None => {
            // The label is cut so that the name stays a valid file name (a long file name or
            // gaussian:SIGMA with many digits).
            let label: String = source
                .label()
                .replace([':', ' ', '/'], "_")
                .chars()
                .take(100)
                .collect();
            let base = format!("{label}-{}-{}", preset.name(), utc_timestamp());
            next_free_folder(&Path::new("runs").join(base))
        }
    };
    Ok(Plan {
        run,
        config,
        source,
        folder,
        resume: None,
        kept_metrics: Vec::new(),
        accumulator: LogAccumulator::default(),
        lock: None,
        default_folder: args.out.is_none(),
    })
}

/// `folder`, or the first of `folder-2`, `folder-3`, ... that does not exist.
fn next_free_folder(folder: &Path) -> PathBuf {
    let mut candidate = folder.to_path_buf();
    let mut k = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}-{k}", folder.display()));
        k += 1;
    }
    candidate
}

/// Compares a flag given with --resume to the stored value.
fn same<T: PartialEq + Display>(
    flag: &str,
    given: Option<T>,
    stored: T,
    file: &Path,
) -> CliResult<()> {
    match given {
        Some(g) if g != stored => Err(CliError::usage(format!(
            "--{flag} {g} conflicts with the resumed run's {flag} {stored} ({}); a resumed run keeps its settings",
            file.display()
        ))),
        _ => Ok(()),
    }
}

fn show_opt(x: Option<f64>) -> String {
    x.map_or("none".into(), |v| v.to_string())
}

fn check_resume_flags(
    args: &TrainArgs,
    run: &RunConfig,
    config: &TrainConfig,
    file: &Path,
) -> CliResult<()> {
    if let Some(l) = &args.loss {
        let l = l.parse::<LossPreset>().map_err(usage)?;
        same(
            "loss",
            Some(l.name().to_string()),
            run.loss_preset.clone(),
            file,
        )?;
    }
    let (m, l, t, a) = (&config.model, &config.loss, &config.time, &config.adam);
    same("beta", args.beta, l.beta, file)?;
    if let Some(v) = &args.v_source {
        same(
            "v-source",
            Some(v.parse::<VSource>().map_err(usage)?),
            l.v_source,
            file,
        )?;
    }
    if args.exact && !l.exact {
        return Err(CliError::usage(format!(
            "--exact conflicts with the resumed run, which uses the stop-gradient loss ({})",
            file.display()
        )));
    }
    same("p", args.p, l.p, file)?;
    same("c", args.c, l.c, file)?;
    let (stored_dist, mu, sigma) = match t.distribution {
        TimeDistribution::LogitNormal { mu, sigma } => ("logit-normal", Some(mu), Some(sigma)),
        TimeDistribution::Uniform => ("uniform", None, None),
    };
    if let Some(d) = &args.time_dist {
        same("time-dist", Some(parse_time_dist(d)?), stored_dist, file)?;
    }
    if let Some(g) = args.time_mu {
        same("time-mu", Some(g.to_string()), show_opt(mu), file)?;
    }
    if let Some(g) = args.time_sigma {
        same("time-sigma", Some(g.to_string()), show_opt(sigma), file)?;
    }
    same("frac-equal", args.frac_equal, t.fraction_equal, file)?;
    same("width", args.width, m.width, file)?;
    same("depth", args.depth, m.depth, file)?;
    if let Some(x) = &args.activation {
        same("activation", Some(parse_activation(x)?), m.activation, file)?;
    }
    if let Some(x) = &args.conditioning {
        same(
            "conditioning",
            Some(x.parse::<Conditioning>().map_err(usage)?),
            m.conditioning,
            file,
        )?;
    }
    if let Some(x) = &args.heads {
        same(
            "heads",
            Some(x.parse::<Heads>().map_err(usage)?),
            m.heads,
            file,
        )?;
    }
    same("batch", args.batch, config.batch, file)?;
    same("lr", args.lr, a.lr, file)?;
    same("warmup", args.warmup, a.warmup_steps, file)?;
    same("beta1", args.beta1, a.beta1, file)?;
    same("beta2", args.beta2, a.beta2, file)?;
    same("weight-decay", args.weight_decay, a.weight_decay, file)?;
    if let Some(c) = args.clip {
        same("clip", Some(c.to_string()), show_opt(a.clip_norm), file)?;
    }
    if let Some(e) = &args.ema {
        same(
            "ema",
            Some(show_opt(parse_ema(e)?)),
            show_opt(config.ema_decay),
            file,
        )?;
    }
    same("seed", args.seed, config.seed, file)?;
    if let Some(p) = &args.precision {
        same(
            "precision",
            Some(p.parse::<Precision>().map_err(usage)?),
            run.precision,
            file,
        )?;
    }
    same("eval-samples", args.eval_samples, run.eval_samples, file)?;
    Ok(())
}

/// The data of a resumed run given with `--dataset`: the run's built-in dataset, or a file with the
/// same values as the run's (rows, columns, fingerprint), wherever it is now; a file that moved is
/// recorded at its new path.
fn resume_dataset(spec: &str, run: &mut RunConfig, file: &Path) -> CliResult<DataSource> {
    let given = parse_dataset(spec, run.precision, FOR_A_RUN)?;
    let given_json = dataset_json(&given)?;
    match (&given_json, &run.dataset) {
        (DatasetJson::Builtin { name }, DatasetJson::Builtin { name: stored })
            if name == stored =>
        {
            Ok(given)
        }
        (
            DatasetJson::File {
                rows,
                cols,
                fingerprint: fp,
                ..
            },
            DatasetJson::File {
                rows: stored_rows,
                cols: stored_cols,
                fingerprint: stored_fp,
                ..
            },
        ) if (rows, cols, fp) == (stored_rows, stored_cols, stored_fp) => {
            run.dataset = given_json;
            Ok(given)
        }
        (_, stored) => {
            let stored = match stored {
                DatasetJson::Builtin { name } => name.clone(),
                DatasetJson::File {
                    path, rows, cols, ..
                } => {
                    format!("{path} ({rows} x {cols}; a file with other values is another dataset)")
                }
            };
            Err(CliError::usage(format!(
                "--dataset {spec} conflicts with the resumed run's dataset {stored} ({}); a resumed run keeps its data",
                file.display()
            )))
        }
    }
}

fn resolve_resume(args: &TrainArgs, folder: &Path) -> CliResult<Plan> {
    if let Some(out) = &args.out {
        return Err(CliError::usage(format!(
            "--out {}: cannot be used with --resume (the run stays in {})",
            out.display(),
            folder.display()
        )));
    }
    if !folder.is_dir() {
        return Err(CliError::usage(format!(
            "--resume {}: not a folder",
            folder.display()
        )));
    }
    let config_path = folder.join(CONFIG_FILE);
    if !config_path.is_file() {
        return Err(CliError::usage(format!(
            "{}: cannot read the run config: not a file (is {} a run folder?)",
            config_path.display(),
            folder.display()
        )));
    }
    // The lock first, so that what is read next is not being rewritten by a live run.
    let lock = RunLock::acquire(folder).map_err(|e| CliError::usage(e.message(folder)))?;
    match resolve_resume_locked(args, folder) {
        Ok(plan) => Ok(Plan {
            lock: Some(lock),
            ..plan
        }),
        Err(e) => {
            // A refused resume leaves the folder as it was, the lock file included.
            lock.release_unchanged();
            Err(e)
        }
    }
}

/// [`resolve_resume`] once the run folder is locked.
fn resolve_resume_locked(args: &TrainArgs, folder: &Path) -> CliResult<Plan> {
    let config_path = folder.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        CliError::usage(format!(
            "{}: cannot read the run config: {e}",
            config_path.display()
        ))
    })?;
    let (mut run, config) = RunConfig::parse(&text)
        .map_err(|e| CliError::usage(format!("{}: {e}", config_path.display())))?;
    check_resume_flags(args, &run, &config, &config_path)?;
    let ck_path = folder.join(CHECKPOINT_FILE);
    let ck = Checkpoint::read(&ck_path).map_err(usage)?;
    if ck.adam.is_none() {
        return Err(CliError::usage(format!(
            "{}: the checkpoint has no Adam moments (adam.m.*, adam.v.*): it cannot resume training",
            ck_path.display()
        )));
    }
    let accumulator: LogAccumulator = match ck.extra.get("train_log") {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            CliError::usage(format!("{}: metadata 'train_log': {e}", ck_path.display()))
        })?,
        None => LogAccumulator::default(),
    };
    accumulator.check(ck.step).map_err(|reason| {
        CliError::usage(format!(
            "{}: metadata 'train_log': {reason}",
            ck_path.display()
        ))
    })?;
    if ck.config != config || ck.precision != run.precision {
        return Err(CliError::usage(format!(
            "{} does not match {} (a different run's checkpoint?)",
            ck_path.display(),
            config_path.display()
        )));
    }
    if ck.step > run.steps {
        return Err(CliError::usage(format!(
            "{}: metadata 'step' is {}, beyond the run's {} steps ({})",
            ck_path.display(),
            ck.step,
            run.steps,
            config_path.display()
        )));
    }
    let source = match &args.dataset {
        Some(spec) => resume_dataset(spec, &mut run, &config_path)?,
        None => source_from_json(&run.dataset, &config_path, run.precision)?,
    };
    if source.dim() != config.model.dim {
        return Err(CliError::usage(format!(
            "the data have {} columns but the checkpoint's model has dimension {}",
            source.dim(),
            config.model.dim
        )));
    }
    if let Some(s) = args.steps {
        // A run never goes back: fewer steps than done would rewrite config.json and the
        // pictures of a later state with an earlier one's. Equal steps redo the end of the run
        // (the final evaluation and pictures).
        if s < ck.step {
            return Err(CliError::usage(format!(
                "--steps {s}: the run is already at step {} ({}); give --steps {} or more",
                ck.step,
                ck_path.display(),
                ck.step
            )));
        }
        run.steps = s;
    }
    if let Some(t) = args.threads {
        run.threads = t;
    }
    if let Some(c) = args.checkpoint_every {
        run.checkpoint_every = c;
    }
    if let Some(e) = args.eval_every {
        run.eval_every = e;
    }
    if let Some(l) = args.log_every {
        run.log_every = l;
    }
    if args.skip_nonfinite {
        run.skip_nonfinite = true;
    }
    check_run_options(&run, &config)?;
    let metrics_path = folder.join(METRICS_FILE);
    let kept_metrics = match std::fs::read_to_string(&metrics_path) {
        Ok(text) => text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    // A line at the checkpoint's own step with sums still open is the
                    // closing line of a shorter run (see train_with); the sums go on instead.
                    .is_some_and(|s| s < ck.step || (s == ck.step && accumulator.steps == 0))
            })
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Plan {
        run,
        config,
        source,
        folder: folder.to_path_buf(),
        resume: Some(ck),
        kept_metrics,
        accumulator,
        lock: None,
        default_folder: false,
    })
}

/// `meanflow train`.
pub fn run(args: TrainArgs) -> CliResult<i32> {
    // Installed first: until the run writes anything, a signal ends the process at once (there is
    // nothing to save); from the first write on it stops the run cleanly (see StopSignal).
    let stop = StopSignal::install();
    let mut plan = match &args.resume {
        Some(folder) => resolve_resume(&args, folder)?,
        None => resolve_fresh(&args)?,
    };
    let split = match check_before_writing(&mut plan) {
        Ok(split) => split,
        Err(e) => {
            if let Some(lock) = plan.lock.take() {
                lock.release_unchanged();
            }
            return Err(e);
        }
    };

    // Everything is checked: now write.
    stop.stop_cleanly();
    let staging = match &plan.resume {
        None => Some(stage_fresh_folder(&mut plan)?),
        Some(_) => {
            remove_stale_temporaries(&plan.folder);
            prepare_folder(&plan, &plan.folder).map_err(|(file, e)| {
                CliError::usage(format!(
                    "{}: cannot write the file: {e}",
                    plan.folder.join(file).display()
                ))
            })?;
            None
        }
    };
    match plan.run.precision {
        Precision::F32 => train_with::<f32>(plan, split, staging, &stop),
        Precision::F64 => train_with::<f64>(plan, split, staging, &stop),
    }
}

/// The last checks, which need the data drawn: the training pool and held-out points, with a
/// built-in dataset's values within what the run's precision takes (a data file's were checked
/// when it was read).
fn check_before_writing(plan: &mut Plan) -> CliResult<DataSplit> {
    plan.config.threads = plan.run.threads;
    // Threads split the batch; each runs single-threaded products (set before any product).
    if !set_matmul_threads(1) {
        errln!("warning: could not set the matmul thread count to 1");
    }
    let split = split_data(&plan.source, plan.config.seed, plan.run.eval_samples);
    if let DataSource::Builtin(ds) = &plan.source {
        for points in [&split.pool, &split.held_out] {
            check_builtin_magnitude(ds, points.view(), plan.run.precision, FOR_A_RUN)?;
        }
    }
    Ok(split)
}

/// A fresh run folder is prepared under a hidden sibling name (`.NAME.tmpPID`, see
/// [`temporary_name`]) and renamed into place once its lock file, config.json, metrics.jsonl and
/// the step-0 checkpoint are in it, so the folder appears complete or not at all, whenever the
/// process is killed. Returns the staging folder, locked (the lock goes into `plan`), with
/// config.json and metrics.jsonl written. Errors name the run folder (the staging folder is gone
/// by then) and exit 2: nothing was created.
fn stage_fresh_folder(plan: &mut Plan) -> CliResult<PathBuf> {
    let folder = plan.folder.clone();
    let cannot = |e: &dyn Display| {
        CliError::usage(format!(
            "cannot create the run folder {}: {e}",
            folder.display()
        ))
    };
    let target = if folder.exists() {
        std::fs::canonicalize(&folder).map_err(|e| cannot(&e))?
    } else {
        folder.clone()
    };
    let name = target
        .file_name()
        .ok_or_else(|| cannot(&"not a folder name"))?
        .to_string_lossy()
        .into_owned();
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| cannot(&e))?;
    let staging = parent.join(temporary_name(&name, std::process::id()));
    remove_stale_staging(parent, &name);
    std::fs::create_dir(&staging).map_err(|e| cannot(&e))?;
    let lock = match RunLock::acquire(&staging) {
        Ok(lock) => lock,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(cannot(&e.message(&staging)));
        }
    };
    plan.lock = Some(lock);
    if let Err((file, e)) = prepare_folder(plan, &staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(cannot(&format!("{file}: {e}")));
    }
    Ok(staging)
}

/// Removes the staging folders of runs into the same folder whose process died during its setup:
/// a staging folder goes only when no process holds its lock, the process named in its name is
/// gone, and it holds nothing but run files.
fn remove_stale_staging(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = temporary_prefix(name);
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = entry_name
            .strip_prefix(&prefix)
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // The pid test covers a staging folder made but not yet locked.
        if run_lock::holder(&entry.path()).is_some() || run_lock::process_alive(pid) {
            continue;
        }
        let only_run_files = std::fs::read_dir(entry.path()).is_ok_and(|files| {
            files.flatten().all(|f| {
                let f = f.file_name().to_string_lossy().into_owned();
                RUN_FILES.contains(&f.as_str()) || f == LOCK_FILE || is_temporary_of_run_file(&f)
            })
        });
        if only_run_files {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The files a run folder holds (besides its lock file [`LOCK_FILE`]).
pub const RUN_FILES: [&str; 5] = [
    CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINT_FILE,
    SAMPLES_PNG,
    LOSS_PNG,
];

/// `.FILE.tmpPID` for one of [`RUN_FILES`]: a temporary file of `write_atomically`.
fn is_temporary_of_run_file(name: &str) -> bool {
    RUN_FILES.iter().any(|f| {
        name.strip_prefix(&temporary_prefix(f))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Why a staging folder could not become the run folder.
enum PublishError {
    /// Another process owns the run folder.
    InUse(Option<u32>),
    /// The run folder has files of its own.
    NotEmpty,
    Io(std::io::Error),
}

/// Renames the complete staging folder to the run folder (replacing the empty folder `--out` may
/// name); the lock file goes along, and `lock` follows it. Where an existing folder cannot be
/// replaced (a mount point), its own lock is taken and the files are moved into it.
fn publish_folder(staging: &Path, folder: &Path, lock: &mut RunLock) -> Result<(), PublishError> {
    match std::fs::rename(staging, folder) {
        Ok(()) => lock.moved_to(folder),
        Err(e) if !folder.is_dir() => return Err(PublishError::Io(e)),
        Err(_) => {
            // Another run got there first (it renamed its staging folder into place), or the
            // folder cannot be replaced.
            if let Some(pid) = run_lock::holder(folder) {
                return Err(PublishError::InUse(pid));
            }
            let folder_lock = RunLock::acquire(folder).map_err(|e| match e {
                LockError::InUse { pid } => PublishError::InUse(pid),
                LockError::Io(e) => PublishError::Io(e),
            })?;
            let empty = std::fs::read_dir(folder)
                .map_err(PublishError::Io)?
                .flatten()
                .all(|f| f.file_name() == LOCK_FILE);
            if !empty {
                folder_lock.release_unchanged();
                return Err(PublishError::NotEmpty);
            }
            for name in [METRICS_FILE, CONFIG_FILE, CHECKPOINT_FILE] {
                std::fs::rename(staging.join(name), folder.join(name)).map_err(PublishError::Io)?;
            }
            std::fs::remove_dir_all(staging).map_err(PublishError::Io)?;
            *lock = folder_lock;
        }
    }
    let parent = folder
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporary files (`.NAME.tmpPID`) that a killed process may have left in a run
/// folder while writing one of its files. Nothing reads them; this only tidies up.
fn remove_stale_temporaries(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary_of_run_file(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// config.json and metrics.jsonl (the kept lines, on resume), in `folder`; an error names the file.
fn prepare_folder(plan: &Plan, folder: &Path) -> Result<(), (&'static str, std::io::Error)> {
    let mut config = serde_json::to_string_pretty(&plan.run).expect("a run config serialises");
    config.push('\n');
    write_atomically(&folder.join(CONFIG_FILE), config.as_bytes()).map_err(|e| (CONFIG_FILE, e))?;
    let mut text = plan.kept_metrics.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_atomically(&folder.join(METRICS_FILE), text.as_bytes()).map_err(|e| (METRICS_FILE, e))
}

/// Samples of `steps` mean-flow steps from the noise `z1`, with `weights`.
fn mean_flow_samples<T: Float>(
    model: ModelConfig,
    weights: &MlpParams<T>,
    z1: &Array2<f64>,
    steps: usize,
) -> Array2<f64> {
    let z = z1.mapv(T::from_f64);
    sample_mean_flow(model, weights, z.view(), &uniform_schedule(steps)).mapv(|x| x.to_f64())
}

/// The weights a run samples and evaluates with: the EMA when it keeps one, else the parameters.
fn sampling_weights<T: Float>(trainer: &Trainer<T>) -> &MlpParams<T> {
    trainer.ema.as_ref().unwrap_or(&trainer.params)
}

/// What the evaluations compare: the held-out points and the noise of the 1-step samples (one row
/// per held-out point; with too few held-out points, `--eval-samples` rows for the pictures).
struct Evaluation {
    held_out: Array2<f64>,
    noise: Array2<f64>,
}

impl Evaluation {
    fn possible(&self) -> bool {
        self.held_out.nrows() >= 2
    }

    /// Sliced W1 of the 1-step samples against the held-out points.
    fn sw1<T: Float>(&self, model: ModelConfig, weights: &MlpParams<T>) -> f64 {
        let samples = mean_flow_samples(model, weights, &self.noise, 1);
        sliced_wasserstein1(samples.view(), self.held_out.view())
    }
}

/// The signals that stop a run cleanly: Ctrl-C (SIGINT), SIGTERM and SIGHUP.
#[cfg(unix)]
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];
#[cfg(not(unix))]
const STOP_SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// The stop signals of a run. Until [`StopSignal::stop_cleanly`] (nothing written yet) a signal
/// ends the process at once with 128 + the signal number. After it, the first signal asks the run
/// to stop: the training loop finishes its step, and a long phase (an evaluation, the final
/// evaluation and pictures) is abandoned within [`SIGNAL_POLL`]; the checkpoint is written and the
/// process exits with 128 + the signal (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A second
/// signal exits at once with that code (every file is written atomically, so nothing is left half
/// written).
struct StopSignal {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
    /// When set, the next signal ends the process in the handler.
    exit_at_once: Arc<AtomicBool>,
}

/// How often a long phase looks for a stop signal.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

impl StopSignal {
    fn install() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        let exit_at_once = Arc::new(AtomicBool::new(true));
        for sig in STOP_SIGNALS {
            // The actions run in this order: the shutdown fires only if `exit_at_once` is set
            // when the signal comes; the first signal after stop_cleanly sets it, after looking.
            let installed = signal_hook::flag::register_conditional_shutdown(
                sig,
                exit_code_for_signal(sig),
                exit_at_once.clone(),
            )
            .and_then(|_| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .and_then(|_| signal_hook::flag::register(sig, exit_at_once.clone()));
            if let Err(e) = installed {
                errln!(
                    "warning: cannot catch {} ({e}); an interruption will lose the steps since the last checkpoint",
                    signal_name(sig)
                );
            }
        }
        StopSignal {
            stop,
            signal,
            exit_at_once,
        }
    }

    /// From now on the first signal stops the run cleanly instead of ending the process.
    fn stop_cleanly(&self) {
        self.exit_at_once.store(false, Ordering::SeqCst);
    }

    /// The signal received, if any.
    fn received(&self) -> Option<i32> {
        if self.stop.load(Ordering::SeqCst) {
            Some(self.signal.load(Ordering::SeqCst) as i32)
        } else {
            None
        }
    }
}

/// Runs `work` on its own thread while this one watches for a stop signal. On one, `on_signal`
/// (given the signal) saves what must be saved and returns the exit code, and the process ends
/// with it, `work` unfinished: a long computation is abandoned within [`SIGNAL_POLL`].
fn interruptible<R: Send>(
    stop: &StopSignal,
    work: impl FnOnce() -> R + Send,
    on_signal: impl FnOnce(i32) -> i32,
) -> R {
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel();
        let worker = scope.spawn(move || {
            let result = work();
            let _ = done.send(());
            result
        });
        loop {
            if let Some(signal) = stop.received() {
                std::process::exit(super::output::final_exit_code(on_signal(signal)));
            }
            match finished.recv_timeout(SIGNAL_POLL) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                // Done, or the worker panicked (the channel closed): join tells which.
                _ => break,
            }
        }
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The trainer's checkpoint with the tool's bookkeeping (`train_log`, `run`), written atomically.
fn write_checkpoint_to<T: Float>(
    path: &Path,
    trainer: &Trainer<T>,
    accumulator: &LogAccumulator,
    run: &RunConfig,
) -> Result<(), CheckpointError> {
    let mut ck = Checkpoint::from_trainer(trainer);
    ck.extra.insert(
        "train_log".into(),
        serde_json::to_string(accumulator).expect("serialises"),
    );
    ck.extra.insert(
        "run".into(),
        serde_json::to_string(run).expect("serialises"),
    );
    ck.write(path)
}

struct Session<'a, T: Float> {
    plan: &'a Plan,
    trainer: Trainer<T>,
    accumulator: LogAccumulator,
    metrics: std::fs::File,
    last_checkpoint: u64,
}

impl<T: Float> Session<'_, T> {
    fn checkpoint_path(&self) -> PathBuf {
        self.plan.folder.join(CHECKPOINT_FILE)
    }

    fn write_checkpoint(&mut self) -> CliResult<()> {
        write_checkpoint_to(
            &self.checkpoint_path(),
            &self.trainer,
            &self.accumulator,
            &self.plan.run,
        )
        .map_err(|e| CliError::failed(e.to_string()))?;
        self.last_checkpoint = self.trainer.step_count();
        Ok(())
    }

    fn write_line(&mut self, line: &MetricsLine) -> CliResult<()> {
        let mut text = serde_json::to_string(line).expect("serialises");
        text.push('\n');
        self.metrics
            .write_all(text.as_bytes())
            .and_then(|_| self.metrics.flush())
            .map_err(|e| {
                CliError::failed(format!(
                    "{}: cannot write: {e}",
                    self.plan.folder.join(METRICS_FILE).display()
                ))
            })
    }

    /// "interrupted at step N (SIGTERM): checkpoint written to ...; continue with: ...".
    fn report_interruption(&self, signal: i32, during: &str) {
        errln!(
            "interrupted at step {}{during} ({}): checkpoint written to {}; continue with: meanflow train --resume {}",
            self.trainer.step_count(),
            signal_name(signal),
            self.checkpoint_path().display(),
            self.plan.folder.display()
        );
    }

    /// The metrics line of `step` (with the sliced W1 when `evaluate`), written to metrics.jsonl.
    /// A stop signal during the evaluation writes the checkpoint with the line marked pending (the
    /// resumed run writes it first) and ends the process.
    fn log_line(
        &mut self,
        step: u64,
        evaluate: bool,
        steps_per_s: f64,
        evaluation: &Evaluation,
        stop: &StopSignal,
    ) -> CliResult<MetricsLine> {
        let sw1 = evaluate.then(|| {
            let this = &*self;
            let model = this.trainer.config.model;
            let weights = sampling_weights(&this.trainer);
            interruptible(
                stop,
                || evaluation.sw1(model, weights),
                |signal| {
                    let mut pending = this.accumulator.clone();
                    pending.pending_line = true;
                    match write_checkpoint_to(
                        &this.checkpoint_path(),
                        &this.trainer,
                        &pending,
                        &this.plan.run,
                    ) {
                        Ok(()) => {
                            this.report_interruption(signal, " during its evaluation");
                            exit_code_for_signal(signal)
                        }
                        Err(e) => {
                            errln!("error: {e}");
                            EXIT_FAILED
                        }
                    }
                },
            )
        });
        let has_v = self.plan.config.model.heads == Heads::UV;
        let lr = self.plan.config.adam.lr_at(step);
        let line = self
            .accumulator
            .take_line(step, has_v, lr, steps_per_s, sw1);
        self.write_line(&line)?;
        Ok(line)
    }
}

/// Trains; `staging` is the prepared folder of a fresh run (see [`stage_fresh_folder`]), which gets
/// the step-0 checkpoint and becomes the run folder before the first step.
fn train_with<T: Float>(
    mut plan: Plan,
    split: DataSplit,
    staging: Option<PathBuf>,
    stop: &StopSignal,
) -> CliResult<i32> {
    let DataSplit { pool, held_out } = split;
    let trainer = match &plan.resume {
        Some(ck) => ck.trainer::<T>(pool).map_err(usage)?,
        None => Trainer::<T>::new(plan.config, pool),
    };
    if let Some(staging) = staging {
        let cannot = |folder: &Path, e: &dyn Display| {
            CliError::usage(format!(
                "cannot create the run folder {}: {e}",
                folder.display()
            ))
        };
        let written = write_checkpoint_to(
            &staging.join(CHECKPOINT_FILE),
            &trainer,
            &plan.accumulator,
            &plan.run,
        );
        let published = match written {
            Err(CheckpointError::File(TensorFileError::Write { source, .. })) => Err(cannot(
                &plan.folder,
                &format!("{CHECKPOINT_FILE}: {source}"),
            )),
            Err(e) => Err(cannot(&plan.folder, &e)),
            Ok(()) => {
                let lock = plan.lock.as_mut().expect("a staged run holds its lock");
                let mut published = publish_folder(&staging, &plan.folder, lock);
                while matches!(
                    published,
                    Err(PublishError::InUse(_) | PublishError::NotEmpty)
                ) && plan.default_folder
                {
                    // Another run started in the same second under the same default name.
                    plan.folder = next_free_folder(&plan.folder);
                    published = publish_folder(&staging, &plan.folder, lock);
                }
                published.map_err(|e| match e {
                    PublishError::InUse(pid) => {
                        CliError::usage(LockError::InUse { pid }.message(&plan.folder))
                    }
                    PublishError::NotEmpty => CliError::usage(format!(
                        "--out {}: the folder exists and is not empty; choose another, or continue that run with --resume {}",
                        plan.folder.display(),
                        plan.folder.display()
                    )),
                    PublishError::Io(e) => cannot(&plan.folder, &e),
                })
            }
        };
        if let Err(e) = published {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    }
    let plan = &plan;
    let accumulator = plan.accumulator.clone();
    let metrics_path = plan.folder.join(METRICS_FILE);
    let metrics = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| CliError::failed(format!("{}: cannot open: {e}", metrics_path.display())))?;
    let mut session = Session {
        last_checkpoint: trainer.step_count(),
        plan,
        trainer,
        accumulator,
        metrics,
    };

    let run = &plan.run;
    let total = run.steps;
    if run.eval_every > 0 && held_out.nrows() < 2 {
        if let DataSource::File { data, .. } = &plan.source {
            errln!(
                "note: the data file has too few rows for a held-out set ({} rows; a fifth of them are held out, and at least 2 are needed): no evaluation",
                data.nrows()
            );
        }
    }
    let evaluation = Evaluation {
        noise: noise(
            if held_out.nrows() >= 2 {
                held_out.nrows()
            } else {
                run.eval_samples
                    .min(session.trainer.sampler.data.nrows())
                    .max(1)
            },
            plan.config.model.dim,
            &mut Rng::stream(plan.config.seed, STREAM_EVAL_NOISE),
        ),
        held_out,
    };
    let can_eval = evaluation.possible();
    let start_step = session.trainer.step_count();
    errln!(
        "{} {}: {} ({}-D), loss {}, {} parameters, batch {}, steps {}..{}, {}, {} thread{}",
        if plan.resume.is_some() {
            "resuming"
        } else {
            "training"
        },
        plan.folder.display(),
        plan.source.label(),
        plan.config.model.dim,
        run.loss_preset,
        plan.config.model.parameter_count(),
        plan.config.batch,
        start_step,
        total,
        run.precision,
        run.threads,
        if run.threads == 1 { "" } else { "s" }
    );
    let mut progress = Progress::new(start_step, total);
    if session.accumulator.pending_line {
        // A signal stopped the previous session during the evaluation of this step's line.
        let evaluate = can_eval && start_step.checked_rem(run.eval_every) == Some(0);
        session.accumulator.pending_line = false;
        session.log_line(start_step, evaluate, 0.0, &evaluation, stop)?;
        // The checkpoint on disk still says the line is pending.
        session.write_checkpoint()?;
    }
    let session_start = Instant::now();
    let mut interval_start = Instant::now();
    let mut interval_steps = 0u64;
    let mut consecutive_skips = 0u64;

    loop {
        if let Some(signal) = stop.received() {
            // (A checkpoint of this very step is already there when the signal came before the
            // first step: writing a large model's again would only delay the exit.)
            if session.last_checkpoint != session.trainer.step_count() {
                session.write_checkpoint()?;
            }
            progress.finish();
            session.report_interruption(signal, "");
            return Ok(exit_code_for_signal(signal));
        }
        if session.trainer.step_count() >= total {
            break;
        }
        match session.trainer.step() {
            Ok(stats) => {
                consecutive_skips = 0;
                session.accumulator.add(&stats);
                interval_steps += 1;
                let step = stats.step;
                progress.tick(step);
                // Lines fall on a fixed grid of steps (not at the end of a session), so that a
                // run stopped at any step and resumed writes the same lines as one that was not.
                let evaluate = can_eval && run.eval_every > 0 && step % run.eval_every == 0;
                if step % run.log_every == 0 || evaluate {
                    let steps_per_s =
                        interval_steps as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
                    let line = session.log_line(step, evaluate, steps_per_s, &evaluation, stop)?;
                    progress.update(Snapshot {
                        step,
                        loss: line.loss,
                        mse: line.mse,
                        steps_per_s,
                        sw1: line.sw1,
                    });
                    interval_start = Instant::now();
                    interval_steps = 0;
                }
                if run.checkpoint_every > 0 && step % run.checkpoint_every == 0 && step < total {
                    session.write_checkpoint()?;
                }
            }
            Err(e) => {
                if !run.skip_nonfinite {
                    progress.finish();
                    return Err(CliError::failed(format!(
                        "{e}; training stopped. The last good checkpoint (step {}) is {}; --skip-nonfinite skips such steps",
                        session.last_checkpoint,
                        session.checkpoint_path().display()
                    )));
                }
                session.accumulator.skipped += 1;
                consecutive_skips += 1;
                progress.println(&format!("warning: {e}; skipped"));
                if consecutive_skips >= MAX_CONSECUTIVE_SKIPS {
                    progress.finish();
                    return Err(CliError::failed(format!(
                        "{consecutive_skips} non-finite steps in a row (the last: {e}); training stopped. The last good checkpoint (step {}) is {}",
                        session.last_checkpoint,
                        session.checkpoint_path().display()
                    )));
                }
            }
        }
    }
    // The run's last step always has a line (a run shorter than --log-every has one too): the
    // means since the last grid line, whose sums stay in the checkpoint, so that a resume with
    // more --steps drops this line and continues the sums as an uninterrupted run would.
    if session.accumulator.steps > 0 {
        let steps_per_s = interval_steps as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
        let has_v = plan.config.model.heads == Heads::UV;
        let line = session.accumulator.peek_line(
            total,
            has_v,
            plan.config.adam.lr_at(total),
            steps_per_s,
            None,
        );
        session.write_line(&line)?;
        progress.update(Snapshot {
            step: total,
            loss: line.loss,
            mse: line.mse,
            steps_per_s,
            sw1: None,
        });
    }
    progress.finish();
    session.write_checkpoint()?;
    let elapsed = session_start.elapsed().as_secs_f64();
    let done = session.trainer.step_count() - start_step;
    let summary = Summary {
        plan,
        model: session.trainer.config.model,
        weights: sampling_weights(&session.trainer),
        has_ema: session.trainer.ema.is_some(),
        step: session.trainer.step_count(),
        pool: &session.trainer.sampler.data,
        evaluation: &evaluation,
        elapsed,
        done,
    };
    // The checkpoint is written: a signal now only costs the summary and the pictures, which a
    // resume with the same --steps writes again.
    interruptible(
        stop,
        || summary.write(),
        |signal| {
            for picture in [SAMPLES_PNG, LOSS_PNG] {
                let temporary = temporary_name(picture, std::process::id());
                let _ = std::fs::remove_file(plan.folder.join(temporary));
            }
            session.report_interruption(signal, " during the final evaluation and pictures");
            exit_code_for_signal(signal)
        },
    )?;
    Ok(0)
}

/// What the end of a run reports and draws: the closing summary and the pictures.
struct Summary<'a, T: Float> {
    plan: &'a Plan,
    model: ModelConfig,
    weights: &'a MlpParams<T>,
    has_ema: bool,
    step: u64,
    pool: &'a Array2<f64>,
    evaluation: &'a Evaluation,
    elapsed: f64,
    done: u64,
}

impl<T: Float> Summary<'_, T> {
    /// Prints the summary (final sliced W1 against the held-out points) and writes samples.png
    /// and loss.png.
    fn write(&self) -> CliResult<()> {
        let plan = self.plan;
        let (step, done, elapsed) = (self.step, self.done, self.elapsed);
        let held_out = &self.evaluation.held_out;
        let one = mean_flow_samples(self.model, self.weights, &self.evaluation.noise, 1);
        let two = mean_flow_samples(self.model, self.weights, &self.evaluation.noise, 2);
        let pool = self.pool;
        let data = if held_out.nrows() >= 2 {
            held_out.clone()
        } else {
            pool.slice(s![..pool.nrows().min(plan.run.eval_samples), ..])
                .to_owned()
        };
        outln!("run folder: {}", plan.folder.display());
        outln!(
            "steps: {step} ({done} in this session, {}, {:.0} steps/s)",
            format_duration(elapsed),
            done as f64 / elapsed.max(1e-9)
        );
        if held_out.nrows() >= 2 {
            let n = held_out.nrows();
            let sw1_1 = sliced_wasserstein1(one.view(), held_out.view());
            let sw1_2 = sliced_wasserstein1(two.view(), held_out.view());
            let floor = match &plan.source {
                DataSource::Builtin(ds) => {
                    Some(toy_floor(Metric::SlicedW1, ds, n, 1, plan.config.seed))
                }
                DataSource::File { .. } if pool.nrows() >= 2 * n => Some(pool_floor(
                    Metric::SlicedW1,
                    pool.view(),
                    n,
                    1,
                    plan.config.seed,
                )),
                DataSource::File { .. } => None,
            };
            let floor = floor.map_or(String::new(), |f| format!(", data-vs-data floor {f:.4}"));
            let weights = if self.has_ema {
                "EMA weights"
            } else {
                "weights"
            };
            outln!(
                "sliced W1 vs {n} held-out points ({weights}): 1-step {sw1_1:.4}, 2-step {sw1_2:.4}{floor}"
            );
        }

        let title = format!(
            "{} - {} - step {step}",
            plan.source.label(),
            plan.run.loss_preset
        );
        let clouds = [
            Cloud {
                title: "data".into(),
                points: data.view(),
            },
            Cloud {
                title: "1-step samples".into(),
                points: one.view(),
            },
            Cloud {
                title: "2-step samples".into(),
                points: two.view(),
            },
        ];
        let samples_png = plan.folder.join(SAMPLES_PNG);
        pictures::scatter(&samples_png, &title, &clouds).map_err(CliError::failed)?;
        let curves = loss_curves(&plan.folder.join(METRICS_FILE));
        let loss_png = plan.folder.join(LOSS_PNG);
        pictures::chart(&loss_png, &title, "step", "loss", &curves, true)
            .map_err(CliError::failed)?;
        for path in [samples_png, loss_png] {
            outln!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Loss and MSE against step, from metrics.jsonl (all sessions of the run).
fn loss_curves(path: &Path) -> Vec<Curve> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut loss = Vec::new();
    let mut mse = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        if let Some(l) = v.get("loss").and_then(|x| x.as_f64()) {
            loss.push((step, l));
        }
        if let Some(m) = v.get("mse").and_then(|x| x.as_f64()) {
            mse.push((step, m));
        }
    }
    vec![
        Curve {
            name: "loss".into(),
            points: loss,
        },
        Curve {
            name: "MSE".into(),
            points: mse,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_flag() {
        assert_eq!(parse_ema("none").unwrap(), None);
        assert_eq!(parse_ema("0").unwrap(), None);
        assert_eq!(parse_ema("0.99").unwrap(), Some(0.99));
        assert!(parse_ema("1").is_err());
        assert!(parse_ema("x").is_err());
    }

    #[test]
    fn accumulator_means_and_resets() {
        let mut acc = LogAccumulator {
            loss: 3.0,
            mse: 1.5,
            steps: 3,
            ..LogAccumulator::default()
        };
        let line = acc.take_line(10, false, 1e-3, 5.0, None);
        assert_eq!(line.loss, 1.0);
        assert_eq!(line.mse, 0.5);
        assert_eq!(acc, LogAccumulator::default());
    }
}
