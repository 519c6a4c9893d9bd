//! The text of a CSV file as the reader sees it: the file's checks as text (NUL bytes, UTF-8, the
//! BOM), its lines that carry rows, the delimiter, the fields of a line (quoting) and the numbers.

use crate::data::DataError;
use std::borrow::Cow;
use std::path::Path;

/// The 1-based line of the first NUL byte, if there is one.
fn nul_line(bytes: &[u8]) -> Option<usize> {
    let at = bytes.iter().position(|&b| b == 0)?;
    Some(1 + bytes[..at].iter().filter(|&&b| b == b'\n').count())
}

/// The file as text without its BOM. A NUL byte means the file is not text, and invalid UTF-8 is
/// named by its line, wherever it is (a comment line included).
pub(super) fn text_of<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
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

/// The lines that carry a row, with their 1-based numbers: not empty or all blanks, and not a
/// comment (first non-blank character `#`). Only `\n` ends a line (a `\r` before it is trimmed as
/// a blank; a lone `\r` stays inside its line).
pub(super) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().filter_map(|(i, line)| {
        let t = line.trim();
        (!t.is_empty() && !t.starts_with('#')).then_some((i + 1, line))
    })
}

/// The delimiter, from the first line that carries a row, outside quotes: `;` if it has one, else
/// `,` if it has one, else a tab if it has one, else `,` (a single column).
pub(super) fn detect_delimiter(line: &str) -> u8 {
    let (mut semicolon, mut comma, mut tab, mut quoted) = (false, false, false, false);
    for b in line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b';' if !quoted => semicolon = true,
            b',' if !quoted => comma = true,
            b'\t' if !quoted => tab = true,
            _ => {}
        }
    }
    if semicolon {
        b';'
    } else if comma || !tab {
        b','
    } else {
        b'\t'
    }
}

/// The delimiter as a note names it.
pub(super) fn delimiter_name(delimiter: u8) -> &'static str {
    match delimiter {
        b'\t' => "tabs",
        b';' => "';'",
        _ => "','",
    }
}

/// One field of a line.
pub(super) struct Field<'a> {
    /// The value: trimmed, and a quoted field's content with `""` read as `"`.
    pub text: Cow<'a, str>,
    /// The field as written, trimmed (for messages about a malformed field).
    pub raw: &'a str,
    /// A quote that is not closed, or text after the closing quote.
    pub malformed: bool,
}

/// The fields of a line split at `delimiter`, outside double quotes. A field is quoted when its
/// first non-blank character is `"`; the quote must close on the same line, and only blanks may
/// follow it before the delimiter. Elsewhere a `"` is an ordinary character.
pub(super) struct Fields<'a> {
    line: &'a str,
    delimiter: u8,
    at: usize,
    done: bool,
}

pub(super) fn fields(line: &str, delimiter: u8) -> Fields<'_> {
    Fields {
        line,
        delimiter,
        at: 0,
        done: false,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        if self.done {
            return None;
        }
        let (line, bytes, d) = (self.line, self.line.as_bytes(), self.delimiter);
        let start = self.at;
        let blank = |b: u8| b != d && (b == b' ' || b == b'\t' || b == b'\r');
        let next_delimiter = |from: usize| {
            bytes[from..]
                .iter()
                .position(|&b| b == d)
                .map_or(bytes.len(), |p| from + p)
        };
        let mut i = start;
        while i < bytes.len() && blank(bytes[i]) {
            i += 1;
        }
        let (end, text, malformed) = if bytes.get(i) == Some(&b'"') {
            // The closing quote: a `"` not doubled.
            let mut j = i + 1;
            let mut close = None;
            while j < bytes.len() {
                if bytes[j] == b'"' {
                    if bytes.get(j + 1) == Some(&b'"') {
                        j += 2;
                        continue;
                    }
                    close = Some(j);
                    break;
                }
                j += 1;
            }
            match close {
                None => (bytes.len(), Cow::Borrowed(""), true),
                Some(c) => {
                    let mut k = c + 1;
                    while k < bytes.len() && blank(bytes[k]) {
                        k += 1;
                    }
                    let inner = &line[i + 1..c];
                    let text = if inner.contains("\"\"") {
                        Cow::Owned(inner.replace("\"\"", "\"").trim().to_string())
                    } else {
                        Cow::Borrowed(inner.trim())
                    };
                    if k == bytes.len() || bytes[k] == d {
                        (k, text, false)
                    } else {
                        (next_delimiter(k), Cow::Borrowed(""), true)
                    }
                }
            }
        } else {
            let end = next_delimiter(start);
            (end, Cow::Borrowed(line[start..end].trim()), false)
        };
        if end >= bytes.len() {
            self.done = true;
        } else {
            self.at = end + 1;
        }
        let raw = line[start..end].trim();
        let text = if malformed { Cow::Borrowed(raw) } else { text };
        Some(Field {
            text,
            raw,
            malformed,
        })
    }
}

/// A number as the file writes it: Rust's f64 syntax (`1`, `-2.5`, `1e-3`, `.5`, `+3`, `inf`,
/// `NaN`), with `−` (U+2212 MINUS SIGN) read as `-`. The flag says a U+2212 was read.
pub(super) fn parse_number(text: &str) -> Option<(f64, bool)> {
    match text.parse::<f64>() {
        Ok(v) => Some((v, false)),
        Err(_) if text.contains('\u{2212}') => text
            .replace('\u{2212}', "-")
            .parse::<f64>()
            .ok()
            .map(|v| (v, true)),
        Err(_) => None,
    }
}
