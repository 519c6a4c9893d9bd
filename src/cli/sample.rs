//! `meanflow sample`: points from a checkpoint, by mean-flow steps or the Euler baseline.
//!
//! Noise z_1 ~ N(0, I) from `Rng::seed_from_u64(--seed)`, n rows of d normals. `--steps K`: the
//! average-velocity map on the uniform schedule 1, 1 - 1/K, ..., 0 (K = 1 is one step,
//! x = z_1 - u(z_1, 0, 1)). `--euler K`: K Euler steps of dz/dt = u(z, t, t) (the flow-matching
//! baseline). Computed in the checkpoint's precision, with the EMA weights when the checkpoint has
//! them (as train's summary and samples.png are), the raw weights with `--raw` or when it has none.
//!
//! A class-conditional model samples the classes `--class` names (`3`, `0,4,7` or `all`: the n
//! samples in consecutive blocks of near-equal size, one block per class in the order given;
//! none: the null class, unconditional samples), at the guidance scale `--guidance W` when it was
//! trained with guidance as an input. Samples are written in the data's units (the digits'
//! pixels 0..16); `--png` of a model of the digits draws them as images, ten per row, beside real
//! held-out digits of the same classes.

use super::common::{
    check_not_an_input, check_output_size, check_png_output, check_point_output, count, number,
    same_file, save_points, MAX_OUTPUT_VALUES,
};
use super::output::outln;
use super::pictures::{self, Cloud};
use super::{CliError, CliResult};
use clap::Args;
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::flow::sampling::{
    noise, sample_euler_flow_under, sample_mean_flow_under, uniform_schedule, Conditions,
};
use meanflow::linalg::float::Float;
use meanflow::rng::Rng;
use meanflow::run::checkpoint::{model_units, trained_on_digits};
use meanflow::run::pictures::{ImageGrid, DIGITS_IMAGE_STYLE, GRID_COLUMNS};
use meanflow::train::checkpoint::{Checkpoint, Precision};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// The most sampling steps (`--steps`, `--euler`).
const MAX_SAMPLING_STEPS: usize = 1 << 20;

/// The most samples (`--n`); n x the model's widest layer has its own cap,
/// [`MAX_OUTPUT_VALUES`].
const MAX_SAMPLES: usize = MAX_OUTPUT_VALUES;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Checkpoint file (checkpoint.safetensors of a run folder)
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Number of samples, 1 to 2^28 (and n x the widest layer at most 2^28)
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000, value_parser = count::<usize>(1, MAX_SAMPLES as u64))]
    pub n: usize,
    #[command(flatten)]
    pub method: MethodArgs,
    /// Use the EMA weights (the default when the checkpoint has them; an error when it has none)
    #[arg(long, conflicts_with = "raw")]
    pub ema: bool,
    /// Use the raw weights instead of the EMA weights
    #[arg(long)]
    pub raw: bool,
    /// Output file, .csv or .npy
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also draw the samples into this PNG
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Seed of the noise
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
    /// Classes of a conditional model: K, a list K1,K2,..., or all (in consecutive blocks) [default: the null class, unconditional]
    #[arg(long, value_name = "K|K1,K2,...|all")]
    pub class: Option<String>,
    /// Guidance scale W in [1, 1 + WMAX] of a model trained with guidance as an input (--guidance input:WMAX) [default: 1, none]
    #[arg(long, allow_hyphen_values = true, value_name = "W", value_parser = number)]
    pub guidance: Option<f64>,
    /// Guidance interval A,B given to a model trained with --guidance input:WMAX --guidance-interval random: the network applies W for A <= t <= B (iMF's, e.g. 0.4,0.65 at 1 step) [default: 0,1]
    #[arg(long, allow_hyphen_values = true, value_name = "A,B")]
    pub interval: Option<String>,
}

/// `--class`: the classes in order, each below `classes`.
pub(super) fn parse_classes(text: &str, classes: usize) -> CliResult<Vec<usize>> {
    if classes == 0 {
        return Err(CliError::usage(format!(
            "--class {text}: the model is not class-conditional"
        )));
    }
    if text.trim() == "all" {
        return Ok((0..classes).collect());
    }
    text.split(',')
        .map(|k| match k.trim().parse::<usize>() {
            Ok(c) if c < classes => Ok(c),
            _ => Err(CliError::usage(format!(
                "--class {text}: '{k}' is not a class of the model (0 to {})",
                classes - 1
            ))),
        })
        .collect()
}

/// Refuses fewer samples than the classes `--class` names (`text`): some would get none.
pub(super) fn check_every_class_sampled(text: &str, order: &[usize], n: usize) -> CliResult<()> {
    if n >= order.len() {
        return Ok(());
    }
    let named = if text.trim() == "all" {
        format!("the {} classes of --class all", order.len())
    } else {
        format!("the {} classes --class {text} names", order.len())
    };
    Err(CliError::usage(format!(
        "--n {n} is fewer than {named}: some classes would get no sample; ask for --n {} or more",
        order.len()
    )))
}

/// The class of each of `n` samples: `order` in consecutive blocks of near-equal size.
pub(super) fn class_blocks(order: &[usize], n: usize) -> Vec<usize> {
    (0..n).map(|i| order[i * order.len() / n]).collect()
}

pub(super) fn generate<T: Float>(
    model: ModelConfig,
    weights: &MlpParams<f64>,
    n: usize,
    seed: u64,
    method: Method,
    conditions: Conditions,
) -> Array2<f64> {
    let params = weights.cast::<T>();
    let z1 = noise::<T>(n, model.dim, &mut Rng::seed_from_u64(seed));
    let x = match method {
        Method::MeanFlow(k) => {
            sample_mean_flow_under(model, &params, z1.view(), &uniform_schedule(k), conditions)
        }
        Method::Euler(k) => sample_euler_flow_under(model, &params, z1.view(), k, conditions),
    };
    x.mapv(|v| v.to_f64())
}

/// The guidance scale to sample at: `--guidance`, which only a model with a guidance input takes
/// (other than 1); the message says how the model was trained.
pub(super) fn guidance_scale(given: Option<f64>, ck: &Checkpoint, path: &Path) -> CliResult<f64> {
    let Some(w) = given else { return Ok(1.0) };
    if !(w >= 1.0 && w.is_finite()) {
        return Err(CliError::usage(format!(
            "--guidance {w}: the scale must be finite and >= 1 (1: no guidance)"
        )));
    }
    let model = ck.config.model;
    // A model with a guidance input has seen the scales [1, 1 + w_max] only.
    if let Some((lo, hi)) = ck.config.loss.guidance.trained_scales() {
        if w > hi {
            return Err(CliError::usage(format!(
                "--guidance {w}: {}: outside [{lo}, {hi}], the scales the model was trained on (--guidance input:{})",
                path.display(),
                hi - lo
            )));
        }
    }
    if model.guidance_input || w == 1.0 {
        return Ok(w);
    }
    let why = match ck.config.loss.guidance.effective_target_scale() {
        Some(trained) => format!(
            "it was trained with its guidance in the target (--guidance target), so its one step samples scale {trained} (w / (1 - kappa)) and only that"
        ),
        None if model.classes > 0 => {
            "it was trained without guidance; train with --guidance input:WMAX to choose the scale when sampling".to_string()
        }
        None => "the model is not class-conditional".to_string(),
    };
    Err(CliError::usage(format!(
        "--guidance {w}: {}: {why}",
        path.display()
    )))
}

/// The guidance interval to sample with: `--interval A,B`, which only a model with the interval
/// input takes (iMF's, trained with `--guidance-interval random`), 0 <= A < B <= 1; [0, 1] when
/// not given.
pub(super) fn guidance_interval(
    given: Option<&str>,
    ck: &Checkpoint,
    path: &Path,
) -> CliResult<[f64; 2]> {
    let Some(text) = given else {
        return Ok([0.0, 1.0]);
    };
    let bad = |why: String| CliError::usage(format!("--interval {text}: {why}"));
    let interval = match text.split(',').collect::<Vec<_>>().as_slice() {
        [a, b] => {
            let number = |s: &str| number(s.trim()).map_err(bad);
            [number(a)?, number(b)?]
        }
        _ => return Err(bad("expected two times A,B such as 0.4,0.65".into())),
    };
    let [a, b] = interval;
    if !(0.0 <= a && a < b && b <= 1.0) {
        return Err(bad("the interval must satisfy 0 <= A < B <= 1".into()));
    }
    if !ck.config.model.guidance_interval_input {
        return Err(bad(format!(
            "{}: the model does not take a guidance interval (train with --guidance input:WMAX --guidance-interval random)",
            path.display()
        )));
    }
    Ok(interval)
}

/// How samples are drawn: `--steps K` mean-flow steps or `--euler K` (shared by `sample` and
/// `quality`).
#[derive(Args, Debug)]
pub struct MethodArgs {
    /// Mean-flow steps on a uniform schedule (1: one step), 1 to 2^20
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = count::<usize>(1, MAX_SAMPLING_STEPS as u64))]
    pub steps: usize,
    /// Instead: the flow-matching baseline, K Euler steps of the velocity u(z, t, t), 1 to 2^20
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "K",
        conflicts_with = "steps",
        value_parser = count::<usize>(1, MAX_SAMPLING_STEPS as u64)
    )]
    pub euler: Option<usize>,
}

impl MethodArgs {
    /// The method the flags name, each count between 1 and [`MAX_SAMPLING_STEPS`].
    pub(super) fn method(&self) -> CliResult<Method> {
        let (flag, k) = match self.euler {
            Some(k) => ("--euler", k),
            None => ("--steps", self.steps),
        };
        if k == 0 {
            return Err(CliError::usage(format!("{flag} must be at least 1")));
        }
        if k > MAX_SAMPLING_STEPS {
            return Err(CliError::usage(format!(
                "{flag} must be at most {MAX_SAMPLING_STEPS}, got {k}"
            )));
        }
        Ok(match self.euler {
            Some(_) => Method::Euler(k),
            None => Method::MeanFlow(k),
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Method {
    MeanFlow(usize),
    Euler(usize),
}

/// `meanflow sample`.
pub fn run(args: SampleArgs) -> CliResult<i32> {
    if args.n == 0 {
        return Err(CliError::usage("--n must be at least 1"));
    }
    let method = args.method.method()?;
    // Whether an output is an input first: that is the clearer message when both apply.
    let inputs = [("--checkpoint", args.checkpoint.as_path())];
    check_not_an_input(&args.out, "--out", &inputs)?;
    let format = check_point_output(&args.out, "--out")?;
    if let Some(png) = &args.png {
        check_not_an_input(png, "--png", &inputs)?;
        check_png_output(png, "--png")?;
        if png == &args.out || same_file(png, &args.out) {
            return Err(CliError::usage(format!(
                "--png {}: is the --out file too; give two files",
                png.display()
            )));
        }
    }
    let ck = Checkpoint::read(&args.checkpoint).map_err(|e| CliError::usage(e.to_string()))?;
    let use_ema = !args.raw && (args.ema || ck.ema.is_some());
    let weights = ck.weights(use_ema).ok_or_else(|| {
        CliError::usage(format!(
            "{}: the checkpoint has no EMA weights (trained with --ema none); drop --ema",
            args.checkpoint.display()
        ))
    })?;
    let model = ck.config.model;
    check_output_size(
        "--n",
        args.n,
        model.width.max(model.input_width()),
        "the model's widest layer",
    )?;
    let guidance = guidance_scale(args.guidance, &ck, &args.checkpoint)?;
    let interval = guidance_interval(args.interval.as_deref(), &ck, &args.checkpoint)?;
    let labels = match &args.class {
        Some(text) => {
            let order = parse_classes(text, model.classes)?;
            check_every_class_sampled(text, &order, args.n)?;
            Some(class_blocks(&order, args.n))
        }
        None => None,
    };
    let conditions = Conditions {
        labels: labels.clone(),
        guidance,
        interval,
    };
    let x = match ck.precision {
        Precision::F32 => generate::<f32>(model, weights, args.n, args.seed, method, conditions),
        Precision::F64 => generate::<f64>(model, weights, args.n, args.seed, method, conditions),
    };
    let units = model_units(&ck);
    let x = units.to_data(x.view());
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(CliError::failed(format!(
            "the model produced a non-finite sample ({bad}); nothing written"
        )));
    }
    save_points(&args.out, format, x.view())?;
    let how = match method {
        Method::MeanFlow(1) => "1 mean-flow step".to_string(),
        Method::MeanFlow(k) => format!("{k} mean-flow steps"),
        Method::Euler(k) => format!("{k} Euler steps of the velocity"),
    };
    let weights_name = if use_ema {
        "EMA weights"
    } else {
        "raw weights"
    };
    let conditioned = match (&args.class, model.classes) {
        (_, 0) => String::new(),
        (Some(text), _) => format!(", classes {text}, guidance {guidance}"),
        (None, _) => format!(", null class, guidance {guidance}"),
    } + &match (args.interval.is_some(), interval) {
        (true, [a, b]) => format!(" in [{a}, {b}]"),
        (false, _) => String::new(),
    };
    outln!(
        "wrote {} samples ({}-D, {how}, {weights_name}, step {}{conditioned}) to {}",
        args.n,
        model.dim,
        ck.step,
        args.out.display()
    );
    if let Some(png) = &args.png {
        let title = format!("{how}{conditioned}, step {}", ck.step);
        if trained_on_digits(&ck) {
            let grid = digit_grid(x, labels.as_deref());
            grid.write(png, &title, "samples")
                .map_err(|e| CliError::failed(format!("{}: {e}", png.display())))?;
            outln!("wrote {}", png.display());
            return Ok(0);
        }
        let cloud = [Cloud {
            title: "samples".into(),
            points: x.view(),
        }];
        pictures::scatter(png, &title, &cloud).map_err(CliError::failed)?;
        outln!("wrote {}", png.display());
    }
    Ok(0)
}

/// The samples of a digits model as images, ten per row, beside real held-out digits: of the
/// class of the row's first sample for a conditional model, else the held-out digits in order.
fn digit_grid(samples: Array2<f64>, labels: Option<&[usize]>) -> ImageGrid {
    let (_, held_out) = meanflow::data::digits_split();
    let rows = samples.nrows().div_ceil(GRID_COLUMNS);
    let row_classes: Vec<Option<usize>> = (0..rows)
        .map(|row| labels.map(|l| l[row * GRID_COLUMNS]))
        .collect();
    ImageGrid::beside_real(
        samples,
        held_out.points.view(),
        &held_out.labels,
        &row_classes,
        DIGITS_IMAGE_STYLE,
    )
}
