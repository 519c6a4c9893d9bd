//! CSV / NPY loading and saving: round trips, hand-made files, and every rejected input; labelled
//! files (`load_labelled`) the same way.

use meanflow::data::npy::{npy_bytes, parse_npy};
use meanflow::data::{
    digits, load, load_csv, load_csv_with_header, load_labelled, load_npy, save_csv, save_npy,
    Bounds, DataError, LabelledData, NpyDtype, Position,
};
use ndarray::{array, concatenate, Array2, Axis};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A fresh folder (tempfile's, removed on drop) and files in it.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(tag: &str) -> Self {
        TempDir(tempfile::Builder::new().prefix(tag).tempdir().unwrap())
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, contents).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn sample() -> Array2<f64> {
    array![
        [1.0, -2.5, 3.25],
        [0.1, 1e-300, -7.0e12],
        [std::f64::consts::PI, 0.0, -0.0],
        [1.0 / 3.0, 2.0f64.sqrt(), -1e-7]
    ]
}

/// Asserts the error's message is one line naming the path and containing every `needle`.
fn assert_message(err: &DataError, path: &Path, needles: &[&str]) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "message lacks the path: {msg}"
    );
    assert_eq!(err.path(), path);
    for n in needles {
        assert!(msg.contains(n), "message lacks {n:?}: {msg}");
    }
}

/// A hand-made NPY file (version `major`.0, header dict as given, unpadded).
fn npy_raw(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
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

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn csv_round_trip_with_and_without_header() {
    let dir = TempDir::new("csv-rt");
    let data = sample();
    let plain = dir.path("plain.csv");
    save_csv(&plain, data.view(), None).unwrap();
    assert_eq!(load_csv(&plain).unwrap(), data);
    let loaded = load_csv_with_header(&plain).unwrap();
    assert_eq!(loaded.header, None);

    let named = dir.path("named.csv");
    save_csv(&named, data.view(), Some(&["x", "y", "z"])).unwrap();
    let loaded = load_csv_with_header(&named).unwrap();
    assert_eq!(loaded.data, data);
    assert_eq!(
        loaded.header,
        Some(vec!["x".to_string(), "y".into(), "z".into()])
    );
    assert_eq!(load(&named).unwrap(), data);
    // No temporary files are left behind.
    assert_eq!(dir.entries(), vec!["named.csv", "plain.csv"]);
}

#[test]
fn csv_accepts_whitespace_crlf_bom_blank_lines_and_number_forms() {
    let dir = TempDir::new("csv-forms");
    let p = dir.file(
        "forms.csv",
        "\u{feff} a , b \r\n\r\n  1 ,\t-2.5e1\r\n.5,+3\n\n   \n1E-2,  -0 \n".as_bytes(),
    );
    let c = load_csv_with_header(&p).unwrap();
    assert_eq!(c.header, Some(vec!["a".to_string(), "b".into()]));
    assert_eq!(c.data, array![[1.0, -25.0], [0.5, 3.0], [0.01, 0.0]]);
    // A single column, no header, no final newline.
    let p = dir.file("col.csv", b"1\n2\n3");
    assert_eq!(load(&p).unwrap(), array![[1.0], [2.0], [3.0]]);
}

/// Issue 13: `#` comment lines are skipped wherever they are (a comment before the header used to
/// be the header, and the data "ragged"); a NUL byte is not text.
#[test]
fn csv_comment_lines_are_skipped_and_nul_bytes_refused() {
    let dir = TempDir::new("csv-comments");
    let p = dir.file(
        "commented.csv",
        b"# made by a script\nx,y\n  # a comment\n1,2\n3,4 \n# the end\n",
    );
    let c = load_csv_with_header(&p).unwrap();
    assert_eq!(c.header, Some(vec!["x".to_string(), "y".into()]));
    assert_eq!(c.data, array![[1.0, 2.0], [3.0, 4.0]]);
    let p = dir.file("nul.csv", b"1,2\n3,\x004\n");
    let e = load(&p).unwrap_err();
    assert_message(&e, &p, &["line 2", "a NUL byte"]);
}

/// Issue 13: values beyond a bound are refused where they are (CSV line, NPY row) with the bound.
#[test]
fn values_beyond_a_bound_are_refused_where_they_are() {
    let dir = TempDir::new("bounded");
    let p = dir.file("big.csv", b"x,y\n1,2\n3,-5e20\n");
    let bounds = |max_abs: f64, max_cols: usize| meanflow::data::Bounds { max_abs, max_cols };
    assert!(meanflow::data::load_bounded(&p, &bounds(1e21, 2)).is_ok());
    let e = meanflow::data::load_bounded(&p, &bounds(1e21, 1)).unwrap_err();
    assert_message(&e, &p, &["2 columns; at most 1 are allowed"]);
    let e = meanflow::data::load_bounded(&p, &bounds(1e16, 2)).unwrap_err();
    assert_message(&e, &p, &["line 3, column 2", "-5e20", "at most 1.000e16"]);
    let p = dir.file(
        "big.npy",
        &npy_bytes(array![[1.0, 2.0], [1e30, 4.0]].view(), NpyDtype::F64, true),
    );
    let e = meanflow::data::load_bounded(&p, &bounds(1e16, 2)).unwrap_err();
    assert_message(&e, &p, &["row 2, column 1", "1e30"]);
    let e = meanflow::data::load_bounded(&p, &bounds(1e16, 1)).unwrap_err();
    assert_message(&e, &p, &["2 columns; at most 1 are allowed"]);
}

#[test]
fn npy_round_trip_f32_f64_c_and_fortran() {
    let dir = TempDir::new("npy-rt");
    let data = sample();
    for dtype in [NpyDtype::F32, NpyDtype::F64] {
        for fortran in [false, true] {
            let p = dir.path(&format!("a-{dtype:?}-{fortran}.npy"));
            save_npy(&p, data.view(), dtype, fortran).unwrap();
            let back = load_npy(&p).unwrap();
            let expected = match dtype {
                NpyDtype::F64 => data.clone(),
                NpyDtype::F32 => data.mapv(|v| v as f32 as f64),
            };
            assert_eq!(back, expected, "{dtype:?} fortran={fortran}");
            assert_eq!(load(&p).unwrap(), expected);
        }
    }
    assert_eq!(dir.entries().len(), 4);
}

#[test]
fn hand_made_npy_files() {
    let dir = TempDir::new("npy-hand");
    // Fortran order 2 x 3: memory holds column 0, then column 1, then column 2.
    let p = dir.file(
        "f.npy",
        &npy_raw(
            1,
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &f64_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
        ),
    );
    assert_eq!(
        load_npy(&p).unwrap(),
        array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    );
    // C order f32, version 2.0, double-quoted keys, no trailing comma.
    let p = dir.file(
        "c.npy",
        &npy_raw(
            2,
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3, 2)}",
            &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.5, 6.0]),
        ),
    );
    assert_eq!(
        load_npy(&p).unwrap(),
        array![[1.0, 2.0], [3.0, 4.0], [5.5, 6.0]]
    );
    // 1-D is N x 1.
    let p = dir.file(
        "v.npy",
        &npy_raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
            &f64_bytes(&[1.0, 2.0, 3.0, 4.0]),
        ),
    );
    assert_eq!(load_npy(&p).unwrap(), array![[1.0], [2.0], [3.0], [4.0]]);
    // The writer's bytes: the header dictionary as ndarray-npy writes it (numpy writes a trailing
    // ", " before the "}"; both are the same Python literal to numpy's reader).
    let b = npy_bytes(array![[1.0, 2.0], [3.0, 4.0]].view(), NpyDtype::F64, false);
    let text = String::from_utf8_lossy(&b[10..]);
    assert!(text.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)}"));
    assert_eq!(&b[b.len() - 32..], &f64_bytes(&[1.0, 2.0, 3.0, 4.0])[..]);
}

#[test]
fn missing_unreadable_and_empty_files() {
    let dir = TempDir::new("missing");
    for name in ["nope.csv", "nope.npy"] {
        let p = dir.path(name);
        let e = load(&p).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e}");
        assert_message(&e, &p, &["not found"]);
    }
    // A folder cannot be read as a file.
    let sub = dir.path("sub.csv");
    fs::create_dir(&sub).unwrap();
    let e = load(&sub).unwrap_err();
    assert!(matches!(e, DataError::Read { .. }), "{e}");
    assert_message(&e, &sub, &["cannot read"]);

    for (name, bytes) in [
        ("e.csv", &b""[..]),
        ("w.csv", b"  \n\n \r\n"),
        ("e.npy", b""),
    ] {
        let p = dir.file(name, bytes);
        let e = load(&p).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{name}: {e}");
        assert_message(&e, &p, &["empty"]);
    }
}

#[test]
fn csv_bad_inputs() {
    let dir = TempDir::new("csv-bad");
    let check = |name: &str, text: &str, needles: &[&str], ok: fn(&DataError) -> bool| {
        let p = dir.file(name, text.as_bytes());
        let e = load_csv(&p).unwrap_err();
        assert!(ok(&e), "{name}: wrong variant: {e:?}");
        assert_message(&e, &p, needles);
    };
    check("header.csv", "x,y\n\n", &["header only", "line 1"], |e| {
        matches!(e, DataError::HeaderOnly { header_line: 1, .. })
    });
    check(
        "ragged.csv",
        "1,2\n3,4\n5\n",
        &["line 3", "ragged", "1 fields", "expected 2"],
        |e| {
            matches!(
                e,
                DataError::Ragged {
                    line: 3,
                    found: 1,
                    expected: 2,
                    first_line: 1,
                    ..
                }
            )
        },
    );
    check(
        "ragged-header.csv",
        "x,y\n1,2,3\n",
        &["line 2", "ragged"],
        |e| {
            matches!(
                e,
                DataError::Ragged {
                    line: 2,
                    found: 3,
                    ..
                }
            )
        },
    );
    check(
        "text.csv",
        "1,2\n3,abc\n",
        &["line 2, column 2", "non-numeric", "\"abc\""],
        |e| {
            matches!(
                e,
                DataError::NonNumeric {
                    line: 2,
                    column: 2,
                    ..
                }
            )
        },
    );
    // A first line with a number in it is data, so its bad field is reported, not taken as header.
    check(
        "mixed.csv",
        "1,abc\n3,4\n",
        &["line 1, column 2", "non-numeric"],
        |e| {
            matches!(
                e,
                DataError::NonNumeric {
                    line: 1,
                    column: 2,
                    ..
                }
            )
        },
    );
    check(
        "emptyfield.csv",
        "1,2,3\n4,,6\n",
        &["line 2, column 2", "empty field"],
        |e| {
            matches!(
                e,
                DataError::EmptyField {
                    line: 2,
                    column: 2,
                    ..
                }
            )
        },
    );
    check(
        "nan.csv",
        "a,b\n1,2\n3,NaN\n",
        &["line 3, column 2", "non-finite", "NaN"],
        |e| {
            matches!(
                e,
                DataError::NonFinite {
                    at: Position::Line { line: 3, column: 2 },
                    ..
                }
            )
        },
    );
    check(
        "inf.csv",
        "1,2\n-inf,4\n",
        &["line 2, column 1", "non-finite", "-inf"],
        |e| {
            matches!(
                e,
                DataError::NonFinite {
                    at: Position::Line { line: 2, column: 1 },
                    ..
                }
            )
        },
    );
    check("one.csv", "1,2\n", &["a single data row"], |e| {
        matches!(e, DataError::SingleRow { .. })
    });
    check(
        "one-header.csv",
        "x,y\n1,2\n\n",
        &["a single data row"],
        |e| matches!(e, DataError::SingleRow { .. }),
    );
    let p = dir.file("latin1.csv", b"1,2\n3,\xe94\n");
    let e = load_csv(&p).unwrap_err();
    assert!(matches!(e, DataError::NotUtf8 { line: 2, .. }), "{e:?}");
    assert_message(&e, &p, &["line 2", "UTF-8"]);
}

#[test]
fn npy_bad_inputs() {
    let dir = TempDir::new("npy-bad");
    let good = npy_bytes(
        array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].view(),
        NpyDtype::F64,
        false,
    );
    let check = |name: &str, bytes: &[u8], needles: &[&str], ok: fn(&DataError) -> bool| {
        let p = dir.file(name, bytes);
        let e = load_npy(&p).unwrap_err();
        assert!(ok(&e), "{name}: wrong variant: {e:?}");
        assert_message(&e, &p, needles);
        // The in-memory parser gives the same error.
        assert_eq!(parse_npy(&p, bytes).unwrap_err().to_string(), e.to_string());
    };
    let dict = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    };
    check("csv.npy", b"1,2\n3,4\n", &["bad magic"], |e| {
        matches!(e, DataError::NpyBadMagic { .. })
    });
    check("short.npy", b"\x93NUM", &["truncated", "preamble"], |e| {
        matches!(
            e,
            DataError::NpyTruncated {
                part: "preamble",
                ..
            }
        )
    });
    check("hdr.npy", &good[..40], &["truncated", "header"], |e| {
        matches!(e, DataError::NpyTruncated { part: "header", .. })
    });
    check(
        "data.npy",
        &good[..good.len() - 3],
        &["truncated", "data", "48 bytes", "found 45"],
        |e| {
            matches!(
                e,
                DataError::NpyTruncated {
                    part: "data",
                    expected: 48,
                    found: 45,
                    ..
                }
            )
        },
    );
    let mut long = good.clone();
    long.extend_from_slice(&[0; 5]);
    check("long.npy", &long, &["5 unexpected bytes"], |e| {
        matches!(e, DataError::NpyTrailing { extra: 5, .. })
    });
    let mut v4 = good.clone();
    v4[6] = 4;
    check("v4.npy", &v4, &["version 4.0"], |e| {
        matches!(e, DataError::NpyVersion { major: 4, .. })
    });
    check(
        "garbage.npy",
        &npy_raw(1, "{'descr': <f8}", &[]),
        &["bad NPY header"],
        |e| matches!(e, DataError::NpyHeader { .. }),
    );
    check(
        "nokey.npy",
        &npy_raw(
            1,
            "{'descr': '<f8', 'shape': (2, 1)}",
            &f64_bytes(&[1.0, 2.0]),
        ),
        &["missing key 'fortran_order'"],
        |e| matches!(e, DataError::NpyHeader { .. }),
    );
    check(
        "int.npy",
        &npy_raw(1, &dict("<i8", "(2, 1)"), &[0; 16]),
        &["unsupported NPY dtype", "<i8"],
        |e| matches!(e, DataError::NpyDtype { .. }),
    );
    check(
        "struct.npy",
        &npy_raw(
            1,
            "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,)}",
            &[0; 16],
        ),
        &["unsupported NPY dtype"],
        |e| matches!(e, DataError::NpyDtype { .. }),
    );
    check(
        "big.npy",
        &npy_raw(1, &dict(">f8", "(2, 1)"), &[0; 16]),
        &["byte order", ">f8", "big-endian"],
        |e| matches!(e, DataError::NpyByteOrder { .. }),
    );
    check(
        "3d.npy",
        &npy_raw(1, &dict("<f8", "(2, 1, 1)"), &[0; 16]),
        &["unsupported NPY shape", "[2, 1, 1]"],
        |e| matches!(e, DataError::NpyShape { .. }),
    );
    check(
        "scalar.npy",
        &npy_raw(1, &dict("<f8", "()"), &[0; 8]),
        &["unsupported NPY shape", "[]"],
        |e| matches!(e, DataError::NpyShape { .. }),
    );
    check(
        "nocols.npy",
        &npy_raw(1, &dict("<f8", "(5, 0)"), &[]),
        &["unsupported NPY shape"],
        |e| matches!(e, DataError::NpyShape { .. }),
    );
    check(
        "norows.npy",
        &npy_raw(1, &dict("<f8", "(0, 2)"), &[]),
        &["empty"],
        |e| matches!(e, DataError::Empty { .. }),
    );
    check(
        "onerow.npy",
        &npy_raw(1, &dict("<f4", "(1, 2)"), &f32_bytes(&[1.0, 2.0])),
        &["a single data row"],
        |e| matches!(e, DataError::SingleRow { .. }),
    );
    // NaN at memory position 3 of a Fortran 2 x 3 array is row 2, column 2.
    check(
        "nan.npy",
        &npy_raw(
            1,
            "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
            &f64_bytes(&[1.0, 4.0, 2.0, f64::NAN, 3.0, 6.0]),
        ),
        &["row 2, column 2", "non-finite"],
        |e| {
            matches!(
                e,
                DataError::NonFinite {
                    at: Position::Row { row: 2, column: 2 },
                    ..
                }
            )
        },
    );
    check(
        "inf.npy",
        &npy_raw(
            1,
            &dict("<f4", "(3,)"),
            &f32_bytes(&[1.0, 2.0, f32::INFINITY]),
        ),
        &["row 3, column 1", "inf"],
        |e| {
            matches!(
                e,
                DataError::NonFinite {
                    at: Position::Row { row: 3, column: 1 },
                    ..
                }
            )
        },
    );
}

#[test]
fn saving_is_strict_and_atomic() {
    let dir = TempDir::new("save");
    let p = dir.path("out.npy");
    // Replacing an existing file.
    save_npy(&p, array![[1.0], [2.0]].view(), NpyDtype::F64, false).unwrap();
    save_npy(&p, array![[3.0], [4.0], [5.0]].view(), NpyDtype::F64, false).unwrap();
    assert_eq!(load(&p).unwrap(), array![[3.0], [4.0], [5.0]]);

    let e = save_csv(dir.path("nan.csv"), array![[1.0, f64::NAN]].view(), None).unwrap_err();
    assert!(matches!(
        e,
        DataError::NonFinite {
            at: Position::Row { row: 1, column: 2 },
            ..
        }
    ));
    let e = save_npy(
        dir.path("big.npy"),
        array![[1e300]].view(),
        NpyDtype::F32,
        false,
    )
    .unwrap_err();
    assert!(matches!(e, DataError::NonFinite { .. }), "{e}");
    let e = save_csv(
        dir.path("none.csv"),
        Array2::<f64>::zeros((3, 0)).view(),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, DataError::NoColumns { .. }));

    // Into a folder that does not exist: an error naming the destination, nothing written.
    let bad = dir.path("no/such/dir/out.csv");
    let e = save_csv(&bad, array![[1.0]].view(), None).unwrap_err();
    assert!(matches!(e, DataError::Write { .. }), "{e}");
    assert_message(&e, &bad, &["cannot write"]);
    assert_eq!(dir.entries(), vec!["out.npy"]);
}

/// `data`'s points with its labels inserted as column `at` (0-based, at most `dim`), as a file
/// holds them.
fn with_labels(data: &LabelledData, at: usize) -> Array2<f64> {
    let labels = Array2::from_shape_fn((data.len(), 1), |(r, _)| data.labels[r] as f64);
    let (left, right) = data.points.view().split_at(Axis(1), at);
    concatenate(Axis(1), &[left, labels.view(), right]).unwrap()
}

#[test]
fn labelled_files_take_the_label_from_any_column() {
    let dir = TempDir::new("labelled");
    let p = dir.file(
        "first.csv",
        b"# class, x, y\nclass,x,y\n2,1.5,-1\n\n0,2,3e1\n2.0,-0.5,0\n-0,7,8\n",
    );
    let expected = LabelledData {
        points: array![[1.5, -1.0], [2.0, 30.0], [-0.5, 0.0], [7.0, 8.0]],
        labels: vec![2, 0, 2, 0],
        classes: 3,
    };
    for column in [0, -3] {
        assert_eq!(
            load_labelled(&p, column, &Bounds::NONE).unwrap(),
            expected,
            "{column}"
        );
    }
    // The middle and the last column; a single class (all 4) is fine, and classes is 5.
    let p = dir.file("middle.csv", b"1,4,2\n3,4,5\n");
    let d = load_labelled(&p, 1, &Bounds::NONE).unwrap();
    assert_eq!(d.points, array![[1.0, 2.0], [3.0, 5.0]]);
    assert_eq!((d.labels, d.classes), (vec![4, 4], 5));
    let d = load_labelled(&p, -1, &Bounds::NONE).unwrap();
    assert_eq!(d.points, array![[1.0, 4.0], [3.0, 4.0]]);
    assert_eq!((d.labels, d.classes), (vec![2, 5], 6));
    assert_eq!(load_labelled(&p, 2, &Bounds::NONE).unwrap().labels, [2, 5]);
    // The largest label there may be.
    let p = dir.file("big.csv", b"1,999\n2,0\n");
    assert_eq!(load_labelled(&p, -1, &Bounds::NONE).unwrap().classes, 1000);
    // NPY, 1-D: a single column cannot hold points as well as labels (below); (N, 2) can.
    let p = dir.file(
        "two.npy",
        &npy_bytes(
            array![[0.5, 1.0], [1.5, 0.0], [2.5, 1.0]].view(),
            NpyDtype::F32,
            true,
        ),
    );
    let d = load_labelled(&p, 1, &Bounds::NONE).unwrap();
    assert_eq!(d.points, array![[0.5], [1.5], [2.5]]);
    assert_eq!((d.labels, d.classes), (vec![1, 0, 1], 2));
}

/// Saved with the label as a column (CSV with and without a header, NPY f32 / f64 in both
/// orders), a labelled dataset loads back the same: the digits, and a small one with a class
/// that has no rows.
#[test]
fn labelled_round_trip_through_saved_files() {
    let dir = TempDir::new("labelled-rt");
    let small = LabelledData {
        points: sample(),
        labels: vec![3, 0, 3, 1],
        classes: 4,
    };
    let digits = digits();
    for (name, data, at) in [("small", &small, 1), ("digits", &digits, 64)] {
        let table = with_labels(data, at);
        let back_at = [at as isize, at as isize - table.ncols() as isize];
        let csv = dir.path(&format!("{name}.csv"));
        save_csv(&csv, table.view(), None).unwrap();
        let named = dir.path(&format!("{name}-named.csv"));
        let names: Vec<String> = (0..table.ncols()).map(|c| format!("c{c}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        save_csv(&named, table.view(), Some(&names)).unwrap();
        for (p, column) in [(&csv, back_at[0]), (&named, back_at[1])] {
            assert_eq!(&load_labelled(p, column, &Bounds::NONE).unwrap(), data);
        }
        for fortran in [false, true] {
            let npy = dir.path(&format!("{name}-{fortran}.npy"));
            save_npy(&npy, table.view(), NpyDtype::F64, fortran).unwrap();
            assert_eq!(
                &load_labelled(&npy, back_at[1], &Bounds::NONE).unwrap(),
                data
            );
        }
    }
    // f32 keeps the digits exactly (small integers).
    let npy = dir.path("digits-f32.npy");
    save_npy(&npy, with_labels(&digits, 0).view(), NpyDtype::F32, false).unwrap();
    assert_eq!(load_labelled(&npy, 0, &Bounds::NONE).unwrap(), digits);
    assert_eq!(digits.class_counts().len(), 10);
}

/// `bounds.max_cols` counts the point columns, not the label; `max_abs` every value.
#[test]
fn labelled_bounds_count_point_columns() {
    let dir = TempDir::new("labelled-bounds");
    let p = dir.file("three.csv", b"1,2,0\n3,4,1\n");
    let bounds = |max_abs: f64, max_cols: usize| Bounds { max_abs, max_cols };
    assert_eq!(load_labelled(&p, -1, &bounds(10.0, 2)).unwrap().dim(), 2);
    let e = load_labelled(&p, -1, &bounds(10.0, 1)).unwrap_err();
    assert_message(&e, &p, &["3 columns; at most 2 are allowed"]);
    let e = load_labelled(&p, -1, &bounds(3.5, 2)).unwrap_err();
    assert_message(&e, &p, &["line 2, column 2", "at most 3.500e0"]);
    // The widest bound does not overflow.
    assert!(load_labelled(&p, 0, &bounds(f64::MAX, usize::MAX)).is_ok());
}

#[test]
fn labelled_bad_inputs() {
    let dir = TempDir::new("labelled-bad");
    let check =
        |name: &str, bytes: &[u8], column: isize, needles: &[&str], ok: fn(&DataError) -> bool| {
            let p = dir.file(name, bytes);
            let e = load_labelled(&p, column, &Bounds::NONE).unwrap_err();
            assert!(ok(&e), "{name}: wrong variant: {e:?}");
            assert_message(&e, &p, needles);
        };
    let integers = "labels are integers 0 to 999 (at most 1000 classes)";
    // Lines count the header, comments and blank lines; the column is the file's, 1-based.
    check(
        "negative.csv",
        b"x,label,y\n# note\n1,0,2\n\n3,-1,4\n",
        1,
        &["line 5, column 2", "label -1 is negative", integers],
        |e| {
            matches!(
                e,
                DataError::BadLabel {
                    at: Position::Line { line: 5, column: 2 },
                    reason: "negative",
                    ..
                }
            )
        },
    );
    check(
        "fraction.csv",
        b"1,2\n3,2.5\n",
        -1,
        &["line 2, column 2", "label 2.5 is not an integer", integers],
        |e| {
            matches!(
                e,
                DataError::BadLabel {
                    reason: "not an integer",
                    ..
                }
            )
        },
    );
    check(
        "large.csv",
        b"1,2\n3,1000\n5,4000\n",
        1,
        &["line 2, column 2", "label 1000 is too large", integers],
        |e| {
            matches!(
                e,
                DataError::BadLabel {
                    reason: "too large",
                    ..
                }
            )
        },
    );
    // A value column taken for the label by mistake: its first value is named.
    check(
        "wrong-column.csv",
        b"0.25,1\n0.5,0\n",
        0,
        &["line 1, column 1", "label 0.25 is not an integer"],
        |e| matches!(e, DataError::BadLabel { .. }),
    );
    // Non-finite labels are refused by the reader, at the same place.
    check(
        "nan.csv",
        b"1,2\n3,NaN\n",
        -1,
        &["line 2, column 2", "non-finite"],
        |e| {
            matches!(
                e,
                DataError::NonFinite {
                    at: Position::Line { line: 2, column: 2 },
                    ..
                }
            )
        },
    );
    for (column, text) in [(3, "label column 3"), (-4, "label column -4")] {
        check(
            "range.csv",
            b"1,2,0\n3,4,1\n",
            column,
            &[text, "out of range for 3 columns", "-1 the last"],
            |e| matches!(e, DataError::LabelColumn { cols: 3, .. }),
        );
    }
    check(
        "only.csv",
        b"0\n1\n",
        0,
        &["the label column is the only column"],
        |e| matches!(e, DataError::LabelOnly { .. }),
    );
    // The file's own errors come first.
    check("ragged.csv", b"1,2\n3\n", -1, &["line 2", "ragged"], |e| {
        matches!(e, DataError::Ragged { .. })
    });
    check("empty.csv", b"", 0, &["empty file"], |e| {
        matches!(e, DataError::Empty { .. })
    });
    let e = load_labelled(dir.path("nope.npy"), 0, &Bounds::NONE).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    // NPY: the row and column of the label, Fortran order included.
    check(
        "negative.npy",
        &npy_bytes(
            array![[1.0, 0.0], [2.0, 1.0], [3.0, -2.0]].view(),
            NpyDtype::F64,
            true,
        ),
        -1,
        &["row 3, column 2", "label -2 is negative"],
        |e| {
            matches!(
                e,
                DataError::BadLabel {
                    at: Position::Row { row: 3, column: 2 },
                    ..
                }
            )
        },
    );
    check(
        "fraction.npy",
        &npy_bytes(array![[0.1, 5.0], [2.0, 1.0]].view(), NpyDtype::F32, false),
        0,
        &["row 1, column 1", "is not an integer"],
        |e| {
            matches!(
                e,
                DataError::BadLabel {
                    at: Position::Row { row: 1, column: 1 },
                    reason: "not an integer",
                    ..
                }
            )
        },
    );
    check(
        "vector.npy",
        &npy_raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &f64_bytes(&[0.0, 1.0]),
        ),
        -1,
        &["the label column is the only column"],
        |e| matches!(e, DataError::LabelOnly { .. }),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn npy_and_csv_round_trip_any_shape(
        rows in 2usize..9,
        cols in 1usize..5,
        seed in any::<u64>(),
        fortran in any::<bool>(),
    ) {
        let mut rng = meanflow::rng::Rng::seed_from_u64(seed);
        let data = Array2::from_shape_fn((rows, cols), |_| {
            rng.normal() * 10f64.powi(rng.below(21) as i32 - 10)
        });
        let p = Path::new("mem.npy");
        prop_assert_eq!(parse_npy(p, &npy_bytes(data.view(), NpyDtype::F64, fortran)).unwrap(), data.clone());
        prop_assert_eq!(
            parse_npy(p, &npy_bytes(data.view(), NpyDtype::F32, fortran)).unwrap(),
            data.mapv(|v| v as f32 as f64)
        );
        let dir = TempDir::new(&format!("prop-{seed}"));
        let c = dir.path("d.csv");
        save_csv(&c, data.view(), None).unwrap();
        prop_assert_eq!(load(&c).unwrap(), data);
    }
}
