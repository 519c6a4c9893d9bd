//! Training data: built-in toy datasets ([`toy`]) and datasets read from CSV ([`csv`](mod@csv)) and
//! NPY ([`npy`]) files. Both give `Array2<f64>`, rows = samples, columns = dimensions.
//!
//! Labelled data ([`LabelledData`]: points and a class per row): the built-in 8x8 handwritten
//! digits ([`digits()`], with a fixed training / held-out split, [`digits_split`]), and CSV or NPY
//! files with a label column ([`load_labelled`]; labels are integers 0 to [`MAX_CLASSES`] - 1).
//!
//! # CSV
//! The layouts public tabular files ship in: a plain table of numbers, a header of names,
//! scikit-learn's `n,d,names...` first line, `;` or tab as the delimiter, quoted fields, CRLF, a
//! BOM, a trailing empty column, class names as labels. Whatever is inferred is said in a note,
//! and no row is ever dropped silently: the rules are [`csv`](mod@csv)'s module doc and
//! docs/cli.md, "Data files". Line and column numbers in errors are 1-based.
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
