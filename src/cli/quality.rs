//! `meanflow quality`: the measured quality of a digits model (verify::digits_quality): class
//! accuracy of conditional samples under meanflow's own classifier, the Fréchet distance in its
//! features against the held-out digits beside the floor at the same size, and memorisation.
//!
//! Samples: `--per-class` of each class (a conditional model; an unconditional one draws
//! 10 x `--per-class` without classes) from `Rng::seed_from_u64(--seed)`, by `--steps K` mean-flow
//! steps or `--euler K` steps of the velocity, at `--guidance W`, with the EMA weights unless
//! `--raw`.

use super::common::{check_not_an_input, write_json};
use super::output::outln;
use super::sample::{class_blocks, generate, guidance_scale, Method, MethodArgs};
use super::{CliError, CliResult};
use clap::Args;
use meanflow::flow::sampling::Conditions;
use meanflow::run::checkpoint::{model_units, trained_on_digits};
use meanflow::train::checkpoint::{Checkpoint, Precision};
use meanflow::verify::digits_quality::{DigitsJudge, DigitsScore};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QualityArgs {
    /// Checkpoint of a model trained on the digits (`--dataset digits`)
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub method: MethodArgs,
    /// Guidance scale W >= 1 (a model trained with --guidance input:WMAX) [default: 1]
    #[arg(long, allow_hyphen_values = true, value_name = "W")]
    pub guidance: Option<f64>,
    /// Samples per class
    #[arg(long, allow_negative_numbers = true, default_value_t = 100)]
    pub per_class: usize,
    /// Seed of the noise
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
    /// Use the raw weights instead of the EMA weights
    #[arg(long)]
    pub raw: bool,
    /// Also write the scores as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// What `--json` holds.
#[derive(serde::Serialize)]
struct QualityJson {
    checkpoint: String,
    step: u64,
    method: String,
    steps: usize,
    guidance: f64,
    classifier_held_out_accuracy: f64,
    #[serde(flatten)]
    score: DigitsScore,
}

/// `meanflow quality`.
pub fn run(args: QualityArgs) -> CliResult<i32> {
    if args.per_class == 0 || args.per_class > 10_000 {
        return Err(CliError::usage(format!(
            "--per-class must be between 1 and 10000, got {}",
            args.per_class
        )));
    }
    let method = args.method.method()?;
    if let Some(json) = &args.json {
        check_not_an_input(
            json,
            "--json",
            &[("--checkpoint", args.checkpoint.as_path())],
        )?;
    }
    let ck = Checkpoint::read(&args.checkpoint).map_err(|e| CliError::usage(e.to_string()))?;
    if !trained_on_digits(&ck) {
        return Err(CliError::usage(format!(
            "{}: not a model of the digits (meanflow train --dataset digits); for other data use meanflow eval",
            args.checkpoint.display()
        )));
    }
    let guidance = guidance_scale(args.guidance, &ck, &args.checkpoint)?;
    let weights = ck
        .weights(!args.raw && ck.ema.is_some())
        .expect("raw weights exist");
    let model = ck.config.model;
    let n = 10 * args.per_class;
    let labels =
        (model.classes > 0).then(|| class_blocks(&(0..model.classes).collect::<Vec<_>>(), n));
    let conditions = Conditions {
        labels: labels.clone(),
        guidance,
    };
    let x = match ck.precision {
        Precision::F32 => generate::<f32>(model, weights, n, args.seed, method, conditions),
        Precision::F64 => generate::<f64>(model, weights, n, args.seed, method, conditions),
    };
    let x = model_units(&ck).to_data(x.view());
    if x.iter().any(|v| !v.is_finite()) {
        return Err(CliError::failed("the model produced a non-finite sample"));
    }
    let judge = DigitsJudge::new();
    let score = judge.score(x.view(), labels.as_deref());
    let (name, k) = match method {
        Method::MeanFlow(k) => ("mean-flow", k),
        Method::Euler(k) => ("euler", k),
    };
    let held_out_accuracy = judge.held_out_accuracy();
    outln!(
        "{k} {name} step{}, guidance {guidance}, {n} samples: class accuracy {}, Fréchet {:.2} (floor {:.2}), memorisation {:.3}; the classifier's held-out accuracy {:.3}",
        if k == 1 { "" } else { "s" },
        score.accuracy.map_or("- (unconditional)".to_string(), |a| format!("{a:.3}")),
        score.frechet,
        score.frechet_floor,
        score.memorisation,
        held_out_accuracy
    );
    if let Some(json) = &args.json {
        let record = QualityJson {
            checkpoint: args.checkpoint.display().to_string(),
            step: ck.step,
            method: name.to_string(),
            steps: k,
            guidance,
            classifier_held_out_accuracy: held_out_accuracy,
            score,
        };
        write_json(json, &record)?;
    }
    Ok(0)
}
