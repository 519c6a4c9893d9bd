//! Flag values of `meanflow train` that are not parsed by clap alone, and the checks of a run's
//! options; every message names the flag.

use crate::cli::common::check_output_size;
use crate::cli::{CliError, CliResult};
use meanflow::autodiff::elementwise::Elementwise;
use meanflow::flow::guidance::Guidance;
use meanflow::flow::time_sampler::TimeDistribution;
use meanflow::run::config::RunConfig;
use meanflow::train::checkpoint::{Precision, MAX_STEPS};
use meanflow::train::TrainConfig;
use std::fmt::Display;

/// Bad input with the message of `e`.
pub fn usage(e: impl Display) -> CliError {
    CliError::usage(e.to_string())
}

/// What a dataset is loaded for, in messages about values out of range.
pub const FOR_A_RUN: &str = "a run";

/// `--ema`: a decay in [0, 1), or none (`none`, `off`, 0).
pub fn parse_ema(text: &str) -> CliResult<Option<f64>> {
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

/// `--time-dist`: `logit-normal` or `uniform`.
pub fn parse_time_dist(text: &str) -> CliResult<&'static str> {
    match text.to_ascii_lowercase().replace('_', "-").as_str() {
        "logit-normal" | "logitnormal" => Ok("logit-normal"),
        "uniform" => Ok("uniform"),
        _ => Err(CliError::usage(format!(
            "--time-dist {text}: expected 'logit-normal' or 'uniform'"
        ))),
    }
}

/// `--guidance`: `none`, `target:W[:KAPPA]` or `input:WMAX`, checked by [`Guidance::validate`].
pub fn parse_guidance(text: &str) -> CliResult<Guidance> {
    let bad = |why: String| CliError::usage(format!("--guidance {text}: {why}"));
    let number = |s: &str| crate::cli::common::number(s).map_err(bad);
    let parts: Vec<&str> = text.trim().split(':').collect();
    let guidance = match parts.as_slice() {
        ["none"] => Guidance::None,
        ["target", w] => Guidance::Target {
            w: number(w)?,
            kappa: 0.0,
        },
        ["target", w, kappa] => Guidance::Target {
            w: number(w)?,
            kappa: number(kappa)?,
        },
        ["input", w_max] => Guidance::Input {
            w_max: number(w_max)?,
        },
        _ => {
            return Err(bad(
                "expected none, target:W, target:W:KAPPA or input:WMAX".to_string()
            ))
        }
    };
    guidance.validate().map_err(bad)?;
    Ok(guidance)
}

/// What `--guidance-interval` asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntervalSetting {
    /// `T_MIN,T_MAX`: MF's fixed interval of the guided target (`--guidance target:W`).
    Fixed([f64; 2]),
    /// `random`: iMF's, drawn per row and given to the network (`--guidance input:WMAX`).
    Random,
}

/// `--guidance-interval T_MIN,T_MAX` (two numbers; their range is LossConfig::validate's) or
/// `random`.
pub fn parse_guidance_interval(text: &str) -> CliResult<IntervalSetting> {
    let bad = |why: String| CliError::usage(format!("--guidance-interval {text}: {why}"));
    if text.trim() == "random" {
        return Ok(IntervalSetting::Random);
    }
    match text.split(',').collect::<Vec<_>>().as_slice() {
        [lo, hi] => {
            let number = |s: &str| crate::cli::common::number(s.trim()).map_err(bad);
            Ok(IntervalSetting::Fixed([number(lo)?, number(hi)?]))
        }
        _ => Err(bad(
            "expected two times T_MIN,T_MAX such as 0.3,0.7 (with --guidance target:W), or random (with --guidance input:WMAX)".into(),
        )),
    }
}

/// `0.3,0.7`, `random` or `none`: a run's guidance interval as `--guidance-interval` spells it.
pub fn show_guidance_interval(config: &TrainConfig) -> String {
    if config.model.guidance_interval_input {
        return "random".into();
    }
    config
        .loss
        .guidance_interval
        .map_or("none".into(), |[lo, hi]| format!("{lo},{hi}"))
}

/// A guidance setting as `--guidance` spells it ([`parse_guidance`] reads it back).
pub fn show_guidance(g: Guidance) -> String {
    match g {
        Guidance::None => "none".into(),
        Guidance::Target { w, kappa } => format!("target:{w}:{kappa}"),
        Guidance::Input { w_max } => format!("input:{w_max}"),
    }
}

/// `--activation`.
pub fn parse_activation(text: &str) -> CliResult<Elementwise> {
    text.parse::<Elementwise>().map_err(usage)
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
pub fn check_run_options(run: &RunConfig, config: &TrainConfig) -> CliResult<()> {
    if run.steps == 0 {
        return Err(CliError::usage("--steps must be at least 1"));
    }
    if run.steps > MAX_STEPS {
        return Err(CliError::usage(format!(
            "--steps must be at most 2^53 = {MAX_STEPS}, got {}",
            run.steps
        )));
    }
    if run.threads == 0 || run.threads > super::args::MAX_THREADS as usize {
        return Err(CliError::usage(format!(
            "--threads {}: must be between 1 and {}",
            run.threads,
            super::args::MAX_THREADS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_flag() {
        assert_eq!(parse_guidance("none").unwrap(), Guidance::None);
        assert_eq!(
            parse_guidance("target:2").unwrap(),
            Guidance::Target { w: 2.0, kappa: 0.0 }
        );
        assert_eq!(
            parse_guidance("target:1.5:0.5").unwrap(),
            Guidance::Target { w: 1.5, kappa: 0.5 }
        );
        assert_eq!(
            parse_guidance("input:4").unwrap(),
            Guidance::Input { w_max: 4.0 }
        );
        for g in [
            Guidance::None,
            Guidance::Target {
                w: 2.5,
                kappa: 0.25,
            },
            Guidance::Input { w_max: 3.0 },
        ] {
            assert_eq!(parse_guidance(&show_guidance(g)).unwrap(), g);
        }
        for bad in [
            "",
            "target",
            "target:x",
            "input:-1",
            "target:2:1",
            "target:1e39",
            "target:1e400",
            "input:2e6",
            "cfg:2",
            "input:1:2",
        ] {
            let e = parse_guidance(bad).unwrap_err().message;
            assert!(e.starts_with(&format!("--guidance {bad}:")), "{e}");
        }
    }

    #[test]
    fn guidance_interval_flag() {
        assert_eq!(
            parse_guidance_interval("0.3,0.7").unwrap(),
            IntervalSetting::Fixed([0.3, 0.7])
        );
        assert_eq!(
            parse_guidance_interval("random").unwrap(),
            IntervalSetting::Random
        );
        for bad in ["", "0.3", "0.3,x", "drawn"] {
            let e = parse_guidance_interval(bad).unwrap_err().message;
            assert!(e.starts_with(&format!("--guidance-interval {bad}:")), "{e}");
        }
    }

    #[test]
    fn ema_flag() {
        assert_eq!(parse_ema("none").unwrap(), None);
        assert_eq!(parse_ema("0").unwrap(), None);
        assert_eq!(parse_ema("0.99").unwrap(), Some(0.99));
        assert!(parse_ema("1").is_err());
        assert!(parse_ema("x").is_err());
    }
}
