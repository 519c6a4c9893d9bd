//! A dataset file by its extension ([`load`]), within [`Bounds`] ([`load_bounded`]), and what the
//! CSV and NPY modules share: reading and writing the file, and the checks on its values.

use super::csv::parse_csv_bounded;
use super::npy::parse_npy_bounded;
use super::DataError;
use super::Position;
use crate::io::limits::{read_limited, InputKind, ReadError};
use ndarray::{Array2, ArrayView2};
use std::path::Path;

/// Loads by extension: `.npy` (any case) as NPY, anything else as CSV.
pub fn load(path: impl AsRef<Path>) -> Result<Array2<f64>, DataError> {
    load_bounded(path, &Bounds::NONE)
}

/// What [`load_bounded`] refuses beyond the format's rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// The largest magnitude of a value ([`DataError::OutOfRange`]).
    pub max_abs: f64,
    /// The most columns ([`DataError::TooManyColumns`]).
    pub max_cols: usize,
}

impl Bounds {
    /// No bounds beyond the format's.
    pub const NONE: Bounds = Bounds {
        max_abs: f64::MAX,
        max_cols: usize::MAX,
    };
}

/// [`load`], also refusing values whose magnitude exceeds `bounds.max_abs` (naming the line or row
/// and the column of the first) and more than `bounds.max_cols` columns (found before the values
/// are read).
pub fn load_bounded(path: impl AsRef<Path>, bounds: &Bounds) -> Result<Array2<f64>, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    if is_npy(path) {
        parse_npy_within(path, &bytes, bounds)
    } else {
        parse_csv_bounded(path, &bytes, bounds).map(|c| c.data)
    }
}

/// Whether `path` names an NPY file: its extension is `.npy` in any case.
pub(super) fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// The values of an NPY file within `bounds`: the columns are counted from the header, before the
/// values are read, and the magnitudes after.
pub(super) fn parse_npy_within(
    path: &Path,
    bytes: &[u8],
    bounds: &Bounds,
) -> Result<Array2<f64>, DataError> {
    let data = parse_npy_bounded(path, bytes, bounds.max_cols)?;
    check_bound(path, data.view(), bounds.max_abs)?;
    Ok(data)
}

/// The whole file, or [`DataError::NotFound`] / [`DataError::Read`]: a regular file of at most
/// [`MAX_POINT_FILE_BYTES`](crate::io::limits::MAX_POINT_FILE_BYTES), its size checked before
/// it is read ([`read_limited`]: a pipe, a device or standard input is refused by name).
pub(super) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    read_limited(path, InputKind::PointFile).map_err(|e| match e {
        ReadError::NotFound { .. } => DataError::NotFound {
            path: path.to_path_buf(),
        },
        e => DataError::Read {
            path: path.to_path_buf(),
            source: e.into_io(),
        },
    })
}

/// The first non-finite value in row-major order, as a [`DataError::NonFinite`] at a row.
pub(super) fn check_finite(path: &Path, data: ArrayView2<f64>) -> Result<(), DataError> {
    for ((r, c), &value) in data.indexed_iter() {
        if !value.is_finite() {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                at: Position::Row {
                    row: r + 1,
                    column: c + 1,
                },
                value,
            });
        }
    }
    Ok(())
}

/// The first value beyond `max_abs` in magnitude, in row-major order, as a
/// [`DataError::OutOfRange`] at a row.
fn check_bound(path: &Path, data: ArrayView2<f64>, max_abs: f64) -> Result<(), DataError> {
    match data.indexed_iter().find(|(_, v)| v.abs() > max_abs) {
        Some(((r, c), &value)) => Err(DataError::OutOfRange {
            path: path.to_path_buf(),
            at: Position::Row {
                row: r + 1,
                column: c + 1,
            },
            value,
            max_abs,
        }),
        None => Ok(()),
    }
}

/// What both writers refuse: no columns, or a non-finite value ([`check_finite`]).
pub(super) fn check_savable(path: &Path, data: ArrayView2<f64>) -> Result<(), DataError> {
    if data.ncols() == 0 {
        return Err(DataError::NoColumns {
            path: path.to_path_buf(),
        });
    }
    check_finite(path, data)
}

/// Writes `bytes` to `path` with [`crate::io::atomic::write_atomically`], or
/// [`DataError::Write`].
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::io::atomic::write_atomically(path, bytes).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}
