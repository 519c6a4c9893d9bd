//! Helpers shared by the subcommands: datasets named on the command line, point files, JSON files,
//! durations.

use super::{CliError, CliResult};
use meanflow::data::{self, NpyDtype, ParseDatasetError, ToyDataset, DATASET_NAMES};
use meanflow::io::atomic::write_atomically;
use meanflow::run::dataset::{self, max_data_magnitude};
use meanflow::train::checkpoint::Precision;
use ndarray::{Array2, ArrayView2};
use std::path::{Path, PathBuf};

pub use meanflow::run::dataset::DataSource;

/// Whether `spec` names a file rather than a built-in dataset. A built-in name always means the
/// built-in dataset, even when a file of that name is in the working folder (`./circles` names
/// the file); a path separator or a `.csv` / `.npy` / `.txt` extension makes a file name, and so
/// does any other name of an existing file.
fn looks_like_a_file(spec: &str) -> bool {
    let p = Path::new(spec);
    if spec.contains('/') || spec.contains('\\') {
        return true;
    }
    if p.extension().is_some_and(|e| {
        e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("npy") || e == "txt"
    }) {
        return true;
    }
    p.is_file() && spec.parse::<ToyDataset>().is_err() && spec != dataset::DIGITS_NAME
}

/// The computation `eval` loads its point files for (the `what` of [`data_error`]).
pub const FOR_AN_EVALUATION: &str = "an evaluation";

/// The message of a data file that could not be loaded for a computation in `precision`: the
/// reader's, plus why a value is out of range, or what to give for scikit-learn's class column.
pub fn data_error(e: data::DataError, precision: Precision, what: &str) -> CliError {
    match e {
        // Every inference is explicit: the class column is read as labels only when asked.
        data::DataError::SklearnClasses { .. } if what == FOR_AN_EVALUATION => CliError::usage(
            format!("{e}: eval compares every column as a coordinate; write the file without its class column to compare the features"),
        ),
        data::DataError::SklearnClasses { .. } => CliError::usage(format!(
            "{e}: give --label-column -1 (or --label-column -1 --unconditional to model the features alone)"
        )),
        data::DataError::OutOfRange { .. } => CliError::usage(format!(
            "{e} for {what} in {precision} (the loss and the distances square such values and overflow {precision}); rescale the data{}",
            if precision == Precision::F32 { " or use --precision f64" } else { "" }
        )),
        e => CliError::usage(e.to_string()),
    }
}

/// A built-in dataset name (`digits`, or a [`ToyDataset`]), or an existing CSV / NPY file (loaded
/// and checked now, its values within [`max_data_magnitude`] of `precision`, its dimension at
/// most [`MAX_DIM`](meanflow::train::MAX_DIM)), read with its labels from `label_column` if given.
/// `what` names the computation in messages ("an f32 run").
pub fn parse_dataset(
    spec: &str,
    label_column: Option<isize>,
    precision: Precision,
    what: &str,
) -> CliResult<DataSource> {
    if looks_like_a_file(spec) {
        let path = PathBuf::from(spec);
        if let Some(column) = label_column {
            let data = dataset::load_labelled_file(&path, column, precision)
                .map_err(|e| data_error(e, precision, what))?;
            return Ok(DataSource::labelled_file(path, column, data));
        }
        let data = load_data_file(&path, precision, what)?;
        return Ok(DataSource::File {
            path,
            data,
            labels: None,
        });
    }
    if label_column.is_some() {
        return Err(CliError::usage(format!(
            "--label-column applies to a CSV / NPY file, not the built-in dataset '{spec}'"
        )));
    }
    if spec == dataset::DIGITS_NAME {
        return Ok(DataSource::Digits);
    }
    spec.parse::<ToyDataset>()
        .map(DataSource::Builtin)
        .map_err(|e| match e {
            // The toy module knows its own densities only; the command line has the digits and
            // files too.
            ParseDatasetError::Unknown { name } => CliError::usage(format!(
                "unknown dataset '{name}': no such file, and the built-in datasets are {}, {} \
                 (the two with an optional :DIM) and gaussian:SIGMA[:DIM]",
                dataset::DIGITS_NAME,
                DATASET_NAMES.join(", ")
            )),
            bad => CliError::usage(bad.to_string()),
        })
}

/// A data file for a computation in `precision` (see [`parse_dataset`]).
pub fn load_data_file(path: &Path, precision: Precision, what: &str) -> CliResult<Array2<f64>> {
    dataset::load_data_file(path, precision).map_err(|e| data_error(e, precision, what))
}

/// Checks that the points of a built-in dataset (drawn for a run) are within
/// [`max_data_magnitude`] of `precision` (`gaussian:1e300` is not); the message names the flag.
pub fn check_builtin_magnitude(
    dataset: &ToyDataset,
    points: ArrayView2<f64>,
    precision: Precision,
    what: &str,
) -> CliResult<()> {
    let limit = max_data_magnitude(precision);
    let largest = points.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if largest > limit || largest.is_nan() {
        return Err(CliError::usage(format!(
            "--dataset {dataset}: its points reach {largest:.3e} in magnitude, beyond {limit:.3e}, the most {what} in {precision} takes (the loss and the distances square such values and overflow {precision})"
        )));
    }
    Ok(())
}

/// The format of a point file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointFormat {
    Csv,
    Npy,
}

/// Checks, before any work, that `path` can take a point file: a `.csv` or `.npy` name in an
/// existing folder.
pub fn check_point_output(path: &Path, flag: &str) -> CliResult<PointFormat> {
    let format = match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
    {
        Some(e) if e == "csv" => PointFormat::Csv,
        Some(e) if e == "npy" => PointFormat::Npy,
        _ => {
            return Err(CliError::usage(format!(
                "{flag} {}: the file name must end in .csv or .npy",
                path.display()
            )))
        }
    };
    check_parent(path, flag)?;
    Ok(format)
}

/// Whether `a` and `b` are the same existing file: the same device and inode on Unix (so a symbolic
/// or hard link to a file is that file), the same canonical path elsewhere.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Refuses an output file that is one of the command's inputs (`inputs`: flag and path), so that
/// no command overwrites what it reads (`sample --out` onto its `--checkpoint`, `eval --json` onto
/// `--samples`).
pub fn check_not_an_input(output: &Path, flag: &str, inputs: &[(&str, &Path)]) -> CliResult<()> {
    for (input_flag, input) in inputs {
        if same_file(output, input) {
            return Err(CliError::usage(format!(
                "{flag} {}: is the {input_flag} file {}; an output must not overwrite an input",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Checks that the folder of an output file exists and takes a new file, touching nothing: see
/// [`super::output::check_output_file`]. An output that is a symbolic link is checked (and later
/// written) where the link points.
pub fn check_parent(path: &Path, flag: &str) -> CliResult<()> {
    super::output::check_output_file(path, flag)
}

/// Checks that `path` names a `.png` file in an existing folder.
pub fn check_png_output(path: &Path, flag: &str) -> CliResult<()> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        return Err(CliError::usage(format!(
            "{flag} {}: the file name must end in .png",
            path.display()
        )));
    }
    check_parent(path, flag)
}

/// Writes points as CSV (no header) or NPY (f64), atomically.
pub fn save_points(path: &Path, format: PointFormat, points: ArrayView2<f64>) -> CliResult<()> {
    let result = match format {
        PointFormat::Csv => data::save_csv(path, points, None),
        PointFormat::Npy => data::save_npy(path, points, NpyDtype::F64, false),
    };
    result.map_err(|e| CliError::failed(e.to_string()))
}

/// Reads a point file (CSV or NPY by extension) to compute with in f64; errors are bad input.
pub fn load_points(path: &Path) -> CliResult<Array2<f64>> {
    load_data_file(path, Precision::F64, FOR_AN_EVALUATION)
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> CliResult<()> {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
    text.push('\n');
    write_atomically(path, text.as_bytes())
        .map_err(|e| CliError::failed(format!("{}: cannot write the file: {e}", path.display())))
}

/// The most values an output array (`sample`, `data`) or an evaluation batch may hold: rows x the
/// widest layer <= 2^28 (2 GB of f64).
pub const MAX_OUTPUT_VALUES: usize = 1 << 28;

/// Checks that `rows` x `width` values fit under [`MAX_OUTPUT_VALUES`]; the message names the flag.
pub fn check_output_size(flag: &str, rows: usize, width: usize, what: &str) -> CliResult<()> {
    if rows
        .checked_mul(width)
        .is_some_and(|n| n <= MAX_OUTPUT_VALUES)
    {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{flag} {rows}: {rows} x {width} ({what}) is over {MAX_OUTPUT_VALUES} values; ask for fewer"
        )))
    }
}

/// "between 1 and 256", "between 0 and 9007199254740992 (2^53)": a count flag's range in words.
pub fn range_text(lo: u64, hi: u64) -> String {
    let show = |n: u64| {
        if n >= 1 << 16 && n.is_power_of_two() {
            format!("{n} (2^{})", n.trailing_zeros())
        } else {
            n.to_string()
        }
    };
    format!("between {} and {}", show(lo), show(hi))
}

/// The most worker threads `--threads` takes (train, bench, study).
pub const MAX_THREADS: u64 = 256;

/// The value parser of a count flag (a size, a number of steps, a period): a whole number in
/// `lo..=hi`, else bad input that clap reports naming the flag and the range:
/// `error: invalid value '0' for '--threads <THREADS>': must be between 1 and 256`. The ranges
/// are those of docs/cli.md; a product of counts (batch x width, n x width) has its own check.
pub fn count<T>(lo: u64, hi: u64) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |text: &str| {
        let out_of_range = || format!("must be {}", range_text(lo, hi));
        let n: u64 = text.trim().parse().map_err(|_| {
            // Digits alone that overflow a u64 are a whole number out of range too.
            if text.trim().bytes().all(|b| b.is_ascii_digit()) && !text.trim().is_empty() {
                out_of_range()
            } else {
                format!("not a whole number; {}", out_of_range())
            }
        })?;
        if !(lo..=hi).contains(&n) {
            return Err(out_of_range());
        }
        T::try_from(n).map_err(|_| out_of_range())
    }
}

/// `f64::MAX` as a message says it.
const LARGEST_NUMBER: &str = "1.8e308";

/// The value parser of a float flag: what Rust's `f64` parser reads, except that a
/// finite-looking number beyond f64's range (`1e400`, which it rounds to infinity) is out of
/// range, reported naming the flag (`error: invalid value '1e400' for '--lr <LR>': 1e400 is out
/// of range (max 1.8e308 in magnitude)`). `inf` and `nan` written out are read as they are (the
/// flag's own check refuses them).
pub fn number(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let v: f64 = trimmed
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    let written_infinite = trimmed
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    if v.is_infinite() && !written_infinite {
        return Err(format!(
            "{trimmed} is out of range (max {LARGEST_NUMBER} in magnitude)"
        ));
    }
    Ok(v)
}

/// "1h02m", "3m05s", "42.0s".
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_flags_name_their_range() {
        let threads = count::<usize>(1, 256);
        assert_eq!(threads("8"), Ok(8));
        assert_eq!(threads("0"), Err("must be between 1 and 256".into()));
        assert_eq!(threads("257"), Err("must be between 1 and 256".into()));
        assert_eq!(
            threads("99999999999999999999999"),
            Err("must be between 1 and 256".into())
        );
        assert!(threads("-1").unwrap_err().starts_with("not a whole number"));
        let steps = count::<u64>(1, 1 << 53);
        assert_eq!(
            steps("0"),
            Err("must be between 1 and 9007199254740992 (2^53)".into())
        );
    }

    #[test]
    fn numbers_beyond_f64_are_out_of_range() {
        assert_eq!(number("1e-3"), Ok(1e-3));
        assert_eq!(
            number("1e400"),
            Err("1e400 is out of range (max 1.8e308 in magnitude)".into())
        );
        assert!(number("-1e400").unwrap_err().contains("out of range"));
        assert_eq!(number("inf"), Ok(f64::INFINITY));
        assert!(number("nan").unwrap().is_nan());
        assert!(number("x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(5.25), "5.2s");
        assert_eq!(format_duration(125.0), "2m05s");
        assert_eq!(format_duration(3725.0), "1h02m");
    }
}
