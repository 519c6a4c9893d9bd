//! The layouts public tabular datasets ship in (issue 26): scikit-learn's `n,d,names...` first line
//! (tests/data/tabular: its iris.csv and wine_data.csv as shipped), named headers, tab- and
//! semicolon-separated files, quoted fields, Windows line ends, a trailing delimiter, class names
//! in the label column, a Unicode minus. Each loads as given, and what the reader inferred is a
//! `note:` on stderr; a first row is never dropped silently. Also `data --dataset digits` with
//! `--n` / `--seed`, and `quality` on a model trained on `data --dataset digits`'s file.

mod common;

use common::BIN;
use meanflow::data::csv::parse_csv;
use meanflow::data::{load_labelled, Bounds, LabelledData};
use ndarray::array;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scikit-learn file as shipped (tests/data/tabular).
fn tabular(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tabular")
        .join(name)
}

fn meanflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and requires exit 0; gives stderr.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = meanflow(dir, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stderr(&out)
}

/// Exit 2 with one line `error: ...` holding every needle, nothing on stdout, no file created.
fn rejected(dir: &Path, args: &[&str], needles: &[&str]) {
    let before = entries(dir);
    let out = meanflow(dir, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in: {err}");
    }
    assert!(out.stdout.is_empty(), "{args:?}: printed to stdout");
    assert_eq!(entries(dir), before, "{args:?}: files created or removed");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The few flags that make a training run take a fraction of a second.
const TINY: [&str; 10] = [
    "--width",
    "16",
    "--depth",
    "1",
    "--batch",
    "32",
    "--steps",
    "3",
    "--eval-every",
    "0",
];

fn train(dir: &Path, out: &str, data: &[&str]) -> String {
    let mut args = vec!["train", "--out", out];
    args.extend_from_slice(data);
    args.extend_from_slice(&TINY);
    ok(dir, &args)
}

fn config(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap()
}

fn parse(text: &str) -> meanflow::data::CsvData {
    parse_csv(Path::new("t.csv"), text.as_bytes()).unwrap()
}

fn parse_error(text: &str) -> String {
    parse_csv(Path::new("t.csv"), text.as_bytes())
        .unwrap_err()
        .to_string()
}

/// scikit-learn's iris.csv and wine_data.csv load as shipped, their first line taken as a header
/// and said so (was: `line 1, column 3: non-numeric field "setosa"`, and wine ragged).
#[test]
fn scikit_learn_files_load_with_their_first_line_noted_as_a_header() {
    for (name, rows, dim) in [("iris.csv", 150, 4), ("wine.csv", 178, 13)] {
        let data = load_labelled(tabular(name), -1, &Bounds::NONE).unwrap();
        assert_eq!(
            (data.len(), data.dim(), data.classes),
            (rows, dim, 3),
            "{name}"
        );
        assert_eq!(data.class_counts().iter().sum::<usize>(), rows);
    }
    let iris = load_labelled(tabular("iris.csv"), -1, &Bounds::NONE).unwrap();
    assert_eq!(iris.points.row(0), array![5.1, 3.5, 1.4, 0.2]);
    assert_eq!((iris.labels[0], iris.labels[149]), (0, 2));

    let dir = tempfile::tempdir().unwrap();
    let wine = tabular("wine.csv");
    let err = train(
        dir.path(),
        "wine",
        &["--dataset", wine.to_str().unwrap(), "--label-column", "-1"],
    );
    assert!(
        err.contains(&format!(
            "note: {}: line 1 taken as a header: scikit-learn's first line (178 rows, 13 features, classes \"class_0\", \"class_1\", \"class_2\")",
            wine.display()
        )),
        "{err}"
    );
    let c = config(&dir.path().join("wine"));
    assert_eq!(c["dataset"]["rows"], 178);
    assert_eq!(c["train"]["model"]["classes"], 3);

    // Without a label column the class column would be a feature: refused (tests/probe_fixes.rs
    // checks the commands' messages), unless the rows are the d features alone.
    assert_eq!(
        parse_error("3,2,a,b\n1,2,0\n3,4,1\n5,6,1\n"),
        "t.csv: scikit-learn's header says the last column holds the classes (\"a\", \"b\")"
    );
    assert_eq!(parse("2,2,a\n1,2\n3,4\n").data.dim(), (2, 2));
    // Counts that are not the file's: still a header (the line cannot be data), and the note says
    // so.
    let c = parse("150,4,setosa,versicolor\n1,2,0,1\n3,4,1,0\n");
    assert!(
        c.notes[0].ends_with("its counts are not the file's: 2 rows of 4 columns follow"),
        "{:?}",
        c.notes
    );
}

/// A first line that is not a header is data, and its bad field is reported: `1.2.3` (was dropped
/// as a header), and a Unicode minus is a minus (the row was dropped: config.json said 3 rows of
/// 4), with a note.
#[test]
fn a_first_row_is_never_dropped_silently() {
    assert_eq!(
        parse_error("1.2.3,4\n1,2\n3,4\n"),
        "t.csv: line 1, column 1: non-numeric field \"1.2.3\""
    );
    assert_eq!(
        parse_error("-,-\n1,2\n3,4\n"),
        "t.csv: line 1, column 1: non-numeric field \"-\""
    );
    let c = parse("\u{2212}1.5,\u{2212}2\n1,2e\u{2212}1\n3,4\n5,6\n");
    assert_eq!(
        c.data,
        array![[-1.5, -2.0], [1.0, 0.2], [3.0, 4.0], [5.0, 6.0]]
    );
    assert_eq!(c.header, None);
    assert_eq!(
        c.notes,
        ["t.csv: line 1, column 1: '\u{2212}' (U+2212 MINUS SIGN) read as '-', here and wherever it appears"]
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("minus.csv"),
        "\u{2212}1.5,\u{2212}2\n1,2\n3,4\n5,6\n",
    )
    .unwrap();
    let err = train(dir.path(), "run", &["--dataset", "minus.csv"]);
    assert!(
        err.contains("note: minus.csv: line 1, column 1: '\u{2212}'"),
        "{err}"
    );
    assert_eq!(config(&dir.path().join("run"))["dataset"]["rows"], 4);
    // A plain table of numbers gets no note.
    std::fs::write(dir.path().join("plain.csv"), "1,2\n3,4\n5,6\n").unwrap();
    let err = train(dir.path(), "plain", &["--dataset", "plain.csv"]);
    assert!(!err.contains("note:"), "{err}");
}

/// Tab- and semicolon-separated files split on the delimiter of their first line (was: line 1
/// taken as a header and the error at line 2), quoted fields, Windows line ends, a delimiter
/// ending every line, pandas' unnamed index column.
#[test]
fn delimiters_quotes_line_ends_and_trailing_columns() {
    let tsv = parse("sepal length\tsepal width\r\n5.1\t3.5\r\n4.9\t3.0\r\n");
    assert_eq!(tsv.data, array![[5.1, 3.5], [4.9, 3.0]]);
    assert_eq!(
        tsv.notes,
        [
            "t.csv: fields separated by tabs (as on line 1)",
            "t.csv: line 1 taken as a header: column names \"sepal length\", \"sepal width\""
        ]
    );
    assert_eq!(
        parse_error("a\tb\n1\t2\n3\tx\n"),
        "t.csv: line 3, column 2: non-numeric field \"x\""
    );
    assert_eq!(
        parse_error("1\t2\n3\t4\n5;6\n"),
        "t.csv: line 3: ragged row with 1 fields, expected 2 (as on line 1)"
    );
    // UCI's wine quality: semicolons and a quoted header.
    let wq = parse("\"fixed acidity\";\"volatile acidity\";\"quality\"\n7.4;0.7;5\n7.8;0.88;5\n");
    assert_eq!(
        wq.header,
        Some(vec![
            "fixed acidity".to_string(),
            "volatile acidity".into(),
            "quality".into()
        ])
    );
    assert_eq!(wq.data, array![[7.4, 0.7, 5.0], [7.8, 0.88, 5.0]]);
    assert_eq!(
        parse_error("a;b\n1;2\n3;x\n"),
        "t.csv: line 3, column 2: non-numeric field \"x\""
    );
    // Decimal commas are not numbers: named as they are.
    assert_eq!(
        parse_error("1,5;2\n3;4\n"),
        "t.csv: line 1, column 1: non-numeric field \"1,5\""
    );
    // Quoted fields, a delimiter inside quotes.
    let q = parse("\"length, cm\",\"class\"\n\"1.5\",0\n2.5,\"1\"\n");
    assert_eq!(
        q.header,
        Some(vec!["length, cm".to_string(), "class".into()])
    );
    assert_eq!(q.data, array![[1.5, 0.0], [2.5, 1.0]]);
    // A delimiter at the end of every line: the empty last column is not read, and said so.
    for text in [
        "x,y,\r\n1,2,\r\n3,4,\r\n",
        "x,y\n1,2,\n3,4,\n",
        "1,2,\n3,4,\n",
    ] {
        let c = parse(text);
        assert_eq!(c.data, array![[1.0, 2.0], [3.0, 4.0]], "{text:?}");
        assert!(
            c.notes
                .last()
                .unwrap()
                .ends_with("every line ends with ',': the empty last column is not read"),
            "{:?}",
            c.notes
        );
    }
    // ... but an empty last field that other rows fill is an empty field.
    assert_eq!(
        parse_error("1,2,\n3,4,5\n"),
        "t.csv: line 1, column 3: empty field"
    );
    assert_eq!(
        parse_error("x,y,z\n1,2,\n3,4,5\n"),
        "t.csv: line 2, column 3: empty field"
    );
    // pandas' to_csv: an unnamed index column.
    let pd = parse(",a,b\n0,1.5,2\n1,3,4\n");
    assert_eq!(
        pd.header,
        Some(vec!["".to_string(), "a".into(), "b".into()])
    );
    assert_eq!(pd.data.dim(), (2, 3));

    // Through the command: the notes on stderr, the run trains.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.csv"),
        "\"a\";\"b\";\"c\"\r\n1;2;0\r\n3;4;1\r\n5;6;0\r\n7;8;1\r\n9;10;0\r\n",
    )
    .unwrap();
    let err = train(
        dir.path(),
        "run",
        &["--dataset", "w.csv", "--label-column", "-1"],
    );
    assert!(
        err.contains("note: w.csv: fields separated by ';' (as on line 1)")
            && err.contains(
                "note: w.csv: line 1 taken as a header: column names \"a\", \"b\", \"c\""
            ),
        "{err}"
    );
    assert_eq!(config(&dir.path().join("run"))["train"]["model"]["dim"], 2);
}

/// A label column of class names (UCI's iris.data: `Iris-setosa`): classes numbered in sorted
/// order, the same for a shuffled copy, listed in a note. Without `--label-column` a name is a
/// non-numeric field.
#[test]
fn class_names_in_the_label_column_are_sorted_classes() {
    let iris = load_labelled(tabular("iris.csv"), -1, &Bounds::NONE).unwrap();
    let names = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"];
    let uci = |rows: &mut dyn Iterator<Item = usize>| -> String {
        rows.map(|r| {
            let p = iris.points.row(r);
            format!(
                "{},{},{},{},{}\n",
                p[0], p[1], p[2], p[3], names[iris.labels[r]]
            )
        })
        .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let forward = dir.path().join("iris.data");
    std::fs::write(&forward, uci(&mut (0..150))).unwrap();
    let backward = dir.path().join("reversed.data");
    std::fs::write(&backward, uci(&mut (0..150).rev())).unwrap();
    let a = load_labelled(&forward, -1, &Bounds::NONE).unwrap();
    assert_eq!(a, iris);
    let b = load_labelled(&backward, 4, &Bounds::NONE).unwrap();
    assert_eq!(b.labels[0], 2);
    assert_eq!(b.classes, 3);
    // First column, quoted, with a header.
    let p = dir.path().join("first.csv");
    std::fs::write(
        &p,
        "species,x\n\"virginica\",1\nsetosa,2\n versicolor ,3\nsetosa,4\n",
    )
    .unwrap();
    assert_eq!(
        load_labelled(&p, 0, &Bounds::NONE).unwrap(),
        LabelledData {
            points: array![[1.0], [2.0], [3.0], [4.0]],
            labels: vec![2, 0, 1, 0],
            classes: 3,
        }
    );

    let err = train(
        dir.path(),
        "run",
        &["--dataset", "reversed.data", "--label-column", "-1"],
    );
    assert!(
        err.contains(
            "note: reversed.data: column 5 holds class names, numbered in sorted order: 0 \"Iris-setosa\", 1 \"Iris-versicolor\", 2 \"Iris-virginica\""
        ),
        "{err}"
    );
    assert_eq!(
        config(&dir.path().join("run"))["train"]["model"]["classes"],
        3
    );
    rejected(
        dir.path(),
        &["train", "--dataset", "iris.data", "--out", "never"],
        &["iris.data: line 1, column 5: non-numeric field \"Iris-setosa\""],
    );
    // A name outside the label column is still refused where it is.
    std::fs::write(dir.path().join("bad.csv"), "1,a\n2,b\nx,c\n").unwrap();
    rejected(
        dir.path(),
        &[
            "train",
            "--dataset",
            "bad.csv",
            "--label-column",
            "1",
            "--out",
            "never",
        ],
        &["bad.csv: line 3, column 1: non-numeric field \"x\""],
    );
}

/// `data --dataset digits` writes the fixed split: `--n` and `--seed` are refused (they were
/// ignored); the other datasets take them.
#[test]
fn data_digits_refuses_n_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--n", "--seed"] {
        rejected(
            dir.path(),
            &["data", "--dataset", "digits", "--out", "d.csv", flag, "5"],
            &[
                &format!("{flag} does not apply to --dataset digits"),
                "1497",
            ],
        );
    }
    ok(
        dir.path(),
        &[
            "data",
            "--dataset",
            "circles",
            "--out",
            "c.csv",
            "--n",
            "5",
            "--seed",
            "3",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("c.csv"))
            .unwrap()
            .lines()
            .count(),
        5
    );
}

/// README's round trip: `data --dataset digits`, `train --dataset FILE --label-column -1`, then
/// `quality` (was: "not a model of the digits"); a run on the held-out digits is refused.
#[test]
fn quality_scores_a_model_of_the_digits_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["data", "--dataset", "digits", "--out", "digits.csv"]);
    ok(
        d,
        &[
            "data",
            "--dataset",
            "digits",
            "--held-out",
            "--out",
            "held.npy",
        ],
    );
    train(
        d,
        "run",
        &["--dataset", "digits.csv", "--label-column", "-1"],
    );
    let out = meanflow(
        d,
        &[
            "quality",
            "--checkpoint",
            "run/checkpoint.safetensors",
            "--per-class",
            "2",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        report.contains("20 samples: class accuracy 0.") && report.contains("Fréchet"),
        "{report}"
    );
    train(
        d,
        "held",
        &["--dataset", "held.npy", "--label-column", "-1"],
    );
    rejected(
        d,
        &[
            "quality",
            "--checkpoint",
            "held/checkpoint.safetensors",
            "--per-class",
            "2",
        ],
        &["trained on the 300 held-out digits"],
    );
    // Other data are still not digits.
    std::fs::write(d.join("p.csv"), "1,2\n3,4\n5,6\n").unwrap();
    train(d, "other", &["--dataset", "p.csv"]);
    rejected(
        d,
        &["quality", "--checkpoint", "other/checkpoint.safetensors"],
        &["not a model of the digits"],
    );
}
