//! CSV datasets: a table of numbers, one sample per line, checked field by field, and written back
//! in a form that reads to the same f64s. The rules (docs/cli.md, "Data files", in full):
//!
//! - lines: UTF-8, BOM skipped, `\n` or `\r\n`; blank lines and `#` comment lines skipped;
//! - the delimiter is the first line's, outside quotes: `;`, else `,`, else a tab;
//! - fields are trimmed; a field starting with `"` is quoted (`""` a quote) and ends on its line;
//! - numbers are f64s in Rust's syntax, `−` (U+2212) read as `-`;
//! - the first line is a header when it is names (and empty fields) only, or scikit-learn's
//!   `n,d,class names...`; anything else is data, its bad field reported; a scikit-learn file is
//!   read with its label column (the last, as the format declares), or refused
//!   ([`DataError::SklearnClasses`]) unless its rows are the d features alone;
//! - a delimiter ending every line makes no column;
//! - with a label column ([`crate::data::load_labelled`]) its fields may be class names.
//!
//! The reader is ours, line by line, rather than the `csv` crate's: the layouts public tabular
//! files ship in need decisions a general CSV reader leaves to its caller (the delimiter, which
//! first line is a header, scikit-learn's `n,d,names...` first line, a trailing delimiter on every
//! line, a class name in the label column), a quoted field must not join lines (a stray `"` would
//! swallow the rest of the file), and every error names the line as an editor counts lines.
//!
//! What the reader inferred about a file's layout (a header taken, a delimiter other than the
//! comma, a dropped empty last column, a Unicode minus read as `-`) is never silent: each is a
//! note, one sentence naming the file ([`CsvData::notes`]; the loaders that return bare points
//! hand them to the note sink, [`set_note_sink`], which prints `note: ...` on stderr by default).

mod text;

use self::text::{
    content_lines, delimiter_name, detect_delimiter, fields, parse_number, text_of, Field,
};
use super::error::shorten;
use super::labelled::column_index;
use super::load::{check_savable, read_bytes, write_file};
use super::{Bounds, DataError, Position};
use ndarray::{Array2, ArrayView2};
use std::io::Write;
use std::path::Path;
use std::sync::RwLock;

/// A CSV file's values and, when it has one, its header.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvData {
    pub data: Array2<f64>,
    /// The column names of a header line, or scikit-learn's first line as written.
    pub header: Option<Vec<String>>,
    /// What was inferred about the layout, one sentence each, naming the file (see the module
    /// doc); empty for a plain comma-separated table of numbers.
    pub notes: Vec<String>,
}

/// Where notes about a file's layout go: a function given each note (without `note: `).
static NOTE_SINK: RwLock<Option<fn(&str)>> = RwLock::new(None);

/// Sends the notes of files read from now on to `sink` instead of stderr (the command-line tool
/// routes them through its own output, a fuzzer or a library user can drop them).
pub fn set_note_sink(sink: fn(&str)) {
    *NOTE_SINK.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
}

/// Hands `notes` to the note sink: by default each is a line `note: ...` on stderr (a stderr that
/// cannot be written is ignored: a note is never worth failing a read).
pub(super) fn emit_notes(notes: &[String]) {
    let sink = *NOTE_SINK.read().unwrap_or_else(|p| p.into_inner());
    for note in notes {
        match sink {
            Some(f) => f(note),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "note: {note}");
            }
        }
    }
}

/// Reads a CSV file (see the module doc of [`crate::data`] for the rules); its notes go to the
/// note sink.
pub fn load_csv(path: impl AsRef<Path>) -> Result<Array2<f64>, DataError> {
    let c = load_csv_with_header(path)?;
    emit_notes(&c.notes);
    Ok(c.data)
}

/// Reads a CSV file and returns its header and notes too.
pub fn load_csv_with_header(path: impl AsRef<Path>) -> Result<CsvData, DataError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    parse_csv(path, &bytes)
}

/// Parses CSV bytes; `path` is only used in errors and notes.
pub fn parse_csv(path: &Path, bytes: &[u8]) -> Result<CsvData, DataError> {
    let t = parse_table(path, bytes, &Bounds::NONE, None)?;
    Ok(CsvData {
        data: t.data,
        header: t.header,
        notes: t.notes,
    })
}

/// [`parse_csv`] within `bounds`, its notes sent to the note sink.
pub(super) fn parse_csv_bounded(
    path: &Path,
    bytes: &[u8],
    bounds: &Bounds,
) -> Result<CsvData, DataError> {
    let t = parse_table(path, bytes, bounds, None)?;
    emit_notes(&t.notes);
    Ok(CsvData {
        data: t.data,
        header: t.header,
        notes: t.notes,
    })
}

/// A parsed table, with what a labelled reader needs beyond [`CsvData`].
pub(super) struct Table {
    /// Every column; where the label column holds a class name, its value is NaN.
    pub data: Array2<f64>,
    pub header: Option<Vec<String>>,
    /// The 1-based line of each row.
    pub lines: Vec<usize>,
    /// With a label column: its field in each row as written (trimmed, unquoted).
    pub label_texts: Option<Vec<String>>,
    pub notes: Vec<String>,
}

/// A column name: not a number, not malformed, with a letter in it (so `1.2.3` or `-` are not
/// names: a line of them is data, and its bad field is reported).
fn is_name(f: &Field) -> bool {
    !f.malformed && parse_number(&f.text).is_none() && f.text.chars().any(char::is_alphabetic)
}

/// Whether a number's text spells out a non-finite value (`inf`, `-Infinity`, `NaN`), rather than a
/// finite-looking literal beyond f64's range (`1e400`), which Rust's parser rounds to infinity.
fn written_non_finite(text: &str) -> bool {
    let digits = text.trim_start_matches(['+', '-', '\u{2212}']);
    let lower = digits.get(..3).map(str::to_ascii_lowercase);
    matches!(lower.as_deref(), Some("inf" | "nan"))
}

/// How a file's first line (the first that carries a row) reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstLine {
    /// Names (or empty fields, as pandas writes above an index), at least one name, no number.
    Names,
    /// scikit-learn's first line: two unsigned integers (rows, features) then class names.
    Sklearn,
    Data,
}

fn classify(first: &[Field]) -> FirstLine {
    let names = first.iter().filter(|f| is_name(f)).count();
    let empty = first
        .iter()
        .filter(|f| !f.malformed && f.text.is_empty())
        .count();
    let unsigned = |f: &Field| !f.text.is_empty() && f.text.bytes().all(|b| b.is_ascii_digit());
    if names > 0 && names + empty == first.len() {
        FirstLine::Names
    } else if first.len() >= 3
        && unsigned(&first[0])
        && unsigned(&first[1])
        && first[2..].iter().all(is_name)
    {
        FirstLine::Sklearn
    } else {
        FirstLine::Data
    }
}

/// `names` as a note lists them: the first 8, then how many there are.
fn name_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(8)
        .map(|n| format!("\"{}\"", shorten(n, 30)))
        .collect();
    if names.len() > 8 {
        format!("{}, ... ({} names)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// The state of a parse, row by row.
struct Reader<'p> {
    path: &'p Path,
    bounds: Bounds,
    /// The label column as asked for (negative: from the end).
    label_index: Option<isize>,
    /// (fields of a row in the file, line that fixed it), once the first data row is read.
    width: Option<(usize, usize)>,
    /// Every row ends with an empty field, which is not a column.
    trailing: bool,
    label_column: Option<usize>,
    values: Vec<f64>,
    lines: Vec<usize>,
    label_texts: Vec<String>,
    /// The first U+2212 read as a minus: (line, column).
    unicode_minus: Option<(usize, usize)>,
}

impl Reader<'_> {
    fn p(&self) -> std::path::PathBuf {
        self.path.to_path_buf()
    }

    /// Fixes the width from the first data row (`found` fields on `line`); `header` is a named
    /// header's (number of names, line, whether its last name is empty).
    fn set_width(
        &mut self,
        row: &str,
        line: usize,
        found: usize,
        header: Option<(usize, usize, bool)>,
        delimiter: u8,
    ) -> Result<(), DataError> {
        let last_empty = found >= 2
            && fields(row, delimiter)
                .last()
                .is_some_and(|f| !f.malformed && f.text.is_empty());
        // A trailing delimiter on every line: the row's last field is empty, and a header (if any)
        // ends the same way or has one name fewer.
        self.trailing = last_empty
            && match header {
                None => true,
                Some((names, _, header_last_empty)) => {
                    header_last_empty && names == found || names + 1 == found
                }
            };
        let (expected, first_line) = match header {
            Some((names, header_line, _)) if names == found => (names, header_line),
            Some((names, header_line, _)) if !(self.trailing && names + 1 == found) => {
                return Err(DataError::Ragged {
                    path: self.p(),
                    line,
                    found,
                    expected: names,
                    first_line: header_line,
                })
            }
            _ => (found, line),
        };
        let cols = found - usize::from(self.trailing);
        if cols > self.bounds.max_cols {
            return Err(DataError::TooManyColumns {
                path: self.p(),
                found: cols,
                max: self.bounds.max_cols,
            });
        }
        self.width = Some((expected, first_line));
        if let Some(index) = self.label_index {
            self.label_column = Some(column_index(index, cols).ok_or(DataError::LabelColumn {
                path: self.p(),
                index,
                cols,
            })?);
        }
        Ok(())
    }

    /// Reads one data row into `values` (its width already fixed).
    fn row(&mut self, row: &str, line: usize, delimiter: u8) -> Result<(), DataError> {
        let (expected, first_line) = self.width.expect("the width is set first");
        let cols = expected - usize::from(self.trailing);
        // The width first (counting, no field kept), as a line's other errors would mislead.
        let found = fields(row, delimiter).count();
        if found != expected {
            return Err(DataError::Ragged {
                path: self.p(),
                line,
                found,
                expected,
                first_line,
            });
        }
        for (c, field) in fields(row, delimiter).enumerate() {
            let column = c + 1;
            if c >= cols {
                // The trailing delimiter's empty field.
                if !field.text.is_empty() || field.malformed {
                    return Err(DataError::EmptyField {
                        path: self.p(),
                        line: self.lines.first().copied().unwrap_or(line),
                        column,
                    });
                }
                continue;
            }
            if field.text.is_empty() && !field.malformed {
                return Err(DataError::EmptyField {
                    path: self.p(),
                    line,
                    column,
                });
            }
            let is_label = self.label_column == Some(c);
            if is_label {
                self.label_texts.push(field.text.to_string());
            }
            let parsed = if field.malformed {
                None
            } else {
                parse_number(&field.text)
            };
            let Some((value, minus)) = parsed else {
                if is_label && !field.malformed {
                    self.values.push(f64::NAN);
                    continue;
                }
                return Err(DataError::NonNumeric {
                    path: self.p(),
                    line,
                    column,
                    text: shorten(field.raw, 40),
                });
            };
            if minus && self.unicode_minus.is_none() {
                self.unicode_minus = Some((line, column));
            }
            let at = Position::Line { line, column };
            if value.is_infinite() && !written_non_finite(&field.text) {
                return Err(DataError::Overflow {
                    path: self.p(),
                    at,
                    text: shorten(&field.text, 40),
                });
            }
            if !value.is_finite() {
                return Err(DataError::NonFinite {
                    path: self.p(),
                    at,
                    value,
                });
            }
            if value.abs() > self.bounds.max_abs {
                return Err(DataError::OutOfRange {
                    path: self.p(),
                    at,
                    value,
                    max_abs: self.bounds.max_abs,
                });
            }
            self.values.push(value);
        }
        self.lines.push(line);
        Ok(())
    }
}

/// Parses a CSV table within `bounds`; with `label_index`, that column may hold class names
/// (kept as text in [`Table::label_texts`], NaN in the data).
pub(super) fn parse_table(
    path: &Path,
    bytes: &[u8],
    bounds: &Bounds,
    label_index: Option<isize>,
) -> Result<Table, DataError> {
    let text = text_of(path, bytes)?;
    let p = || path.to_path_buf();
    let mut lines = content_lines(text);
    let Some((first_line, first)) = lines.next() else {
        return Err(DataError::Empty { path: p() });
    };
    let delimiter = detect_delimiter(first);
    let mut notes = Vec::new();
    if delimiter != b',' {
        notes.push(format!(
            "{}: fields separated by {} (as on line {first_line})",
            path.display(),
            delimiter_name(delimiter)
        ));
    }
    // Counted before any field is kept: a line of 5e7 fields is refused without 800 MB of them.
    let first_width = fields(first, delimiter).count();
    if first_width > bounds.max_cols.saturating_add(1) {
        return Err(DataError::TooManyColumns {
            path: p(),
            found: first_width,
            max: bounds.max_cols,
        });
    }
    let first_fields: Vec<Field> = fields(first, delimiter).collect();
    let kind = classify(&first_fields);
    let mut reader = Reader {
        path,
        bounds: *bounds,
        label_index,
        width: None,
        trailing: false,
        label_column: None,
        values: Vec::new(),
        lines: Vec::new(),
        label_texts: Vec::new(),
        unicode_minus: None,
    };
    let names: Vec<String> = first_fields.iter().map(|f| f.text.to_string()).collect();
    let header_shape = (kind == FirstLine::Names).then(|| {
        let last_empty = names.last().is_some_and(String::is_empty) && names.len() >= 2;
        (names.len(), first_line, last_empty)
    });
    let rest: Box<dyn Iterator<Item = (usize, &str)>> = if kind == FirstLine::Data {
        Box::new(std::iter::once((first_line, first)).chain(lines))
    } else {
        Box::new(lines)
    };
    for (line, row) in rest {
        if reader.width.is_none() {
            let found = fields(row, delimiter).count();
            reader.set_width(row, line, found, header_shape, delimiter)?;
        }
        reader.row(row, line, delimiter)?;
    }
    let (file_width, _) = reader.width.unwrap_or((0, 0));
    let cols = file_width.saturating_sub(usize::from(reader.trailing));
    let mut header = None;
    match kind {
        FirstLine::Data => {}
        FirstLine::Names => {
            let mut names = names;
            if reader.trailing && names.len() == file_width {
                names.pop();
            }
            notes.push(format!(
                "{}: line {first_line} taken as a header: column names {}",
                path.display(),
                name_list(&names)
            ));
            header = Some(names);
        }
        FirstLine::Sklearn => {
            let rows = reader.lines.len();
            let n: Option<usize> = names[0].parse().ok();
            let d: Option<usize> = names[1].parse().ok();
            let matches = n == Some(rows) && d.is_some_and(|d| d == cols || d + 1 == cols);
            // A row of two numbers and a class name in the label column could be data: it is,
            // unless its counts match the file's.
            let data_row = !matches
                && first_fields.len() == file_width
                && !reader.trailing
                && first_fields[2..].len() == 1
                && reader.label_column == Some(2);
            if data_row {
                // Read the first line as a row, then the rows after it.
                let later_values = std::mem::take(&mut reader.values);
                let later_lines = std::mem::take(&mut reader.lines);
                let later_texts = std::mem::take(&mut reader.label_texts);
                let later_minus = reader.unicode_minus.take();
                reader.row(first, first_line, delimiter)?;
                reader.values.extend(later_values);
                reader.lines.extend(later_lines);
                reader.label_texts.extend(later_texts);
                reader.unicode_minus = reader.unicode_minus.or(later_minus);
            } else {
                // The format declares the last column the target: read without a label column,
                // the classes would be trained or compared as a coordinate. Only a file whose
                // rows are the declared features alone (d = columns) has no class column.
                if label_index.is_none() && d != Some(cols) {
                    return Err(DataError::SklearnClasses {
                        path: p(),
                        classes: name_list(&names[2..]),
                    });
                }
                let counts = if matches {
                    String::new()
                } else {
                    format!("; its counts are not the file's: {rows} rows of {cols} columns follow")
                };
                notes.push(format!(
                    "{}: line {first_line} taken as a header: scikit-learn's first line ({} rows, {} features, classes {}){counts}",
                    path.display(),
                    names[0],
                    names[1],
                    name_list(&names[2..])
                ));
                header = Some(names);
            }
        }
    }
    if reader.trailing {
        notes.push(format!(
            "{}: every line ends with {}: the empty last column is not read",
            path.display(),
            match delimiter {
                b'\t' => "a tab",
                b';' => "';'",
                _ => "','",
            }
        ));
    }
    if let Some((line, column)) = reader.unicode_minus {
        notes.push(format!(
            "{}: line {line}, column {column}: '\u{2212}' (U+2212 MINUS SIGN) read as '-', here and wherever it appears",
            path.display()
        ));
    }
    let rows = reader.lines.len();
    match (rows, &header) {
        (0, Some(_)) => {
            return Err(DataError::HeaderOnly {
                path: p(),
                header_line: first_line,
            })
        }
        (0, None) => return Err(DataError::Empty { path: p() }),
        (1, _) => return Err(DataError::SingleRow { path: p() }),
        _ => {}
    }
    let data = Array2::from_shape_vec((rows, cols), reader.values).expect("rows x cols values");
    Ok(Table {
        data,
        header,
        lines: reader.lines,
        label_texts: reader.label_column.map(|_| reader.label_texts),
        notes,
    })
}

/// Writes `data` as CSV, with `header` (one name per column) as the first line when given. Values
/// are written in Rust's shortest round-trip form, so [`load_csv`] reads back the same f64s.
/// Refuses non-finite values ([`DataError::NonFinite`]) and zero columns. Header names are written
/// as given (names with a comma or a quote are the caller's to avoid).
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

    /// Lines count every line of the file: blank lines, whitespace-only lines, `\r\n` ends, comments and a last line without `\n`.
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

    /// Quoted fields: a delimiter inside quotes, `""` for a quote, blanks around; a quote must
    /// close on its line (a stray one does not join lines) and be the field's end; elsewhere `"` is
    /// an ordinary character.
    #[test]
    fn quoted_fields_stay_on_their_line() {
        assert_eq!(
            error("1,\"2\n3,4\n5,6\n"),
            "t.csv: line 1, column 2: non-numeric field \"\\\"2\""
        );
        let c = parse(" \"x, cm\" ,\"say \"\"y\"\"\"\n\"1\",2\n3, \"4\" \n").unwrap();
        assert_eq!(
            c.header,
            Some(vec!["x, cm".to_string(), "say \"y\"".into()])
        );
        assert_eq!(c.data, array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(
            error("1,\"2\"x\n3,4\n"),
            "t.csv: line 1, column 2: non-numeric field \"\\\"2\\\"x\""
        );
        assert_eq!(
            error("1,2\n3,4\"\n"),
            "t.csv: line 2, column 2: non-numeric field \"4\\\"\""
        );
    }

    /// The delimiter is the first line's: `;`, else `,`, else a tab; a later line split otherwise
    /// is ragged, and a tab next to a comma is a blank.
    #[test]
    fn the_delimiter_comes_from_the_first_line() {
        let c = parse("a;b\n1;2\n3;4\n").unwrap();
        assert_eq!(c.data, array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(
            c.notes,
            [
                "t.csv: fields separated by ';' (as on line 1)",
                "t.csv: line 1 taken as a header: column names \"a\", \"b\""
            ]
        );
        let c = parse("1\t2\n3\t \n").unwrap_err().to_string();
        assert_eq!(c, "t.csv: line 2, column 2: empty field");
        assert_eq!(
            parse("1,\t2\n3\t,4\n").unwrap().data,
            array![[1.0, 2.0], [3.0, 4.0]]
        );
        assert_eq!(
            error("1;2\n3,4\n"),
            "t.csv: line 2: ragged row with 1 fields, expected 2 (as on line 1)"
        );
        assert!(parse("1,2\n3,4\n").unwrap().notes.is_empty());
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
        // A first line with one number is data; so is one with a field that is neither a number
        // nor a name (no letter).
        assert_eq!(
            error("a,1\n2,3\n"),
            "t.csv: line 1, column 1: non-numeric field \"a\""
        );
        assert_eq!(
            error("1.2.3,x\n2,3\n"),
            "t.csv: line 1, column 1: non-numeric field \"1.2.3\""
        );
        // Empty names beside names (pandas' index column) make a header.
        let c = parse(",a,b\n0,1,2\n1,3,4\n").unwrap();
        assert_eq!(c.header, Some(vec!["".to_string(), "a".into(), "b".into()]));
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
