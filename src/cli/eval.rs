//! `meanflow eval`: how far samples are from the data, and how far the data are from themselves.
//!
//! - Sliced W1 ([`meanflow::verify::metrics::sliced_wasserstein1`]): the mean over 1024 random directions
//!   (`metrics::DEFAULT_PROJECTIONS`), drawn from `Rng::seed_from_u64(0x5113CED05EED0001)`
//!   (`metrics::DEFAULT_PROJECTION_SEED`), of the exact 1-D W1 of the projections; the same
//!   directions for every call, so values are comparable across models and runs.
//! - Energy distance ([`meanflow::verify::metrics::energy_distance`], V-statistic, squared form).
//! - The floor: the same metrics between two independent data sets of the same size n, averaged
//!   over 3 repeats; a model near it cannot be told from the data at this n.
//!
//! Data: `--dataset NAME` draws n fresh points from `Rng::stream(--seed, 1000)`, and its floor
//! uses `Rng::seed_from_u64(--seed + 1)`; `--data FILE` takes n random rows of the file
//! (permutation from `Rng::stream(--seed, 1000)`), and its floor splits the file's rows into
//! disjoint pairs of sets (n per set, or half the rows when the file has fewer than 2n).

use super::common::{
    check_builtin_magnitude, check_not_an_input, check_parent, count, load_points, parse_dataset,
    write_json, DataSource, FOR_AN_EVALUATION, MAX_OUTPUT_VALUES,
};
use super::output::outln;
use super::{CliError, CliResult};
use clap::Args;
use meanflow::rng::Rng;
use meanflow::train::checkpoint::Precision;
use meanflow::verify::metrics::{
    energy_distance, pool_floor, sliced_wasserstein1, toy_floor, Metric, DEFAULT_PROJECTIONS,
    DEFAULT_PROJECTION_SEED,
};
use ndarray::{s, Axis};
use serde::Serialize;
use std::path::PathBuf;

const FLOOR_REPEATS: usize = 3;
const DEFAULT_MAX_N: usize = 5000;
const DATA_STREAM: u64 = 1000;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Samples to evaluate (.csv or .npy)
    #[arg(long, value_name = "FILE")]
    pub samples: PathBuf,
    /// Held-out data points (.csv or .npy)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "dataset",
        required_unless_present = "dataset"
    )]
    pub data: Option<PathBuf>,
    /// Or a built-in dataset, drawn fresh
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Points per set, 2 to 2^28, at most the samples and a data file's rows [as many as both have, at most 5000]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(2, MAX_OUTPUT_VALUES as u64))]
    pub n: Option<usize>,
    /// Seed of the data draws and the floor
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
    /// Also write the results as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Floor {
    n: usize,
    repeats: usize,
    sliced_w1: f64,
    energy_distance: f64,
}

#[derive(Serialize)]
struct Report {
    samples: String,
    data: String,
    n: usize,
    dim: usize,
    sliced_w1: f64,
    energy_distance: f64,
    floor: Floor,
    projections: usize,
    projection_seed: String,
    seed: u64,
}

/// `meanflow eval`.
pub fn run(args: EvalArgs) -> CliResult<i32> {
    if let Some(json) = &args.json {
        check_parent(json, "--json")?;
        let mut inputs = vec![("--samples", args.samples.as_path())];
        if let Some(data) = &args.data {
            inputs.push(("--data", data.as_path()));
        }
        check_not_an_input(json, "--json", &inputs)?;
    }
    let samples = load_points(&args.samples)?;
    let (source, data_name) = match (&args.data, &args.dataset) {
        (Some(path), _) => (
            DataSource::File {
                path: path.clone(),
                data: load_points(path)?,
                labels: None,
            },
            path.display().to_string(),
        ),
        (None, Some(name)) => {
            let source = parse_dataset(name, None, Precision::F64, FOR_AN_EVALUATION)?;
            let label = source.label();
            // The digits are a finite set: compared with like a file of all 1797 of them.
            let source = match source {
                DataSource::Digits => DataSource::File {
                    path: label.clone().into(),
                    data: meanflow::data::digits().points,
                    labels: None,
                },
                source => source,
            };
            (source, label)
        }
        (None, None) => return Err(CliError::usage("give --data FILE or --dataset NAME")),
    };
    if source.dim() != samples.ncols() {
        return Err(CliError::usage(format!(
            "dimension mismatch: the samples ({}) have {} columns, the data ({data_name}) {}",
            args.samples.display(),
            samples.ncols(),
            source.dim()
        )));
    }
    // n points of each set: --n (which must not exceed the samples, nor a data file's rows), or
    // as many as both have, at most DEFAULT_MAX_N.
    let data_rows = match &source {
        DataSource::File { data, .. } => Some(data.nrows()),
        DataSource::Builtin(_) => None,
        DataSource::Digits => unreachable!("read as a file above"),
    };
    let available = data_rows.map_or(samples.nrows(), |rows| rows.min(samples.nrows()));
    let n = match args.n {
        Some(n) if n > samples.nrows() => {
            return Err(CliError::usage(format!(
                "--n {n}: the samples ({}) have {} points",
                args.samples.display(),
                samples.nrows()
            )))
        }
        Some(n) if data_rows.is_some_and(|rows| n > rows) => {
            return Err(CliError::usage(format!(
                "--n {n}: the data ({data_name}) have {} points",
                data_rows.unwrap_or(0)
            )))
        }
        Some(n) => n,
        None => available.min(DEFAULT_MAX_N),
    };
    let mut rng = Rng::stream(args.seed, DATA_STREAM);
    let (data, floor) = match &source {
        DataSource::Builtin(ds) => {
            let data = ds.sample(n, &mut rng);
            check_builtin_magnitude(ds, data.view(), Precision::F64, "an evaluation")?;
            let floor_seed = args.seed.wrapping_add(1);
            let floor = Floor {
                n,
                repeats: FLOOR_REPEATS,
                sliced_w1: toy_floor(Metric::SlicedW1, ds, n, FLOOR_REPEATS, floor_seed),
                energy_distance: toy_floor(Metric::Energy, ds, n, FLOOR_REPEATS, floor_seed),
            };
            (data, floor)
        }
        DataSource::Digits => unreachable!("read as a file above"),
        DataSource::File { data: pool, .. } => {
            let perm = rng.permutation(pool.nrows());
            let data = pool.select(Axis(0), &perm[..n]);
            let nf = n.min(pool.nrows() / 2);
            let floor = Floor {
                n: nf,
                repeats: FLOOR_REPEATS,
                sliced_w1: pool_floor(Metric::SlicedW1, pool.view(), nf, FLOOR_REPEATS, args.seed),
                energy_distance: pool_floor(
                    Metric::Energy,
                    pool.view(),
                    nf,
                    FLOOR_REPEATS,
                    args.seed,
                ),
            };
            (data, floor)
        }
    };
    let x = samples.slice(s![..n, ..]);
    let sw1 = sliced_wasserstein1(x, data.view());
    let ed = energy_distance(x, data.view());
    let report = Report {
        samples: args.samples.display().to_string(),
        data: data_name,
        n,
        dim: samples.ncols(),
        sliced_w1: sw1,
        energy_distance: ed,
        floor,
        projections: DEFAULT_PROJECTIONS,
        projection_seed: format!("{DEFAULT_PROJECTION_SEED:#x}"),
        seed: args.seed,
    };
    outln!(
        "samples: {} ({n} of {} points, {}-D); data: {} ({} points)",
        report.samples,
        samples.nrows(),
        report.dim,
        report.data,
        data.nrows()
    );
    outln!(
        "{:<16} {:>12} {:>12} {:>8}",
        "metric",
        "value",
        "floor",
        "ratio"
    );
    for (name, value, fl) in [
        ("sliced W1", sw1, report.floor.sliced_w1),
        ("energy distance", ed, report.floor.energy_distance),
    ] {
        outln!("{name:<16} {value:>12.5} {fl:>12.5} {:>8.2}", value / fl);
    }
    outln!(
        "floor: data vs data, n = {}, mean of {} repeats; sliced W1 over {} directions (seed {})",
        report.floor.n,
        report.floor.repeats,
        report.projections,
        report.projection_seed
    );
    if let Some(json) = &args.json {
        write_json(json, &report)?;
        outln!("wrote {}", json.display());
    }
    Ok(0)
}
