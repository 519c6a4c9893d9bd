//! CSV datasets: a table of numbers, one sample per line, read with the `csv` crate and checked
//! field by field, and written back in a form that reads to the same f64s. The rules are in the
//! module doc of [`crate::data`].
//!
//! What the `csv` crate does here: splitting the text into records and fields at `\n` and commas,
//! trimming, and counting lines for the positions in errors. What stays ours, each for the reason
//! given where it is: the NUL and UTF-8 checks on the whole file, the column count of the first row
//! before any record is built, which records are blank or comment lines, the line of a record that
//! follows an empty line, header detection, the width check (so that it names the line that set
//! the width) and the numbers themselves.

use super::error::shorten;
use super::load::{check_savable, read_bytes, write_file};
use super::{Bounds, DataError, Position};
use ndarray::{Array2, ArrayView2};
use std::path::Path;

/// A CSV file's values and, when it has one, its header.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvData {
    pub data: Array2<f64>,
    pub header: Option<Vec<String>>,
}

/// Reads a CSV file (see the module doc of [`crate::data`] for the rules).
pub fn load_csv(path: impl AsRef<Path>) -> Result<Array2<f64>, DataError> {
    load_csv_with_header(path).map(|c| c.data)
}

/// Reads a CSV file and returns its header too, if it has one.
pub fn load_csv_with_header(path: impl AsRef<Path>) -> Result<CsvData, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_csv(path, &bytes)
}

/// Parses CSV bytes; `path` is only used in errors.
pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<CsvData, DataError> {
    parse_csv_bounded(path, bytes, &Bounds::NONE)
}

/// The 1-based line of the first NUL byte, if there is one.
fn nul_line(bytes: &[u8]) -> Option<usize> {
    let at = bytes.iter().position(|&b| b == 0)?;
    Some(1 + bytes[..at].iter().filter(|&&b| b == b'\n').count())
}

/// The file as text without its BOM. Our own checks on the whole file, before the `csv` crate sees
/// it: the crate takes a NUL byte as an ordinary character (a binary file would then fail on some
/// "non-numeric field" instead of being named for what it is), and it checks UTF-8 only inside the
/// records it returns, so bad bytes in a comment line would pass and an error would name a record,
/// not a line.
fn text_of<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    if let Some(line) = nul_line(bytes) {
        return Err(DataError::NulByte {
            path: path.to_path_buf(),
            line,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
        path: path.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// A record that carries no row: a line of blanks (one empty field once trimmed) or a comment line,
/// whose first non-blank character is `#`. Ours: the `csv` crate's `comment` setting only
/// recognises a `#` in the line's very first byte, and it passes a line of blanks on as a record.
fn is_skipped(record: &csv::StringRecord) -> bool {
    (record.len() == 1 && record[0].is_empty()) || record[0].starts_with('#')
}

/// The number of fields of the first line that carries a row. Ours: the `csv` crate builds a whole
/// record (8 bytes of bookkeeping per field) before we could count its fields, and a file of 5e7
/// columns must be refused before that. Without quoting a field never holds a comma, so this is
/// exactly the width the reader will find.
fn first_row_width(text: &str) -> Option<usize> {
    let line = text.split('\n').find(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#')
    })?;
    Some(1 + line.bytes().filter(|&b| b == b',').count())
}

/// [`parse_csv`] within `bounds`.
pub(super) fn parse_csv_bounded(
    path: &Path,
    bytes: &[u8],
    bounds: &Bounds,
) -> Result<CsvData, DataError> {
    parse_csv_lines(path, bytes, bounds).map(|(data, _)| data)
}

/// [`parse_csv_bounded`], also giving the 1-based line of each data row (for errors found after
/// parsing, such as a bad label).
pub(super) fn parse_csv_lines(
    path: &Path,
    bytes: &[u8],
    bounds: &Bounds,
) -> Result<(CsvData, Vec<usize>), DataError> {
    let max_abs = bounds.max_abs;
    let p = || path.to_path_buf();
    let text = text_of(path, bytes)?;
    if let Some(found) = first_row_width(text) {
        if found > bounds.max_cols {
            return Err(DataError::TooManyColumns {
                path: p(),
                found,
                max: bounds.max_cols,
            });
        }
    }

    // Settings: no header row (ours is detected below), any number of fields per record (a line of
    // blanks or a comment is a record to the crate, so its `flexible(false)` would count them, and
    // our width error names the line that set the width), no quoting (numbers need none, and a
    // stray `"` would otherwise join the following lines into one field), `\n` alone ends a record
    // (a `\r` before it is trimmed as whitespace, and a lone `\r` stays inside its line, so that
    // line numbers count `\n` as every editor does).
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .quoting(false)
        .trim(csv::Trim::All)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();

    let mut values = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut header_line = 0;
    // (number of fields, line that fixed it)
    let mut width: Option<(usize, usize)> = None;
    let mut row_lines = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            // Valid UTF-8 in memory, any widths, no quoting: the crate has nothing left to refuse.
            Err(e) => {
                return Err(DataError::Read {
                    path: p(),
                    source: e.into(),
                })
            }
        }
        if is_skipped(&record) {
            continue;
        }
        let line = record_line(&reader, text);
        match width {
            None => {
                width = Some((record.len(), line));
                if record.iter().all(|f| f.parse::<f64>().is_err()) {
                    header = Some(record.iter().map(str::to_string).collect());
                    header_line = line;
                    continue;
                }
            }
            Some((expected, first_line)) => {
                if record.len() != expected {
                    return Err(DataError::Ragged {
                        path: p(),
                        line,
                        found: record.len(),
                        expected,
                        first_line,
                    });
                }
            }
        }
        for (c, field) in record.iter().enumerate() {
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
                text: shorten(field, 40),
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
        row_lines.push(line);
    }
    let rows = row_lines.len();
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
    Ok((CsvData { data, header }, row_lines))
}

/// The 1-based line of the record just read. The crate's own `record.position()` is where it began
/// to look for the record, which is a line too early after an empty line (rust-csv issue 208), so
/// the line is taken from where the record ended: the reader has counted the `\n` that ended it.
fn record_line(reader: &csv::Reader<&[u8]>, text: &str) -> usize {
    let end = reader.position();
    let ended_by_newline = end
        .byte()
        .checked_sub(1)
        .is_some_and(|i| text.as_bytes().get(i as usize) == Some(&b'\n'));
    end.line() as usize - usize::from(ended_by_newline)
}

/// Writes `data` as CSV, with `header` (one name per column) as the first line when given. Values
/// are written in Rust's shortest round-trip form, so [`load_csv`] reads back the same f64s.
/// Refuses non-finite values ([`DataError::NonFinite`]) and zero columns. Written here, not with
/// `csv::Writer`: a row of numbers joined by commas needs none of its quoting, which the reader
/// (no quoting) would not undo.
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
    write_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn parse(text: &str) -> Result<CsvData, DataError> {
        parse_csv(Path::new("t.csv"), text.as_bytes())
    }

    fn error(text: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(!e.contains('\n'), "multi-line: {e}");
        e
    }

    /// Lines count every line of the file: blank lines (the `csv` crate's own position is a line
    /// early after them), whitespace-only lines, `\r\n` ends, comments and a last line without `\n`.
    #[test]
    fn error_lines_count_every_line() {
        assert_eq!(
            error("1,2\n\n\n3,x\n"),
            "t.csv: line 4, column 2: non-numeric field \"x\""
        );
        assert_eq!(
            error("\n\n\n1,2\n3,x"),
            "t.csv: line 5, column 2: non-numeric field \"x\""
        );
        assert_eq!(
            error("x,y\r\n\r\n1,2\r\n  \r\n3,4,5\r\n"),
            "t.csv: line 5: ragged row with 3 fields, expected 2 (as on line 1)"
        );
        assert_eq!(
            error("# made by hand\n1,2\n  # indented\n\n3,4\n5\n"),
            "t.csv: line 6: ragged row with 1 fields, expected 2 (as on line 2)"
        );
        assert_eq!(
            error("1,2\n3,4\n 5 , \t\n"),
            "t.csv: line 3, column 2: empty field"
        );
    }

    /// No quoting: a quote is a character of its field, and a stray one does not join lines.
    #[test]
    fn quotes_are_plain_characters() {
        assert_eq!(
            error("1,\"2\n3,4\n5,6\n"),
            "t.csv: line 1, column 2: non-numeric field \"\\\"2\""
        );
        let c = parse("\"x\",\"y\"\n1,2\n3,4\n").unwrap();
        assert_eq!(c.header, Some(vec!["\"x\"".to_string(), "\"y\"".into()]));
    }

    /// Only `\n` ends a line: a lone `\r` stays inside its line (and its field).
    #[test]
    fn a_lone_carriage_return_does_not_end_a_line() {
        assert_eq!(
            error("1,2\r3,4\n5,6\n"),
            "t.csv: line 1, column 2: non-numeric field \"2\\r3\""
        );
    }

    #[test]
    fn header_detection_and_comments() {
        let c = parse("\u{feff}  # note, with a comma\n a , b \n1,2\n#x\n3,4").unwrap();
        assert_eq!(c.header, Some(vec!["a".to_string(), "b".into()]));
        assert_eq!(c.data, array![[1.0, 2.0], [3.0, 4.0]]);
        // A first line with one number is data.
        assert_eq!(
            error("a,1\n2,3\n"),
            "t.csv: line 1, column 1: non-numeric field \"a\""
        );
    }

    /// The width of the first row is counted before any record is built, past blanks and comments.
    #[test]
    fn too_many_columns_are_refused_from_the_first_row() {
        let bounds = Bounds {
            max_abs: f64::MAX,
            max_cols: 3,
        };
        let path = Path::new("w.csv");
        let text = "\n# a, b, c, d, e\n  \n1,2,3,4\n";
        let e = parse_csv_bounded(path, text.as_bytes(), &bounds).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TooManyColumns {
                    found: 4,
                    max: 3,
                    ..
                }
            ),
            "{e}"
        );
        let ok = parse_csv_bounded(path, b"# a, b, c, d, e\n1,2,3\n4,5,6\n", &bounds).unwrap();
        assert_eq!(ok.data.dim(), (2, 3));
    }

    #[test]
    fn long_fields_are_cut_in_messages() {
        let long = "y".repeat(100);
        let e = error(&format!("1,2\n3,{long}\n"));
        assert!(e.ends_with(&format!("\"{}...\"", "y".repeat(40))), "{e}");
    }
}
