//! Labelled datasets: points with a class per row ([`LabelledData`]), from a CSV or NPY file whose
//! label is one of its columns ([`load_labelled`]), or built in ([`crate::data::digits`]).
//!
//! A label is a class number: an integer from 0 to [`MAX_CLASSES`] - 1, written as a number in the
//! file (`3`, `3.0` and `3e0` are the same label; `-0` is 0). Anything else is a
//! [`DataError::BadLabel`] naming the file, the CSV line or NPY row, and the column.
//!
//! A CSV label column may instead hold class names (`setosa`, `Iris-versicolor`, as UCI's and
//! Kaggle's files do): when any of its fields is not a number, every field is a name, and the
//! classes are the distinct names numbered in sorted order (by code point, so a shuffled copy of
//! the file numbers them the same), which a note lists.

use super::csv::{emit_notes, parse_table};
use super::load::{is_npy, parse_npy_within, read_bytes};
use super::{Bounds, DataError, Position};
use ndarray::{Array2, Axis};
use std::path::Path;

/// The most classes a labelled dataset may have: labels are 0 to `MAX_CLASSES - 1` (999). A class
/// number beyond is far more likely a value column taken for the label than a class.
pub const MAX_CLASSES: usize = 1000;

/// Points with a class label each.
///
/// Invariants (kept by every constructor in this crate): `labels.len() == points.nrows()`, and
/// every label is below `classes`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledData {
    /// The points: rows = samples, columns = dimensions (a file's label column removed).
    pub points: Array2<f64>,
    /// The class of each row, in `0..classes`.
    pub labels: Vec<usize>,
    /// The number of classes: one more than the largest label of the dataset the data came from.
    /// A class may have no rows (a file whose labels are 0 and 5 has 6 classes), and a part of a
    /// dataset ([`LabelledData::select`]) keeps the whole dataset's number.
    pub classes: usize,
}

impl LabelledData {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of point columns (the dimension of the data).
    pub fn dim(&self) -> usize {
        self.points.ncols()
    }

    /// How many rows each class has: `classes` counts, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// The given rows (indices into this dataset, in the order given), with the same `classes`.
    ///
    /// # Panics
    /// If a row index is not below [`len`](Self::len).
    pub fn select(&self, rows: &[usize]) -> LabelledData {
        LabelledData {
            points: self.points.select(Axis(0), rows),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            classes: self.classes,
        }
    }
}

/// Loads a CSV or NPY file (by extension, as [`crate::data::load`], with the same rules) whose
/// column `label_column` holds the class labels and whose other columns are the points.
///
/// `label_column` indexes the columns as Python indexes a list: 0 is the first, 1 the second, -1
/// the last, -2 the one before it. A CSV header, if any, is skipped like the other loaders do.
/// `classes` is the largest label + 1, so a file with a single class is fine.
///
/// `bounds.max_cols` bounds the point columns: the file may have one more, its label column.
/// `bounds.max_abs` bounds every value, labels included (they are below [`MAX_CLASSES`] anyway).
///
/// Errors ([`DataError`], one line each): every error of [`crate::data::load_bounded`];
/// [`DataError::LabelColumn`] for a column index beyond the file's columns;
/// [`DataError::LabelOnly`] for a file whose only column is the label; [`DataError::BadLabel`]
/// for the first label (in row order) that is negative, not an integer, or [`MAX_CLASSES`] or more,
/// naming its CSV line or NPY row and its column (a NaN or infinite label is the format's
/// [`DataError::NonFinite`], at the same place).
pub fn load_labelled(
    path: impl AsRef<Path>,
    label_column: isize,
    bounds: &Bounds,
) -> Result<LabelledData, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_labelled(path, &bytes, label_column, bounds)
}

/// [`load_labelled`] on a file's bytes; `path` gives the format (by extension) and names the file
/// in errors.
pub(super) fn parse_labelled(
    path: &Path,
    bytes: &[u8],
    label_column: isize,
    bounds: &Bounds,
) -> Result<LabelledData, DataError> {
    let file_bounds = Bounds {
        max_abs: bounds.max_abs,
        max_cols: bounds.max_cols.saturating_add(1),
    };
    // The CSV line of each row, for errors; an NPY file names rows by number.
    let (table, lines, texts, mut notes) = if is_npy(path) {
        (
            parse_npy_within(path, bytes, &file_bounds)?,
            None,
            None,
            Vec::new(),
        )
    } else {
        let t = parse_table(path, bytes, &file_bounds, Some(label_column))?;
        (t.data, Some(t.lines), t.label_texts, t.notes)
    };
    let cols = table.ncols();
    let column = column_index(label_column, cols).ok_or_else(|| DataError::LabelColumn {
        path: path.to_path_buf(),
        index: label_column,
        cols,
    })?;
    if cols == 1 {
        return Err(DataError::LabelOnly {
            path: path.to_path_buf(),
        });
    }
    let kept: Vec<usize> = (0..cols).filter(|&c| c != column).collect();
    let line_of = |r: usize| match &lines {
        Some(lines) => Position::Line {
            line: lines[r],
            column: column + 1,
        },
        None => Position::Row {
            row: r + 1,
            column: column + 1,
        },
    };
    // Class names: some label is not a number (a NaN in the table; a NaN written as a number is
    // refused by the reader).
    if let Some(texts) = texts.filter(|_| table.column(column).iter().any(|v| v.is_nan())) {
        let (labels, names) = classes_by_name(&texts);
        if let Some(r) = labels.iter().position(|&l| l >= MAX_CLASSES) {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                at: line_of(r),
                value: labels[r] as f64,
                reason: "too large",
            });
        }
        notes.push(format!(
            "{}: column {} holds class names, numbered in sorted order: {}",
            path.display(),
            column + 1,
            class_list(&names)
        ));
        emit_notes(&notes);
        return Ok(LabelledData {
            points: table.select(Axis(1), &kept),
            labels,
            classes: names.len(),
        });
    }
    let mut labels = Vec::with_capacity(table.nrows());
    for (r, &value) in table.column(column).iter().enumerate() {
        let label = class_of(value).map_err(|reason| DataError::BadLabel {
            path: path.to_path_buf(),
            at: line_of(r),
            value,
            reason,
        })?;
        labels.push(label);
    }
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    emit_notes(&notes);
    Ok(LabelledData {
        points: table.select(Axis(1), &kept),
        labels,
        classes,
    })
}

/// The class of each row from its name, and the names in class order: the distinct names sorted.
fn classes_by_name(texts: &[String]) -> (Vec<usize>, Vec<String>) {
    let names: Vec<String> = texts
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    let labels = texts
        .iter()
        .map(|t| names.binary_search(t).expect("every name is listed"))
        .collect();
    (labels, names)
}

/// `0 setosa, 1 versicolor, ...` for a note: the first 10 classes, then how many there are.
fn class_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(10)
        .enumerate()
        .map(|(k, n)| format!("{k} {n:?}"))
        .collect();
    if names.len() > 10 {
        format!("{}, ... ({} classes)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// The 0-based column that `index` names among `cols` (negative: from the end), if there is one.
pub(super) fn column_index(index: isize, cols: usize) -> Option<usize> {
    if index >= 0 {
        Some(index.unsigned_abs()).filter(|&c| c < cols)
    } else {
        cols.checked_sub(index.unsigned_abs())
    }
}

/// The class a label value stands for, or what is wrong with it (the reason of
/// [`DataError::BadLabel`]).
fn class_of(value: f64) -> Result<usize, &'static str> {
    if !value.is_finite() {
        Err("not finite")
    } else if value < 0.0 {
        Err("negative")
    } else if value.fract() != 0.0 {
        Err("not an integer")
    } else if value >= MAX_CLASSES as f64 {
        Err("too large")
    } else {
        Ok(value as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn column_indices_count_from_either_end() {
        assert_eq!(column_index(0, 3), Some(0));
        assert_eq!(column_index(2, 3), Some(2));
        assert_eq!(column_index(3, 3), None);
        assert_eq!(column_index(-1, 3), Some(2));
        assert_eq!(column_index(-3, 3), Some(0));
        assert_eq!(column_index(-4, 3), None);
        assert_eq!(column_index(isize::MIN, 3), None);
        assert_eq!(column_index(isize::MAX, 3), None);
    }

    #[test]
    fn labels_are_small_non_negative_integers() {
        assert_eq!(class_of(0.0), Ok(0));
        assert_eq!(class_of(-0.0), Ok(0));
        assert_eq!(class_of(7.0), Ok(7));
        assert_eq!(class_of(999.0), Ok(999));
        assert_eq!(class_of(1000.0), Err("too large"));
        assert_eq!(class_of(1e300), Err("too large"));
        assert_eq!(class_of(-1.0), Err("negative"));
        assert_eq!(class_of(-0.5), Err("negative"));
        assert_eq!(class_of(2.5), Err("not an integer"));
        assert_eq!(class_of(1e-300), Err("not an integer"));
        assert_eq!(class_of(f64::NAN), Err("not finite"));
        assert_eq!(class_of(f64::NEG_INFINITY), Err("not finite"));
    }

    #[test]
    fn select_keeps_the_classes_and_the_row_order() {
        let data = LabelledData {
            points: array![[0.0], [1.0], [2.0]],
            labels: vec![2, 0, 1],
            classes: 3,
        };
        let part = data.select(&[2, 0]);
        assert_eq!(part.points, array![[2.0], [0.0]]);
        assert_eq!(part.labels, vec![1, 2]);
        assert_eq!(part.classes, 3);
        assert_eq!(part.class_counts(), vec![0, 1, 1]);
        assert_eq!((part.len(), part.dim(), part.is_empty()), (2, 1, false));
    }

    #[test]
    fn bad_label_messages_quote_the_value_short() {
        let e = parse_labelled(Path::new("t.csv"), b"1,2\n3,-1\n", -1, &Bounds::NONE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv: line 2, column 2: label -1 is negative; labels are integers 0 to 999 (at most \
             1000 classes)"
        );
        let e =
            parse_labelled(Path::new("t.csv"), b"1,2\n3,1e-300\n", 1, &Bounds::NONE).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("t.csv: line 2, column 2: label 1e-300 is not an integer;"),
            "{e}"
        );
        let e =
            parse_labelled(Path::new("t.csv"), b"1,2\n3,1e300\n", 1, &Bounds::NONE).unwrap_err();
        assert!(e.to_string().contains("label 1e300 is too large"), "{e}");
    }
}
