//! `meanflow study`: the instruments of the MF vs iMF study (src/study/), one subcommand each;
//! without a subcommand, all five in a row into one folder with a combined `summary.md`.
//!
//! Every instrument writes into `<out>/<instrument>/`: CSV / JSON data, PNG pictures and a
//! `summary.md`. The models the instruments share are trained once per run (study::fixture).

mod conditional_variance;
mod curves;
mod gaussian;
mod gradient_noise;
mod identity;
mod report;

use super::{CliError, CliResult};
use crate::cli::common::{count, MAX_THREADS};
use crate::cli::output::{errln, outln};
use clap::{Args, Subcommand};
use meanflow::flow::loss::LossPreset;
use meanflow::io::target::check_output_folder;
use meanflow::linalg::matmul::set_matmul_threads;
use meanflow::run::folder::{create_folders, utc_timestamp};
use meanflow::study::dataset::{distinct, toys, StudyDataset};
use meanflow::study::fixture::{FixtureSettings, ModelCache};
use meanflow::study::gaussian::gaussians;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The datasets of the default study.
const DEFAULT_DATASETS: &str = "two_moons,checkerboard,gaussian_narrow,gaussian_wide";

/// Options of `meanflow study`, shared by every instrument.
#[derive(Args, Debug, Clone)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub instrument: Option<Instrument>,
    /// Output folder [default: study/<UTC time>]
    #[arg(long, global = true, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tiny settings that finish in seconds (for tests and a first look)
    #[arg(long, global = true)]
    pub quick: bool,
    /// Comma-separated built-in datasets, toys or `digits` (8x8, 64-D; not for curves and gaussian)
    /// [default: two_moons,checkerboard,gaussian_narrow,gaussian_wide]
    #[arg(long, global = true, value_name = "NAMES")]
    pub datasets: Option<String>,
    /// Seed of every random stream
    #[arg(
        long,
        global = true,
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub seed: u64,
    /// Worker threads: independent trainings and measurements run this many at a time
    #[arg(
        long,
        global = true,
        default_value_t = 2,
        allow_negative_numbers = true,
        value_parser = count::<usize>(1, MAX_THREADS)
    )]
    pub threads: usize,
}

/// The five instruments.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instrument {
    /// 1: variance given z_t of tangent, JVP term, target, loss and gradient (MF, iMF, beta grid)
    Variance,
    /// 2: trace of the minibatch-gradient covariance; angle between stop-gradient and exact gradients
    GradientNoise,
    /// 3: training curves over several seeds (v-form error, weighted loss, SW1)
    Curves,
    /// 4: the MeanFlow identity on a trained model; 1-step samples against ODE endpoints
    Identity,
    /// 5: Gaussian data, where u and the variances are known in closed form
    Gaussian,
}

impl Instrument {
    pub const ALL: [Instrument; 5] = [
        Instrument::Variance,
        Instrument::GradientNoise,
        Instrument::Curves,
        Instrument::Identity,
        Instrument::Gaussian,
    ];

    /// The folder (and the subcommand) name.
    pub fn name(self) -> &'static str {
        match self {
            Instrument::Variance => "variance",
            Instrument::GradientNoise => "gradient-noise",
            Instrument::Curves => "curves",
            Instrument::Identity => "identity",
            Instrument::Gaussian => "gaussian",
        }
    }
}

/// What every instrument gets: the parsed options and the shared models.
pub struct StudyContext {
    pub quick: bool,
    pub seed: u64,
    pub threads: usize,
    pub datasets: Vec<StudyDataset>,
    pub models: ModelCache,
}

fn parse_datasets(list: &str) -> CliResult<Vec<StudyDataset>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ds: StudyDataset = name
            .parse()
            .map_err(|e: meanflow::data::ParseDatasetError| {
                CliError::usage(format!("{e}; or digits"))
            })?;
        out.push(ds);
    }
    if out.is_empty() {
        return Err(CliError::usage("--datasets: no dataset named"));
    }
    Ok(out)
}

/// Creates `dir` (and parents), or says which folder could not be made.
fn make_folder(dir: &Path) -> CliResult<()> {
    create_folders(dir).map_err(|reason| {
        CliError::usage(format!(
            "--out {}: cannot create the folder: {reason}",
            dir.display()
        ))
    })
}

/// `meanflow study`.
pub fn run(args: StudyArgs) -> CliResult<i32> {
    let datasets = parse_datasets(args.datasets.as_deref().unwrap_or(DEFAULT_DATASETS))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("study").join(utc_timestamp()));
    if out.exists() && !out.is_dir() {
        return Err(CliError::usage(format!(
            "--out {}: exists and is not a folder",
            out.display()
        )));
    }
    // Every file of the study goes under --out: a folder that cannot take them is refused before
    // any work (a read-only or immutable folder, a name too long, a loop of links).
    check_output_folder(&out)
        .map_err(|e| CliError::usage(format!("--out {}: {e}", out.display())))?;
    make_folder(&out)?;
    // --quick trains the digits' models as small as the toys' (a smoke test, not a measurement).
    let models = if args.quick {
        ModelCache::new(FixtureSettings::quick(args.seed))
    } else {
        ModelCache::with_digits(
            FixtureSettings::standard(args.seed, 1),
            FixtureSettings::digits(args.seed, 1),
        )
    };
    let mut context = StudyContext {
        quick: args.quick,
        seed: args.seed,
        threads: args.threads,
        datasets,
        models,
    };
    let instruments: Vec<Instrument> = match args.instrument {
        Some(one) => vec![one],
        None => Instrument::ALL.to_vec(),
    };
    // Parallelism comes from independent runs on worker threads, not from inside a product.
    set_matmul_threads(1);
    let started = Instant::now();
    let mut summary = String::from("# meanflow study\n\n");
    // The instruments other than `curves` look at the same trained models: train them all now,
    // `--threads` at a time, instead of one by one as each instrument asks.
    let mut shared: Vec<StudyDataset> = Vec::new();
    if instruments.iter().any(|i| *i != Instrument::Curves) {
        shared.extend(context.datasets.iter().copied());
    }
    if instruments.contains(&Instrument::Gaussian) {
        shared.extend(
            gaussians(&toys(&context.datasets))
                .into_iter()
                .map(StudyDataset::from),
        );
    }
    let shared = distinct(shared);
    if !shared.is_empty() {
        errln!("study: training the shared models ...");
        let t0 = Instant::now();
        let workers = context.threads;
        context
            .models
            .prefetch(&shared, &[LossPreset::Mf, LossPreset::Imf], workers);
        let secs = t0.elapsed().as_secs_f64();
        errln!("study: shared models trained in {secs:.1} s");
        let fixture = |f: FixtureSettings| {
            format!(
                "MLP {} x {}, batch {}, {} steps",
                f.depth, f.width, f.batch, f.steps
            )
        };
        let mut sizes = Vec::new();
        if shared.iter().any(|d| d.toy().is_some()) {
            sizes.push(fixture(context.models.settings));
        }
        if shared.contains(&StudyDataset::Digits) {
            sizes.push(format!(
                "digits: {}",
                fixture(context.models.digits_settings)
            ));
        }
        summary.push_str(&format!(
            "Shared models: MF and iMF on {} datasets ({}), trained in {secs:.1} s.\n\n",
            shared.len(),
            sizes.join("; ")
        ));
    }
    for instrument in instruments {
        let dir = out.join(instrument.name());
        make_folder(&dir)?;
        let t0 = Instant::now();
        errln!("study: {} ...", instrument.name());
        let text = match instrument {
            Instrument::Variance => conditional_variance::run(&mut context, &dir)?,
            Instrument::GradientNoise => gradient_noise::run(&mut context, &dir)?,
            Instrument::Curves => curves::run(&mut context, &dir)?,
            Instrument::Identity => identity::run(&mut context, &dir)?,
            Instrument::Gaussian => gaussian::run(&mut context, &dir)?,
        };
        let secs = t0.elapsed().as_secs_f64();
        errln!("study: {} done in {secs:.1} s", instrument.name());
        summary.push_str(&text);
        summary.push_str(&format!("\n_({} took {secs:.1} s)_\n\n", instrument.name()));
    }
    summary.push_str(&format!(
        "Total: {:.1} s.\n",
        started.elapsed().as_secs_f64()
    ));
    report::write_text(&out.join("summary.md"), &summary)?;
    outln!("{summary}");
    outln!("study written to {}", out.display());
    Ok(0)
}
