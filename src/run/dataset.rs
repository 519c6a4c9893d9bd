//! The data of a training run: where they come from ([`DataSource`]), how they are split into the
//! training pool and the held-out points ([`DataSplit`]), and their record in config.json
//! ([`DatasetJson`]), which a resumed run is checked against.
//!
//! Labelled data (the built-in digits, a file read with a label column) carry a class per point;
//! a split keeps each point's class with it. Points stay in the data's own units here; the model's
//! units are [`DataSource::units`] away (the digits' pixels 0..16 are [-1, 1] to the model).
//!
//! Random streams (all from the run's seed through `Rng::stream(seed, k)`): 0 initial parameters
//! and 1 training batches (both [`Trainer`](crate::train::Trainer)), [`STREAM_POOL`] the training
//! pool (a built-in dataset's [`builtin_pool_points`] draws, or the permutation that splits a
//! file), [`STREAM_HELD_OUT`] the held-out points of a built-in dataset, [`STREAM_EVAL_NOISE`] the
//! noise of the evaluation samples. So the held-out set and the evaluation noise are the same at
//! every evaluation and after a resume.

use crate::data::{
    self, digits_split, DataError, DataUnits, LabelledData, ParseDatasetError, ToyDataset,
    DIGITS_CLASSES, DIGITS_DIM,
};
use crate::rng::Rng;
use crate::run::config::DatasetJson;
use crate::train::checkpoint::Precision;
use crate::train::{builtin_pool_points, MAX_DIM};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::{Path, PathBuf};

/// The random stream of the training pool.
pub const STREAM_POOL: u64 = 2;
/// The random stream of a built-in dataset's held-out points.
pub const STREAM_HELD_OUT: u64 = 3;
/// The random stream of the evaluation noise.
pub const STREAM_EVAL_NOISE: u64 = 4;

/// The name of the built-in digits on the command line and in config.json.
pub const DIGITS_NAME: &str = "digits";

/// Where a run's data come from: a built-in dataset, the built-in digits, or the points of a
/// CSV / NPY file (with their classes when it was read with a label column).
#[derive(Clone, Debug)]
pub enum DataSource {
    Builtin(ToyDataset),
    /// The 8x8 handwritten digits ([`crate::data::digits`]), 10 classes, their fixed split.
    Digits,
    File {
        path: PathBuf,
        data: Array2<f64>,
        labels: Option<FileLabels>,
    },
}

/// The classes of a data file's points, from its label column.
#[derive(Clone, Debug, PartialEq)]
pub struct FileLabels {
    /// The column as given (negative: from the end).
    pub column: isize,
    pub labels: Vec<usize>,
    /// One more than the largest label.
    pub classes: usize,
}

impl DataSource {
    /// A data file's points with their labels.
    pub fn labelled_file(path: PathBuf, column: isize, data: LabelledData) -> Self {
        DataSource::File {
            path,
            data: data.points,
            labels: Some(FileLabels {
                column,
                labels: data.labels,
                classes: data.classes,
            }),
        }
    }

    /// The dimension of a point.
    pub fn dim(&self) -> usize {
        match self {
            DataSource::Builtin(d) => d.dim(),
            DataSource::Digits => DIGITS_DIM,
            DataSource::File { data, .. } => data.ncols(),
        }
    }

    /// The number of classes of labelled data, 0 for unlabelled.
    pub fn classes(&self) -> usize {
        match self {
            DataSource::Builtin(_) => 0,
            DataSource::Digits => DIGITS_CLASSES,
            DataSource::File { labels, .. } => labels.as_ref().map_or(0, |l| l.classes),
        }
    }

    /// The units a fresh run's model works in: the digits' pixels (p - 8) / 8 in [-1, 1]; a
    /// file's columns standardised over the training `pool` when `standardize` (else the file's
    /// own units); a built-in density's own units (they are already of order 1).
    pub fn units(&self, pool: ArrayView2<f64>, standardize: bool) -> DataUnits {
        match self {
            DataSource::Digits => data::digits_units(),
            DataSource::File { .. } if standardize => DataUnits::standardizing(pool),
            _ => DataUnits::identity(self.dim()),
        }
    }

    /// A short name for folder names and messages: the dataset's name, or the file's stem.
    pub fn label(&self) -> String {
        match self {
            DataSource::Builtin(d) => d.name(),
            DataSource::Digits => DIGITS_NAME.to_string(),
            DataSource::File { path, .. } => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into()),
        }
    }
}

/// The largest data value a computation in `precision` takes: 2^-10 sqrt(MAX) (1.8e16 for f32,
/// 1.3e151 for f64). The losses and the distances square values of the data's size and sum such
/// squares over a batch and the dimensions; the 2^-10 leaves room for 2^20 of them before the sum
/// overflows.
pub fn max_data_magnitude(precision: Precision) -> f64 {
    let max = match precision {
        Precision::F32 => f64::from(f32::MAX),
        Precision::F64 => f64::MAX,
    };
    max.sqrt() / 1024.0
}

/// The points of a CSV / NPY file for a computation in `precision`: every value within
/// [`max_data_magnitude`], at most [`MAX_DIM`] columns.
pub fn load_data_file(path: &Path, precision: Precision) -> Result<Array2<f64>, DataError> {
    let bounds = data::Bounds {
        max_abs: max_data_magnitude(precision),
        max_cols: MAX_DIM,
    };
    data::load_bounded(path, &bounds)
}

/// The points and labels of a CSV / NPY file with a label column, bounded as
/// [`load_data_file`]'s.
pub fn load_labelled_file(
    path: &Path,
    label_column: isize,
    precision: Precision,
) -> Result<LabelledData, DataError> {
    let bounds = data::Bounds {
        max_abs: max_data_magnitude(precision),
        max_cols: MAX_DIM,
    };
    data::load_labelled(path, label_column, &bounds)
}

/// FNV-1a (64-bit) of the bits of every value, row by row, with the shape, then of the labels if
/// there are any: detects a data file that changed between a run and its resumption.
pub fn fingerprint(data: ArrayView2<f64>, labels: Option<&[usize]>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(data.nrows() as u64);
    eat(data.ncols() as u64);
    for &v in data.iter() {
        eat(v.to_bits());
    }
    for &label in labels.unwrap_or(&[]) {
        eat(label as u64);
    }
    format!("{h:016x}")
}

/// What can be wrong with a run's data; one line each.
#[derive(Debug, thiserror::Error)]
pub enum RunDataError {
    #[error("{}: cannot resolve the path: {source}", path.display())]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    /// config.json names a built-in dataset that does not exist.
    #[error("{}: {source}", config.display())]
    UnknownBuiltin {
        config: PathBuf,
        source: ParseDatasetError,
    },
    #[error("{path}: the run's data file is not there any more")]
    FileGone { path: String },
    #[error(transparent)]
    Load(#[from] DataError),
    #[error("{path}: the data file changed since the run started (now {rows} x {cols}, was {recorded_rows} x {recorded_cols}, or different values); a resumed run needs the same data")]
    Changed {
        path: String,
        rows: usize,
        cols: usize,
        recorded_rows: usize,
        recorded_cols: usize,
    },
}

/// The record of `source` in config.json: a built-in dataset's name, or a file's absolute path,
/// shape and [`fingerprint`].
pub fn record(source: &DataSource) -> Result<DatasetJson, RunDataError> {
    Ok(match source {
        DataSource::Builtin(ds) => DatasetJson::Builtin { name: ds.name() },
        DataSource::Digits => DatasetJson::Builtin {
            name: DIGITS_NAME.to_string(),
        },
        DataSource::File { path, data, labels } => {
            let abs = std::fs::canonicalize(path).map_err(|source| RunDataError::Resolve {
                path: path.clone(),
                source,
            })?;
            DatasetJson::File {
                path: abs.to_string_lossy().into_owned(),
                rows: data.nrows(),
                cols: data.ncols(),
                fingerprint: fingerprint(data.view(), labels.as_ref().map(|l| &l.labels[..])),
                label_column: labels.as_ref().map(|l| l.column),
            }
        }
    })
}

/// Whether two records name the same data: the same built-in dataset, or files with the same
/// shape and fingerprint wherever they are.
pub fn same_data(a: &DatasetJson, b: &DatasetJson) -> bool {
    match (a, b) {
        (DatasetJson::Builtin { name: x }, DatasetJson::Builtin { name: y }) => x == y,
        (
            DatasetJson::File {
                rows,
                cols,
                fingerprint,
                label_column,
                ..
            },
            DatasetJson::File {
                rows: other_rows,
                cols: other_cols,
                fingerprint: other_fingerprint,
                label_column: other_label_column,
                ..
            },
        ) => {
            (rows, cols, fingerprint, label_column)
                == (
                    other_rows,
                    other_cols,
                    other_fingerprint,
                    other_label_column,
                )
        }
        _ => false,
    }
}

/// The data a run recorded in its config.json (`config`, named in messages), in `precision`; a
/// data file must hold the same values as when the run started (rows, columns and fingerprint).
pub fn load_recorded(
    recorded: &DatasetJson,
    config: &Path,
    precision: Precision,
) -> Result<DataSource, RunDataError> {
    match recorded {
        DatasetJson::Builtin { name } if name == DIGITS_NAME => Ok(DataSource::Digits),
        DatasetJson::Builtin { name } => name
            .parse::<ToyDataset>()
            .map(DataSource::Builtin)
            .map_err(|source| RunDataError::UnknownBuiltin {
                config: config.to_path_buf(),
                source,
            }),
        DatasetJson::File {
            path,
            rows,
            cols,
            fingerprint: recorded_fingerprint,
            label_column,
        } => {
            if !Path::new(path).exists() {
                return Err(RunDataError::FileGone { path: path.clone() });
            }
            let source = match *label_column {
                None => DataSource::File {
                    path: PathBuf::from(path),
                    data: load_data_file(Path::new(path), precision)?,
                    labels: None,
                },
                Some(column) => DataSource::labelled_file(
                    PathBuf::from(path),
                    column,
                    load_labelled_file(Path::new(path), column, precision)?,
                ),
            };
            let DataSource::File { data, labels, .. } = &source else {
                unreachable!("a file's source")
            };
            let labels = labels.as_ref().map(|l| &l.labels[..]);
            if data.nrows() != *rows
                || data.ncols() != *cols
                || fingerprint(data.view(), labels) != *recorded_fingerprint
            {
                return Err(RunDataError::Changed {
                    path: path.clone(),
                    rows: data.nrows(),
                    cols: data.ncols(),
                    recorded_rows: *rows,
                    recorded_cols: *cols,
                });
            }
            Ok(source)
        }
    }
}

/// A run's training pool and held-out points, in the data's units, with their classes for
/// labelled data (else empty).
pub struct DataSplit {
    pub pool: Array2<f64>,
    pub held_out: Array2<f64>,
    pub pool_labels: Vec<usize>,
    pub held_out_labels: Vec<usize>,
}

impl DataSplit {
    /// The points of `source` for a run of `seed` evaluating on `eval_samples` points: a built-in
    /// dataset draws [`builtin_pool_points`] training points and `eval_samples` held-out points;
    /// the digits are their fixed split (1497 / 300, [`crate::data::digits_split`]) whatever the
    /// seed; a file is permuted and min(`eval_samples`, rows / 5) of its rows are held out.
    pub fn new(source: &DataSource, seed: u64, eval_samples: usize) -> Self {
        match source {
            DataSource::Builtin(ds) => DataSplit {
                pool: ds.sample(
                    builtin_pool_points(ds.dim()),
                    &mut Rng::stream(seed, STREAM_POOL),
                ),
                held_out: ds.sample(eval_samples, &mut Rng::stream(seed, STREAM_HELD_OUT)),
                pool_labels: Vec::new(),
                held_out_labels: Vec::new(),
            },
            DataSource::Digits => {
                let (train, held_out) = digits_split();
                DataSplit {
                    pool: train.points,
                    held_out: held_out.points,
                    pool_labels: train.labels,
                    held_out_labels: held_out.labels,
                }
            }
            DataSource::File { data, labels, .. } => {
                let rows = data.nrows();
                let held = held_out_rows(rows, eval_samples);
                let perm = Rng::stream(seed, STREAM_POOL).permutation(rows);
                let pick = |rows: &[usize]| {
                    labels
                        .as_ref()
                        .map_or(Vec::new(), |l| rows.iter().map(|&r| l.labels[r]).collect())
                };
                DataSplit {
                    held_out: data.select(Axis(0), &perm[..held]),
                    pool: data.select(Axis(0), &perm[held..]),
                    held_out_labels: pick(&perm[..held]),
                    pool_labels: pick(&perm[held..]),
                }
            }
        }
    }

    /// The sizes of [`DataSplit::new`]'s pool and held-out set, without drawing them.
    pub fn sizes(source: &DataSource, eval_samples: usize) -> (usize, usize) {
        match source {
            DataSource::Builtin(ds) => (builtin_pool_points(ds.dim()), eval_samples),
            DataSource::Digits => {
                let held_out = DIGITS_CLASSES * crate::data::DIGITS_HELD_OUT_PER_CLASS;
                (crate::data::DIGITS_ROWS - held_out, held_out)
            }
            DataSource::File { data, .. } => {
                let held = held_out_rows(data.nrows(), eval_samples);
                (data.nrows() - held, held)
            }
        }
    }
}

/// The rows of a data file held out: `eval_samples`, but at most a fifth of the file.
fn held_out_rows(rows: usize, eval_samples: usize) -> usize {
    eval_samples.min(rows / 5)
}
