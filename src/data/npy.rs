//! NPY datasets: numpy's `.npy` format read and written with `ndarray-npy`, holding what a dataset
//! may be (f32 or f64, one or two axes, finite) and naming every other file's problem.
//!
//! What `ndarray-npy` does here: the header (magic string, version, header length, the Python
//! dictionary literal with its keys `descr`, `fortran_order` and `shape`), decoding the values, and
//! the writer. What stays ours, each for the reason given where it is: the magic and the lengths of
//! a short file, the dtypes and shapes a dataset may have, the data's length against the shape
//! before anything is allocated, and the rows and values a dataset needs.

use super::error::shorten;
use super::load::{check_finite, check_savable, read_bytes, write_file};
use super::DataError;
use ndarray::{Array2, ArrayView2, ShapeBuilder};
use ndarray_npy::npy::header::{Header, Layout, ParseHeaderError, ReadHeaderError};
use ndarray_npy::{ReadableElement, WriteNpyExt};
use py_literal::Value as PyValue;
use std::io;
use std::path::Path;

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

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

/// Reads an NPY file (see the module doc of [`crate::data`] for what is accepted).
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
pub(super) fn parse_npy_bounded(
    path: &Path,
    bytes: &[u8],
    max_cols: usize,
) -> Result<Array2<f64>, DataError> {
    let p = || path.to_path_buf();
    if bytes.is_empty() {
        return Err(DataError::Empty { path: p() });
    }
    // Ours: ndarray-npy reads six bytes before it compares them with the magic string, so a short
    // text file would be "truncated" rather than "not an NPY file".
    let n_magic = bytes.len().min(NPY_MAGIC.len());
    if bytes[..n_magic] != NPY_MAGIC[..n_magic] {
        return Err(DataError::NpyBadMagic { path: p() });
    }
    if let Some(short) = truncated_header(path, bytes) {
        return Err(short);
    }
    let mut data = bytes;
    let header = Header::from_reader(&mut data).map_err(|e| header_error(path, e))?;

    let dtype = dtype_of(path, &header.type_descriptor)?;
    let (rows, cols) = match header.shape[..] {
        [n] => (n, 1),
        [n, d] if d >= 1 => (n, d),
        _ => {
            return Err(DataError::NpyShape {
                path: p(),
                shape: header.shape,
            })
        }
    };
    if cols > max_cols {
        return Err(DataError::TooManyColumns {
            path: p(),
            found: cols,
            max: max_cols,
        });
    }
    // Ours: ndarray-npy allocates the values the header's shape asks for before it reads them, and
    // its "reached EOF" says neither how many bytes were needed nor how many there are. Checked
    // against the bytes we hold, a lying shape costs nothing.
    let count = rows
        .checked_mul(cols)
        .and_then(|c| c.checked_mul(dtype.size()))
        .ok_or_else(|| DataError::NpyHeader {
            path: p(),
            reason: format!("shape {:?} is too large", header.shape),
        })?;
    if data.len() < count {
        return Err(DataError::NpyTruncated {
            path: p(),
            part: "data",
            expected: count,
            found: data.len(),
        });
    }
    if data.len() > count {
        return Err(DataError::NpyTrailing {
            path: p(),
            extra: data.len() - count,
        });
    }
    if rows == 0 {
        return Err(DataError::Empty { path: p() });
    }
    if rows == 1 {
        return Err(DataError::SingleRow { path: p() });
    }

    let values = read_values(data, dtype, rows * cols).map_err(|e| DataError::Read {
        path: p(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    let shape = (rows, cols).set_f(header.layout == Layout::Fortran);
    let data = Array2::from_shape_vec(shape, values).expect("rows x cols values");
    check_finite(path, data.view())?;
    Ok(data.as_standard_layout().into_owned())
}

/// The values of an NPY file's data part, as f64. The length has been checked, so ndarray-npy
/// allocates no more than the file holds. The descriptor is the canonical one of `dtype`: `=f8`
/// (native order) was accepted on a little-endian machine only, where it is `<f8`.
fn read_values(
    data: &[u8],
    dtype: NpyDtype,
    len: usize,
) -> Result<Vec<f64>, ndarray_npy::ReadDataError> {
    let descr = PyValue::String(dtype.descr().into());
    Ok(match dtype {
        NpyDtype::F64 => f64::read_to_end_exact_vec(data, &descr, len)?,
        NpyDtype::F32 => f32::read_to_end_exact_vec(data, &descr, len)?
            .into_iter()
            .map(f64::from)
            .collect(),
    })
}

/// The dtype of a header's `descr`: `<f4` and `<f8`, or `=f4` and `=f8` on a little-endian
/// machine. Ours: ndarray-npy would read big-endian floats too, but a dataset here is
/// little-endian, as every machine that writes one is, and a big-endian file is refused by name.
fn dtype_of(path: &Path, descr: &PyValue) -> Result<NpyDtype, DataError> {
    let native_le = cfg!(target_endian = "little");
    let refuse = |byte_order: bool| {
        let (path, descr) = (path.to_path_buf(), literal(descr));
        Err(if byte_order {
            DataError::NpyByteOrder { path, descr }
        } else {
            DataError::NpyDtype { path, descr }
        })
    };
    match descr {
        PyValue::String(s) => match s.as_str() {
            "<f8" => Ok(NpyDtype::F64),
            "<f4" => Ok(NpyDtype::F32),
            "=f8" if native_le => Ok(NpyDtype::F64),
            "=f4" if native_le => Ok(NpyDtype::F32),
            ">f8" | ">f4" | "=f8" | "=f4" => refuse(true),
            _ => refuse(false),
        },
        _ => refuse(false),
    }
}

/// A header that ndarray-npy could not read, as our error. The reasons are worded here rather than
/// taken from ndarray-npy's `Display`: its syntax errors are pest's multi-line pictures of the whole
/// header, and its other messages quote header values at any length.
fn header_error(path: &Path, e: ReadHeaderError) -> DataError {
    use ParseHeaderError as E;
    let p = path.to_path_buf();
    let e = match e {
        // A short file was refused before ([`truncated_header`]): from memory, no I/O error is left.
        ReadHeaderError::Io(source) => return DataError::Read { path: p, source },
        ReadHeaderError::Parse(e) => e,
    };
    let reason = match e {
        E::MagicString => return DataError::NpyBadMagic { path: p },
        E::Version { major, minor } => {
            return DataError::NpyVersion {
                path: p,
                major,
                minor,
            }
        }
        // ndarray-npy 0.10 names a missing `shape` "shaper".
        E::MissingKey(key) if key == "shaper" => "missing key 'shape'".to_string(),
        E::MissingKey(key) => format!("missing key '{key}'"),
        E::UnknownKey(key) => format!("unexpected key {}", literal(&key)),
        E::IllegalValue { key, value } => {
            let expected = match key.as_str() {
                "fortran_order" => "True or False",
                _ => "a tuple of non-negative integers",
            };
            format!("{key} is {}, not {expected}", literal(&value))
        }
        E::MetaNotDict(value) => format!("{} is not a dictionary", literal(&value)),
        E::DictParse(py_literal::ParseError::Syntax(picture)) => syntax_error(&picture),
        E::DictParse(e) => shorten(&e.to_string(), 80),
        e @ (E::HeaderLengthOverflow(_) | E::NonAscii | E::Utf8Parse(_) | E::MissingNewline) => {
            e.to_string()
        }
    };
    DataError::NpyHeader { path: p, reason }
}

/// A Python value from a header, as Python writes it, cut to 40 characters.
fn literal(value: &PyValue) -> String {
    match value.format_ascii() {
        Ok(text) => shorten(&text, 40),
        Err(_) => "an empty set".to_string(),
    }
}

/// pest's syntax error, a picture over several lines (`--> 1:11`, the header line, a caret,
/// `= expected value`), as one line: where and why.
fn syntax_error(picture: &str) -> String {
    let at = picture.lines().find_map(|l| l.trim().strip_prefix("--> "));
    let why = picture
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("= "));
    match (at, why) {
        (Some(at), Some(why)) => format!(
            "the dictionary is not a Python literal: {} at line:column {at}",
            shorten(why, 80)
        ),
        _ => "the dictionary is not a Python literal".to_string(),
    }
}

/// The file ends inside the preamble (magic, version, header length) or the header, if it does.
/// Ours: ndarray-npy allocates the header length the preamble states before it reads the header (4
/// GiB for a version 2 file of a few bytes that says so), and it reports a short file as an I/O
/// "unexpected end of file" that names no part. A version it does not know is left to it to name.
fn truncated_header(path: &Path, bytes: &[u8]) -> Option<DataError> {
    let truncated = |part, expected| {
        Some(DataError::NpyTruncated {
            path: path.to_path_buf(),
            part,
            expected,
            found: bytes.len(),
        })
    };
    // Version 1 has a 2-byte header length, versions 2 and 3 a 4-byte one.
    let preamble = match bytes.get(6) {
        Some(2 | 3) => 12,
        Some(1) | None => 10,
        Some(_) if bytes.len() < 8 => return truncated("preamble", 10),
        Some(_) => return None,
    };
    if bytes.len() < preamble {
        return truncated("preamble", preamble);
    }
    let header_len = if preamble == 10 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    if bytes.len() < preamble + header_len {
        return truncated("header", preamble + header_len);
    }
    None
}

/// The NPY bytes of `data` as ndarray-npy writes them: format 1.0, the header padded so that the
/// data start at a multiple of 64 bytes. With `fortran_order` the values are stored column by
/// column, with `'fortran_order': True`; a single row or column, whose bytes are the same either
/// way, is written as C order.
pub fn npy_bytes(data: ArrayView2<f64>, dtype: NpyDtype, fortran_order: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let written = match dtype {
        NpyDtype::F64 => in_order(data, fortran_order, |v| v).write_npy(&mut out),
        NpyDtype::F32 => in_order(data, fortran_order, |v| v as f32).write_npy(&mut out),
    };
    written.expect("a 2-D array of floats writes to memory");
    out
}

/// `data` mapped by `f` into an array laid out in C or Fortran order.
fn in_order<T: Clone + num_traits::Zero>(
    data: ArrayView2<f64>,
    fortran_order: bool,
    f: impl Fn(f64) -> T,
) -> Array2<T> {
    let mut out = Array2::zeros(data.raw_dim().set_f(fortran_order));
    out.zip_mut_with(&data, |o, &v| *o = f(v));
    out
}

/// Writes `data` as NPY (format 1.0, [`npy_bytes`]) with the given element type and memory order.
/// Refuses non-finite values (including f64 values that overflow f32) and zero columns.
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
    write_file(path, &npy_bytes(data, dtype, fortran_order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn parse(bytes: &[u8]) -> Result<Array2<f64>, DataError> {
        parse_npy(Path::new("t.npy"), bytes)
    }

    fn error(bytes: &[u8]) -> DataError {
        let e = parse(bytes).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains('\n'), "multi-line: {text}");
        assert!(text.len() < 200, "long: {text}");
        e
    }

    /// A hand-made NPY file: version `major`.0, the header dictionary as given (with its `\n`).
    fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        let header = format!("{dict}\n");
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn dict(descr: &str, shape: &str) -> String {
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}}}")
    }

    #[test]
    fn f32_and_f64_round_trip_in_both_orders() {
        let data = array![[1.0, -2.5, 3.0], [0.1, 1e-300, -7e12]];
        for fortran in [false, true] {
            let b = npy_bytes(data.view(), NpyDtype::F64, fortran);
            assert_eq!(parse(&b).unwrap(), data);
            let flag = if fortran { "True" } else { "False" };
            let text = String::from_utf8_lossy(&b);
            assert!(text.contains(&format!("'fortran_order': {flag}")), "{text}");
            assert_eq!((b.len() - 8 * 6) % 64, 0, "data start at a multiple of 64");
            let b = npy_bytes(data.view(), NpyDtype::F32, fortran);
            assert_eq!(parse(&b).unwrap(), data.mapv(|v| v as f32 as f64));
            assert!(String::from_utf8_lossy(&b).contains("'<f4'"));
        }
        // Native order means little-endian on this machine.
        let b = npy(1, &dict("'=f8'", "(2,)"), &[0; 16]);
        assert_eq!(cfg!(target_endian = "little"), parse(&b).is_ok());
    }

    #[test]
    fn other_dtypes_are_refused_by_name() {
        for descr in ["'<i8'", "'|b1'", "'<f2'", "[('a', '<f8')]", "'<c16'"] {
            let e = error(&npy(1, &dict(descr, "(2,)"), &[0; 32]));
            assert!(matches!(e, DataError::NpyDtype { .. }), "{descr}: {e}");
            assert!(e.to_string().contains(descr), "{e}");
        }
        let e = error(&npy(1, &dict("'>f4'", "(2,)"), &[0; 8]));
        assert!(matches!(e, DataError::NpyByteOrder { .. }), "{e}");
        // A descriptor of any length is quoted short.
        let long = format!("'{}'", "x".repeat(500));
        let e = error(&npy(1, &dict(&long, "(2,)"), &[0; 8]));
        assert!(e.to_string().contains("xxx..."), "{e}");
    }

    #[test]
    fn short_files_say_which_part_is_missing() {
        let good = npy(2, &dict("'<f8'", "(2,)"), &[0; 16]);
        let e = error(&good[..11]);
        assert!(
            matches!(
                e,
                DataError::NpyTruncated {
                    part: "preamble",
                    expected: 12,
                    found: 11,
                    ..
                }
            ),
            "{e}"
        );
        let e = error(&good[..20]);
        let header_end = good.len() - 16;
        assert!(
            matches!(e, DataError::NpyTruncated { part: "header", expected, found: 20, .. } if expected == header_end),
            "{e}"
        );
        // A header length of 4 GiB in a file of 13 bytes: refused from the lengths, before
        // ndarray-npy would allocate what the preamble asks for.
        let mut huge = good[..13].to_vec();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = error(&huge);
        assert!(
            matches!(e, DataError::NpyTruncated { part: "header", expected, found: 13, .. } if expected == 12 + u32::MAX as usize),
            "{e}"
        );
        // An unknown version is named as such, however short the file.
        let mut v4 = good[..9].to_vec();
        v4[6] = 4;
        assert!(matches!(error(&v4), DataError::NpyVersion { major: 4, .. }));
        // A short file that is not a prefix of the magic string is not an NPY file.
        assert!(matches!(error(b"1,2"), DataError::NpyBadMagic { .. }));
    }

    /// A shape the bytes cannot hold is refused from the lengths, before any value is read.
    #[test]
    fn a_lying_shape_is_refused_from_the_lengths() {
        let e = error(&npy(1, &dict("'<f8'", "(1099511627776, 2)"), &[0; 16]));
        assert!(
            matches!(
                e,
                DataError::NpyTruncated {
                    part: "data",
                    expected: 17592186044416,
                    found: 16,
                    ..
                }
            ),
            "{e}"
        );
        let e = error(&npy(
            1,
            &dict("'<f8'", "(4611686018427387904, 4)"),
            &[0; 16],
        ));
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn header_problems_are_one_line() {
        let e = error(&npy(1, "{'descr': <f8}", &[]));
        assert_eq!(
            e.to_string(),
            "t.npy: bad NPY header: the dictionary is not a Python literal: expected value at \
             line:column 1:11"
        );
        let e = error(&npy(
            1,
            "{'descr': '<f8', 'fortran_order': False}",
            &[0; 16],
        ));
        assert!(e.to_string().ends_with("missing key 'shape'"), "{e}");
        let e = error(&npy(1, &dict("'<f8'", "[2, 1]"), &[0; 16]));
        assert!(
            e.to_string()
                .ends_with("shape is [2, 1], not a tuple of non-negative integers"),
            "{e}"
        );
        let e = error(&npy(
            1,
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}",
            &[0; 16],
        ));
        assert!(
            e.to_string()
                .ends_with("fortran_order is 0, not True or False"),
            "{e}"
        );
        let e = error(&npy(
            1,
            &format!(
                "{{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x{}': 1}}",
                "y".repeat(300)
            ),
            &[0; 16],
        ));
        assert!(e.to_string().contains("unexpected key 'xyyy"), "{e}");
    }

    /// Deep nesting ends in pest's stack guard, an error, not a stack overflow.
    #[test]
    fn deeply_nested_headers_are_refused() {
        let deep = format!("{}{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = error(&npy(2, &dict("'<f8'", &deep), &[]));
        assert!(matches!(e, DataError::NpyHeader { .. }), "{e}");
    }
}
