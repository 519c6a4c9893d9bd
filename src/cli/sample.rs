//! `meanflow sample`: points from a checkpoint, by mean-flow steps or the Euler baseline.
//!
//! Noise z_1 ~ N(0, I) from `Rng::seed_from_u64(--seed)`, n rows of d normals. `--steps K`: the
//! average-velocity map on the uniform schedule 1, 1 - 1/K, ..., 0 (K = 1 is one step,
//! x = z_1 - u(z_1, 0, 1)). `--euler K`: K Euler steps of dz/dt = u(z, t, t) (the flow-matching
//! baseline). Computed in the checkpoint's precision, with the EMA weights when the checkpoint has
//! them (as train's summary and samples.png are), the raw weights with `--raw` or when it has none.

use super::common::{
    check_not_an_input, check_output_size, check_png_output, check_point_output, same_file,
    save_points,
};
use super::output::outln;
use super::pictures::{self, Cloud};
use super::{CliError, CliResult};
use clap::Args;
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::flow::sampling::{noise, sample_euler_flow, sample_mean_flow, uniform_schedule};
use meanflow::linalg::float::Float;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::{Checkpoint, Precision};
use ndarray::Array2;
use std::path::PathBuf;

/// The most sampling steps (`--steps`, `--euler`).
const MAX_SAMPLING_STEPS: usize = 1 << 20;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Checkpoint file (checkpoint.safetensors of a run folder)
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Number of samples
    #[arg(long, allow_negative_numbers = true, default_value_t = 1000)]
    pub n: usize,
    /// Mean-flow steps on a uniform schedule (1: one step)
    #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
    pub steps: usize,
    /// Instead: the flow-matching baseline, K Euler steps of the velocity u(z, t, t)
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "K",
        conflicts_with = "steps"
    )]
    pub euler: Option<usize>,
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
}

fn generate<T: Float>(
    model: ModelConfig,
    weights: &MlpParams<f64>,
    n: usize,
    seed: u64,
    method: Method,
) -> Array2<f64> {
    let params = weights.cast::<T>();
    let z1 = noise::<T>(n, model.dim, &mut Rng::seed_from_u64(seed));
    let x = match method {
        Method::MeanFlow(k) => sample_mean_flow(model, &params, z1.view(), &uniform_schedule(k)),
        Method::Euler(k) => sample_euler_flow(model, &params, z1.view(), k),
    };
    x.mapv(|v| v.to_f64())
}

#[derive(Clone, Copy, Debug)]
enum Method {
    MeanFlow(usize),
    Euler(usize),
}

/// `meanflow sample`.
pub fn run(args: SampleArgs) -> CliResult<i32> {
    if args.n == 0 {
        return Err(CliError::usage("--n must be at least 1"));
    }
    let method = match args.euler {
        Some(0) => return Err(CliError::usage("--euler must be at least 1")),
        Some(k) if k > MAX_SAMPLING_STEPS => {
            return Err(CliError::usage(format!(
                "--euler must be at most {MAX_SAMPLING_STEPS}, got {k}"
            )))
        }
        Some(k) => Method::Euler(k),
        None if args.steps == 0 => return Err(CliError::usage("--steps must be at least 1")),
        None if args.steps > MAX_SAMPLING_STEPS => {
            return Err(CliError::usage(format!(
                "--steps must be at most {MAX_SAMPLING_STEPS}, got {}",
                args.steps
            )))
        }
        None => Method::MeanFlow(args.steps),
    };
    let format = check_point_output(&args.out, "--out")?;
    let inputs = [("--checkpoint", args.checkpoint.as_path())];
    check_not_an_input(&args.out, "--out", &inputs)?;
    if let Some(png) = &args.png {
        check_png_output(png, "--png")?;
        check_not_an_input(png, "--png", &inputs)?;
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
    let x = match ck.precision {
        Precision::F32 => generate::<f32>(model, weights, args.n, args.seed, method),
        Precision::F64 => generate::<f64>(model, weights, args.n, args.seed, method),
    };
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
    outln!(
        "wrote {} samples ({}-D, {how}, {weights_name}, step {}) to {}",
        args.n,
        model.dim,
        ck.step,
        args.out.display()
    );
    if let Some(png) = &args.png {
        let title = format!("{how}, step {}", ck.step);
        let cloud = [Cloud {
            title: "samples".into(),
            points: x.view(),
        }];
        pictures::scatter(png, &title, &cloud).map_err(CliError::failed)?;
        outln!("wrote {}", png.display());
    }
    Ok(0)
}
