//! `meanflow quality`: the measured quality of a digits model (verify::digits_quality): class
//! accuracy of conditional samples under meanflow's own classifier, the Fréchet distance in its
//! features against the held-out digits beside the floor at the same size, and memorisation.
//!
//! Samples: `--per-class` of each class (a conditional model; an unconditional one draws
//! 10 x `--per-class` without classes) from `Rng::seed_from_u64(--seed)`, by `--steps K` mean-flow
//! steps or `--euler K` steps of the velocity, at `--guidance W`, with the EMA weights unless
//! `--raw`.
//!
//! A model of the digits is one trained with `--dataset digits`, or on the file `meanflow data
//! --dataset digits` writes (the 1497 training digits in pixels, with or without their labels, as
//! CSV or NPY, in any column order the label allows), recognised by the data fingerprint its run
//! recorded: the scores compare with the same training and held-out digits either way, and the
//! samples come back in pixels whatever units the model worked in. A run on the held-out digits or
//! on all 1797 is refused: the scores measure against the held-out digits it was trained on.

use super::common::{check_not_an_input, check_parent, count, write_json};
use super::output::outln;
use super::sample::{
    class_blocks, generate, guidance_interval, guidance_scale, Method, MethodArgs,
};
use super::{CliError, CliResult};
use clap::Args;
use meanflow::data::{digits, digits_split, LabelledData, DIGITS_CLASSES, DIGITS_DIM};
use meanflow::flow::sampling::Conditions;
use meanflow::run::checkpoint::{model_units, recorded_run, trained_on_digits};
use meanflow::run::config::DatasetJson;
use meanflow::run::dataset::fingerprint;
use meanflow::train::checkpoint::{Checkpoint, Precision};
use meanflow::verify::digits_quality::{DigitsJudge, DigitsScore};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QualityArgs {
    /// Checkpoint of a model trained on the digits (`--dataset digits`, or the file `data --dataset
    /// digits` writes)
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub method: MethodArgs,
    /// Guidance scale W >= 1 (a model trained with --guidance input:WMAX) [default: 1]
    #[arg(long, allow_hyphen_values = true, value_name = "W")]
    pub guidance: Option<f64>,
    /// Guidance interval A,B of a model trained with --guidance-interval random (as in sample) [default: 0,1]
    #[arg(long, allow_hyphen_values = true, value_name = "A,B")]
    pub interval: Option<String>,
    /// Samples per class (1 to 10000)
    #[arg(long, allow_negative_numbers = true, default_value_t = 100, value_parser = count::<usize>(1, MAX_PER_CLASS))]
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

/// The most samples per class `--per-class` asks for.
const MAX_PER_CLASS: u64 = 10_000;

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

/// Which of the digits a model was trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DigitsPart {
    /// The 1497 training digits: the built-in dataset, or the file of `data --dataset digits`.
    Training,
    /// The 300 held-out digits (`data --dataset digits --held-out`).
    HeldOut,
    /// All 1797 (scikit-learn's digits.csv.gz).
    All,
}

/// Which digits the checkpoint's model was trained on, if it is a model of the digits: 64-D, with
/// the digits' 10 classes or none, and trained on the built-in digits or on a file whose recorded
/// shape and fingerprint (values, and labels when read with a label column) are those of a part of
/// the digits in pixels.
fn digits_model(ck: &Checkpoint) -> Option<DigitsPart> {
    if trained_on_digits(ck) {
        return Some(DigitsPart::Training);
    }
    let model = ck.config.model;
    if model.dim != DIGITS_DIM || !(model.classes == 0 || model.classes == DIGITS_CLASSES) {
        return None;
    }
    let DatasetJson::File {
        rows,
        cols,
        fingerprint: recorded,
        label_column,
        ..
    } = recorded_run(ck)?.dataset
    else {
        return None;
    };
    let (train, held_out) = digits_split();
    let same = |part: &LabelledData| {
        (rows, cols) == (part.len(), part.dim())
            && recorded
                == fingerprint(
                    part.points.view(),
                    label_column.map(|_| part.labels.as_slice()),
                )
    };
    if same(&train) {
        Some(DigitsPart::Training)
    } else if same(&held_out) {
        Some(DigitsPart::HeldOut)
    } else if same(&digits()) {
        Some(DigitsPart::All)
    } else {
        None
    }
}

/// `meanflow quality`.
pub fn run(args: QualityArgs) -> CliResult<i32> {
    let method = args.method.method()?;
    if let Some(json) = &args.json {
        check_parent(json, "--json")?;
        check_not_an_input(
            json,
            "--json",
            &[("--checkpoint", args.checkpoint.as_path())],
        )?;
    }
    let ck = Checkpoint::read(&args.checkpoint).map_err(|e| CliError::usage(e.to_string()))?;
    match digits_model(&ck) {
        Some(DigitsPart::Training) => {}
        Some(part) => {
            return Err(CliError::usage(format!(
                "{}: trained on {}, which quality measures samples against: the scores would flatter the model; train on the 1497 training digits (train --dataset digits, or the file of meanflow data --dataset digits)",
                args.checkpoint.display(),
                match part {
                    DigitsPart::HeldOut => "the 300 held-out digits (data --held-out)",
                    _ => "all 1797 digits, the 300 held-out ones among them",
                }
            )))
        }
        None => {
            return Err(CliError::usage(format!(
                "{}: not a model of the digits (meanflow train --dataset digits, or a file of meanflow data --dataset digits); for other data use meanflow eval",
                args.checkpoint.display()
            )))
        }
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
        interval: guidance_interval(args.interval.as_deref(), &ck, &args.checkpoint)?,
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
