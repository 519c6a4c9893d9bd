//! `meanflow data`: points of a built-in dataset, to a CSV or NPY file.

use super::common::{check_output_size, check_point_output, save_points};
use super::output::outln;
use super::{CliError, CliResult};
use clap::Args;
use meanflow::data::ToyDataset;
use meanflow::rng::Rng;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Built-in dataset (two_moons, checkerboard, eight_gaussians, swiss_roll, pinwheel,
    /// two_spirals, circles, gaussian_narrow[:DIM], gaussian_wide[:DIM], gaussian:SIGMA[:DIM])
    #[arg(long, value_name = "NAME")]
    pub dataset: String,
    /// Number of points
    #[arg(long, allow_negative_numbers = true, default_value_t = 10_000)]
    pub n: usize,
    /// Output file, .csv or .npy
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the draws (Rng::seed_from_u64)
    #[arg(long, allow_negative_numbers = true, default_value_t = 0)]
    pub seed: u64,
}

/// `meanflow data`.
pub fn run(args: DataArgs) -> CliResult<i32> {
    let dataset = args
        .dataset
        .parse::<ToyDataset>()
        .map_err(|e| CliError::usage(e.to_string()))?;
    if args.n < 2 {
        return Err(CliError::usage(format!(
            "--n must be at least 2, got {}",
            args.n
        )));
    }
    check_output_size("--n", args.n, dataset.dim(), "the dimension")?;
    let format = check_point_output(&args.out, "--out")?;
    let points = dataset.sample(args.n, &mut Rng::seed_from_u64(args.seed));
    save_points(&args.out, format, points.view())?;
    outln!(
        "wrote {} points of {} ({}-D, seed {}) to {}",
        args.n,
        dataset.name(),
        dataset.dim(),
        args.seed,
        args.out.display()
    );
    Ok(0)
}
