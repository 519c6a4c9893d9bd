//! Training data: built-in toy datasets ([`toy`]) and datasets read from CSV ([`csv`](mod@csv)) and
//! NPY ([`npy`]) files. Both give `Array2<f64>`, rows = samples, columns = dimensions.
//!
//! Labelled data ([`LabelledData`]: points and a class per row): the built-in 8x8 handwritten
//! digits ([`digits()`], with a fixed training / held-out split, [`digits_split`]), and CSV or NPY
//! files with a label column ([`load_labelled`]; labels are integers 0 to [`MAX_CLASSES`] - 1).
//!
//! # CSV
//! Comma separated, UTF-8 (a leading BOM is skipped), `\n` or `\r\n` line ends, no quoting. Each
//! field is trimmed of whitespace and parsed as an f64 (Rust syntax: `1`, `-2.5`, `1e-3`, `.5`,
//! `+3`). Lines that are empty or all whitespace are skipped wherever they are, and so are comment
//! lines, whose first non-blank character is `#` (numpy's `loadtxt` convention). A NUL byte means
//! the file is not text: it is refused, naming its line. The first remaining line is a header when
//! none of its fields parses as a number; a first line with some numeric and some non-numeric
//! fields is data, and its bad field is reported. Every row, header included, must have the same
//! number of fields. Line and column numbers in errors are 1-based (lines count every line of the
//! file, columns count fields).
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
//! Every problem is a [`DataError`]: one line naming the file, the place and the problem.
//!
//! # Writing
//! [`save_csv`] and [`save_npy`] write through [`crate::io::atomic::write_atomically`], so a crash
//! leaves either the old file or the new one, never half of one.

pub mod csv;
mod digits;
mod error;
mod labelled;
mod load;
pub mod npy;
pub mod toy;
pub mod units;

pub use self::csv::{load_csv, load_csv_with_header, save_csv, CsvData};
pub use digits::{
    digits, digits_split, digits_split_rows, digits_units, DIGITS_CLASSES, DIGITS_DIM,
    DIGITS_HELD_OUT_PER_CLASS, DIGITS_ROWS, DIGITS_SPLIT_SEED,
};
pub use error::{DataError, Position};
pub use labelled::{load_labelled, LabelledData, MAX_CLASSES};
pub use load::{load, load_bounded, Bounds};
pub use npy::{load_npy, save_npy, NpyDtype};
pub use toy::{ParseDatasetError, ToyDataset, DATASET_NAMES};
pub use units::DataUnits;
