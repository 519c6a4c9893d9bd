//! Datasets from files: CSV and NPY, N rows (samples) x d columns, read into `Array2<f64>` with
//! strict validation, and written atomically.
//!
//! # CSV
//! Comma separated, UTF-8 (a leading BOM is skipped), `\n` or `\r\n` line ends. Each field is
//! trimmed of whitespace and parsed as an f64 (Rust syntax: `1`, `-2.5`, `1e-3`, `.5`, `+3`).
//! Lines that are empty or all whitespace are skipped wherever they are, and so are comment lines,
//! whose first non-blank character is `#` (numpy's `loadtxt` convention). A NUL byte means the
//! file is not text: it is refused, naming its line. The first remaining line
//! is a header when none of its fields parses as a number; a first line with some numeric and some
//! non-numeric fields is data, and its bad field is reported. Every row, header included, must
//! have the same number of fields. Line and column numbers in errors are 1-based (lines count
//! every line of the file, columns count fields).
//!
//! # NPY
//! Format versions 1.0, 2.0 and 3.0; dtype `<f4` or `<f8` (`=` native order accepted on
//! little-endian machines); `fortran_order` True or False; shape `(N, d)` with d >= 1, or `(N,)`
//! read as N x 1. The file must hold exactly N d values after the header. Rows and columns in
//! errors are 1-based.
//!
//! # Both
//! Every value must be finite, and there must be at least 2 rows. [`load_bounded`] also refuses
//! values beyond a magnitude (what a run's precision can square), naming where the first one is,
//! and more columns than a limit, before reading the values (a file of 5e7 columns costs no 800 MB).
//!
//! The NPY reader and writer are written here (the format is a magic string, a version, a header
//! length, a Python-dict header and the raw values) so that every malformed file gets its own
//! error variant naming the problem.
//!
//! # Writing
//! [`save_csv`] and [`save_npy`] write to a temporary file in the destination's folder, flush it to
//! disk, then rename it over the destination, so a crash leaves either the old file or the new
//! one, never half of one.

use ndarray::{Array2, ArrayView2, ShapeBuilder};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

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
    #[error("{path}: {at}: value {value:e} is out of range: at most {max_abs:.3e} in magnitude")]
    OutOfRange {
        path: PathBuf,
        at: Position,
        value: f64,
        max_abs: f64,
    },
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
            | NoColumns { path } => path,
        }
    }
}

/// Element type of an NPY file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
}

impl NpyDtype {
    fn descr(self) -> &'static str {
        match self {
            NpyDtype::F32 => "<f4",
            NpyDtype::F64 => "<f8",
        }
    }

    fn size(self) -> usize {
        match self {
            NpyDtype::F32 => 4,
            NpyDtype::F64 => 8,
        }
    }
}

/// A CSV file's values and, when it has one, its header.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvData {
    pub data: Array2<f64>,
    pub header: Option<Vec<String>>,
}

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
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let bytes = read_bytes(path)?;
    if is_npy {
        let data = parse_npy_bounded(path, &bytes, bounds.max_cols)?;
        check_bound(path, data.view(), bounds.max_abs)?;
        Ok(data)
    } else {
        parse_csv_bounded(path, &bytes, bounds).map(|c| c.data)
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a CSV file (see the module doc for the rules).
pub fn load_csv(path: impl AsRef<Path>) -> Result<Array2<f64>, DataError> {
    load_csv_with_header(path).map(|c| c.data)
}

/// Reads a CSV file and returns its header too, if it has one.
pub fn load_csv_with_header(path: impl AsRef<Path>) -> Result<CsvData, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_csv(path, &bytes)
}

/// Parses CSV text; `path` is only used in errors.
pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<CsvData, DataError> {
    parse_csv_bounded(path, bytes, &Bounds::NONE)
}

/// [`parse_csv`] within `bounds`.
fn parse_csv_bounded(path: &Path, bytes: &[u8], bounds: &Bounds) -> Result<CsvData, DataError> {
    let max_abs = bounds.max_abs;
    let p = || path.to_path_buf();
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(DataError::NulByte {
            path: p(),
            line: 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count(),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
        path: p(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut values = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut header_line = 0;
    // (number of fields, line that fixed it)
    let mut width: Option<(usize, usize)> = None;
    let mut rows = 0usize;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        if width.is_none() {
            // The first row fixes the width: count it before splitting it.
            let found = 1 + raw.bytes().filter(|&b| b == b',').count();
            if found > bounds.max_cols {
                return Err(DataError::TooManyColumns {
                    path: p(),
                    found,
                    max: bounds.max_cols,
                });
            }
        }
        let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        match width {
            None => {
                width = Some((fields.len(), line));
                if fields.iter().all(|f| f.parse::<f64>().is_err()) {
                    header = Some(fields.iter().map(|f| f.to_string()).collect());
                    header_line = line;
                    continue;
                }
            }
            Some((expected, first_line)) => {
                if fields.len() != expected {
                    return Err(DataError::Ragged {
                        path: p(),
                        line,
                        found: fields.len(),
                        expected,
                        first_line,
                    });
                }
            }
        }
        for (c, field) in fields.iter().enumerate() {
            let column = c + 1;
            if field.is_empty() {
                return Err(DataError::EmptyField {
                    path: p(),
                    line,
                    column,
                });
            }
            let value: f64 = field.parse().map_err(|_| DataError::NonNumeric {
                path: p(),
                line,
                column,
                text: shorten(field),
            })?;
            if !value.is_finite() {
                return Err(DataError::NonFinite {
                    path: p(),
                    at: Position::Line { line, column },
                    value,
                });
            }
            if value.abs() > max_abs {
                return Err(DataError::OutOfRange {
                    path: p(),
                    at: Position::Line { line, column },
                    value,
                    max_abs,
                });
            }
            values.push(value);
        }
        rows += 1;
    }
    match (rows, &header) {
        (0, Some(_)) => {
            return Err(DataError::HeaderOnly {
                path: p(),
                header_line,
            })
        }
        (0, None) => return Err(DataError::Empty { path: p() }),
        (1, _) => return Err(DataError::SingleRow { path: p() }),
        _ => {}
    }
    let cols = width.map_or(0, |w| w.0);
    let data = Array2::from_shape_vec((rows, cols), values).expect("rows x cols values");
    Ok(CsvData { data, header })
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push_str("...");
        s
    }
}

/// A value of the Python-literal subset that NPY headers use.
#[derive(Clone, Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<PyValue>),
    List(Vec<PyValue>),
}

impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |f: &mut fmt::Formatter<'_>, items: &[PyValue]| -> fmt::Result {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            Ok(())
        };
        match self {
            PyValue::Str(s) => write!(f, "'{s}'"),
            PyValue::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            PyValue::Int(i) => write!(f, "{i}"),
            PyValue::Tuple(items) => {
                f.write_str("(")?;
                seq(f, items)?;
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            PyValue::List(items) => {
                f.write_str("[")?;
                seq(f, items)?;
                f.write_str("]")
            }
        }
    }
}

/// Recursive-descent parser for `{'key': value, ...}` with strings, True/False, non-negative
/// integers, tuples and lists.
struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

/// The deepest nesting of tuples and lists a header may have (numpy's structured dtypes need a
/// few levels); deeper input would only exhaust the stack of the recursive parser.
const MAX_HEADER_NESTING: usize = 32;

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected '{}' at offset {}, found '{}'",
                c as char, self.i, x as char
            )),
            None => Err(format!("expected '{}', found the end", c as char)),
        }
    }

    fn value(&mut self) -> Result<PyValue, String> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<PyValue, String> {
        if depth > MAX_HEADER_NESTING {
            return Err(format!(
                "tuples or lists nested more than {MAX_HEADER_NESTING} deep at offset {}",
                self.i
            ));
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    self.i += 1;
                }
                if self.i == self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(PyValue::Str(text))
            }
            Some(b'(') => {
                self.i += 1;
                Ok(PyValue::Tuple(self.sequence(b')', depth + 1)?))
            }
            Some(b'[') => {
                self.i += 1;
                Ok(PyValue::List(self.sequence(b']', depth + 1)?))
            }
            Some(c) if c.is_ascii_alphanumeric() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match word {
                    "True" => Ok(PyValue::Bool(true)),
                    "False" => Ok(PyValue::Bool(false)),
                    _ => word
                        .trim_end_matches('L')
                        .parse::<u64>()
                        .map(PyValue::Int)
                        .map_err(|_| format!("unexpected word '{word}'")),
                }
            }
            Some(c) => Err(format!(
                "unexpected character '{}' at offset {}",
                c as char, self.i
            )),
            None => Err("unexpected end of header".into()),
        }
    }

    fn sequence(&mut self, close: u8, depth: usize) -> Result<Vec<PyValue>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value_at(depth)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected ',' or '{}'", close as char)),
            }
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, PyValue)>, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                break;
            }
            let key = match self.value()? {
                PyValue::Str(k) => k,
                other => return Err(format!("dictionary key {other} is not a string")),
            };
            self.expect(b':')?;
            let value = self.value()?;
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("duplicate key '{key}'"));
            }
            entries.push((key, value));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}' after a dictionary entry".into()),
            }
        }
        if self.peek().is_some() {
            return Err(format!(
                "unexpected text after the dictionary at offset {}",
                self.i
            ));
        }
        Ok(entries)
    }
}

/// Reads an NPY file (see the module doc for what is accepted).
pub fn load_npy(path: impl AsRef<Path>) -> Result<Array2<f64>, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_npy(path, &bytes)
}

/// Parses NPY bytes; `path` is only used in errors.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Array2<f64>, DataError> {
    parse_npy_bounded(path, bytes, usize::MAX)
}

/// [`parse_npy`], refusing more than `max_cols` columns before reading the values.
fn parse_npy_bounded(path: &Path, bytes: &[u8], max_cols: usize) -> Result<Array2<f64>, DataError> {
    let p = || path.to_path_buf();
    if bytes.is_empty() {
        return Err(DataError::Empty { path: p() });
    }
    let n_magic = bytes.len().min(NPY_MAGIC.len());
    if bytes[..n_magic] != NPY_MAGIC[..n_magic] {
        return Err(DataError::NpyBadMagic { path: p() });
    }
    let truncated = |part, expected, found| DataError::NpyTruncated {
        path: p(),
        part,
        expected,
        found,
    };
    if bytes.len() < 10 {
        return Err(truncated("preamble", 10, bytes.len()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(truncated("preamble", 12, bytes.len()));
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        _ => {
            return Err(DataError::NpyVersion {
                path: p(),
                major,
                minor,
            })
        }
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(truncated("header", data_start, bytes.len()));
    }
    let bad_header = |reason: String| DataError::NpyHeader { path: p(), reason };
    let header = &bytes[header_start..data_start];
    if !header.is_ascii() && std::str::from_utf8(header).is_err() {
        return Err(bad_header("header is not text".into()));
    }
    let entries = PyParser { s: header, i: 0 }.dict().map_err(bad_header)?;

    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in entries {
        match key.as_str() {
            "descr" => descr = Some(value),
            "fortran_order" => fortran = Some(value),
            "shape" => shape = Some(value),
            _ => return Err(bad_header(format!("unexpected key '{key}'"))),
        }
    }
    let missing = |k: &str| bad_header(format!("missing key '{k}'"));
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = match fortran.ok_or_else(|| missing("fortran_order"))? {
        PyValue::Bool(b) => b,
        other => {
            return Err(bad_header(format!(
                "fortran_order is {other}, not True/False"
            )))
        }
    };
    let shape: Vec<usize> = match shape.ok_or_else(|| missing("shape"))? {
        PyValue::Tuple(items) => items
            .iter()
            .map(|v| match v {
                PyValue::Int(i) => {
                    usize::try_from(*i).map_err(|_| format!("shape entry {i} too large"))
                }
                other => Err(format!("shape entry {other} is not an integer")),
            })
            .collect::<Result<_, _>>()
            .map_err(bad_header)?,
        other => return Err(bad_header(format!("shape is {other}, not a tuple"))),
    };

    let dtype = match &descr {
        PyValue::Str(s) => {
            let native_le = cfg!(target_endian = "little");
            match s.as_str() {
                "<f8" => NpyDtype::F64,
                "<f4" => NpyDtype::F32,
                "=f8" if native_le => NpyDtype::F64,
                "=f4" if native_le => NpyDtype::F32,
                ">f8" | ">f4" | "=f8" | "=f4" => {
                    return Err(DataError::NpyByteOrder {
                        path: p(),
                        descr: descr.to_string(),
                    })
                }
                _ => {
                    return Err(DataError::NpyDtype {
                        path: p(),
                        descr: descr.to_string(),
                    })
                }
            }
        }
        _ => {
            return Err(DataError::NpyDtype {
                path: p(),
                descr: descr.to_string(),
            })
        }
    };

    let (rows, cols) = match shape[..] {
        [n] => (n, 1),
        [n, d] if d >= 1 => (n, d),
        _ => return Err(DataError::NpyShape { path: p(), shape }),
    };
    if cols > max_cols {
        return Err(DataError::TooManyColumns {
            path: p(),
            found: cols,
            max: max_cols,
        });
    }
    let count = rows
        .checked_mul(cols)
        .and_then(|c| c.checked_mul(dtype.size()))
        .ok_or_else(|| bad_header(format!("shape {shape:?} is too large")))?;
    let available = bytes.len() - data_start;
    if available < count {
        return Err(truncated("data", count, available));
    }
    if available > count {
        return Err(DataError::NpyTrailing {
            path: p(),
            extra: available - count,
        });
    }
    if rows == 0 {
        return Err(DataError::Empty { path: p() });
    }
    if rows == 1 {
        return Err(DataError::SingleRow { path: p() });
    }

    let raw = &bytes[data_start..];
    let values: Vec<f64> = match dtype {
        NpyDtype::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        NpyDtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
    };
    let data = if fortran {
        Array2::from_shape_vec((rows, cols).f(), values)
    } else {
        Array2::from_shape_vec((rows, cols), values)
    }
    .expect("rows x cols values");
    check_finite(path, data.view())?;
    Ok(data.as_standard_layout().into_owned())
}

/// The first non-finite value in row-major order, as a [`DataError::NonFinite`] at a row.
fn check_finite(path: &Path, data: ArrayView2<f64>) -> Result<(), DataError> {
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

/// The NPY bytes of `data` (format 1.0, header padded so the data start at a multiple of 64).
pub fn npy_bytes(data: ArrayView2<f64>, dtype: NpyDtype, fortran_order: bool) -> Vec<u8> {
    let (rows, cols) = data.dim();
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': ({rows}, {cols}), }}",
        dtype.descr(),
        if fortran_order { "True" } else { "False" }
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n' = multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len + rows * cols * dtype.size());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(&vec![b' '; padding]);
    out.push(b'\n');
    let mut push = |v: f64| match dtype {
        NpyDtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
        NpyDtype::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
    };
    if fortran_order {
        for column in data.columns() {
            column.iter().for_each(|&v| push(v));
        }
    } else {
        for row in data.rows() {
            row.iter().for_each(|&v| push(v));
        }
    }
    out
}

/// Writes `bytes` to `path` atomically ([`crate::io::atomic::write_atomically`]).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    crate::io::atomic::write_atomically(path, bytes).map_err(|source| DataError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn check_savable(path: &Path, data: ArrayView2<f64>) -> Result<(), DataError> {
    if data.ncols() == 0 {
        return Err(DataError::NoColumns {
            path: path.to_path_buf(),
        });
    }
    check_finite(path, data)
}

/// Writes `data` as CSV, with `header` (one name per column) as the first line when given. Values
/// are written in Rust's shortest round-trip form, so [`load_csv`] reads back the same f64s.
/// Refuses non-finite values ([`DataError::NonFinite`]) and zero columns.
///
/// # Panics
/// If `header` does not have one name per column.
pub fn save_csv(
    path: impl AsRef<Path>,
    data: ArrayView2<f64>,
    header: Option<&[&str]>,
) -> Result<(), DataError> {
    let path = path.as_ref();
    check_savable(path, data)?;
    let mut text = String::new();
    if let Some(names) = header {
        assert_eq!(
            names.len(),
            data.ncols(),
            "save_csv: {} header names for {} columns",
            names.len(),
            data.ncols()
        );
        text.push_str(&names.join(","));
        text.push('\n');
    }
    for row in data.rows() {
        for (c, v) in row.iter().enumerate() {
            if c > 0 {
                text.push(',');
            }
            text.push_str(&format!("{v:?}"));
        }
        text.push('\n');
    }
    write_atomically(path, text.as_bytes())
}

/// Writes `data` as NPY (format 1.0) with the given element type and memory order. Refuses
/// non-finite values (including f64 values that overflow f32) and zero columns.
pub fn save_npy(
    path: impl AsRef<Path>,
    data: ArrayView2<f64>,
    dtype: NpyDtype,
    fortran_order: bool,
) -> Result<(), DataError> {
    let path = path.as_ref();
    check_savable(path, data)?;
    if dtype == NpyDtype::F32 {
        check_finite(path, data.mapv(|v| v as f32 as f64).view())?;
    }
    write_atomically(path, &npy_bytes(data, dtype, fortran_order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_dict_parser() {
        let h = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }   \n";
        let e = PyParser { s: h, i: 0 }.dict().unwrap();
        assert_eq!(e[0], ("descr".into(), PyValue::Str("<f8".into())));
        assert_eq!(e[1], ("fortran_order".into(), PyValue::Bool(false)));
        assert_eq!(
            e[2],
            (
                "shape".into(),
                PyValue::Tuple(vec![PyValue::Int(3), PyValue::Int(2)])
            )
        );
        let t = PyParser { s: b"(5,)", i: 0 }.value().unwrap();
        assert_eq!(t.to_string(), "(5,)");
        assert!(PyParser {
            s: b"{'a': 1",
            i: 0
        }
        .dict()
        .is_err());
        assert!(PyParser {
            s: b"{'a': 1, 'a': 2}",
            i: 0
        }
        .dict()
        .is_err());
    }

    #[test]
    fn npy_header_is_aligned() {
        for (r, c) in [(2, 1), (1000, 17), (3, 123456)] {
            let data = Array2::<f64>::zeros((r, c));
            let b = npy_bytes(data.view(), NpyDtype::F64, false);
            let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + hl) % 64, 0);
            assert_eq!(b[10 + hl - 1], b'\n');
        }
    }
}
