//! `meanflow train`: a training run in a run folder, resumable bit for bit.
//!
//! Run folder: `config.json` (every setting, [`RunConfig`]), `metrics.jsonl` (one line per logged
//! step), `checkpoint.safetensors` ([`meanflow::checkpoint`], plus the metrics accumulator under the
//! metadata key `train_log` and the run config under `run`), and at the end `samples.png` and
//! `loss.png`.
//!
//! Random streams (all from `--seed` through `Rng::stream(seed, k)`): 0 initial parameters and
//! 1 training batches (both [`Trainer`]), 2 the training pool (a built-in dataset's
//! `builtin_pool_points` draws, or the permutation that splits a file), 3 the held-out points of a
//! built-in dataset, 4 the noise of the evaluation samples. So the held-out set and the evaluation
//! noise are the same at every evaluation and after a resume.

use super::common::{
    check_output_size, fingerprint, format_duration, parse_dataset, utc_timestamp, write_json,
    DataSource,
};
use super::pictures::{self, Cloud, Curve};
use super::progress::{Progress, Snapshot};
use super::{exit_code_for_signal, signal_name, CliError, CliResult};
use clap::Args;
use meanflow::checkpoint::{Checkpoint, Precision, TrainConfigJson};
use meanflow::data::ToyDataset;
use meanflow::elementwise::Elementwise;
use meanflow::float::Float;
use meanflow::loss::{LossConfig, LossPreset, VSource};
use meanflow::matmul::set_matmul_threads;
use meanflow::metrics::{pool_floor, sliced_wasserstein1, toy_floor, Metric};
use meanflow::model::{Conditioning, Heads, ModelConfig};
use meanflow::optim::AdamConfig;
use meanflow::rng::Rng;
use meanflow::run_config::{DatasetJson, RunConfig, RUN_FORMAT};
use meanflow::sampling::{noise, sample_mean_flow, uniform_schedule};
use meanflow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::train::{builtin_pool_points, StepStats, TrainConfig, Trainer};
use ndarray::{s, Array2, Axis};
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
    #[arg(long, value_name = "DECAY|none")]
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
}

impl LogAccumulator {
    fn add(&mut self, s: &StepStats) {
        self.steps += 1;
        self.loss += s.loss.loss;
        self.loss_u += s.loss.loss_u;
        self.loss_v += s.loss.loss_v.unwrap_or(0.0);
        self.mse += s.loss.mse;
        self.grad_norm += s.update.grad_norm;
    }

    fn take_line(
        &mut self,
        step: u64,
        has_v: bool,
        lr: f64,
        steps_per_s: f64,
        sw1: Option<f64>,
    ) -> MetricsLine {
        let n = self.steps as f64;
        let line = MetricsLine {
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
        };
        *self = LogAccumulator::default();
        line
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
}

fn usage(e: impl Display) -> CliError {
    CliError::usage(e.to_string())
}

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

fn source_from_json(d: &DatasetJson, config_path: &Path) -> CliResult<DataSource> {
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
            let data = meanflow::data::load(path).map_err(usage)?;
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

/// Checks of the run options (periods, threads, evaluation size); the message names the flag.
fn check_run_options(run: &RunConfig, config: &TrainConfig) -> CliResult<()> {
    if run.steps == 0 {
        return Err(CliError::usage("--steps must be at least 1"));
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
    let model = &config.model;
    check_output_size(
        "--eval-samples",
        run.eval_samples,
        model.width.max(model.input_width()),
        "the model's widest layer",
    )
}

fn resolve_fresh(args: &TrainArgs) -> CliResult<Plan> {
    let spec = args.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
    let source = parse_dataset(spec)?;
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
    let precision = match &args.precision {
        Some(p) => p.parse::<Precision>().map_err(usage)?,
        None => Precision::F32,
    };
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
            let base = format!(
                "{}-{}-{}",
                source.label().replace([':', ' ', '/'], "_"),
                preset.name(),
                utc_timestamp()
            );
            let mut folder = Path::new("runs").join(&base);
            let mut k = 2;
            while folder.exists() {
                folder = Path::new("runs").join(format!("{base}-{k}"));
                k += 1;
            }
            folder
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
    })
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
    if let Some(spec) = &args.dataset {
        let given = dataset_json(&parse_dataset(spec)?)?;
        let name = |d: &DatasetJson| match d {
            DatasetJson::Builtin { name } => name.clone(),
            DatasetJson::File { path, .. } => path.clone(),
        };
        same("dataset", Some(name(&given)), name(&run.dataset), file)?;
    }
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
    let accumulator = match ck.extra.get("train_log") {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            CliError::usage(format!("{}: metadata 'train_log': {e}", ck_path.display()))
        })?,
        None => LogAccumulator::default(),
    };
    if ck.config != config || ck.precision != run.precision {
        return Err(CliError::usage(format!(
            "{} does not match {} (a different run's checkpoint?)",
            ck_path.display(),
            config_path.display()
        )));
    }
    let source = source_from_json(&run.dataset, &config_path)?;
    if source.dim() != config.model.dim {
        return Err(CliError::usage(format!(
            "the data have {} columns but the checkpoint's model has dimension {}",
            source.dim(),
            config.model.dim
        )));
    }
    if let Some(s) = args.steps {
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
                    .is_some_and(|s| s <= ck.step)
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
    })
}

/// `meanflow train`.
pub fn run(args: TrainArgs) -> CliResult<i32> {
    let mut plan = match &args.resume {
        Some(folder) => resolve_resume(&args, folder)?,
        None => resolve_fresh(&args)?,
    };
    plan.config.threads = plan.run.threads;
    // Threads split the batch; each runs single-threaded products (set before any product).
    if !set_matmul_threads(1) {
        eprintln!("warning: could not set the matmul thread count to 1");
    }
    let split = split_data(&plan.source, plan.config.seed, plan.run.eval_samples);

    // Everything is checked: now write.
    let staging = match &plan.resume {
        None => Some(stage_fresh_folder(&plan)?),
        Some(_) => {
            remove_stale_temporaries(&plan.folder);
            prepare_folder(&plan, &plan.folder).map_err(|e| CliError::usage(e.message))?;
            None
        }
    };
    match plan.run.precision {
        Precision::F32 => train_with::<f32>(plan, split, staging),
        Precision::F64 => train_with::<f64>(plan, split, staging),
    }
}

/// A fresh run folder is prepared under a hidden sibling name (`.NAME.tmpPID`) and renamed into
/// place once config.json, metrics.jsonl and the step-0 checkpoint are in it, so the folder appears
/// complete or not at all, whenever the process is killed. Returns the staging folder, with
/// config.json and metrics.jsonl written.
fn stage_fresh_folder(plan: &Plan) -> CliResult<PathBuf> {
    let cannot = |e: &dyn Display| {
        CliError::usage(format!(
            "cannot create the run folder {}: {e}",
            plan.folder.display()
        ))
    };
    let target = if plan.folder.exists() {
        std::fs::canonicalize(&plan.folder).map_err(|e| cannot(&e))?
    } else {
        plan.folder.clone()
    };
    let name = target
        .file_name()
        .ok_or_else(|| cannot(&"not a folder name"))?;
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| cannot(&e))?;
    let staging = parent.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    remove_stale_staging(parent, &name.to_string_lossy());
    std::fs::create_dir(&staging).map_err(|e| cannot(&e))?;
    if let Err(e) = prepare_folder(plan, &staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(CliError::usage(e.message));
    }
    Ok(staging)
}

/// Removes the staging folders (`.NAME.tmpPID`) of runs into the same folder whose process was
/// killed during its setup. Only folders that hold nothing but run files are removed. (A run being
/// set up into the same folder at this very moment loses its staging folder and fails, as one of
/// two runs into one folder must.)
fn remove_stale_staging(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.tmp");
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let ours = entry_name
            .strip_prefix(&prefix)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let only_run_files = std::fs::read_dir(entry.path()).is_ok_and(|files| {
            files.flatten().all(|f| {
                let f = f.file_name().to_string_lossy().into_owned();
                RUN_FILES.contains(&f.as_str()) || is_temporary_of_run_file(&f)
            })
        });
        if only_run_files {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The files a run folder holds.
const RUN_FILES: [&str; 5] = [
    CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINT_FILE,
    SAMPLES_PNG,
    LOSS_PNG,
];

/// `.FILE.tmpPID` for one of [`RUN_FILES`]: a temporary file of `write_atomically`.
fn is_temporary_of_run_file(name: &str) -> bool {
    RUN_FILES.iter().any(|f| {
        name.strip_prefix(&format!(".{f}.tmp"))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Renames the complete staging folder to the run folder (replacing the empty folder `--out` may
/// name); where an existing folder cannot be replaced (a mount point), moves the files into it.
fn publish_folder(staging: &Path, folder: &Path) -> std::io::Result<()> {
    match std::fs::rename(staging, folder) {
        Ok(()) => {}
        Err(_) if folder.is_dir() => {
            for name in [METRICS_FILE, CONFIG_FILE, CHECKPOINT_FILE] {
                std::fs::rename(staging.join(name), folder.join(name))?;
            }
            std::fs::remove_dir(staging)?;
        }
        Err(e) => return Err(e),
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

/// config.json and metrics.jsonl (the kept lines, on resume), in `folder`.
fn prepare_folder(plan: &Plan, folder: &Path) -> CliResult<()> {
    write_json(&folder.join(CONFIG_FILE), &plan.run)?;
    let mut text = plan.kept_metrics.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let path = folder.join(METRICS_FILE);
    meanflow::tensor_file::write_atomically(&path, text.as_bytes())
        .map_err(|e| CliError::failed(format!("{}: cannot write the file: {e}", path.display())))
}

/// Samples with the EMA weights when there are some, else the parameters.
fn mean_flow_samples<T: Float>(
    trainer: &Trainer<T>,
    z1: &Array2<f64>,
    steps: usize,
) -> Array2<f64> {
    let weights = trainer.ema.as_ref().unwrap_or(&trainer.params);
    let z = z1.mapv(T::from_f64);
    sample_mean_flow(
        trainer.config.model,
        weights,
        z.view(),
        &uniform_schedule(steps),
    )
    .mapv(|x| x.to_f64())
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

/// The first stop signal asks the training loop to finish its step, write the checkpoint and exit
/// with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM); a second one exits at once
/// with that code (every file is written atomically, so nothing is left half written).
struct StopSignal {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl StopSignal {
    fn install() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in STOP_SIGNALS {
            // The actions run in this order: the shutdown fires only once `stop` is set, which the
            // first signal does after it has looked.
            let installed = signal_hook::flag::register_conditional_shutdown(
                sig,
                exit_code_for_signal(sig),
                stop.clone(),
            )
            .and_then(|_| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
            if let Err(e) = installed {
                eprintln!(
                    "warning: cannot catch {} ({e}); an interruption will lose the steps since the last checkpoint",
                    signal_name(sig)
                );
            }
        }
        StopSignal { stop, signal }
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

/// The trainer's checkpoint with the tool's bookkeeping (`train_log`, `run`), written atomically.
fn write_checkpoint_to<T: Float>(
    path: &Path,
    trainer: &Trainer<T>,
    accumulator: &LogAccumulator,
    run: &RunConfig,
) -> CliResult<()> {
    let mut ck = Checkpoint::from_trainer(trainer);
    ck.extra.insert(
        "train_log".into(),
        serde_json::to_string(accumulator).expect("serialises"),
    );
    ck.extra.insert(
        "run".into(),
        serde_json::to_string(run).expect("serialises"),
    );
    ck.write(path).map_err(|e| CliError::failed(e.to_string()))
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
        )?;
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
}

/// Trains; `staging` is the prepared folder of a fresh run (see [`stage_fresh_folder`]), which gets
/// the step-0 checkpoint and becomes the run folder before the first step.
fn train_with<T: Float>(plan: Plan, split: DataSplit, staging: Option<PathBuf>) -> CliResult<i32> {
    let DataSplit { pool, held_out } = split;
    let trainer = match &plan.resume {
        Some(ck) => ck.trainer::<T>(pool).map_err(usage)?,
        None => Trainer::<T>::new(plan.config, pool),
    };
    if let Some(staging) = staging {
        let published = write_checkpoint_to(
            &staging.join(CHECKPOINT_FILE),
            &trainer,
            &plan.accumulator,
            &plan.run,
        )
        .and_then(|_| {
            publish_folder(&staging, &plan.folder).map_err(|e| {
                CliError::failed(format!(
                    "cannot create the run folder {}: {e}",
                    plan.folder.display()
                ))
            })
        });
        if let Err(e) = published {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    }
    let accumulator = plan.accumulator.clone();
    let metrics_path = plan.folder.join(METRICS_FILE);
    let metrics = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| CliError::failed(format!("{}: cannot open: {e}", metrics_path.display())))?;
    let mut session = Session {
        last_checkpoint: trainer.step_count(),
        plan: &plan,
        trainer,
        accumulator,
        metrics,
    };

    let stop = StopSignal::install();
    let run = &plan.run;
    let total = run.steps;
    let has_v = plan.config.model.heads == Heads::UV;
    let can_eval = held_out.nrows() >= 2;
    if run.eval_every > 0 && !can_eval {
        eprintln!(
            "note: the data file has too few rows for a held-out set ({} rows): no evaluation",
            plan.source.label()
        );
    }
    let eval_noise: Array2<f64> = noise(
        run.eval_samples.max(1),
        plan.config.model.dim,
        &mut Rng::stream(plan.config.seed, STREAM_EVAL_NOISE),
    );
    let start_step = session.trainer.step_count();
    eprintln!(
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
    let session_start = Instant::now();
    let mut interval_start = Instant::now();
    let mut interval_steps = 0u64;
    let mut consecutive_skips = 0u64;

    while session.trainer.step_count() < total {
        match session.trainer.step() {
            Ok(stats) => {
                consecutive_skips = 0;
                session.accumulator.add(&stats);
                interval_steps += 1;
                let step = stats.step;
                progress.tick(step);
                // Lines fall on a fixed grid of steps (not at the end of a session), so that a
                // run stopped at any step and resumed writes the same lines as one that was not.
                let eval_now = can_eval && run.eval_every > 0 && step % run.eval_every == 0;
                if step % run.log_every == 0 || eval_now {
                    let steps_per_s =
                        interval_steps as f64 / interval_start.elapsed().as_secs_f64().max(1e-9);
                    let sw1 = eval_now.then(|| {
                        let samples = mean_flow_samples(&session.trainer, &eval_noise, 1);
                        sliced_wasserstein1(samples.view(), held_out.view())
                    });
                    let lr = plan.config.adam.lr_at(step);
                    let line = session
                        .accumulator
                        .take_line(step, has_v, lr, steps_per_s, sw1);
                    session.write_line(&line)?;
                    progress.update(Snapshot {
                        step,
                        loss: line.loss,
                        mse: line.mse,
                        steps_per_s,
                        sw1,
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
        if let Some(signal) = stop.received() {
            session.write_checkpoint()?;
            progress.finish();
            eprintln!(
                "interrupted at step {} ({}): checkpoint written to {}; continue with: meanflow train --resume {}",
                session.trainer.step_count(),
                signal_name(signal),
                session.checkpoint_path().display(),
                plan.folder.display()
            );
            return Ok(exit_code_for_signal(signal));
        }
    }
    progress.finish();
    session.write_checkpoint()?;
    let elapsed = session_start.elapsed().as_secs_f64();
    let done = session.trainer.step_count() - start_step;
    finish(&session, &held_out, &eval_noise, elapsed, done)?;
    Ok(0)
}

/// Pictures and the closing summary.
fn finish<T: Float>(
    session: &Session<T>,
    held_out: &Array2<f64>,
    eval_noise: &Array2<f64>,
    elapsed: f64,
    done: u64,
) -> CliResult<()> {
    let plan = session.plan;
    let trainer = &session.trainer;
    let one = mean_flow_samples(trainer, eval_noise, 1);
    let two = mean_flow_samples(trainer, eval_noise, 2);
    let pool = &trainer.sampler.data;
    let data = if held_out.nrows() >= 2 {
        held_out.clone()
    } else {
        pool.slice(s![..pool.nrows().min(plan.run.eval_samples), ..])
            .to_owned()
    };

    let mut out = std::io::stdout().lock();
    let step = trainer.step_count();
    let _ = writeln!(out, "run folder: {}", plan.folder.display());
    let _ = writeln!(
        out,
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
        let weights = if trainer.ema.is_some() {
            "EMA weights"
        } else {
            "weights"
        };
        let _ = writeln!(
            out,
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
    pictures::chart(&loss_png, &title, "step", "loss", &curves, true).map_err(CliError::failed)?;
    for path in [samples_png, loss_png] {
        let _ = writeln!(out, "wrote {}", path.display());
    }
    Ok(())
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
