//! The options of `meanflow train` and their defaults. Some defaults depend on --loss; a resumed
//! run keeps its stored settings, so every option is optional here.

use crate::cli::common::{count, number};
use clap::Args;
use meanflow::flow::loss::LossPreset;
use meanflow::flow::model::Architecture;
use meanflow::train::checkpoint::MAX_STEPS;
use meanflow::train::MAX_DEPTH;
use std::path::PathBuf;

/// Default number of steps: the default run took 97 s (311 steps/s, 1 thread) on the 2-core
/// development machine, under the two-minute budget (see docs/cli.md).
pub const DEFAULT_STEPS: u64 = 30_000;
/// Default steps on the digits: 15000 steps of 3 residual blocks of width 256, about 4 min on one
/// core (docs/quality.md, sweep 3).
pub const DEFAULT_DIGITS_STEPS: u64 = 15_000;
/// Default width on the digits (64-D): 128 units leave the 1-step samples blurred (docs/cli.md).
pub const DEFAULT_DIGITS_WIDTH: usize = 256;
/// Default trunk on the digits: residual blocks that see the times and the class in every block.
/// docs/quality.md, sweep 3: one-step Fréchet 2.84 after 13000 steps against 5.76 for the 3 x 256
/// MLP after 50000 (seed 0).
pub const DEFAULT_DIGITS_ARCHITECTURE: Architecture = Architecture::Residual;
pub const DEFAULT_DATASET: &str = "two_moons";
pub const DEFAULT_LOSS: LossPreset = LossPreset::Imf;
pub const DEFAULT_WIDTH: usize = 128;
pub const DEFAULT_DEPTH: usize = 3;
pub const DEFAULT_BATCH: usize = 256;
pub const DEFAULT_EMA: f64 = 0.999;
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 5_000;
pub const DEFAULT_EVAL_EVERY: u64 = 5_000;
pub const DEFAULT_EVAL_SAMPLES: usize = 2_000;
pub const DEFAULT_LOG_EVERY: u64 = 100;
/// The width of a class embedding.
pub const DEFAULT_CLASS_DIM: usize = 32;
/// The probability that a row's label is dropped to the null class, on labelled data.
pub const DEFAULT_LABEL_DROPOUT: f64 = 0.1;

/// The ranges of the count flags (docs/cli.md), checked when the flags are read; a model's size
/// (parameters, activation buffers) and the evaluation's (`--eval-samples` x the widest layer)
/// have their own checks on top.
pub const MAX_WIDTH: u64 = 1 << 20;
pub const MAX_BATCH: u64 = 1 << 24;
pub const MAX_CLASS_DIM: u64 = 1 << 16;
pub const MAX_EVAL_SAMPLES: u64 = 1 << 24;
pub const MAX_THREADS: u64 = 256;

/// Options of `meanflow train`. Some defaults depend on --loss.
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// Built-in dataset name (digits: the labelled 8x8 digits), or a CSV / NPY file of points [default: two_moons]
    #[arg(long, value_name = "NAME|FILE")]
    pub dataset: Option<String>,
    /// The column of a CSV / NPY file that holds each point's class, 0-based (negative: from the end); the model is class-conditional
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    pub label_column: Option<isize>,
    /// Train an unconditional model on labelled data (the labels are not used)
    #[arg(long)]
    pub unconditional: bool,
    /// Train a data file in its own units instead of standardising each column (mean 0, deviation 1 over the training pool; samples are mapped back)
    #[arg(long)]
    pub no_standardize: bool,
    /// Width of the class embedding of a conditional model [default: 32]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(1, MAX_CLASS_DIM))]
    pub class_dim: Option<usize>,
    /// Probability that a row's label is dropped to the null class, which trains the unconditional model guidance needs [default: 0.1]
    #[arg(long, allow_hyphen_values = true, value_name = "P", value_parser = number)]
    pub label_dropout: Option<f64>,
    /// Guidance in training: none; target:W[:KAPPA] (MF's, fixed scale W in the target); input:WMAX (iMF's, scale drawn in [1, 1 + WMAX] and given to the network, chosen when sampling) [default: none]
    #[arg(long, value_name = "none|target:W[:KAPPA]|input:WMAX")]
    pub guidance: Option<String>,
    /// Guidance interval. With target:W, T_MIN,T_MAX: the target is guided only on rows with T_MIN <= t <= T_MAX, v_c elsewhere (MF's, Gsunshine/meanflow). With input:WMAX, random: each row draws t_min ~ U[0, 0.5], t_max ~ U[0.5, 1] (r = t rows [0, 1]), given to the network with w; choose it when sampling with --interval (iMF's, Lyy-iiis/imeanflow) [default: every t]
    #[arg(long, value_name = "T_MIN,T_MAX|random")]
    pub guidance_interval: Option<String>,
    /// Loss preset: mf, imf or imf-head [default: imf]
    #[arg(long, value_name = "mf|imf|imf-head")]
    pub loss: Option<String>,
    /// Tangent blend in [0, 1]: 0 = MF, 1 = iMF [default: mf 0, imf 1]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub beta: Option<f64>,
    /// Source of the iMF velocity: boundary (u(z, t, t)) or head (the v-head) [default: head for imf-head, else boundary]
    #[arg(long, value_name = "boundary|head")]
    pub v_source: Option<String>,
    /// Keep the gradient through dudt (reverse over forward; slower, tape engine)
    #[arg(long)]
    pub exact: bool,
    /// Adaptive-weight power p >= 0; 0 is plain squared error [default: 0]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub p: Option<f64>,
    /// Adaptive-weight offset c > 0 [default: 1e-3]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub c: Option<f64>,
    /// Distribution of the times [default: logit-normal]
    #[arg(long, value_name = "logit-normal|uniform")]
    pub time_dist: Option<String>,
    /// Logit-normal mean [default: -0.4]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub time_mu: Option<f64>,
    /// Logit-normal standard deviation > 0 [default: 1.0]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub time_sigma: Option<f64>,
    /// r's own logit-normal mean: r = min(s_r, t), s_r ~ logit-normal(MU, --r-time-sigma), as py-meanflow draws it [default: r and t from one distribution, ordered]
    #[arg(long, allow_hyphen_values = true, value_name = "MU", value_parser = number)]
    pub r_time_mu: Option<f64>,
    /// r's own logit-normal standard deviation (with --r-time-mu; alone: r's mean is t's) [default: t's]
    #[arg(long, allow_hyphen_values = true, value_name = "SIGMA", value_parser = number)]
    pub r_time_sigma: Option<f64>,
    /// Fraction of rows with r = t, in [0, 1] [default: mf 0.75, imf 0.5]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub frac_equal: Option<f64>,
    /// Hidden width [default: 128; digits: 256]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(1, MAX_WIDTH))]
    pub width: Option<usize>,
    /// Number of hidden layers (mlp) or residual blocks (resmlp) [default: 3]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(1, MAX_DEPTH as u64))]
    pub depth: Option<usize>,
    /// The trunk: mlp, or resmlp (residual blocks with layer norm that see the times and labels in every block) [default: mlp; digits: resmlp]
    #[arg(long, value_name = "mlp|resmlp")]
    pub architecture: Option<String>,
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
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(1, MAX_BATCH))]
    pub batch: Option<usize>,
    /// Total optimizer steps of the run [default: 30000; digits: 15000]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>(1, MAX_STEPS))]
    pub steps: Option<u64>,
    /// Learning rate [default: 1e-3]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub lr: Option<f64>,
    /// Linear warm-up steps [default: 0]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>(0, MAX_STEPS))]
    pub warmup: Option<u64>,
    /// Adam beta1 [default: 0.9]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub beta1: Option<f64>,
    /// Adam beta2 [default: 0.999]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub beta2: Option<f64>,
    /// Decoupled weight decay [default: 0]
    #[arg(long, allow_hyphen_values = true, value_parser = number)]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm to this [default: none]
    #[arg(long, allow_hyphen_values = true, value_name = "NORM", value_parser = number)]
    pub clip: Option<f64>,
    /// EMA decay of the weights, or 0 / none to disable [default: 0.999]
    #[arg(long, allow_hyphen_values = true, value_name = "DECAY|none")]
    pub ema: Option<String>,
    /// Seed of every random stream [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Threads: the batch is split into this many shards computed in parallel [default: 1]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(1, MAX_THREADS))]
    pub threads: Option<usize>,
    /// Storage precision [default: f32]
    #[arg(long, value_name = "f32|f64")]
    pub precision: Option<String>,
    /// Run folder [default: runs/<dataset>-<loss>-<UTC time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write the checkpoint every this many steps (0: only at the end and on interruption) [default: 5000]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS", value_parser = count::<u64>(0, MAX_STEPS))]
    pub checkpoint_every: Option<u64>,
    /// Continue the run in this folder up to --steps
    #[arg(long, value_name = "RUN_FOLDER")]
    pub resume: Option<PathBuf>,
    /// Sliced W1 of 1-step samples vs held-out data every this many steps (0: never) [default: 5000]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS", value_parser = count::<u64>(0, MAX_STEPS))]
    pub eval_every: Option<u64>,
    /// Points per evaluation (samples and held-out data) [default: 2000]
    #[arg(long, allow_negative_numbers = true, value_name = "N", value_parser = count::<usize>(0, MAX_EVAL_SAMPLES))]
    pub eval_samples: Option<usize>,
    /// Write a metrics line every this many steps [default: 100]
    #[arg(long, allow_negative_numbers = true, value_name = "STEPS", value_parser = count::<u64>(1, MAX_STEPS))]
    pub log_every: Option<u64>,
    /// Skip steps with a non-finite loss or gradient instead of stopping
    #[arg(long)]
    pub skip_nonfinite: bool,
}
