//! [`DataError`]: why a dataset file could not be read or written, one variant per problem, each
//! displayed as one line naming the file, the place ([`Position`]) and the problem.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where in a file a value is: a CSV line or an NPY row, and a column (all 1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Line { line: usize, column: usize },
    Row { row: usize, column: usize },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line { line, column } => write!(f, "line {line}, column {column}"),
            Position::Row { row, column } => write!(f, "row {row}, column {column}"),
        }
    }
}

/// Why a dataset file could not be read or written. Display is one line: path, place, problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read file: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: cannot write file: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: empty file: no data rows")]
    Empty { path: PathBuf },
    #[error("{path}: header only (line {header_line}), no data rows")]
    HeaderOnly { path: PathBuf, header_line: usize },
    #[error("{path}: a single data row; at least 2 rows are needed")]
    SingleRow { path: PathBuf },
    #[error("{path}: line {line}: invalid UTF-8 text")]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{path}: line {line}: ragged row with {found} fields, expected {expected} (as on line {first_line})")]
    Ragged {
        path: PathBuf,
        line: usize,
        found: usize,
        expected: usize,
        first_line: usize,
    },
    #[error("{path}: line {line}, column {column}: empty field")]
    EmptyField {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}: line {line}, column {column}: non-numeric field {text:?}")]
    NonNumeric {
        path: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
    #[error("{path}: {at}: non-finite value {value} (NaN or infinite)")]
    NonFinite {
        path: PathBuf,
        at: Position,
        value: f64,
    },
    /// A number written finite whose magnitude is beyond f64's (`1e400`, which parses to
    /// infinity): the same words as a flag's (`--lr 1e400`).
    #[error("{path}: {at}: {text} is out of range (max 1.8e308 in magnitude)")]
    Overflow {
        path: PathBuf,
        at: Position,
        text: String,
    },
    #[error("{path}: {at}: value {value:e} is out of range: at most {max_abs:.3e} in magnitude")]
    OutOfRange {
        path: PathBuf,
        at: Position,
        value: f64,
        max_abs: f64,
    },
    /// scikit-learn's first line (`150,4,setosa,versicolor,virginica`) declares the last column
    /// the classes, and the file was read without a label column: the classes would be a feature.
    #[error("{path}: scikit-learn's header says the last column holds the classes ({classes})")]
    SklearnClasses { path: PathBuf, classes: String },
    #[error("{path}: line {line}: a NUL byte: not a CSV text file")]
    NulByte { path: PathBuf, line: usize },
    #[error("{path}: {found} columns; at most {max} are allowed")]
    TooManyColumns {
        path: PathBuf,
        found: usize,
        max: usize,
    },
    #[error("{path}: not an NPY file: bad magic (the file must start with \\x93NUMPY)")]
    NpyBadMagic { path: PathBuf },
    #[error("{path}: unsupported NPY format version {major}.{minor} (supported: 1.0, 2.0, 3.0)")]
    NpyVersion { path: PathBuf, major: u8, minor: u8 },
    #[error("{path}: bad NPY header: {reason}")]
    NpyHeader { path: PathBuf, reason: String },
    #[error("{path}: unsupported NPY dtype {descr}; supported: '<f4' (f32), '<f8' (f64)")]
    NpyDtype { path: PathBuf, descr: String },
    #[error("{path}: unsupported NPY byte order in dtype {descr}: big-endian; only little-endian is supported")]
    NpyByteOrder { path: PathBuf, descr: String },
    #[error("{path}: unsupported NPY shape {shape:?}; expected (N,) or (N, d) with d >= 1")]
    NpyShape { path: PathBuf, shape: Vec<usize> },
    #[error("{path}: truncated NPY file: the {part} needs {expected} bytes, found {found}")]
    NpyTruncated {
        path: PathBuf,
        part: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{path}: NPY file has {extra} unexpected bytes after the data")]
    NpyTrailing { path: PathBuf, extra: usize },
    #[error("{path}: cannot save an array with no columns")]
    NoColumns { path: PathBuf },
    #[error("{path}: label column {index} is out of range for {cols} columns (0 is the first column, -1 the last)")]
    LabelColumn {
        path: PathBuf,
        index: isize,
        cols: usize,
    },
    #[error("{path}: the label column is the only column: no point columns are left")]
    LabelOnly { path: PathBuf },
    #[error("{path}: {at}: label {} is {reason}; labels are integers 0 to {} (at most {} classes)",
        label_text(*.value), super::MAX_CLASSES - 1, super::MAX_CLASSES)]
    BadLabel {
        path: PathBuf,
        at: Position,
        value: f64,
        /// What is wrong with it: "negative", "not an integer", "not finite" or "too large".
        reason: &'static str,
    },
}

impl DataError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        use DataError::*;
        match self {
            NotFound { path }
            | Read { path, .. }
            | Write { path, .. }
            | Empty { path }
            | HeaderOnly { path, .. }
            | SingleRow { path }
            | NotUtf8 { path, .. }
            | Ragged { path, .. }
            | EmptyField { path, .. }
            | NonNumeric { path, .. }
            | NonFinite { path, .. }
            | Overflow { path, .. }
            | SklearnClasses { path, .. }
            | OutOfRange { path, .. }
            | NulByte { path, .. }
            | TooManyColumns { path, .. }
            | NpyBadMagic { path }
            | NpyVersion { path, .. }
            | NpyHeader { path, .. }
            | NpyDtype { path, .. }
            | NpyByteOrder { path, .. }
            | NpyShape { path, .. }
            | NpyTruncated { path, .. }
            | NpyTrailing { path, .. }
            | NoColumns { path }
            | LabelColumn { path, .. }
            | LabelOnly { path }
            | BadLabel { path, .. } => path,
        }
    }
}

/// A label as a message quotes it: a whole number as an integer (`-1`, `1000`), anything else in
/// Rust's shortest round-trip form, in exponent form when very large or small (`2.5`, `1e300`).
fn label_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value}")
    } else {
        format!("{value:?}")
    }
}

/// `text` cut to its first `max` characters, with `...` when something was cut: what a message
/// quotes from a file stays short.
pub(super) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}
