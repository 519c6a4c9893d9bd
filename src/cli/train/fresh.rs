//! A fresh run from the flags: the settings (flag, else the --loss preset's default, else the
//! tool's default), the data and the run folder.

use super::args::*;
use super::folder_error;
use super::settings::{
    check_run_options, parse_activation, parse_ema, parse_guidance, parse_guidance_interval,
    parse_time_dist, usage, IntervalSetting, FOR_A_RUN,
};
use crate::cli::common::parse_dataset;
use crate::cli::{CliError, CliResult};
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::flow::loss::{LossConfig, LossPreset, VSource};
use meanflow::flow::model::{Architecture, Conditioning, Heads, ModelConfig};
use meanflow::flow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::run::config::{RunConfig, RUN_FORMAT};
use meanflow::run::dataset::{self, DataSource, DataSplit};
use meanflow::run::folder;
use meanflow::run::metrics_log::LogAccumulator;
use meanflow::run::plan::RunPlan;
use meanflow::train::checkpoint::Precision;
use meanflow::train::optim::AdamConfig;
use meanflow::train::TrainConfig;

/// The plan of a fresh run; nothing is written yet.
pub fn resolve_fresh(args: &TrainArgs) -> CliResult<RunPlan> {
    let precision = match &args.precision {
        Some(p) => p.parse::<Precision>().map_err(usage)?,
        None => Precision::F32,
    };
    let spec = args.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
    let source = parse_dataset(spec, args.label_column, precision, FOR_A_RUN)?;
    let digits = matches!(source, DataSource::Digits);
    // Labelled data train a class-conditional model unless --unconditional says otherwise; on
    // unlabelled data the flag would say nothing, and like every flag that does not apply it is
    // refused.
    if args.unconditional && source.classes() == 0 {
        return Err(CliError::usage(
            "--unconditional applies to labelled data (the digits, or a file with --label-column); these data have no labels",
        ));
    }
    let classes = if args.unconditional {
        0
    } else {
        source.classes()
    };
    if classes == 0 {
        let unlabelled = if args.unconditional {
            "with --unconditional"
        } else {
            "on unlabelled data (give --label-column for a labelled file)"
        };
        for (flag, given) in [
            ("--class-dim", args.class_dim.is_some()),
            ("--label-dropout", args.label_dropout.is_some()),
            ("--guidance", args.guidance.is_some()),
            ("--guidance-interval", args.guidance_interval.is_some()),
        ] {
            if given {
                return Err(CliError::usage(format!(
                    "{flag} applies to a class-conditional model, not to one trained {unlabelled}"
                )));
            }
        }
    }
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
    let mut interval_input = false;
    if classes > 0 {
        loss.label_dropout = args.label_dropout.unwrap_or(DEFAULT_LABEL_DROPOUT);
        if let Some(g) = &args.guidance {
            loss.guidance = parse_guidance(g)?;
        }
        match args.guidance_interval.as_deref().map(parse_guidance_interval) {
            None => {}
            Some(Err(e)) => return Err(e),
            Some(Ok(IntervalSetting::Fixed(interval))) => loss.guidance_interval = Some(interval),
            Some(Ok(IntervalSetting::Random)) if loss.guidance.is_input() => interval_input = true,
            Some(Ok(IntervalSetting::Random)) => {
                return Err(CliError::usage(
                    "--guidance-interval random: the interval drawn per row and given to the network is iMF's, for --guidance input:WMAX; with --guidance target:W give T_MIN,T_MAX",
                ))
            }
        }
    }
    let mut time = TimeSampler::preset_default(preset);
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
    if args.r_time_mu.is_some() || args.r_time_sigma.is_some() {
        let TimeDistribution::LogitNormal { mu, sigma } = time.distribution else {
            return Err(CliError::usage(
                "--r-time-mu and --r-time-sigma give r a logit-normal of its own beside t's; they need --time-dist logit-normal",
            ));
        };
        time.r_distribution = Some(TimeDistribution::LogitNormal {
            mu: args.r_time_mu.unwrap_or(mu),
            sigma: args.r_time_sigma.unwrap_or(sigma),
        });
    }
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
        width: args.width.unwrap_or(if digits {
            DEFAULT_DIGITS_WIDTH
        } else {
            DEFAULT_WIDTH
        }),
        depth: args.depth.unwrap_or(DEFAULT_DEPTH),
        architecture: match &args.architecture {
            Some(a) => a.parse::<Architecture>().map_err(usage)?,
            None if digits => DEFAULT_DIGITS_ARCHITECTURE,
            None => Architecture::Mlp,
        },
        activation: match &args.activation {
            Some(a) => parse_activation(a)?,
            None => Elementwise::Silu,
        },
        conditioning: match &args.conditioning {
            Some(c) => c.parse::<Conditioning>().map_err(usage)?,
            None => Conditioning::Raw,
        },
        heads,
        classes,
        class_dim: if classes > 0 {
            args.class_dim.unwrap_or(DEFAULT_CLASS_DIM)
        } else {
            0
        },
        guidance_input: loss.guidance.is_input(),
        guidance_interval_input: interval_input,
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
    let (pool_points, held_out_points) = DataSplit::sizes(&source, eval_samples);
    if args.no_standardize && !matches!(source, DataSource::File { .. }) {
        return Err(CliError::usage(
            "--no-standardize applies to a data file; a built-in dataset has its own units",
        ));
    }
    // The statistics of the training pool only: the held-out points stay unseen.
    let split = DataSplit::new(&source, config.seed, eval_samples);
    let units = source.units(split.pool.view(), !args.no_standardize);
    let run = RunConfig {
        format: RUN_FORMAT.into(),
        dataset: dataset::record(&source).map_err(usage)?,
        loss_preset: preset.name().into(),
        train: config,
        precision,
        steps: args.steps.unwrap_or(if digits {
            DEFAULT_DIGITS_STEPS
        } else {
            DEFAULT_STEPS
        }),
        threads: args.threads.unwrap_or(1),
        checkpoint_every: args.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY),
        eval_every: args.eval_every.unwrap_or(DEFAULT_EVAL_EVERY),
        eval_samples,
        log_every: args.log_every.unwrap_or(DEFAULT_LOG_EVERY),
        skip_nonfinite: args.skip_nonfinite,
        pool_points,
        held_out_points,
        version: env!("CARGO_PKG_VERSION").into(),
        units: Some(units),
    };
    check_run_options(&run, &config)?;
    let folder = match &args.out {
        Some(out) => {
            folder::check_fresh_target(out).map_err(folder_error)?;
            out.clone()
        }
        None => folder::default_folder(&source.label(), preset.name()),
    };
    Ok(RunPlan {
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
