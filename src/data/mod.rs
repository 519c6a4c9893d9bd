//! Training data: built-in toy datasets ([`toy`]) and datasets read from CSV / NPY files ([`file`](mod@file)).
//! Both give `Array2<f64>`, rows = samples, columns = dimensions.

pub mod file;
pub mod toy;

pub use file::{
    load, load_bounded, load_csv, load_csv_with_header, load_npy, save_csv, save_npy, Bounds,
    CsvData, DataError, NpyDtype, Position,
};
pub use toy::{ParseDatasetError, ToyDataset, DATASET_NAMES};
