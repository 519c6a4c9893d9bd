//! `meanflow data`: points of a built-in dataset, to a CSV or NPY file. `--dataset digits` writes
//! the training part of the digits' fixed split (1497 rows; `--held-out` the 300 others), 64
//! pixels and the class as the last column (`train --label-column -1` reads it back). It is the
//! fixed split every digits run trains and is measured on, so `--n` and `--seed`, which would draw
//! another set, are refused with it rather than ignored.

use super::common::{check_output_size, check_point_output, count, save_points, MAX_OUTPUT_VALUES};
use super::output::outln;
use super::{CliError, CliResult};
use clap::Args;
use meanflow::data::ToyDataset;
use meanflow::rng::Rng;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Built-in dataset (two_moons, checkerboard, eight_gaussians, swiss_roll, pinwheel,
    /// two_spirals, circles, gaussian_narrow[:DIM], gaussian_wide[:DIM], gaussian:SIGMA[:DIM];
    /// digits: its training split with the class as the last column)
    #[arg(long, value_name = "NAME")]
    pub dataset: String,
    /// Number of points, 2 to 2^28 (and n x the dimension at most 2^28) [default: 10000]
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>(2, MAX_OUTPUT_VALUES as u64))]
    pub n: Option<usize>,
    /// Output file, .csv or .npy
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the draws (Rng::seed_from_u64) [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// With --dataset digits: the 300 held-out digits instead of the 1497 training digits
    #[arg(long)]
    pub held_out: bool,
}

/// The points of `data --n` when not given.
const DEFAULT_N: usize = 10_000;

/// The digits' training (or held-out) part, pixels then the class.
fn write_digits(args: &DataArgs) -> CliResult<i32> {
    for (flag, given) in [("--n", args.n.is_some()), ("--seed", args.seed.is_some())] {
        if given {
            return Err(CliError::usage(format!(
                "{flag} does not apply to --dataset digits: it writes the fixed split's 1497 training digits (--held-out: the 300 others), the ones every digits run trains and is measured on"
            )));
        }
    }
    let format = check_point_output(&args.out, "--out")?;
    let (train, held_out) = meanflow::data::digits_split();
    let part = if args.held_out { held_out } else { train };
    let labels = ndarray::Array2::from_shape_fn((part.len(), 1), |(i, _)| part.labels[i] as f64);
    let table = ndarray::concatenate![ndarray::Axis(1), part.points, labels];
    save_points(&args.out, format, table.view())?;
    outln!(
        "wrote {} digits ({} split; 64 pixels 0..16, then the class) to {}",
        part.len(),
        if args.held_out {
            "held-out"
        } else {
            "training"
        },
        args.out.display()
    );
    Ok(0)
}

/// `meanflow data`.
pub fn run(args: DataArgs) -> CliResult<i32> {
    if args.dataset == meanflow::run::dataset::DIGITS_NAME {
        return write_digits(&args);
    }
    if args.held_out {
        return Err(CliError::usage("--held-out applies to --dataset digits"));
    }
    let dataset = args
        .dataset
        .parse::<ToyDataset>()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let n = args.n.unwrap_or(DEFAULT_N);
    let seed = args.seed.unwrap_or(0);
    check_output_size("--n", n, dataset.dim(), "the dimension")?;
    let format = check_point_output(&args.out, "--out")?;
    let points = dataset.sample(n, &mut Rng::seed_from_u64(seed));
    save_points(&args.out, format, points.view())?;
    outln!(
        "wrote {} points of {} ({}-D, seed {}) to {}",
        n,
        dataset.name(),
        dataset.dim(),
        seed,
        args.out.display()
    );
    Ok(0)
}
